"""Constraint names are the naming convention's, once (issue 12, item 15).

Revisions 0001 and 0002 spelled check constraint names out in full and the naming convention
prefixed them again (``ck_agent_executions_ck_agent_executions_status_known``; on PostgreSQL,
past 63 characters, a hashed stump); 0007_write_order renames them. ``alembic check`` does not
compare check constraints, so these tests hold the database to the models.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import URL, CheckConstraint, Engine, inspect, text
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from miyabi_analytics._db import schema

REVISION = "0007_write_order"
BEFORE = "0006_bucket_statistics"

OLD_CHECKS = {
    "sqlite": {
        "agent_executions": {
            "ck_agent_executions_ck_agent_executions_quality_score_range",
            "ck_agent_executions_ck_agent_executions_status_known",
        },
        "business_agent_analytics": {
            "ck_business_agent_analytics_ck_business_agent_analytics_engagement_score_range",
        },
        "report_runs": {"ck_report_runs_ck_report_runs_status_known"},
    },
}
OLD_CHECKS["postgresql"] = {
    **OLD_CHECKS["sqlite"],
    "business_agent_analytics": {"ck_business_agent_analytics_ck_business_agent_analytics_ac79"},
}


def model_checks() -> dict[str, set[str]]:
    """Each table's check constraint names as the models (naming convention applied) have them."""
    return {
        table.name: names
        for table in schema.metadata.sorted_tables
        if (names := {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)})
    }


def database_names(engine: Engine) -> dict[str, dict[str, set[str]]]:
    """Every named constraint and index of every model table, by kind."""
    inspector = inspect(engine)
    out: dict[str, dict[str, set[str]]] = {}
    for table in schema.metadata.tables:
        if not inspector.has_table(table):
            continue  # a table of a later revision than the database's
        pk = inspector.get_pk_constraint(table)["name"]
        out[table] = {
            "check": {c["name"] for c in inspector.get_check_constraints(table)},
            "foreign": {fk["name"] for fk in inspector.get_foreign_keys(table)},
            "unique": {u["name"] for u in inspector.get_unique_constraints(table)},
            "index": {str(ix["name"]) for ix in inspector.get_indexes(table)},
            "primary": {pk} if pk else set(),
        }
    return out


def checks_of(names: dict[str, dict[str, set[str]]]) -> dict[str, set[str]]:
    return {table: kinds["check"] for table, kinds in names.items() if kinds["check"]}


@pytest.fixture
def fresh(empty_url: URL) -> Iterator[Engine]:
    engine = ma.connect(empty_url)
    yield engine
    engine.dispose()


def test_no_name_holds_its_table_twice(engine):
    names = database_names(engine)
    assert set(names) == set(schema.metadata.tables)
    for table, kinds in names.items():
        for kind, found in kinds.items():
            for name in found:
                assert name.count(table) <= 1, (table, kind, name)
                assert len(name) < 63, (table, kind, name)  # nothing truncated by PostgreSQL


def test_check_constraints_are_named_as_the_models(engine):
    assert checks_of(database_names(engine)) == model_checks()
    assert model_checks()["agent_executions"] == {
        "ck_agent_executions_quality_score_range", "ck_agent_executions_status_known"
    }


def test_the_revision_renames_and_its_downgrade_restores(fresh, dialect):
    ma.migrate(fresh, BEFORE)
    agent = ma.MarketingAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(fresh, record)
    agent.save_analysis_metrics(fresh, record.id, {"engagement_score": 7})
    agent.log(fresh, record.id, "info", "kept")
    assert checks_of(database_names(fresh)) == OLD_CHECKS[dialect]

    ma.migrate(fresh, REVISION)
    later = {"agent_execution_rollup_state"}  # revision 0011's table
    assert checks_of(database_names(fresh)) == {
        table: names for table, names in model_checks().items() if table not in later
    }
    ma.downgrade(fresh, BEFORE)
    assert checks_of(database_names(fresh)) == OLD_CHECKS[dialect]
    ma.migrate(fresh)
    assert checks_of(database_names(fresh)) == model_checks()

    # the rebuilt tables (SQLite) kept their rows, indexes, keys and checks
    stored = agent.get_latest_execution(fresh, record.repository_id)
    assert stored is not None
    assert dataclasses.replace(stored, created_at=None, updated_at=None) == record
    frame = ma.read_logs(fresh, execution_id=record.id)
    assert frame["message"].tolist() == ["kept"]
    with fresh.connect() as conn:
        assert conn.execute(
            text("SELECT engagement_score FROM v_business_agent_summary")
        ).scalar_one() == 7
    refused = [
        "UPDATE agent_executions SET quality_score = 101",
        "UPDATE agent_executions SET status = 'lost'",
        "UPDATE business_agent_analytics SET engagement_score = -1",
    ]
    for statement in refused:
        with pytest.raises(IntegrityError) as info, fresh.begin() as conn:
            conn.execute(text(statement))
        name = str(info.value).lower()
        assert "check" in name, statement
    with fresh.begin() as conn:
        conn.execute(text("DELETE FROM agent_executions"))  # the foreign keys still cascade
        assert conn.execute(text("SELECT count(*) FROM agent_execution_logs")).scalar_one() == 0
        assert conn.execute(
            text("SELECT count(*) FROM business_agent_analytics")
        ).scalar_one() == 0
    ma.migrate(fresh)  # idempotent at head
