"""The ``miyabi-analytics`` command: thin, testable (``main(argv) -> int``), no tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import URL
from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._db.engine import connect, mask_url
from miyabi_analytics._db.migrate import current_revision, downgrade, migrate
from miyabi_analytics.errors import MiyabiError

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miyabi-analytics",
        description="Track and analyse the executions of Miyabi's business agents.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url_help = (
        "database URL (default: $MIYABI_DATABASE_URL, $DATABASE_URL, sqlite:///miyabi.db)"
    )

    cmd = commands.add_parser("migrate", help="upgrade the schema")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--revision", default="head", help="target revision (default: head)")
    cmd.set_defaults(handler=_migrate)

    cmd = commands.add_parser("downgrade", help="downgrade the schema")
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--revision", required=True, help="target revision ('base' drops all)")
    cmd.set_defaults(handler=_downgrade)

    cmd = commands.add_parser(
        "demo", help="load a synthetic history, summarise it and write a report"
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--executions", type=_positive_int, default=20_000)
    cmd.add_argument("--seed", type=int, default=42)
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
    cmd.add_argument("--format", choices=("html", "ipynb"), default="html")
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
        "reap", help="fail running executions that stopped sending heartbeats"
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--stale-after",
        required=True,
        type=_duration,
        metavar="DURATION",
        help="silence that counts as stuck, e.g. 90s, 30m, 2h, 7d",
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
        migrate(engine, args.revision)
        print(f"{mask_url(engine.url)} is at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    engine = connect(args.url)
    try:
        downgrade(engine, args.revision)
        print(f"{mask_url(engine.url)} is at revision {current_revision(engine) or 'base'}")
    finally:
        engine.dispose()
    return 0


def _demo(args: argparse.Namespace) -> int:
    import pandas as pd

    from miyabi_analytics.demo import load_demo
    from miyabi_analytics.notebook import jupyter_command, shown_url
    from miyabi_analytics.reader import read_summary

    engine = connect(args.url)
    try:
        began = time.perf_counter()
        migrate(engine)
        load_demo(engine, args.executions, seed=args.seed, progress=_say)
        frame = read_summary(
            engine, columns=["agent_type", "status", "quality_score", "duration_seconds"]
        )
        _say(f"loaded into {shown_url(engine.url)} in {time.perf_counter() - began:.1f}s")
        _say(f"open the notebooks on it: {jupyter_command(engine.url)}\n")
        print(_summary_table(frame, pd))
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
    began = time.perf_counter()
    try:
        path = generate_report(url, **options)
    except ReportError as exc:
        print(f"miyabi-analytics: report failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("miyabi-analytics: report interrupted", file=sys.stderr)
        return 130
    _say(f"report written in {time.perf_counter() - began:.1f}s")
    print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
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

    host = f"[{args.host}]" if ":" in args.host else args.host
    shown = shown_url(args.url)
    _say(f"serving the dashboard of {shown} at http://{host}:{args.port}/ (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
        serve_dashboard(args.url, port=args.port, host=args.host)
    return 0


def _summary_table(frame: Any, pd: Any) -> str:
    grouped = frame.groupby("agent_type", observed=True)
    completed = grouped["status"].apply(lambda s: int((s == "completed").sum()))
    failed = grouped["status"].apply(lambda s: int((s == "failed").sum()))
    table = pd.DataFrame(
        {
            "executions": grouped.size(),
            "completed": completed,
            "failed": failed,
            "success_rate": (completed / (completed + failed)).map("{:.1%}".format),
            "mean_quality": grouped["quality_score"].mean().round(1),
            "median_minutes": (grouped["duration_seconds"].median() / 60).round(1),
        }
    )
    return str(table.to_string())


def _reap(args: argparse.Namespace) -> int:
    from miyabi_analytics._durations import format_duration
    from miyabi_analytics.store import ExecutionStore

    engine = connect(args.url)
    try:
        reaped = ExecutionStore(engine).reap(args.stale_after)
    finally:
        engine.dispose()
    print(
        f"reaped {reaped} running executions with no heartbeat for "
        f"{format_duration(args.stale_after)}"
    )
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
    """Run the command line; returns the exit status (2 for bad arguments or bad input)."""
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except MiyabiError as exc:
        print(f"miyabi-analytics: error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = str(cause).strip().splitlines()
        reason = mask_url(first_line[0] if first_line else type(exc).__name__)
        print(f"miyabi-analytics: database error: {reason}", file=sys.stderr)
        return 1
