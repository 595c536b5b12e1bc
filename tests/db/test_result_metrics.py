"""Issue 14 item 6: metrics written into ``result -> 'analysis_metrics'`` count (revision 0009).

Written by plain SQL as upstream's writer does (``jsonb_set`` on PostgreSQL, ``json_set`` on
SQLite), metrics count exactly as if saved with ``save_analysis_metrics``: the same typed
columns in ``read_summary`` and the same ``business_metrics``; the later of the two writes wins
either way; a value that breaks its column's rule (one ``save_analysis_metrics`` refuses) stays
in the JSON only. The upgrade materialises the documents already stored, touching no execution;
the downgrade deletes exactly those rows and gives revision 0008's view back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import URL, Engine, inspect, text

import miyabi_analytics as ma
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules import FROM_RESULT, MATERIALISE_TRIGGERS
from miyabi_analytics._db.summary import VIEW
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.frames import SUMMARY_DTYPES
from miyabi_analytics.vocabulary import TYPED_METRICS

REVISION = "0009_upstream_superset"
BEFORE = "0008_database_rules"
T0 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)

VALID = [
    {
        "roi_percent": 1.005,
        "growth_rate_percent": -2.675,
        "conversion_rate": 999.994,
        "engagement_score": 100,
        "market_size_usd": 2**63 - 1,
        "reach_estimate": 0,
        "note": "x",
    },
    {
        "roi_percent": 5,
        "conversion_rate": 0.125,
        "competitors_analyzed": 2**31 - 1,
        "estimated_revenue_usd": 12_345_678_901,
        "engagement_score": 0,
        "page_views": 10,
    },
    {"growth_rate_percent": 0.001, "roi_percent": -99999.994, "target_audience_size": 42},
]
# key -> a value save_analysis_metrics refuses (JSON text, as a writer could send it)
BAD = {
    "engagement_score": "101",
    "reach_estimate": "-1",
    "competitors_analyzed": "true",
    "market_size_usd": "1.5",
    "target_audience_size": "2147483648",
    "estimated_revenue_usd": "9223372036854775808",
    "growth_rate_percent": "999.995",
    "roi_percent": '"12"',
    "conversion_rate": "-1000.5",
}


def _write_json(conn: Any, key: Any, document: str) -> None:
    """Upstream's save_analysis_metrics, verbatim on PostgreSQL (json_set on SQLite)."""
    if Dialect.of(conn).is_postgresql:
        sql = (
            "UPDATE agent_executions SET result = jsonb_set(COALESCE(result, '{}'::jsonb), "
            "'{analysis_metrics}', CAST(:m AS jsonb)) WHERE id = :id"
        )
    else:
        sql = (
            "UPDATE agent_executions SET result = json_set(COALESCE(result, '{}'), "
            "'$.analysis_metrics', json(:m)) WHERE id = :id"
        )
    conn.execute(text(sql), {"m": document, "id": str(key)})


def write_json(engine: Engine, key: Any, document: str) -> None:
    with engine.begin() as conn:
        _write_json(conn, key, document)


def execution(engine: Engine, agent: ma.PersistableAgent, repo: uuid.UUID) -> uuid.UUID:
    builder = agent.builder(repo).status("completed").started_at(T0).completed_at(T0)
    record = builder.build()
    agent.save_execution(engine, record)
    return record.id


def typed(frame: Any, key: uuid.UUID) -> dict[str, Any]:
    """The typed metric columns of ``key``'s summary row, NULL as None."""
    row = frame[frame["id"] == str(key)].iloc[0]
    return {name: (None if pd.isna(row[name]) else row[name]) for name in TYPED_METRICS}


def test_json_metrics_count_as_saved_ones(engine):
    pairs = []
    for document in VALID:
        repo = uuid.uuid4()
        saved = execution(engine, ma.SalesAgent(), repo)
        ma.SalesAgent().save_analysis_metrics(engine, saved, document)
        written = execution(engine, ma.CRMAgent(), repo)
        write_json(engine, written, json.dumps(document))
        pairs.append((saved, written))
    frame = ma.read_summary(engine)
    for saved, written in pairs:
        assert typed(frame, written) == typed(frame, saved)
        assert any(v is not None for v in typed(frame, written).values())
    totals = ma.business_metrics(engine, by="agent_type", freq=None)
    rows = {str(r.agent_type): r for r in totals.itertuples(index=False)}
    sales, crm = rows["SalesAgent"]._asdict(), rows["CRMAgent"]._asdict()
    del sales["agent_type"], crm["agent_type"]
    assert crm == pytest.approx(sales, nan_ok=True)
    assert crm["executions"] == len(VALID)


