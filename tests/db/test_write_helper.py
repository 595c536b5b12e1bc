"""``_db.tx.write``: the one write transaction with the one retry policy (issue 13, item 3).

Failures are SQLAlchemy errors around a stand-in driver error carrying the SQLSTATE under test,
raised from inside the transaction after it wrote a row, so each test also sees that a failed
attempt leaves nothing behind. Real server failures are in test_faults.py/test_retry_policy.py.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

import miyabi_analytics as ma
from miyabi_analytics._db.retry import RetryPolicy
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.tx import write

POLICY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02)
AGENT_TYPE = ma.SalesAgent().agent_type


class DriverError(Exception):
    """What psycopg raises, as far as the classification looks: an exception with a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def failure(sqlstate: str) -> DBAPIError:
    kind = IntegrityError if sqlstate.startswith("23") else OperationalError
    return kind("UPDATE ...", None, DriverError(sqlstate))


def add_row(conn: Connection) -> uuid.UUID:
    now = datetime.now(UTC)
    key = uuid.uuid4()
    conn.execute(
        executions.insert().values(
            id=key, repository_id=uuid.uuid4(), agent_type=AGENT_TYPE, status="pending",
            created_at=now, updated_at=now,
        )
    )
    return key


def stored_ids(engine: Engine) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return set(conn.execute(select(executions.c.id)).scalars())


class Work:
    """Writes a row, then fails with ``failures`` in turn; once they are used up, returns its id."""

    def __init__(self, *failures: DBAPIError) -> None:
        self.failures = list(failures)
        self.written: list[uuid.UUID] = []

    def __call__(self, conn: Connection) -> uuid.UUID:
        self.written.append(add_row(conn))
        if self.failures:
            raise self.failures.pop(0)
        return self.written[-1]


@pytest.fixture
def sleeps() -> list[float]:
    return []


def test_transient_failures_are_retried_in_fresh_transactions(engine, sleeps, caplog):
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    work = Work(failure("40001"), failure("40P01"))
    result = write(engine, work, what="test", policy=POLICY, sleep=sleeps.append)
    assert result == work.written[-1]
    assert len(work.written) == 3
    assert stored_ids(engine) == {result}  # the failed attempts were rolled back
    assert len(sleeps) == 2
    assert all(0 < pause <= POLICY.max_delay for pause in sleeps)
    messages = [r.getMessage() for r in caplog.records if r.name == "miyabi_analytics.retry"]
    assert len(messages) == 2
    assert "40001" in messages[0]
    assert "attempt 2 of 4" in messages[0]


def test_the_last_transient_failure_is_raised_when_the_policy_is_used_up(engine, sleeps):
    last = failure("40001")
    work = Work(failure("40001"), failure("40001"), failure("40001"), last)
    with pytest.raises(OperationalError) as caught:
        write(engine, work, what="test", policy=POLICY, sleep=sleeps.append)
    assert caught.value is last
    assert len(work.written) == POLICY.attempts
    assert len(sleeps) == POLICY.attempts - 1
    assert stored_ids(engine) == set()


@pytest.mark.parametrize("sqlstate", ["23514", "42501", "22003", "23505"])
def test_permanent_failures_and_unasked_conflicts_are_tried_once(engine, sleeps, sqlstate):
    work = Work(failure(sqlstate))
    with pytest.raises(DBAPIError):
        write(engine, work, what="test", policy=POLICY, sleep=sleeps.append)
    assert len(work.written) == 1
    assert sleeps == []
    assert stored_ids(engine) == set()


def test_a_callers_transaction_is_never_retried(engine, sleeps):
    with engine.connect() as conn, conn.begin():
        kept = add_row(conn)
        work = Work(failure("40001"))
        with pytest.raises(OperationalError):
            write(conn, work, what="test", policy=POLICY, sleep=sleeps.append)
    assert len(work.written) == 1
    assert sleeps == []
    assert stored_ids(engine) == {kept}  # the caller's own row; the attempt's was rolled back


