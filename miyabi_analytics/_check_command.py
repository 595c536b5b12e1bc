"""``miyabi-analytics check``: the argument wiring of :mod:`miyabi_analytics.alerts` for cron.

Kept out of ``cli.py`` so that module stays the command table. Exit status: 0 no rule breached,
1 at least one breached, 2 bad input (argparse's refusals, a bad or unreachable URL, a database
that is not migrated), never a traceback.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._db.engine import connect, mask_url
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.rollups import rollup_status

__all__ = ["add_check_command", "database_reason"]


def add_check_command(
    commands: Any, url_help: str, duration: Callable[[str], timedelta]
) -> None:
    """Add ``check`` to the subcommands (``commands`` is argparse's subparsers action)."""
    cmd = commands.add_parser(
        "check",
        help="judge failure rate, quality and stuck executions for cron: exit 1 if one is bad",
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument(
        "--since",
        type=duration,
        metavar="DURATION",
        help="judge executions that started this long ago or later, e.g. 6h (default: 24h)",
    )
    cmd.add_argument(
        "--max-failure-rate",
        type=_fraction,
        metavar="R",
        help="breached when failed / finished executions is above R (0 to 1, e.g. 0.1)",
    )
    cmd.add_argument(
        "--min-quality",
        type=_score,
        metavar="Q",
        help="breached when the mean quality score of scored executions is below Q (0 to 100)",
    )
    cmd.add_argument(
        "--stale-after",
        type=duration,
        metavar="DURATION",
        help="breached when an execution is stuck as reap --stale-after sees it, e.g. 30m",
    )
    cmd.add_argument(
        "--max-runtime",
        type=duration,
        metavar="DURATION",
        help="runtime that counts as stuck for executions that never sent a heartbeat "
        "(default: twice --stale-after)",
    )
    cmd.add_argument("--json", action="store_true", help="print one JSON object instead")
    cmd.set_defaults(handler=_check)


def database_reason(exc: SQLAlchemyError) -> str:
    """The first line of the driver's message, any URL in it masked."""
    cause = getattr(exc, "orig", None) or exc
    first_line = str(cause).strip().splitlines()
    return mask_url(first_line[0] if first_line else type(exc).__name__)


def _check(args: argparse.Namespace) -> int:
    from miyabi_analytics.alerts import DEFAULT_SINCE, check, verdict_lines, verdicts_json

    limits = (args.max_failure_rate, args.min_quality, args.stale_after, args.max_runtime)
    if all(limit is None for limit in limits):
        raise ValidationError(
            "rules",
            None,
            "give at least one rule: --max-failure-rate, --min-quality, --stale-after or "
            "--max-runtime",
        )
    since: timedelta = args.since or DEFAULT_SINCE
    now = datetime.now(UTC)
    engine = connect(args.url)
    try:
        verdicts = check(
            engine,
            since=since,
            max_failure_rate=args.max_failure_rate,
            min_quality=args.min_quality,
            stale_after=args.stale_after,
            max_runtime=args.max_runtime,
            now=now,
        )
        rollup = rollup_status(engine)  # exact either way; said so a reader knows what was read
    except SQLAlchemyError as exc:  # unreachable, or not a Miyabi database: not a breach
        raise ValidationError("url", mask_url(engine.url), database_reason(exc)) from None
    finally:
        engine.dispose()
    if args.json:
        shown = verdicts_json(verdicts, now - since, since)
        shown["rollup"] = {
            "refreshed_at": rollup.refreshed_at and rollup.refreshed_at.isoformat(),
            "pending_days": rollup.pending_days,
            "stale": rollup.stale,
        }
        print(json.dumps(shown))
    else:
        for line in verdict_lines(verdicts):
            print(line)
        if rollup.stale:  # the answers are exact, but the reader is told what was read
            print(rollup.describe())
    return 1 if any(verdict.breached for verdict in verdicts) else 0


def _fraction(text: str) -> float:
    from miyabi_analytics.alerts import check_failure_rate

    return _number(text, check_failure_rate, "a fraction from 0 to 1 (0.1 is 10%)")


def _score(text: str) -> float:
    from miyabi_analytics.alerts import check_min_quality

    return _number(text, check_min_quality, "a quality score from 0 to 100")


def _number(text: str, rule: Callable[[object], float], expected: str) -> float:
    try:
        return rule(float(text))
    except ValueError:  # float()'s, or the rule's ValidationError (a ValueError too)
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
