"""Faults on PostgreSQL: connections killed mid-batch, transient and permanent server errors.

The errors are real ones from the server: ``pg_terminate_backend`` from another connection, and
statements swapped (by a ``before_cursor_execute`` hook) for a ``RAISE`` with the SQLSTATE under
test, so the driver and SQLAlchemy see exactly what a real deadlock or serialization failure
produces. Real deadlocks and serialization failures are provoked too, for the classifier.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import URL, Engine, create_engine, event, func, select, text
from sqlalchemy.exc import DBAPIError

import miyabi_analytics as ma
from miyabi_analytics._db.retry import NO_RETRY, RetryPolicy, is_transient
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.tx import write

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)

AGENT = ma.AnalyticsAgent()
FAST_RETRY = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def admin(db_url: URL) -> Iterator[Engine]:
    """A connection to the server's maintenance database, for pg_terminate_backend."""
    engine = create_engine(db_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def terminate(admin: Engine, pid: int) -> None:
    with admin.connect() as conn:
        # The timeout makes it wait until the backend is gone, not just signalled.
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()


def backend_pid(conn: Any) -> int:
    return int(conn.connection.dbapi_connection.info.backend_pid)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def sqlstate(exc: BaseException) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def retries_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == "miyabi_analytics.retry")


Action = Callable[[Any, str], str | None]


def on_statement(engine: Engine, marker: str, action: Action) -> list[int]:
    """Call ``action(conn, statement)`` before each statement containing ``marker``; a string it
    returns replaces the statement. Returns the list that counts the calls."""
    calls: list[int] = []

    def hook(conn, cursor, statement, parameters, context, executemany):
        if marker not in statement:
            return statement, parameters
        calls.append(1)
        replaced = action(conn, statement)
        return (statement, parameters) if replaced is None else (replaced, {})

    event.listen(engine, "before_cursor_execute", hook, retval=True)
    return calls


def raise_sqlstate(sqlstate: str, times: int) -> Action:
    left = {"n": times}

    def action(conn: Any, statement: str) -> str | None:
        if left["n"] == 0:
            return None
        left["n"] -= 1
        return f"DO $$ BEGIN RAISE EXCEPTION 'injected fault' USING ERRCODE = '{sqlstate}'; END $$"

    return action


def records(n: int, **changes: Any) -> list[ma.AgentExecutionResult]:
    repo = uuid.uuid4()
    built: list[ma.AgentExecutionResult] = [AGENT.builder(repo).build() for _ in range(n)]
    return [r.evolve(**changes) for r in built] if changes else built


# -- a connection killed in the middle of a bulk batch -----------------------------------------


def test_killed_mid_batch_leaves_nothing_and_a_retry_stores_it_once(engine, admin):
    stored_before = records(1_000)
    ma.ExecutionStore(engine).save_executions(stored_before)
    batch = [r.evolve(status="running", started_at=datetime.now(UTC)) for r in stored_before]
    batch += records(4_000)

    kills: list[int] = []

    def kill(conn: Any, statement: str) -> None:
        if not kills:  # after the 4,000 new rows went in by COPY, before the 1,000 updates
            kills.append(backend_pid(conn))
            terminate(admin, kills[0])

    on_statement(engine, "CREATE TEMPORARY TABLE", kill)
    began = time.perf_counter()
    with pytest.raises(DBAPIError) as caught:
        ma.ExecutionStore(engine, retry=NO_RETRY).save_executions(batch)
    failed_after = time.perf_counter() - began
    assert is_transient(caught.value)
    assert caught.value.connection_invalidated

    # Nothing of the batch is visible: the new rows are absent, the updates not applied.
    assert count(engine, executions) == 1_000
    assert count(engine, executions, executions.c.status == "pending") == 1_000

    began = time.perf_counter()
    assert ma.ExecutionStore(engine).save_executions(batch) == 5_000
    retried_in = time.perf_counter() - began
    assert count(engine, executions) == 5_000  # exactly once: no duplicate, none lost
    assert count(engine, executions, executions.c.status == "running") == 1_000
    with engine.connect() as conn:
        ids = list(conn.execute(select(executions.c.id)).scalars())
    assert len(set(ids)) == 5_000
    assert set(ids) == {r.id for r in batch}
    print(
        f"\nkilled backend {kills[0]} mid-batch (5,000 rows): failed after {failed_after:.2f}s, "
        f"0 rows visible; the retry stored 5,000 once in {retried_in:.2f}s"
    )


