import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

import miyabi_analytics as ma
from miyabi_analytics import AgentExecutionResult, ExecutionStatus

ROUNDS = 25
MAX_ATTEMPTS = 10_000
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _saver(engine: Engine, path: str) -> Callable[[AgentExecutionResult], None]:
    """Save one record through the agent (upsert) or through the bulk path."""
    agent = ma.agent_for("AnalyticsAgent")
    store = ma.ExecutionStore(engine)

    def single(record: AgentExecutionResult) -> None:
        ma.agent_for(record.agent_type).save_execution(engine, record)

    def bulk(record: AgentExecutionResult) -> None:
        store.save_executions([record])

    assert agent.agent_type == "AnalyticsAgent"
    return single if path == "single" else bulk


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_racing_opposite_updates_never_regress(engine, path):
    agent = ma.AnalyticsAgent()
    save = _saver(engine, path)
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []
    stats = {"running_saved": 0, "running_refused": 0}
    lock = threading.Lock()
    rounds: list[tuple[AgentExecutionResult, AgentExecutionResult, threading.Event]] = []
    repo = uuid.uuid4()
    for i in range(ROUNDS):
        running = agent.builder(repo).status("running").started_at(T0).build()
        agent.save_execution(engine, running)
        completed = running.evolve(
            status="completed",
            completed_at=T0 + timedelta(seconds=i + 1),
            quality_score=i,
            result={"round": i},
        )
        rounds.append((running, completed, threading.Event()))

    def completer() -> None:
        try:
            for _, completed, done in rounds:
                barrier.wait()
                save(completed)  # running -> completed is always legal: must never fail
                done.set()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    def regressor() -> None:
        try:
            for running, _, done in rounds:
                barrier.wait()
                for _ in range(MAX_ATTEMPTS):
                    completed_before = done.is_set()
                    refused: ma.InvalidStatusTransition | None = None
                    try:
                        save(running)
                    except ma.InvalidStatusTransition as exc:
                        refused = exc
                    if refused is not None:
                        assert (refused.current, refused.requested) == ("completed", "running")
                        with lock:
                            stats["running_refused"] += 1
                        break
                    # a save that started after the completion returned must have been refused
                    assert not completed_before, f"execution {running.id} regressed"
                    with lock:
                        stats["running_saved"] += 1
                else:
                    raise AssertionError("the running saver was never refused")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=completer), threading.Thread(target=regressor)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert stats["running_refused"] == ROUNDS  # every round ends with the regression refused

    store = ma.ExecutionStore(engine)
    for running, completed, _ in rounds:
        final = store.get_execution(running.id)
        assert final.status is ExecutionStatus.COMPLETED
        assert final.result == completed.result
        assert final.quality_score == completed.quality_score
        assert final.completed_at == completed.completed_at
    history = agent.load_history(engine, repo, limit=ROUNDS)
    assert {r.status for r in history} == {ExecutionStatus.COMPLETED}


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_racing_inserts_of_the_same_new_id(engine, path):
    """Two writers inserting the same new execution: one row, no error, no duplicate."""
    agent = ma.SalesAgent()
    save = _saver(engine, path)
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []
    records = [agent.builder(uuid.uuid4()).build() for _ in range(ROUNDS)]

    def writer() -> None:
        try:
            for record in records:
                barrier.wait()
                save(record)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    store = ma.ExecutionStore(engine)
    assert all(store.get_execution(r.id).status is ExecutionStatus.PENDING for r in records)
    assert len(agent.load_history(engine, records[0].repository_id)) == 1
    assert sum(len(agent.load_history(engine, r.repository_id)) for r in records) == ROUNDS
