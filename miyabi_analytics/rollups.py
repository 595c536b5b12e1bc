"""Rollups: what keeps all-time and monthly aggregates fast as the history grows (0011-0014).

The aggregates (``success_rates``, ``quality_trend``, ``business_metrics``, ``error_analysis``,
``duration_stats(exact=False)``) read rollup rows per settled day, month and year (and an
all-time duration histogram) and the executions themselves for the days the database marked
as changed since the last refresh (and for the partial days at a window's edges). So every
answer is exact, fresh or stale rollup alike; a stale rollup only costs time.
:func:`refresh_rollups` brings it up to date: incremental (only the changed days), idempotent,
and safe to run from cron while agents write (``miyabi-analytics rollup --url URL``).
:func:`rollup_status` says how fresh it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from miyabi_analytics._db.rollup.refresh import Refreshed, refresh
from miyabi_analytics._db.schema import rollup_pending, rollup_state
from miyabi_analytics._db.tx import begin

__all__ = ["Refreshed", "RollupStatus", "refresh_rollups", "rollup_status"]


@dataclass(frozen=True, slots=True)
class RollupStatus:
    """How far the rollup is behind the rows."""

    refreshed_at: datetime | None
    """When the last refresh ran (its snapshot); ``None``: never."""
    pending_days: int
    """UTC days changed since: aggregates read them from the executions."""
    oldest_pending: datetime | None
    newest_pending: datetime | None

    @property
    def stale(self) -> bool:
        """Some days are read from the rows (answers stay exact; only slower)."""
        return self.pending_days > 0

    def describe(self) -> str:
        """One line for a report, a dashboard or ``check``."""
        when = (
            "never refreshed"
            if self.refreshed_at is None
            else f"refreshed {self.refreshed_at:%Y-%m-%d %H:%M} UTC"
        )
        if not self.stale:
            return f"rollup {when}, up to date"
        assert self.oldest_pending is not None
        assert self.newest_pending is not None
        span = (
            f"{self.oldest_pending:%Y-%m-%d}"
            if self.oldest_pending == self.newest_pending
            else f"{self.oldest_pending:%Y-%m-%d} to {self.newest_pending:%Y-%m-%d}"
        )
        days = "1 day" if self.pending_days == 1 else f"{self.pending_days:,} days"
        return (
            f"rollup {when}; {days} changed since ({span}) are read from the executions "
            "(exact, slower): run `miyabi-analytics rollup`"
        )


def refresh_rollups(engine: Engine) -> Refreshed:
    """Recompute the rollup of every day changed since the last refresh.

    Incremental and idempotent; each month of days is its own transaction, so a refresh that
    is killed keeps what it finished, and writers never wait for it (PostgreSQL). Days that
    change while it runs stay pending for the next run. Needs an unscoped engine.
    """
    return refresh(engine)


def rollup_status(bind: Engine | Connection) -> RollupStatus:
    """When the rollup was refreshed and which days it is behind by."""
    day = rollup_pending.c.day
    with begin(bind) as conn:
        refreshed = conn.execute(select(rollup_state.c.refreshed_at)).scalar()
        pending, oldest, newest = conn.execute(
            select(func.count(func.distinct(day)), func.min(day), func.max(day))
        ).one()
    return RollupStatus(refreshed, int(pending), oldest, newest)