def test_killed_during_copy_is_retried_transparently(engine, admin, caplog):
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    batch = records(30_000)
    locked = threading.Event()
    pids: list[int] = []
    killed: list[str] = []

    def note_pid(conn: Any, statement: str) -> None:
        if not pids:
            pids.append(backend_pid(conn))
            locked.set()

    # The savepoint right before a batch's optimistic COPY (new ids need no look-up first).
    on_statement(engine, "SAVEPOINT", note_pid)

    def killer() -> None:
        if not locked.wait(30):
            return
        with admin.connect() as conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                query = conn.execute(
                    text(
                        "SELECT query FROM pg_stat_activity "
                        "WHERE pid = :pid AND state = 'active'"
                    ),
                    {"pid": pids[0]},
                ).scalar()
                if query and query.startswith("COPY"):
                    conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
                    killed.append(query.split("(")[0].strip())
                    return
                time.sleep(0.001)

    thread = threading.Thread(target=killer)
    thread.start()
    began = time.perf_counter()
    try:
        saved = ma.ExecutionStore(engine, retry=FAST_RETRY).save_executions(
            batch, batch_size=100_000
        )
    finally:
        thread.join()
    elapsed = time.perf_counter() - began
    assert killed == ['COPY "agent_executions"'], "the killer never saw the COPY running"
    assert saved == 30_000
    assert retries_logged(caplog) == 1
    assert count(engine, executions) == 30_000
    print(
        f"\nkilled the backend during COPY of 30,000 rows; retried once; 30,000 stored once, "
        f"{elapsed:.2f}s in all"
    )


# -- transient and permanent errors ------------------------------------------------------------


def _prepare(engine: Engine) -> ma.AgentExecutionResult:
    started = datetime.now(UTC) - timedelta(hours=2)
    record: ma.AgentExecutionResult = (
        AGENT.builder(uuid.uuid4()).status("running").started_at(started).build()
    )
    AGENT.save_execution(engine, record)
    return record


OPERATIONS: dict[str, tuple[str, Callable[[ma.ExecutionStore, ma.AgentExecutionResult], Any]]] = {
    "save_execution": (
        "INSERT INTO agent_executions",
        lambda s, r: s.save_execution(r.evolve(status="completed", completed_at=datetime.now(UTC))),
    ),
    "save_executions": (
        "CREATE TEMPORARY TABLE",  # after the COPY of the new rows, before the update
        lambda s, r: s.save_executions(
            [r.evolve(quality_score=5), *records(10)]
        ),
    ),
    "log": ("INSERT INTO agent_execution_logs", lambda s, r: s.log(r.id, "info", "hello")),
    "save_analysis_metrics": (
        "INSERT INTO business_agent_analytics",
        lambda s, r: s.save_analysis_metrics(r.id, {"roi_percent": 3.5}),
    ),
    "log_many": (
        "FOR UPDATE",
        lambda s, r: s.log_many([ma.LogEntry(r.id, "info", f"line {i}") for i in range(20)]),
    ),
    "heartbeat": ("SET last_heartbeat_at", lambda s, r: s.heartbeat(r.id)),
    "reap": ("SET status", lambda s, r: s.reap("1h")),
}

EXPECTED = {  # (executions, analytics, logs) after one successful call
    "save_execution": (1, 0, 0),
    "save_executions": (11, 0, 0),
    "log": (1, 0, 1),
    "save_analysis_metrics": (1, 1, 0),
    "log_many": (1, 0, 20),
    "heartbeat": (1, 0, 0),
    "reap": (1, 0, 0),
}


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "57P01", "08006"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_transient_errors_are_retried(engine, caplog, operation, sqlstate):
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    record = _prepare(engine)
    marker, call = OPERATIONS[operation]
    calls = on_statement(engine, marker, raise_sqlstate(sqlstate, times=2))
    call(ma.ExecutionStore(engine, retry=FAST_RETRY), record)
    assert len(calls) == 3  # two failures, then the statement ran
    assert retries_logged(caplog) == 2
    tables = (count(engine, executions), count(engine, analytics), count(engine, logs))
    assert tables == EXPECTED[operation]  # exactly once


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [("23514", "IntegrityError"), ("23505", "IntegrityError"), ("22003", "DataError"),
     ("42501", "ProgrammingError")],
)
@pytest.mark.parametrize("operation", ["save_execution", "log", "save_analysis_metrics"])
def test_permanent_errors_are_not_retried(engine, caplog, operation, sqlstate, kind):
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    record = _prepare(engine)
    marker, call = OPERATIONS[operation]
    calls = on_statement(engine, marker, raise_sqlstate(sqlstate, times=1))
    with pytest.raises(DBAPIError) as caught:
        call(ma.ExecutionStore(engine, retry=FAST_RETRY), record)
    assert type(caught.value).__name__ == kind
    assert not is_transient(caught.value)
    assert len(calls) == 1
    assert retries_logged(caplog) == 0
    assert (count(engine, analytics), count(engine, logs)) == (0, 0)


def test_validation_errors_never_reach_the_database(engine):
    record = _prepare(engine)
    calls = on_statement(engine, "agent_executions", lambda conn, statement: None)
    store = ma.ExecutionStore(engine)
    with pytest.raises(ma.ValidationError):
        store.save_analysis_metrics(record.id, {"engagement_score": 101})
    with pytest.raises(ma.ValidationError):
        store.log(record.id, "loud", "x")
    with pytest.raises(ma.ValidationError):
        store.reap("soon")
    assert calls == []


