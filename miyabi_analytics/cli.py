"""The ``miyabi-analytics`` command: thin, testable (``main(argv) -> int``), no tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._check_command import add_check_command, database_reason
from miyabi_analytics._db.engine import connect, mask_url
from miyabi_analytics._db.migrate import current_revision, downgrade, migrate
from miyabi_analytics._extras import require_extra
from miyabi_analytics._outputs import check_output_file
from miyabi_analytics._rollup_command import add_rollup_command
from miyabi_analytics._version import package_version
from miyabi_analytics.errors import MiyabiError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, refusing as the rest of the command does: one line on stderr, exit 2.

    The stock ``error`` prints the whole usage first; the line names the option and the value,
    and points to ``--help`` for the rest.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _at_least_one(text: str) -> int:
    value = _positive_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="miyabi-analytics",
        description="Track and analyse the executions of Miyabi's business agents.",
        allow_abbrev=False,  # "--v" is not a way to ask for the version
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {package_version()}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url_help = (
        "database URL (default: $MIYABI_DATABASE_URL, $DATABASE_URL, sqlite:///miyabi.db)"
    )

    cmd = commands.add_parser("migrate", help="upgrade the schema")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--revision", default="head", help="target revision (default: head)")
    cmd.add_argument(
        "--dry-run",
        action="store_true",
        help="print one line per change it would make (adopting an upstream Miyabi database "
        "included), change nothing",
    )
    cmd.set_defaults(handler=_migrate)

    cmd = commands.add_parser("downgrade", help="downgrade the schema")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--revision",
        required=True,
        help="target revision ('base' drops all; 'upstream' gives an adopted Miyabi database "
        "its upstream shape back)",
    )
    cmd.set_defaults(handler=_downgrade)

    cmd = commands.add_parser(
        "demo", help="load a synthetic history, summarise it and write a report"
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--executions",
        type=_at_least_one,
        default=20_000,
        metavar="N",
        help="executions to generate, written in batches as they are made (default: 20000)",
    )
    cmd.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed: the same seed gives the same history, loaded once (default: 42)",
    )
    cmd.add_argument(
        "--output",
        default="miyabi-report.html",
        help="where to write the HTML report (default: ./miyabi-report.html)",
    )
    cmd.set_defaults(handler=_demo)

    cmd = commands.add_parser("report", help="run the report notebook and write the report")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--since", help="first day or instant included (default: 28 days before --until)"
    )
    cmd.add_argument(
        "--until", help="first day or instant excluded (default: tomorrow, UTC)"
    )
    cmd.add_argument("--repository", metavar="UUID", help="report on this repository only")
    cmd.add_argument("--title", help="the report's heading (default: Miyabi agents report)")
    cmd.add_argument(
        "--format",
        choices=("html", "ipynb"),
        default="html",
        help="html: a self-contained page, code hidden; ipynb: the executed notebook "
        "(default: html)",
    )
    cmd.add_argument(
        "--output", help="output file (default: ./miyabi-report.html or .ipynb)"
    )
    cmd.set_defaults(handler=_report)

    cmd = commands.add_parser("serve", help="serve the dashboard notebook as a web app (Voila)")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--port", type=_port, default=8866, help="port (default: 8866)")
    cmd.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)"
    )
    cmd.set_defaults(handler=_serve)
    cmd = commands.add_parser(
        "reap", help="fail running executions that stopped sending heartbeats or run too long"
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--stale-after",
        type=_duration,
        metavar="DURATION",
        help="silence that counts as stuck for executions that send heartbeats, e.g. 30m",
    )
    cmd.add_argument(
        "--max-runtime",
        type=_duration,
        metavar="DURATION",
        help="runtime that counts as stuck for executions that never sent a heartbeat, e.g. 2h",
    )
    cmd.set_defaults(handler=_reap)

    cmd = commands.add_parser(
        "purge", help="archive (optional) and delete executions older than a duration"
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        metavar="DURATION",
        help="age by start time (creation time if never started), e.g. 90d",
    )
    cmd.add_argument(
        "--archive", metavar="DIR", help="write the purged rows to Parquet files here first"
    )
    cmd.add_argument(
        "--dry-run", action="store_true", help="only count what would be purged"
    )
    cmd.set_defaults(handler=_purge)
    add_rollup_command(commands, url_help)
    add_check_command(commands, url_help, _duration)
    return parser


def _duration(text: str) -> timedelta:
    from miyabi_analytics._durations import parse_duration

    try:
        return parse_duration(text)
    except MiyabiError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    value = _positive_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {value}")
    return value


def _migrate(args: argparse.Namespace) -> int:
    engine = connect(args.url)
    try:
        lines = migrate(engine, args.revision, dry_run=args.dry_run)
        for line in lines:
            print(line)
        if args.dry_run:
            print(f"dry run: {len(lines)} change(s) planned, nothing was changed")
        else:
            print(f"{mask_url(engine.url)} is at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    engine = connect(args.url)
    try:
        for line in downgrade(engine, args.revision):
            print(line)
        revision = current_revision(engine)
        if revision is None and args.revision == "upstream":
            print(f"{mask_url(engine.url)} has its upstream Miyabi shape again")
        else:
            print(f"{mask_url(engine.url)} is at revision {revision or 'base'}")
    finally:
        engine.dispose()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from miyabi_analytics.demo import iter_history, load_demo
    from miyabi_analytics.notebook import jupyter_command, shown_url
    from miyabi_analytics.rollups import refresh_rollups

    # Everything refusable is refused before the database is touched.
    require_extra("report")  # without it the history would load, then the report fail
    iter_history(args.executions, seed=args.seed)  # validates the count; makes nothing yet
    check_output_file("output", args.output)
    engine = connect(args.url)
    try:
        began = time.perf_counter()
        migrate(engine)
        try:
            loaded = load_demo(engine, args.executions, seed=args.seed)
        except KeyboardInterrupt:
            print("miyabi-analytics: demo interrupted; nothing was loaded", file=sys.stderr)
            return 130
        if loaded.already_loaded:
            print(f"the demo history of seed {args.seed} is already in {shown_url(engine.url)}")
        else:
            print(
                f"loaded {loaded.executions:,} executions, {loaded.metrics:,} metrics and "
                f"{loaded.logs:,} log lines into {shown_url(engine.url)} "
                f"in {time.perf_counter() - began:.1f}s"
            )
        refresh_rollups(engine)  # what cron would do: the report reads settled days from it
        print(_summary_table(engine))
        print(f"open the notebooks on it: {jupyter_command(engine.url)}")
    finally:
        engine.dispose()
    return _write_report(engine.url, output=args.output)


def _write_report(url: str | URL | None, **options: Any) -> int:
    """Generate a report; prints its path, or one line naming the failed cell (exit 1)."""
    from miyabi_analytics.reports import ReportError, generate_report

    # papermill and nbclient log kernel trouble on their own; here it is the one line below.
    quiet = logging.getLogger("papermill")
    if not any(isinstance(handler, logging.NullHandler) for handler in quiet.handlers):
        quiet.addHandler(logging.NullHandler())
    try:
        path = generate_report(url, **options)
    except ReportError as exc:
        print(f"miyabi-analytics: report failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("miyabi-analytics: report interrupted", file=sys.stderr)
        return 130
    print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    check_output_file("output", args.output or f"miyabi-report.{args.format}")
    return _write_report(
        args.url,
        since=args.since,
        until=args.until,
        repository_id=args.repository,
        title=args.title,
        output=args.output,
        format=args.format,
    )


def _serve(args: argparse.Namespace) -> int:
    from miyabi_analytics.notebook import shown_url
    from miyabi_analytics.reports import serve_dashboard

    require_extra("serve")  # before saying it serves
    host = f"[{args.host}]" if ":" in args.host else args.host
    shown = shown_url(args.url)
    _say(f"serving the dashboard of {shown} at http://{host}:{args.port}/ (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        serve_dashboard(args.url, port=args.port, host=args.host)
    return 0


def _summary_table(engine: Engine) -> str:
    """Per agent, computed in the database: the same few rows whatever the history's size."""
    import pandas as pd

    from miyabi_analytics.kpis import kpi_table

    kpis = kpi_table(engine, by="agent_type")
    table = pd.DataFrame(
        {
            "executions": kpis["executions"],
            "completed": kpis["completed"],
            "failed": kpis["failed"],
            "success_rate": kpis["success_rate"].map("{:.1%}".format),
            "mean_quality": kpis["mean_quality"].round(1),
            "median_minutes": (kpis["median_seconds"] / 60).round(1),
        }
    )
    return str(table.to_string())


