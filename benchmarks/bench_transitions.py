"""What the transition history (revision 0010), or the rollups' day marks (0011), cost writes.

    python benchmarks/bench_transitions.py --url sqlite --executions 50000 --singles 2000
    python benchmarks/bench_transitions.py --url postgresql --executions 50000 --singles 2000
    python benchmarks/bench_transitions.py --url postgresql --triggers marks

``--triggers marks`` compares with and without revision 0011's rollup marking triggers
(``drop_marks_ddl``) instead, the history triggers present in both runs.

Each run gets a fresh database migrated to head; the baseline run then drops the history
triggers (``drop_history_ddl``), so both runs differ only in them. Three writes are timed:
``save_executions`` of a synthetic history (bulk: binary COPY on PostgreSQL, executemany on
SQLite), ``save_execution`` of ``--singles`` new running executions one by one, and
``save_execution`` of each of them again as completed (an UPDATE that changes the status, so
the row trigger fires). Runs alternate (with, without, without, with, ...) so neither always
runs on a warmer machine; the figure is the median over ``--rounds`` rounds of the seconds and
of the per-round ratio with / without (1.00: no cost).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).parent))
from _common import scratch_pg

import miyabi_analytics as ma
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.history import drop_history_ddl
from miyabi_analytics._db.rules.rollup_marks import drop_marks_ddl
from miyabi_analytics._db.schema import transitions
from miyabi_analytics.demo import generate_history

END = datetime(2026, 11, 1, tzinfo=UTC)
WRITES = ("save_executions (bulk)", "save_execution (insert)", "save_execution (status update)")


@contextmanager
def fresh(kind: str, history: bool) -> Iterator[Engine]:  # history: the compared triggers
    """A new database at head; without the history triggers when ``history`` is false."""
    if kind == "postgresql":
        with scratch_pg() as url:
            engine = ma.connect(url)
            try:
                prepare(engine, history)
                yield engine
            finally:
                engine.dispose()
        return
    with tempfile.TemporaryDirectory() as tmp:
        engine = ma.connect(f"sqlite:///{tmp}/bench.db")
        try:
            prepare(engine, history)
            yield engine
        finally:
            engine.dispose()


COMPARED = {"history": drop_history_ddl, "marks": drop_marks_ddl}
compared = "history"  # set from --triggers


def prepare(engine: Engine, history: bool) -> None:
    ma.migrate(engine)
    if not history:
        with engine.begin() as conn:
            for statement in COMPARED[compared](Dialect.of(engine)):
                conn.exec_driver_sql(statement)


def recorded(engine: Engine, history: bool, expected: int) -> None:
    """The history holds ``expected`` rows when its triggers ran (always, comparing marks)."""
    with engine.connect() as conn:
        found = int(conn.execute(select(func.count()).select_from(transitions)).scalar_one())
    assert found == (expected if history or compared == "marks" else 0)


def clock_bulk(kind: str, history: bool, records: list[ma.AgentExecutionResult]) -> float:
    with fresh(kind, history) as engine:
        store = ma.ExecutionStore(engine)
        began = time.perf_counter()
        store.save_executions(records, progress=False)
        taken = time.perf_counter() - began
        recorded(engine, history, len(records))
    return taken


def clock_singles(kind: str, history: bool, count: int) -> tuple[float, float]:
    agent = ma.SalesAgent()
    repository = uuid.uuid4()
    started = END - timedelta(hours=1)
    running = [
        agent.builder(repository).status("running").started_at(started).build()
        for _ in range(count)
    ]
    done = [
        dataclasses.replace(
            r,
            status=ma.ExecutionStatus.COMPLETED,
            completed_at=started + timedelta(minutes=5),
            quality_score=80,
        )
        for r in running
    ]
    with fresh(kind, history) as engine:
        store = ma.ExecutionStore(engine)
        store.save_execution(agent.builder(repository).build())  # warm the pool and caches
        began = time.perf_counter()
        for record in running:
            store.save_execution(record)
        inserts = time.perf_counter() - began
        began = time.perf_counter()
        for record in done:
            store.save_execution(record)
        updates = time.perf_counter() - began
        recorded(engine, history, 2 * count + 1)
    return inserts, updates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", choices=("postgresql", "sqlite"), required=True)
    parser.add_argument("--executions", type=int, default=50_000)
    parser.add_argument("--singles", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--triggers", choices=tuple(COMPARED), default="history")
    args = parser.parse_args()
    global compared
    compared = args.triggers
    records = list(generate_history(args.executions, seed=7, end=END, days=90).executions)
    seconds: dict[str, dict[bool, list[float]]] = {w: {True: [], False: []} for w in WRITES}
    ratios: dict[str, list[float]] = {w: [] for w in WRITES}
    for index in range(args.rounds):
        taken: dict[str, dict[bool, float]] = {w: {} for w in WRITES}
        order = (True, False) if index % 2 == 0 else (False, True)
        for history in order:
            bulk = clock_bulk(args.url, history, records)
            inserts, updates = clock_singles(args.url, history, args.singles)
            for write, value in zip(WRITES, (bulk, inserts, updates), strict=True):
                taken[write][history] = value
                seconds[write][history].append(value)
        for write in WRITES:
            ratios[write].append(taken[write][True] / taken[write][False])
        print(
            f"round {index + 1}: "
            + ", ".join(f"{w} {ratios[w][-1]:.2f}x" for w in WRITES),
            file=sys.stderr,
        )
    print(
        f"{args.url}, {args.executions:,} executions in bulk, {args.singles:,} single saves, "
        f"{args.rounds} rounds"
    )
    print(f"| write | without {compared} (median s) | with {compared} (median s) "
          "| with / without |")
    print("|---|--:|--:|--:|")
    for write in WRITES:
        without = statistics.median(seconds[write][False])
        with_ = statistics.median(seconds[write][True])
        print(
            f"| {write} | {without:.3f} | {with_:.3f} | {statistics.median(ratios[write]):.2f}x |"
        )


if __name__ == "__main__":
    main()
