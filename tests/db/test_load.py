"""Load: N writer processes x M lifecycle deliveries each, on PostgreSQL and on one SQLite file.

Every execution's lifecycle (pending -> running -> completed | failed) is cut into deliveries,
with replays (the same step again) and, for some, a second, conflicting outcome (completed and
failed both sent); all deliveries are shuffled and dealt to the writers, so they arrive out of
order and race each other. A writer treats a refused step as a message broker's consumer would:
an outcome refused because the execution is still ``pending`` goes back to the end of its queue
(the ``running`` step has not arrived yet); any other refusal is a stale delivery, dropped. Odd
writers go through ``save_executions`` in small batches (a refused batch falls back to one by
one), even writers through ``save_execution``.

Afterwards: every execution is stored once (none lost, none duplicated), in a terminal state one
of its deliveries carried, with that delivery's fields (no torn rows); a trigger installed for
the test has recorded every UPDATE's (old, new) status and none moved backwards. No writer saw
any error but the lifecycle refusals: on SQLite, no "database is locked".

CI runs 4 writers x 500 deliveries. The full run, 8 writers x 5,000::

    MIYABI_LOAD_WRITERS=8 MIYABI_LOAD_UPDATES=5000 \\
        python -m pytest tests/db/test_load.py -m slow -s
"""

import json
import logging
import multiprocessing
import os
import queue
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, text

import miyabi_analytics as ma

pytestmark = pytest.mark.slow

WRITERS = int(os.environ.get("MIYABI_LOAD_WRITERS", "4"))
UPDATES = int(os.environ.get("MIYABI_LOAD_UPDATES", "500"))
T0 = datetime(2026, 5, 1, tzinfo=UTC)
BATCH = 8
MAX_REQUEUES = 100_000

Delivery = tuple[str, str, str, str, int, str]  # id, repository, agent, status, index, writer tag

AUDIT_SQL = {
    "postgresql": [
        "CREATE TABLE load_audit (execution_id uuid, old_status text, new_status text)",
        "CREATE FUNCTION load_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO load_audit VALUES (OLD.id, OLD.status, NEW.status); RETURN NEW; END $$",
        "CREATE TRIGGER load_audit AFTER UPDATE ON agent_executions "
        "FOR EACH ROW EXECUTE FUNCTION load_audit_row()",
    ],
    "sqlite": [
        "CREATE TABLE load_audit (execution_id TEXT, old_status TEXT, new_status TEXT)",
        "CREATE TRIGGER load_audit AFTER UPDATE ON agent_executions BEGIN "
        "INSERT INTO load_audit VALUES (OLD.id, OLD.status, NEW.status); END",
    ],
}


Plan = tuple[list[list[Delivery]], dict[str, set[str]]]


def plan(writers: int, updates: int, seed: int = 7) -> Plan:
    """Deliveries for each writer, and each execution's possible outcomes."""
    rng = random.Random(seed)
    deliveries: list[Delivery] = []
    outcomes: dict[str, set[str]] = {}
    index = 0
    while len(deliveries) < writers * updates:
        key, repo = str(uuid.UUID(int=rng.getrandbits(128))), str(uuid.uuid4())
        agent = ma.AGENT_TYPES[index % len(ma.AGENT_TYPES)]
        outcome = rng.choice(["completed", "failed"])
        steps = ["pending", "running", outcome]
        ends = {outcome}
        if rng.random() < 0.3:
            steps.append(rng.choice(steps))  # a replay
        if rng.random() < 0.1:
            other = "failed" if outcome == "completed" else "completed"
            steps.append(other)  # the race of a timeout and a late success
            ends.add(other)
        deliveries.extend((key, repo, agent, step, index, "") for step in steps)
        outcomes[key] = ends
        index += 1
    rng.shuffle(deliveries)
    dealt: list[list[Delivery]] = [[] for _ in range(writers)]
    for n, item in enumerate(deliveries):
        dealt[n % writers].append((*item[:5], f"w{n % writers}"))
    return dealt, outcomes


