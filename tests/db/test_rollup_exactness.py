"""The rollup answers exactly what the rows answer, through late changes by any writer.

A seeded random history is changed step by step with plain SQL (as the Rust agents or psql
would write: no package code on the write path): inserts, status moves, quality rescored,
started_at moved to another day, queued executions started or their creation restated (the
rollups keep never-started executions under their creation day), executions deleted (as purge
does), analytics rows added and removed. ``refresh_rollups`` runs at random points, so some
days are settled and some pending at every check. After each step every aggregate (each
``by``, each ``freq``, whole-day and partial-day windows, filters) must give the frame the
row-level path gives, bit for bit.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, delete, insert, select, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import analytics, executions
from miyabi_analytics.aggregates import _rollup, _timing, business_metrics_with_unstarted
from miyabi_analytics.aggregates._sketched import histogram_statement
from miyabi_analytics.filters import SummaryFilters

AGENTS = ("MarketingAgent", "SalesAgent", "CRMAgent", "YouTubeAgent")
START = datetime(2025, 11, 20, tzinfo=UTC)  # two months of one year, and the next year
DAYS = 45


@contextmanager
def _rows_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within the block, every aggregate takes the row-level path."""
    with monkeypatch.context() as patch:
        for module in (_rollup, _timing):  # combined() asks _rollup's; duration_stats its own
            patch.setattr(module, "rollup_can_answer", lambda *a, **k: False)
        yield


def _cases(repos: list[uuid.UUID]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    windows: list[dict[str, Any]] = [
        {},
        {"since": START + timedelta(days=3), "until": START + timedelta(days=12)},
        {"since": START + timedelta(days=2, hours=7, microseconds=1),
         "until": START + timedelta(days=15, hours=23, minutes=59)},
        {"since": START + timedelta(days=5, hours=1), "until": START + timedelta(days=5, hours=9)},
        {"since": START + timedelta(days=8, hours=12)},
        {"until": START + timedelta(days=6, hours=12)},
        {"repository_id": repos[0], "statuses": ["completed", "failed"],
         "agent_types": AGENTS[:2], "since": START + timedelta(days=1, hours=3)},
        {"repository_id": repos[1], "statuses": ["pending", "failed"]},
    ]
    for i, window in enumerate(windows):
        for by, freq in ((None, "D"), ("agent_type", None), ("agent_category", "W"),
                         (["repository_id", "agent_type"], "M")):
            yield f"success_rates[{i}]({by},{freq})", ma.success_rates, {
                "by": by, "freq": freq, **window}
            yield f"quality_trend[{i}]({by},{freq})", ma.quality_trend, {
                "by": by, "freq": freq, **window}
            yield f"business_metrics[{i}]({by},{freq})", ma.business_metrics, {
                "by": by, "freq": freq, **window}
        yield f"error_analysis[{i}]", ma.error_analysis, dict(window)
        yield f"business_metrics_with_unstarted[{i}]", business_metrics_with_unstarted, {
            "by": "agent_category", "freq": "M", "unstarted": True, **window}
        yield f"duration histogram[{i}]", _histogram, dict(window)


def _histogram(engine: Engine, **window: Any) -> pd.DataFrame:
    """``duration_stats(exact=False)``'s bucket counts, which must be exact too."""
    statement = histogram_statement(("agent_type",), SummaryFilters.of(None, **window))
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(statement) if row.n]
    return pd.DataFrame(sorted(rows), columns=["agent_type", "bucket", "n"])


def _now_stamp(rng: random.Random) -> datetime:
    return START + timedelta(microseconds=rng.randrange(DAYS * 86_400 * 10**6))