@pytest.mark.parametrize("in_transaction", [True, False], ids=["savepoint", "own"])
def test_conflicts_are_retried_at_once_when_asked_on_any_bind(engine, sleeps, in_transaction):
    with engine.connect() as conn:
        outer = conn.begin() if in_transaction else None
        kept = add_row(conn) if outer is not None else None
        work = Work(failure("23505"), failure("23505"))
        result = write(conn, work, what="test", conflicts=2, policy=POLICY, sleep=sleeps.append)
        if outer is not None:
            outer.commit()
    assert len(work.written) == 3
    assert sleeps == []  # no backoff: the other writer has committed already
    assert stored_ids(engine) == {result} | ({kept} if kept is not None else set())

    work = Work(failure("23505"), failure("23505"), failure("23505"))
    with pytest.raises(IntegrityError):
        write(engine, work, what="test", conflicts=2, policy=POLICY, sleep=sleeps.append)
    assert len(work.written) == 3


def test_recover_finds_a_commit_whose_acknowledgement_was_lost(engine, sleeps):
    work = Work()
    lost: list[DBAPIError] = [failure("08006")]

    @contextmanager
    def acknowledgement_lost() -> Iterator[None]:
        yield  # the transaction inside has committed when this resumes
        if lost:
            raise lost.pop()

    def recover(conn: Connection) -> uuid.UUID | None:
        found = conn.execute(select(executions.c.id).where(executions.c.id.in_(work.written)))
        return found.scalar_one_or_none()

    result = write(
        engine, work, what="test", policy=POLICY, errors=acknowledgement_lost, recover=recover,
        sleep=sleeps.append,
    )
    assert len(work.written) == 1  # not run again
    assert result == work.written[0]
    assert stored_ids(engine) == {result}
    assert len(sleeps) == 1


def test_errors_translate_each_attempt_and_a_translation_is_not_retried(engine, sleeps):
    entered: list[int] = []

    @contextmanager
    def translate() -> Iterator[None]:
        entered.append(1)
        try:
            yield
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "23514":
                raise ma.ValidationError("field", 1, "refused") from exc
            raise

    work = Work(failure("40001"), failure("23514"), failure("40001"))
    with pytest.raises(ma.ValidationError):
        write(engine, work, what="test", policy=POLICY, errors=translate, sleep=sleeps.append)
    assert len(entered) == 2  # once per attempt; the translated refusal ended it
    assert len(work.written) == 2
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(executions)).scalar_one() == 0


def test_store_writes_use_the_helper_and_its_policy(engine, monkeypatch):
    """Every store write is one ``write`` call that names itself and passes the store's policy."""
    import miyabi_analytics._db.tx as tx

    seen: list[tuple[str, Any]] = []
    real = tx.write

    def spy(bind: Any, work: Any, **options: Any) -> Any:
        seen.append((options["what"], options["policy"]))
        return real(bind, work, **options)

    for module in ("executions", "children", "liveness", "bulk"):
        monkeypatch.setattr(f"miyabi_analytics.store.{module}.write", spy)
    store = ma.ExecutionStore(engine, retry=POLICY)
    agent = ma.SalesAgent()
    record = agent.builder(uuid.uuid4()).status("running").start_now().build()
    store.save_execution(record)
    store.save_executions([record.evolve(quality_score=50)])
    store.heartbeat(record.id)
    store.save_analysis_metrics(record.id, {"engagement_score": 5})
    store.log(record.id, "info", "x")
    store.log_many([ma.LogEntry(record.id, "info", "y")])
    store.save_analysis_metrics_many([(record.id, {"engagement_score": 6})])
    store.reap("1h")
    assert [what for what, _ in seen] == [
        "save_execution", "save_executions batch", "heartbeat", "save_analysis_metrics",
        "agent_execution_logs insert", "agent_execution_logs batch",
        "business_agent_analytics batch", "reap",
    ]
    assert all(policy is POLICY for _, policy in seen)
