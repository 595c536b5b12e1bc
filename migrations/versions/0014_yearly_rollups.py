"""Yearly rollups: all time reads a row a year per key, not twelve.

``agent_execution_rollups_yearly`` holds the sums (minima, maxima) of each UTC year's monthly
rollups per key, with the year's bounds (``day``, ``next_year``; NULL after year 9999, which
has no representable next year on SQLite). ``refresh_rollups`` recomputes the years of the days
it refreshes, in the same step; an all-time answer that is not per period reads the years that
have no pending day from here, and the settled months of the others. Filled here from the
months already rolled up; scoped by repository as the other rollups are.

Downgrade: drops the table.

Revision ID: 0014_yearly_rollups
Revises: 0013_duration_totals
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.scoped import repository_scope_ddl
from miyabi_analytics._db.types import UtcDateTime, UuidText
from miyabi_analytics.vocabulary import AVERAGED_METRICS, SUMMED_METRICS

revision: str = "0014_yearly_rollups"
down_revision: str | None = "0013_duration_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

YEARLY = "agent_execution_rollups_yearly"
MONTHLY = "agent_execution_rollups_monthly"
KEYS = ("agent_type", "repository_id", "status", "error_message", "started")
_SQLITE_JAN_1 = "'-01-01 00:00:00.000000+00:00'"


def _bounds(dialect: Dialect) -> tuple[str, str]:
    """SQL for the first day of the month row's UTC year, and of the next (NULL after 9999)."""
    if dialect.is_postgresql:
        year = "date_trunc('year', day, 'UTC')"
        following = (
            f"CASE WHEN extract(year FROM {year} AT TIME ZONE 'UTC') < 9999 "
            f"THEN (({year} AT TIME ZONE 'UTC') + interval '1 year') AT TIME ZONE 'UTC' END"
        )
        return year, following
    year = f"substr(day, 1, 4) || {_SQLITE_JAN_1}"
    following = (
        "CASE WHEN substr(day, 1, 4) < '9999' THEN "
        f"printf('%04d', CAST(substr(day, 1, 4) AS INTEGER) + 1) || {_SQLITE_JAN_1} END"
    )
    return year, following


def _big(*names: str, nullable: bool = True) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.BigInteger(), nullable=nullable) for name in names]


def _columns() -> list[sa.Column[object]]:
    """The monthly rollup's columns (revisions 0011 and 0012), and the year's end."""
    return [
        sa.Column("day", UtcDateTime(), nullable=False),
        sa.Column("next_year", UtcDateTime(), nullable=True),
        sa.Column("agent_type", sa.String(50), nullable=False),
        sa.Column("repository_id", UuidText(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started", sa.Boolean(), nullable=False, server_default=sa.true()),
        *_big("executions", "scored", "timed", "analysed", nullable=False),
        *_big("quality_sum", "quality_sq_sum"),
        sa.Column("quality_min", sa.Integer(), nullable=True),
        sa.Column("quality_max", sa.Integer(), nullable=True),
        *_big("micros_hi", "micros_lo", "micros_min", "micros_max"),
        sa.Column("started_min", UtcDateTime(), nullable=True),
        sa.Column("started_max", UtcDateTime(), nullable=True),
        *_big(*(f"{name}_{half}" for name in SUMMED_METRICS for half in ("hi", "lo"))),
        *_big(*(f"{name}_{p}" for name in AVERAGED_METRICS for p in ("total", "count"))),
    ]


def _merged(name: str) -> str:
    if name.endswith("_min"):
        return f"min({name})"
    return f"max({name})" if name.endswith("_max") else f"sum({name})"


def upgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    op.create_table(YEARLY, *_columns())
    op.create_index(op.f(f"ix_{YEARLY}_day"), YEARLY, ["day"])
    if dialect.is_postgresql:
        for statement in repository_scope_ddl(YEARLY):
            op.execute(statement)
    year, following = _bounds(dialect)
    measures = [c.name for c in _columns() if c.name not in ("day", "next_year", *KEYS)]
    names = ", ".join(["day", "next_year", *KEYS, *measures])
    op.execute(
        f"INSERT INTO {YEARLY} ({names}) "  # noqa: S608 (names from the reflected table)
        f"SELECT {year}, {following}, {', '.join(KEYS)}, "
        f"{', '.join(_merged(m) for m in measures)} "
        f"FROM {MONTHLY} GROUP BY {year}, {following}, {', '.join(KEYS)}"
    )


def downgrade() -> None:
    op.drop_table(YEARLY)
