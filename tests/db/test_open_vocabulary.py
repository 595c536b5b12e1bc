"""Rows other writers store (issue 14 item 5) are read, filtered and drawn, on both databases.

The fleet's other agents (``CoordinatorAgent``, ``CodeGenAgent``, ...) share the tables and write
log level ``warn``; they are inserted here by plain SQL naming only the upstream columns (the
database's rules of revision 0008 fill ids and timestamps). Writes through this package stay
closed to the 15.

The view's SQL category of a type outside the 15 is the summary's business (a later revision
returns ``"other"``); the readers map a missing category to ``"other"`` themselves, so the
category asserted here holds with either view.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, bindparam, text

import miyabi_analytics as ma
from miyabi_analytics import aggregates
from miyabi_analytics._dashboard import DashboardFilters, DashboardModel, build_figures
from miyabi_analytics._db.types import UtcDateTime, UuidText
from miyabi_analytics.figures import roi_quality_figure, status_figure
from miyabi_analytics.frames import SUMMARY_DTYPES
from miyabi_analytics.kpis import kpi_table
from miyabi_analytics.reader import _read_summary_simple

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FOREIGN = ("CodeGenAgent", "CoordinatorAgent", "ReviewAgent")  # sorted: the order they read in
INSERT_EXECUTION = text(
    "INSERT INTO agent_executions (repository_id, agent_type, status, started_at, completed_at, "
    "error_message, quality_score) VALUES (:repository_id, :agent_type, :status, :started_at, "
    ":completed_at, :error_message, :quality_score) RETURNING id"
).bindparams(
    bindparam("repository_id", type_=UuidText()),
    bindparam("started_at", type_=UtcDateTime()),
    bindparam("completed_at", type_=UtcDateTime()),
).columns(id=UuidText())
INSERT_ANALYTICS = text(
    "INSERT INTO business_agent_analytics (execution_id, agent_type, engagement_score) "
    "VALUES (:execution_id, :agent_type, :engagement_score)"
).bindparams(bindparam("execution_id", type_=UuidText()))
INSERT_LOG = text(
    "INSERT INTO agent_execution_logs (execution_id, log_level, message) "
    "VALUES (:execution_id, :log_level, :message)"
).bindparams(bindparam("execution_id", type_=UuidText()))


def _foreign(engine: Engine, repo: uuid.UUID, agent_type: str, status: str, **values: Any) -> Any:
    row = {"started_at": None, "completed_at": None, "error_message": None, "quality_score": None}
    row.update(values, repository_id=repo, agent_type=agent_type, status=status)
    with engine.begin() as conn:
        return conn.execute(INSERT_EXECUTION, row).scalar_one()


def _foreign_log(engine: Engine, execution_id: Any, level: str, message: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            INSERT_LOG, {"execution_id": execution_id, "log_level": level, "message": message}
        )


@pytest.fixture
def shared(engine: Engine) -> dict[str, Any]:
    """Two executions of ours, three of the fleet's, and logs in both spellings."""
    repo = uuid.uuid4()
    sales, crm = ma.SalesAgent(), ma.CRMAgent()
    done = sales.builder(repo).status("completed").started_at(T0).completed_at(
        T0 + timedelta(seconds=60)
    ).quality_score(80).build()
    failed = crm.builder(repo).status("failed").started_at(T0).completed_at(
        T0 + timedelta(seconds=30)
    ).error_message("ours").build()
    sales.save_execution(engine, done)
    crm.save_execution(engine, failed)
    sales.log(engine, done.id, "warning", "our warning")
    sales.log(engine, done.id, "info", "our info")
    coordinator = _foreign(
        engine, repo, "CoordinatorAgent", "completed", started_at=T0 + timedelta(hours=1),
        completed_at=T0 + timedelta(hours=1, minutes=2), quality_score=90,
    )
    codegen = _foreign(
        engine, repo, "CodeGenAgent", "failed", started_at=T0 + timedelta(hours=2),
        completed_at=T0 + timedelta(hours=2, seconds=10), error_message="boom",
    )
    review = _foreign(engine, repo, "ReviewAgent", "pending")
    with engine.begin() as conn:
        conn.execute(INSERT_ANALYTICS, {
            "execution_id": codegen, "agent_type": "CodeGenAgent", "engagement_score": 40,
        })
    _foreign_log(engine, coordinator, "warn", "their warn")
    _foreign_log(engine, codegen, "notice", "their notice")
    _foreign_log(engine, codegen, "error", "their error")
    return {
        "engine": engine, "repo": repo, "done": done.id, "failed": failed.id,
        "CoordinatorAgent": coordinator, "CodeGenAgent": codegen, "ReviewAgent": review,
    }