@pytest.mark.parametrize("key", list(BAD))
def test_a_value_breaking_its_rule_stays_in_the_json(engine, key):
    bad = BAD[key]
    good = "engagement_score" if key == "reach_estimate" else "reach_estimate"
    document = f'{{"{key}": {bad}, "{good}": 3}}'
    key_id = execution(engine, ma.CRMAgent(), uuid.uuid4())
    with pytest.raises(ValidationError):  # the store refuses it
        ma.CRMAgent().save_analysis_metrics(engine, key_id, {key: json.loads(bad)})
    write_json(engine, key_id, document)
    with engine.connect() as conn:
        stored = conn.execute(
            text(f"SELECT {key}, {good}, metrics FROM business_agent_analytics")  # noqa: S608
        ).one()
    assert stored[0] is None
    assert stored[1] == 3
    metrics = stored[2] if isinstance(stored[2], dict) else json.loads(stored[2])
    assert key in metrics
    assert metrics[good] == 3
    frame = ma.read_summary(engine)
    assert typed(frame, key_id)[key] is None
    assert typed(frame, key_id)[good] == 3
    totals = ma.business_metrics(engine, by="agent_type", freq=None)
    assert int(totals["executions"].sum()) == 1


def _reach(engine: Engine, key: uuid.UUID) -> Any:
    return typed(ma.read_summary(engine), key)["reach_estimate"]


def test_json_written_after_a_saved_row_wins(engine):
    key = execution(engine, ma.SalesAgent(), uuid.uuid4())
    ma.SalesAgent().save_analysis_metrics(engine, key, {"reach_estimate": 1})
    time.sleep(0.01)  # SQLite's clock has milliseconds
    write_json(engine, key, '{"reach_estimate": 2}')
    assert _reach(engine, key) == 2


def test_a_row_saved_after_the_json_wins(engine):
    key = execution(engine, ma.SalesAgent(), uuid.uuid4())
    write_json(engine, key, '{"reach_estimate": 2}')
    time.sleep(0.01)
    ma.SalesAgent().save_analysis_metrics(engine, key, {"reach_estimate": 1})
    assert _reach(engine, key) == 1
    time.sleep(0.01)
    write_json(engine, key, '{"reach_estimate": 5}')  # a changed document: a new row, latest
    assert _reach(engine, key) == 5


def _created_and_updated(engine: Engine, key: Any) -> list[tuple[Any, Any]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT a.created_at, e.updated_at FROM business_agent_analytics a "
                    "JOIN agent_executions e ON e.id = a.execution_id WHERE e.id = :id"
                ),
                {"id": str(key)},
            )
        ]


def test_the_row_is_stamped_with_the_executions_final_updated_at(engine):
    key = execution(engine, ma.SalesAgent(), uuid.uuid4())
    write_json(engine, key, '{"reach_estimate": 2}')
    [(created, updated)] = _created_and_updated(engine, key)
    assert created == updated
    # the same document again (upstream's update_execution re-sends result): no new row
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE agent_executions SET result = result WHERE id = :id"), {"id": str(key)}
        )
    assert len(_created_and_updated(engine, key)) == 1


def test_an_insert_with_metrics_materialises_them(engine):
    """Inserted running without started_at: 0008's stamp fires, updated_at stays the row's."""
    key = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO agent_executions (id, repository_id, agent_type, status, result) "
                "VALUES (:id, :repo, 'CoordinatorAgent', 'running', :result)"
            ),
            {
                "id": str(key),
                "repo": str(uuid.uuid4()),
                "result": json.dumps({"analysis_metrics": {"reach_estimate": 4}, "other": 1}),
            },
        )
    [(created, updated)] = _created_and_updated(engine, key)
    assert created == updated
    assert _reach(engine, key) == 4


