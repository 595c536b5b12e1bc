"""``miyabi-analytics rollup``: bring the rollups up to date, from cron or by hand."""

from __future__ import annotations

import argparse
from typing import Any

from miyabi_analytics._db.engine import connect
from miyabi_analytics.rollups import refresh_rollups, rollup_status

__all__ = ["add_rollup_command"]


def add_rollup_command(commands: Any, url_help: str) -> None:
    """Add ``rollup`` to the subcommands (``commands`` is argparse's subparsers action)."""
    cmd = commands.add_parser(
        "rollup", help="bring the per-day rollups up to date (incremental; safe from cron)"
    )
    cmd.add_argument("--url", help=url_help)
    cmd.set_defaults(handler=_rollup)


def _rollup(args: argparse.Namespace) -> int:
    engine = connect(args.url)
    try:
        done = refresh_rollups(engine)
        print(f"rolled up {done.days:,} changed days; {rollup_status(engine).describe()}")
    finally:
        engine.dispose()
    return 0