def _types(frame: pd.DataFrame) -> dict[str, str]:
    """agent_type -> agent_category of each row (one row per type in ``shared``)."""
    return dict(zip(frame["agent_type"].astype(object), frame["agent_category"].astype(object),
                    strict=True))


EXPECTED = {
    "SalesAgent": "operations", "CRMAgent": "operations",
    "CoordinatorAgent": "other", "CodeGenAgent": "other", "ReviewAgent": "other",
}


def test_every_agent_type_is_read_with_category_other_outside_the_15(shared):
    engine = shared["engine"]
    frame = ma.read_summary(engine)
    assert len(frame) == 5
    assert frame["agent_type"].notna().all()
    assert frame["agent_category"].notna().all()
    assert _types(frame) == EXPECTED
    # the 15 in the design's order, then the other writers' types sorted by name
    assert list(frame["agent_type"].cat.categories) == [*ma.AGENT_TYPES, *FOREIGN]
    assert frame["agent_category"].dtype == SUMMARY_DTYPES["agent_category"]
    assert {n: frame[n].dtype for n in frame if n != "agent_type"} == {
        n: d for n, d in SUMMARY_DTYPES.items() if n != "agent_type"
    }
    # the plain path and the streaming one read the same values
    simple = _read_summary_simple(engine)
    streamed = pd.concat(list(ma.iter_summary(engine, chunksize=2)), ignore_index=True)
    for other in (simple, streamed):
        assert other["id"].tolist() == frame["id"].tolist()
        assert _types(other) == EXPECTED
    assert list(simple["agent_type"].cat.categories) == [*ma.AGENT_TYPES, *FOREIGN]
    only = ma.read_summary(engine, columns=["agent_category", "agent_type"])
    assert _types(only) == EXPECTED


def test_an_empty_read_has_the_dtypes_of_a_full_one(shared):
    engine = shared["engine"]
    full = ma.read_summary(engine)
    none = ma.read_summary(engine, agent_types=["NoRowHasThisAgent"])
    assert none.empty
    assert none.dtypes.to_dict() == SUMMARY_DTYPES
    assert none["agent_category"].dtype == full["agent_category"].dtype


def test_filters_take_any_agent_type(shared):
    engine = shared["engine"]
    frame = ma.read_summary(engine, agent_types="CoordinatorAgent")
    assert frame["id"].tolist() == [str(shared["CoordinatorAgent"])]
    assert frame["agent_category"].tolist() == ["other"]
    frame = ma.read_summary(engine, agent_types=["CodeGenAgent", "SalesAgent"])
    assert set(frame["agent_type"]) == {"CodeGenAgent", "SalesAgent"}
    with pytest.raises(ma.ValidationError) as info:
        ma.read_summary(engine, agent_types=["CodeGenAgent", 3])
    assert (info.value.field, info.value.value) == ("agent_types", 3)
    # Names no row can have match nothing; names no database can hold are refused, not sent.
    for nothing in ("X" * 80, "'; DROP TABLE agent_executions; --", "😀"):
        assert ma.read_summary(engine, agent_types=nothing).empty, nothing
        assert aggregates.success_rates(engine, agent_types=nothing).empty, nothing
    for unstorable in ("Coordinator\x00Agent", "\ud800"):
        with pytest.raises(ma.ValidationError) as info:
            ma.read_summary(engine, agent_types=[unstorable])
        assert info.value.field == "agent_types"


def test_aggregates_group_and_filter_other_types(shared):
    engine = shared["engine"]
    rates = aggregates.success_rates(engine, by="agent_type")
    assert rates["agent_type"].tolist() == ["SalesAgent", "CRMAgent", *FOREIGN]
    counts = rates.set_index("agent_type")[["executions", "completed", "failed"]]
    assert counts.loc["CoordinatorAgent"].tolist() == [1, 1, 0]
    assert counts.loc["CodeGenAgent"].tolist() == [1, 0, 1]
    assert counts.loc["ReviewAgent"].tolist() == [1, 0, 0]
    by_category = aggregates.success_rates(engine, by="agent_category")
    assert by_category["agent_category"].tolist() == ["operations", "other"]
    assert by_category["executions"].tolist() == [2, 3]
    assert by_category["agent_category"].dtype == SUMMARY_DTYPES["agent_category"]

    only = {"agent_types": ["CoordinatorAgent"]}
    assert aggregates.quality_trend(engine, by=None, freq=None, **only)[
        "mean_quality"
    ].tolist() == [90.0]
    assert aggregates.duration_stats(engine, **only)["p50_seconds"].tolist() == [120.0]
    business = aggregates.business_metrics(engine, freq=None, agent_types="CodeGenAgent")
    assert business[["agent_type", "executions", "mean_engagement_score"]].astype(
        object
    ).values.tolist() == [["CodeGenAgent", 1, 40.0]]
    errors = aggregates.error_analysis(engine, agent_types=["CodeGenAgent", "CRMAgent"])
    assert dict(zip(errors["error_message"], errors["agent_types"], strict=True)) == {
        "boom": "CodeGenAgent", "ours": "CRMAgent",
    }
    table = kpi_table(engine)
    assert list(table.index) == ["SalesAgent", "CRMAgent", *FOREIGN]
    assert table.loc["CoordinatorAgent", "mean_quality"] == 90.0