def _reap(args: argparse.Namespace) -> int:
    from miyabi_analytics._durations import format_duration
    from miyabi_analytics.errors import ValidationError
    from miyabi_analytics.store import ExecutionStore

    stale, runtime = args.stale_after, args.max_runtime
    if stale is None and runtime is None:
        raise ValidationError("--stale-after", None, "give --stale-after, --max-runtime or both")
    engine = connect(args.url)
    try:
        reaped = ExecutionStore(engine).reap(stale, max_runtime=runtime)
    finally:
        engine.dispose()
    rules = []
    if stale is not None:
        rules.append(f"with no heartbeat for {format_duration(stale)}")
    if runtime is not None:
        rules.append(f"that ran for more than {format_duration(runtime)} without a heartbeat")
    print(f"reaped {reaped} running executions {', or '.join(rules)}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    from miyabi_analytics.retention import purge

    engine = connect(args.url)
    try:
        report = purge(
            engine, args.older_than, archive_dir=args.archive, dry_run=args.dry_run
        )
    finally:
        engine.dispose()
    print(report)
    for path in report.archive_files:
        print(path)
    return 0


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad arguments or bad input).

    A missing extra (:class:`~miyabi_analytics._extras.MissingExtraError`, a ``MiyabiError``)
    is bad input too: one line naming the pip command, exit status 2.
    """
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except MiyabiError as exc:
        print(f"miyabi-analytics: error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"miyabi-analytics: database error: {database_reason(exc)}", file=sys.stderr)
        return 1