# -- upgrade and downgrade ------------------------------------------------------------------


@pytest.fixture
def fresh(empty_url: URL) -> Iterator[Engine]:
    engine = ma.connect(empty_url)
    yield engine
    engine.dispose()


def _insert_raw(conn: Any, agent: str, result: str | None, updated: datetime) -> str:
    key = str(uuid.uuid4())
    pg = Dialect.of(conn).is_postgresql
    stamp: Any = updated if pg else updated.isoformat(sep=" ", timespec="microseconds")
    conn.execute(
        text(
            "INSERT INTO agent_executions (id, repository_id, agent_type, status, result, "
            "created_at, updated_at) VALUES (:id, :repo, :agent, 'pending', :result, :t, :u)"
        ),
        {
            "id": key,
            "repo": str(uuid.uuid4()),
            "agent": agent,
            "result": result,
            "t": stamp,
            "u": stamp,
        },
    )
    return key


def _rows(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]  # noqa: S608


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if Dialect.of(conn).is_postgresql:
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return set(conn.execute(text(sql)).scalars())


def test_upgrade_backfills_and_downgrade_removes_exactly_those(fresh):
    ma.migrate(fresh, BEFORE)
    updated = T0 + timedelta(hours=3, microseconds=7)
    with fresh.begin() as conn:
        json_key = _insert_raw(
            conn,
            "CoordinatorAgent",
            json.dumps({"analysis_metrics": {"reach_estimate": 9, "engagement_score": 500}}),
            updated,
        )
        _insert_raw(conn, "SalesAgent", json.dumps({"analysis_metrics": [1, 2]}), updated)
        _insert_raw(conn, "SalesAgent", json.dumps({"x": 1}), updated)
    saved = execution(fresh, ma.CRMAgent(), uuid.uuid4())
    ma.CRMAgent().save_analysis_metrics(fresh, saved, {"reach_estimate": 1})
    executions_before = _rows(fresh, "agent_executions")
    analytics_before = _rows(fresh, "business_agent_analytics")
    assert len(analytics_before) == 1

    ma.migrate(fresh, REVISION)
    assert _rows(fresh, "agent_executions") == executions_before  # no execution touched
    with fresh.connect() as conn:
        made = conn.execute(
            text(
                "SELECT execution_id, reach_estimate, engagement_score, created_at "  # noqa: S608
                f"FROM business_agent_analytics WHERE {FROM_RESULT}"
            )
        ).all()
    assert [(str(r[0]), r[1], r[2]) for r in made] == [(json_key, 9, None)]
    assert made[0][3] == (
        updated
        if Dialect.of(fresh).is_postgresql
        else updated.isoformat(sep=" ", timespec="microseconds")
    )
    assert set(MATERIALISE_TRIGGERS) <= _triggers(fresh)
    frame = ma.read_summary(fresh)
    assert typed(frame, uuid.UUID(json_key))["reach_estimate"] == 9

    ma.downgrade(fresh, BEFORE)
    assert _rows(fresh, "business_agent_analytics") == analytics_before
    assert _rows(fresh, "agent_executions") == executions_before
    assert FROM_RESULT not in {
        c["name"] for c in inspect(fresh).get_columns("business_agent_analytics")
    }
    assert not set(MATERIALISE_TRIGGERS) & _triggers(fresh)
    with fresh.connect() as conn:
        result = conn.execute(text(f"SELECT id, agent_category FROM {VIEW}"))  # noqa: S608
        assert list(result.keys()) == ["id", "agent_category"]
        categories = {str(k): c for k, c in result}
        names = list(conn.execute(text(f"SELECT * FROM {VIEW}")).keys())  # noqa: S608
    assert names == list(SUMMARY_DTYPES)  # 0008's view: no upstream columns
    assert categories[json_key] is None  # 0008's category of an unknown type
    write_json(fresh, saved, '{"reach_estimate": 3}')  # no trigger at 0008: no row
    assert len(_rows(fresh, "business_agent_analytics")) == 1

    ma.migrate(fresh, REVISION)  # and up again: materialised once more
    assert len(_rows(fresh, "business_agent_analytics")) == 3