def record_of(item: Delivery) -> ma.AgentExecutionResult:
    key, repo, agent, status, index, tag = item
    builder = ma.ExecutionResultBuilder(repo, agent).id(key).status(status)
    builder = builder.result({"status": status, "writer": tag}).issue_number(index)
    if status != "pending":
        started = T0 + timedelta(seconds=index)
        builder = builder.started_at(started)
        if status in ("completed", "failed"):
            builder = builder.completed_at(started + timedelta(seconds=1 + index % 60))
        if status == "completed":
            builder = builder.quality_score(index % 101)
        if status == "failed":
            builder = builder.error_message(f"failed ({tag})")
    return builder.build()


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def writer(url: str, deliveries: list[Delivery], bulk: bool, barrier: Any, results: Any) -> None:
    """One writer process: apply its deliveries, report what happened."""
    retries = _Count()
    logging.getLogger("miyabi_analytics.retry").addHandler(retries)
    engine = ma.connect(url)
    store = ma.ExecutionStore(engine)
    with engine.connect() as conn:  # connect before the clock starts
        conn.execute(text("SELECT 1"))
    stats: Counter[str] = Counter()
    errors: list[str] = []
    pending = [record_of(item) for item in deliveries]
    barrier.wait()
    began = time.perf_counter()

    def one(record: ma.AgentExecutionResult, again: list[ma.AgentExecutionResult]) -> None:
        try:
            store.save_execution(record)
            stats["applied"] += 1
        except ma.InvalidStatusTransition as exc:
            if exc.current == "pending" and record.status.is_terminal:
                stats["requeued"] += 1
                again.append(record)
            else:
                stats["stale"] += 1
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}"[:300])

    rounds = 0
    while pending:
        again: list[ma.AgentExecutionResult] = []
        if bulk:
            for start in range(0, len(pending), BATCH):
                chunk = pending[start:start + BATCH]
                try:
                    store.save_executions(chunk)
                    stats["applied"] += len(chunk)
                except ma.ValidationError:  # a refused step refuses the batch: one by one
                    stats["batches_refused"] += 1
                    for record in chunk:
                        one(record, again)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
        else:
            for record in pending:
                one(record, again)
        if again:
            rounds += 1
            if rounds > MAX_REQUEUES:
                errors.append(f"{len(again)} deliveries never applied")
                break
            time.sleep(0.005)  # the running step is on its way from another writer
        pending = again
    elapsed = time.perf_counter() - began
    engine.dispose()
    results.put(
        {"stats": dict(stats), "errors": errors, "elapsed": elapsed, "retries": retries.count}
    )


def run_load(url: URL, dialect: str) -> None:
    engine = ma.connect(url)
    ma.migrate(engine)
    with engine.begin() as conn:
        for statement in AUDIT_SQL[dialect]:
            conn.exec_driver_sql(statement)
    dealt, outcomes = plan(WRITERS, UPDATES)
    total = sum(map(len, dealt))

    # The writers import this module by name: make sure they can, however pytest was started.
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.insert(0, root)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS + 1)
    results = ctx.Queue()
    plain = url.render_as_string(hide_password=False)
    processes = [
        ctx.Process(target=writer, args=(plain, items, n % 2 == 1, barrier, results))
        for n, items in enumerate(dealt)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=300)
        began = time.perf_counter()
        reports = [results.get(timeout=1800) for _ in processes]
        wall = time.perf_counter() - began
    except (queue.Empty, TimeoutError):
        pytest.fail("a writer process hung or died")
    finally:
        for process in processes:
            process.join(timeout=60)
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]

    errors = [e for r in reports for e in r["errors"]]
    stats: Counter[str] = Counter()
    for report in reports:
        stats.update(report["stats"])
    retries = sum(r["retries"] for r in reports)
    print(
        f"\n{dialect}: {WRITERS} writers x ~{UPDATES} deliveries = {total} deliveries of "
        f"{len(outcomes)} executions in {wall:.2f}s -> {total / wall:,.0f} deliveries/s "
        f"({dict(sorted(stats.items()))}, {retries} transient retries)"
    )
    assert errors == [], errors[:5]
    assert not any("locked" in e for e in errors)

    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status, result, completed_at, error_message FROM agent_executions")
        ).all()
        moves = Counter(
            (row[0], row[1])
            for row in conn.execute(text("SELECT old_status, new_status FROM load_audit"))
        )
    engine.dispose()
    ids = [str(row[0]) for row in rows]
    assert len(ids) == len(set(ids)) == len(outcomes)  # none duplicated
    assert set(ids) == set(outcomes)  # none lost
    for key, status, result, completed_at, error_message in rows:
        assert status in outcomes[str(key)], (key, status)  # terminal, and one it was sent
        if isinstance(result, str):
            result = json.loads(result)
        assert result["status"] == status  # the whole row is that delivery's
        assert completed_at is not None
        assert (error_message is not None) == (status == "failed")
    illegal = {
        move: n for move, n in moves.items()
        if not ma.ExecutionStatus(move[0]).can_transition_to(move[1])
    }
    assert illegal == {}  # none regressed, not even for a moment
    print(f"{dialect}: status moves seen by the trigger: {dict(sorted(moves.items()))}")


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_load_postgresql(empty_url):
    run_load(empty_url, "postgresql")


def test_load_sqlite(tmp_path):
    run_load(URL.create("sqlite", database=str(tmp_path / "load.db")), "sqlite")