def test_warn_reads_as_warning_and_a_warning_filter_finds_both(shared):
    engine = shared["engine"]
    every = ma.read_logs(engine)
    assert every["log_level"].notna().all()
    levels = dict(zip(every["message"], every["log_level"].astype(object), strict=True))
    assert levels["their warn"] == "warning"
    assert levels["their notice"] == "notice"  # another writer's word, kept
    assert list(every["log_level"].cat.categories) == [*ma.LOG_LEVELS, "notice"]
    for asked in ("warning", ["WARN"], ["warn", "warning"]):
        found = ma.read_logs(engine, levels=asked)
        assert sorted(found["message"]) == ["our warning", "their warn"], asked
        assert found["log_level"].tolist() == ["warning", "warning"]
    with engine.connect() as conn:  # read as warning, still stored as written
        stored = conn.execute(
            text("SELECT log_level FROM agent_execution_logs WHERE message = 'their warn'")
        ).scalar_one()
    assert stored == "warn"
    with pytest.raises(ma.ValidationError) as info:
        ma.read_logs(engine, levels=["notice"])
    assert info.value.field == "levels"


def test_writes_through_this_package_stay_closed_to_the_15(shared):
    engine = shared["engine"]
    with pytest.raises(ma.ValidationError) as info:
        ma.agent_for("CoordinatorAgent")
    assert info.value.field == "agent_type"
    record = ma.AgentExecutionResult(
        id=uuid.uuid4(), repository_id=shared["repo"], agent_type="CoordinatorAgent"
    )
    store = ma.ExecutionStore(engine)
    with pytest.raises(ma.ValidationError) as info:
        store.save_execution(record)
    assert (info.value.field, info.value.value) == ("agent_type", "CoordinatorAgent")
    with pytest.raises(ma.ValidationError):
        store.save_executions([record])
    with pytest.raises(ma.ValidationError) as info:
        ma.SalesAgent().log(engine, shared["done"], "warn", "the upstream spelling")
    assert info.value.field == "level"
    assert len(ma.read_summary(engine)) == 5
    assert len(ma.read_logs(engine)) == 5


def _drawn(figure: Any) -> set[str]:
    """Every trace name and every text value on the x and y axes of a figure."""
    out: set[str] = set()
    for trace in figure.data:
        out.add(str(trace.name))
        for axis in ("x", "y"):
            values = getattr(trace, axis, None)
            out.update(str(v) for v in ([] if values is None else values) if isinstance(v, str))
    return out


def test_dashboard_and_figures_draw_other_types(shared):
    engine = shared["engine"]
    model = DashboardModel(engine)
    data = model.refresh()
    assert {tile.key: tile.value for tile in data.kpis}["executions"] == 5
    drawn = build_figures(data)
    assert set(FOREIGN) <= _drawn(drawn["success"])
    assert "CodeGenAgent" in _drawn(drawn["durations"])
    assert "other" in _drawn(drawn["business"])  # CodeGenAgent's analytics row
    frame = ma.read_summary(engine)
    assert "other" in _drawn(status_figure(frame, by="agent_category"))
    assert "ReviewAgent" in _drawn(status_figure(frame, by="agent_type"))
    roi_quality_figure(frame)

    one = DashboardModel(engine, DashboardFilters.build(agent_types=["CoordinatorAgent"]))
    tiles = {tile.key: tile.value for tile in one.kpis()}
    assert tiles["executions"] == 1
    assert tiles["mean_quality"] == 90.0
    assert "CoordinatorAgent" in _drawn(build_figures(one.refresh())["success"])
    both = DashboardFilters.build(agent_types=["ReviewAgent", "CodeGenAgent", "SalesAgent"])
    assert both.agent_types == ("SalesAgent", "CodeGenAgent", "ReviewAgent")