def test_retries_give_up_after_the_policy(engine, caplog):
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    record = _prepare(engine)
    calls = on_statement(engine, "SET last_heartbeat_at", raise_sqlstate("40001", times=100))
    with pytest.raises(DBAPIError) as caught:
        ma.ExecutionStore(engine, retry=RetryPolicy(attempts=3, base_delay=0.001)).heartbeat(
            record.id
        )
    assert getattr(caught.value.orig, "sqlstate", None) == "40001"
    assert len(calls) == 3
    assert retries_logged(caplog) == 2


def test_a_connection_bind_is_not_retried(engine):
    """Inside a caller's transaction a retry cannot help: the transaction is already lost."""
    record = _prepare(engine)
    calls = on_statement(engine, "SET last_heartbeat_at", raise_sqlstate("40001", times=1))
    with engine.connect() as conn, conn.begin(), pytest.raises(DBAPIError):
        ma.ExecutionStore(conn, retry=FAST_RETRY).heartbeat(record.id)
    assert len(calls) == 1


def test_real_deadlock_and_serialization_failure_are_transient_and_retried(engine, caplog):
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    a, b = _prepare(engine), _prepare(engine)
    barrier = threading.Barrier(2, timeout=10)
    seen: list[BaseException] = []
    done: list[str] = []

    @contextmanager
    def noted() -> Iterator[None]:
        """Every failed attempt, its commit included (where a serialization failure can come)."""
        try:
            yield
        except DBAPIError as exc:
            seen.append(exc)
            raise

    def deadlocker(first: uuid.UUID, second: uuid.UUID, name: str) -> None:
        attempts: list[int] = []

        def transaction(conn: Any) -> None:
            attempts.append(len(attempts) + 1)
            stmt = "UPDATE agent_executions SET quality_score = :q WHERE id = :id"
            conn.execute(text(stmt), {"q": attempts[-1], "id": first})
            if attempts[-1] == 1:
                barrier.wait()  # both hold their first row: each now waits for the other
            conn.execute(text(stmt), {"q": attempts[-1], "id": second})

        write(engine, transaction, policy=FAST_RETRY, what=name, errors=noted)
        done.append(name)

    threads = [
        threading.Thread(target=deadlocker, args=(a.id, b.id, "ab")),
        threading.Thread(target=deadlocker, args=(b.id, a.id, "ba")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done) == ["ab", "ba"]
    assert [sqlstate(exc) for exc in seen] == ["40P01"]  # one victim, retried once
    assert all(is_transient(exc) for exc in seen)

    # Write skew under SERIALIZABLE: both read the count, both insert; one must fail (40001).
    seen.clear()
    barrier.reset()

    serializable = engine.execution_options(isolation_level="SERIALIZABLE")

    def skewer(name: str) -> None:
        attempts: list[int] = []

        def transaction(conn: Any) -> None:
            attempts.append(len(attempts) + 1)
            conn.execute(select(func.count()).select_from(logs)).scalar_one()
            if attempts[-1] == 1:
                barrier.wait()
            conn.execute(
                logs.insert().values(
                    id=uuid.uuid4(), execution_id=a.id, log_level="info",
                    message=name, logged_at=datetime.now(UTC),
                )
            )

        write(serializable, transaction, policy=FAST_RETRY, what=name, errors=noted)

    threads = [threading.Thread(target=skewer, args=(name,)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A retry can meet the other transaction again while it is still open: one or more 40001s.
    assert seen
    assert {sqlstate(exc) for exc in seen} == {"40001"}
    assert all(is_transient(exc) for exc in seen)
    assert count(engine, logs) == 2  # both committed in the end
    print(f"\nreal deadlock (40P01) and serialization failures (40001 x{len(seen)}): "
          f"all retried to success, {retries_logged(caplog)} retries logged")


# -- every pooled connection killed ------------------------------------------------------------


def test_next_call_works_after_every_pooled_connection_is_killed(engine, admin, db_url):
    connects: list[int] = []
    event.listen(engine, "connect", lambda dbapi, record: connects.append(1))
    conns = [engine.connect() for _ in range(4)]  # four pooled connections, then idle
    for conn in conns:
        conn.execute(text("SELECT 1"))
    for conn in conns:
        conn.close()
    assert len(connects) == 4

    with admin.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                "FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": db_url.database},
        ).scalar_one()
    assert killed >= 4

    # No retry involved: pool_pre_ping finds each dead connection and replaces it.
    store = ma.ExecutionStore(engine, retry=NO_RETRY)
    record = AGENT.builder(uuid.uuid4()).build()
    store.save_execution(record)
    assert store.get_execution(record.id) == store.get_execution(record.id)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    conns = [engine.connect() for _ in range(4)]
    for conn in conns:
        assert conn.execute(text("SELECT 1")).scalar() == 1
        conn.close()
    print(f"\nkilled {killed} backends; the next calls worked on the same engine after "
          f"{len(connects) - 4} reconnects")
