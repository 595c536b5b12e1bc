"""Revision 0008_database_rules: up, down and up again with data present, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import URL, Engine, bindparam, inspect, text
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules import TRIGGERS
from miyabi_analytics._db.types import UuidText

REVISION = "0008_database_rules"
BEFORE = "0007_write_order"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def fresh(empty_url: URL) -> Iterator[Engine]:
    engine = ma.connect(empty_url)
    yield engine
    engine.dispose()


def triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if Dialect.of(conn).is_postgresql:
            sql = (
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'agent_executions'::regclass "
                "AND NOT tgisinternal"
            )
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return set(conn.execute(text(sql)).scalars())


def defaults(engine: Engine) -> dict[tuple[str, str], Any]:
    inspector = inspect(engine)
    return {
        (table, column["name"]): column.get("default")
        for table in ("agent_executions", "business_agent_analytics", "agent_execution_logs")
        for column in inspector.get_columns(table)
        if column.get("default") is not None
    }


def everything(engine: Engine) -> tuple[Any, ...]:
    """Every row of the three tables and the view, in a stable order."""
    with engine.connect() as conn:
        return tuple(
            tuple(map(tuple, conn.execute(text(f"SELECT * FROM {name} ORDER BY id")).all()))  # noqa: S608
            for name in (
                "agent_executions", "business_agent_analytics", "agent_execution_logs",
                "v_business_agent_summary",
            )
        )


def fill(engine: Engine) -> list[ma.AgentExecutionResult]:
    agent = ma.MarketingAgent()
    records = [
        agent.builder(uuid.uuid4()).build(),
        agent.builder(uuid.uuid4()).status("running").started_at(T0).build(),
        agent.builder(uuid.uuid4()).status("completed").started_at(T0)
        .completed_at(T0 + timedelta(seconds=5)).quality_score(70).build(),
    ]
    for record in records:
        agent.save_execution(engine, record)
        agent.save_analysis_metrics(engine, record.id, {"engagement_score": 9, "x": 1})
        agent.log(engine, record.id, "info", f"line of {record.status.value}")
    return records


def plain_insert(engine: Engine) -> None:
    """An INSERT that names no id and no timestamps: needs the defaults."""
    values = {"repository_id": uuid.uuid4()}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO agent_executions (repository_id, agent_type, status) "
                "VALUES (:repository_id, 'SalesAgent', 'pending')"
            ).bindparams(bindparam("repository_id", type_=UuidText())),
            values,
        )


def move_back(engine: Engine, record: ma.AgentExecutionResult) -> None:
    values = {"id": record.id}
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE agent_executions SET status = 'pending' WHERE id = :id").bindparams(
                bindparam("id", type_=UuidText())
            ),
            values,
        )


def test_up_down_up_keeps_the_data_and_adds_or_removes_the_rules(fresh):
    ma.migrate(fresh, BEFORE)
    records = fill(fresh)
    data = everything(fresh)
    assert triggers(fresh) == set()
    with pytest.raises(IntegrityError):  # NOT NULL: no id, no created_at without the rules
        plain_insert(fresh)

    ma.migrate(fresh, REVISION)
    assert everything(fresh) == data  # the SQLite rebuild copied every row as it was
    assert triggers(fresh) >= {"miyabi_lifecycle_guard", "miyabi_stamp_insert"}
    assert triggers(fresh) <= set(TRIGGERS)
    assert set(defaults(fresh)) == {
        ("agent_executions", "id"), ("agent_executions", "created_at"),
        ("agent_executions", "updated_at"), ("business_agent_analytics", "id"),
        ("business_agent_analytics", "metrics"), ("business_agent_analytics", "created_at"),
        ("agent_execution_logs", "id"), ("agent_execution_logs", "logged_at"),
    }
    with pytest.raises(IntegrityError):
        move_back(fresh, records[2])

    ma.downgrade(fresh, BEFORE)
    assert everything(fresh) == data
    assert triggers(fresh) == set()
    assert defaults(fresh) == {}
    with pytest.raises(IntegrityError):
        plain_insert(fresh)
    move_back(fresh, records[2])  # only the Python store guarded the lifecycle before 0008
    assert ma.ExecutionStore(fresh).get_execution(records[2].id).status == "pending"

    ma.migrate(fresh)
    plain_insert(fresh)
    with pytest.raises(IntegrityError):
        move_back(fresh, records[1].evolve(status="completed"))  # running -> pending
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agent_executions")).scalar_one() == 4
    # the write order of analytics and logs (rowid on SQLite) survived both rebuilds
    logs = ma.read_logs(fresh)
    assert logs["message"].tolist() == [f"line of {r.status.value}" for r in records]
    summary = ma.read_summary(fresh).set_index("id")
    assert summary.loc[[str(r.id) for r in records], "engagement_score"].tolist() == [9] * 3