class Fleet:
    """Plain-SQL writes on one engine, chosen by a seeded generator."""

    def __init__(self, engine: Engine, rng: random.Random) -> None:
        self.engine, self.rng = engine, rng
        self.repos = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(3)]

    def insert(self, n: int) -> None:
        rows = []
        for _ in range(n):
            status = self.rng.choices(
                ["pending", "running", "completed", "failed"], weights=[1, 2, 6, 3])[0]
            started = None if status == "pending" else _now_stamp(self.rng)
            done = status in ("completed", "failed")
            rows.append({
                "id": uuid.UUID(int=self.rng.getrandbits(128), version=4),
                "repository_id": self.rng.choice(self.repos),
                "agent_type": self.rng.choice(AGENTS),
                "status": status,
                "started_at": started,
                "completed_at": started + timedelta(seconds=self.rng.randrange(1, 90_000))
                if done and started else None,
                "quality_score": self.rng.choice([None, 0, 100, self.rng.randrange(101)])
                if done else None,
                "error_message": self.rng.choice(["timeout", "rate limit", None])
                if status == "failed" else None,
                "created_at": self._created(), "updated_at": START,
            })
        with self.engine.begin() as conn:
            conn.execute(insert(executions), rows)

    def _created(self) -> datetime:
        """Before every start; some in the month before (never-started rows roll up there)."""
        return START - timedelta(hours=self.rng.randrange(72))

    def start(self) -> None:
        for row in self._some(executions.c.status == "pending", k=2):
            with self.engine.begin() as conn:
                conn.execute(update(executions).where(executions.c.id == row.id).values(
                    status="running", started_at=_now_stamp(self.rng)))

    def requeue(self) -> None:
        for row in self._some(executions.c.status == "pending", k=2):
            with self.engine.begin() as conn:
                conn.execute(update(executions).where(executions.c.id == row.id).values(
                    created_at=self._created()))

    def _some(self, where: Any = None, k: int = 3) -> list[Any]:
        stmt = select(executions.c.id, executions.c.status, executions.c.started_at)
        if where is not None:
            stmt = stmt.where(where)
        with self.engine.connect() as conn:
            found = conn.execute(stmt.order_by(executions.c.id)).all()
        return self.rng.sample(found, min(k, len(found)))

    def finish(self) -> None:
        for row in self._some(executions.c.status == "running"):
            status = self.rng.choice(["completed", "failed"])
            with self.engine.begin() as conn:
                conn.execute(update(executions).where(executions.c.id == row.id).values(
                    status=status, completed_at=row.started_at + timedelta(minutes=7),
                    quality_score=self.rng.randrange(101),
                    error_message="late failure" if status == "failed" else None))

    def rescore(self) -> None:
        for row in self._some(executions.c.status == "completed"):
            with self.engine.begin() as conn:
                conn.execute(update(executions).where(executions.c.id == row.id).values(
                    quality_score=self.rng.randrange(101)))

    def move(self) -> None:
        for row in self._some(executions.c.started_at.is_not(None), k=2):
            with self.engine.begin() as conn:
                conn.execute(update(executions).where(executions.c.id == row.id).values(
                    started_at=row.started_at - timedelta(days=self.rng.randrange(1, 4))))

    def heartbeat(self) -> None:
        for row in self._some(executions.c.status == "running"):
            with self.engine.begin() as conn:
                conn.execute(update(executions).where(executions.c.id == row.id).values(
                    last_heartbeat_at=datetime.now(UTC)))

    def purge(self) -> None:
        ids = [row.id for row in self._some(k=4)]
        with self.engine.begin() as conn:
            conn.execute(delete(executions).where(executions.c.id.in_(ids)))

    def analyse(self) -> None:
        for row in self._some(k=5):
            with self.engine.begin() as conn:
                conn.execute(insert(analytics).values(
                    id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
                    execution_id=row.id, agent_type=AGENTS[0], metrics={},
                    market_size_usd=self.rng.choice([None, self.rng.randrange(10**15)]),
                    estimated_revenue_usd=self.rng.randrange(2**40),
                    competitors_analyzed=self.rng.randrange(50),
                    roi_percent=self.rng.choice([None, 12.34, -0.01, 99999.99]),
                    engagement_score=self.rng.randrange(101),
                    created_at=START + timedelta(days=self.rng.randrange(3))))

    def unanalyse(self) -> None:
        with self.engine.connect() as conn:
            ids = conn.execute(select(analytics.c.id).order_by(analytics.c.id)).scalars().all()
        chosen = self.rng.sample(list(ids), min(2, len(ids)))
        with self.engine.begin() as conn:
            conn.execute(delete(analytics).where(analytics.c.id.in_(chosen)))


def _answers(engine: Engine, fleet: Fleet) -> list[tuple[str, pd.DataFrame]]:
    return [(label, fn(engine, **kw)) for label, fn, kw in _cases(fleet.repos)]


def _compare(engine: Engine, fleet: Fleet, monkeypatch: pytest.MonkeyPatch, step: str) -> int:
    rolled = _answers(engine, fleet)
    with _rows_only(monkeypatch):
        rows = _answers(engine, fleet)
    for (label, got), (_, expected) in zip(rolled, rows, strict=True):
        pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=f"{step}: {label}")
    return len(rolled)


@pytest.mark.parametrize("seed", [11])
def test_rollup_equals_rows_through_late_changes(engine, monkeypatch, seed):
    rng = random.Random(seed)
    fleet = Fleet(engine, rng)
    fleet.insert(150)
    steps = [fleet.finish, fleet.rescore, fleet.move, fleet.heartbeat, fleet.purge,
             fleet.analyse, fleet.unanalyse, lambda: fleet.insert(12), fleet.start,
             fleet.requeue]
    fleet.analyse()
    ma.refresh_rollups(engine)
    assert not ma.rollup_status(engine).stale
    compared = _compare(engine, fleet, monkeypatch, "after the first refresh")
    for i in range(10):
        change = rng.choice(steps)
        change()
        if rng.random() < 0.4:
            ma.refresh_rollups(engine)
        compared += _compare(engine, fleet, monkeypatch, f"step {i}")
    ma.refresh_rollups(engine)
    compared += _compare(engine, fleet, monkeypatch, "after the last refresh")
    assert compared == 12 * 8 * (4 * 3 + 3)


def test_purge_and_restore_keep_the_rollup_exact(engine, monkeypatch, tmp_path):
    """The package's purge (archive, then delete) and restore mark what they change."""
    from miyabi_analytics.archive import archived_executions, restore
    from miyabi_analytics.retention import purge

    rng = random.Random(5)
    fleet = Fleet(engine, rng)
    recent = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:  # a few recent runs that purge keeps
        conn.execute(insert(executions), [{
            "id": uuid.uuid4(), "repository_id": fleet.repos[0], "agent_type": AGENTS[1],
            "status": "completed", "started_at": recent - timedelta(hours=h),
            "completed_at": recent - timedelta(hours=h) + timedelta(minutes=3),
            "quality_score": 70, "created_at": recent, "updated_at": recent,
        } for h in (1, 30, 50)])
    fleet.insert(120)
    fleet.analyse()
    ma.refresh_rollups(engine)
    purge(engine, timedelta(days=7), archive_dir=tmp_path)
    assert ma.rollup_status(engine).stale  # the purged days are marked
    compared = _compare(engine, fleet, monkeypatch, "after purge")
    ma.refresh_rollups(engine)
    compared += _compare(engine, fleet, monkeypatch, "after purge and refresh")
    assert ma.success_rates(engine, by=None)["executions"].tolist() == [3]
    assert restore(engine, tmp_path, archived_executions(tmp_path)) == 120
    assert ma.rollup_status(engine).stale  # the restored days are marked again
    compared += _compare(engine, fleet, monkeypatch, "after restore")
    ma.refresh_rollups(engine)
    compared += _compare(engine, fleet, monkeypatch, "after restore and refresh")
    assert ma.success_rates(engine, by=None)["executions"].tolist() == [123]
    assert compared == 4 * 8 * (4 * 3 + 3)
