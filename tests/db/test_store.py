import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, delete, func, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from miyabi_analytics import ExecutionStatus
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.types import UuidText

INJECTION = "'); DROP TABLE agent_executions; --"
T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
TABLES = ("agent_executions", "business_agent_analytics", "agent_execution_logs")


# -- helpers -----------------------------------------------------------------------------------


def stored_row(engine: Engine, execution_id: uuid.UUID) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
    return None if row is None else row._asdict()


def count(engine: Engine, table: Any, **where: Any) -> int:
    stmt = select(func.count()).select_from(table)
    for name, value in where.items():
        stmt = stmt.where(table.c[name] == value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def counts(engine: Engine) -> tuple[int, int, int]:
    return count(engine, executions), count(engine, analytics), count(engine, logs)


def full_record(agent: ma.PersistableAgent, **changes: Any) -> ma.AgentExecutionResult:
    record = (
        agent.builder(uuid.uuid4())
        .user_id(uuid.uuid4())
        .issue_number(42)
        .pr_number(2**31 - 1)
        .status("completed")
        .started_at(T0)
        .completed_at(T0 + timedelta(seconds=61, microseconds=1))
        .quality_score(88)
        .result(
            {
                "title": "市場調査 — résumé ✓ 🚀",
                "competitors": [{"name": "A", "share": 0.25}, {"name": "B", "share": 0.5}],
                "flags": [True, False, None],
                "big": 2**63 - 1,
                "negative": -(2**63),
                "empty": {},
                "nested": {"deep": [[1, 2], [3, [4, {"five": 5}]]]},
                INJECTION: INJECTION,
            }
        )
        .error_message(INJECTION)
        .build()
    )
    return record.evolve(**changes) if changes else record


def without_stamps(record: ma.AgentExecutionResult) -> ma.AgentExecutionResult:
    return dataclasses.replace(record, created_at=None, updated_at=None)


def assert_schema_intact(engine: Engine) -> None:
    inspector = inspect(engine)
    assert set(TABLES) <= set(inspector.get_table_names())
    assert "v_business_agent_summary" in inspector.get_view_names()


# -- round trip --------------------------------------------------------------------------------


def test_round_trip_every_field(engine):
    agent = ma.MarketResearchAgent()
    record = full_record(agent)
    before = datetime.now(UTC)
    assert agent.save_execution(engine, record) == record.id
    after = datetime.now(UTC)

    [loaded] = agent.load_history(engine, record.repository_id)
    assert without_stamps(loaded) == record
    assert loaded.status is ExecutionStatus.COMPLETED
    assert loaded.started_at == T0
    assert loaded.started_at.microsecond == 123456
    assert loaded.completed_at == T0 + timedelta(seconds=61, microseconds=1)
    assert loaded.duration_seconds == 61.000001
    for stamp in (loaded.started_at, loaded.completed_at, loaded.created_at, loaded.updated_at):
        assert stamp is not None
        assert stamp.utcoffset() == timedelta(0)
    assert loaded.created_at == loaded.updated_at
    assert before <= loaded.created_at <= after
    assert ma.ExecutionStore(engine).get_execution(record.id) == loaded


def check_result_reads_back_as_plain_json(engine: Engine) -> None:
    agent = ma.PersonaAgent()
    record = full_record(agent)
    agent.save_execution(engine, record)
    loaded = ma.ExecutionStore(engine).get_execution(record.id)
    assert type(loaded.result) is dict
    assert type(loaded.result["competitors"]) is list
    assert type(loaded.result["competitors"][0]) is dict
    assert loaded.result["competitors"][0]["share"] == 0.25
    assert loaded.result["big"] == 2**63 - 1
    assert loaded.result["nested"]["deep"][1][1][1] == {"five": 5}
    assert loaded.result["title"] == "市場調査 — résumé ✓ 🚀"


def check_top_level_list_result(engine: Engine) -> None:
    agent = ma.CRMAgent()
    record = agent.builder(uuid.uuid4()).result([1, "two", {"three": 3.5}, [None]]).build()
    agent.save_execution(engine, record)
    loaded = ma.ExecutionStore(engine).get_execution(record.id)
    assert loaded.result == [1, "two", {"three": 3.5}, [None]]
    assert type(loaded.result) is list


def check_empty_documents_are_not_null(engine: Engine) -> None:
    agent = ma.CRMAgent()
    empty_dict = agent.builder(uuid.uuid4()).result({}).build()
    empty_list = agent.builder(uuid.uuid4()).result([]).build()
    for record in (empty_dict, empty_list):
        agent.save_execution(engine, record)
    store = ma.ExecutionStore(engine)
    assert store.get_execution(empty_dict.id).result == {}
    assert store.get_execution(empty_list.id).result == []
    assert type(store.get_execution(empty_list.id).result) is list


def check_other_time_zones_read_back_as_utc(engine: Engine) -> None:
    agent = ma.SalesAgent()
    tokyo = timezone(timedelta(hours=9))
    started = datetime(2026, 1, 1, 8, 59, 59, 999999, tzinfo=tokyo)
    record = agent.builder(uuid.uuid4()).started_at(started).build()
    agent.save_execution(engine, record)
    loaded = ma.ExecutionStore(engine).get_execution(record.id)
    assert loaded.started_at == datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert loaded.started_at.utcoffset() == timedelta(0)


EXTREME_STAMPS = (
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
)


def check_extreme_timestamps_round_trip(engine: Engine) -> None:
    agent = ma.SalesAgent()
    repo = uuid.uuid4()
    for stamp in EXTREME_STAMPS:
        record = agent.builder(repo).started_at(stamp).completed_at(stamp).build()
        agent.save_execution(engine, record)
        loaded = ma.ExecutionStore(engine).get_execution(record.id)
        assert (loaded.started_at, loaded.completed_at) == (stamp, stamp)
    # and they sort by time, not by text
    history = agent.load_history(engine, repo)
    assert [r.started_at for r in history] == sorted(EXTREME_STAMPS, reverse=True)


def test_timestamps_round_trip(engine):
    check_other_time_zones_read_back_as_utc(engine)
    check_extreme_timestamps_round_trip(engine)


def test_injection_strings_are_data(engine):
    agent = ma.AnalyticsAgent()
    record = full_record(agent)
    agent.save_execution(engine, record)
    agent.save_analysis_metrics(engine, record.id, {INJECTION: INJECTION, "reach_estimate": 1})
    agent.log(engine, record.id, "info", INJECTION, {INJECTION: [INJECTION]})

    assert_schema_intact(engine)
    assert counts(engine) == (1, 1, 1)
    loaded = ma.ExecutionStore(engine).get_execution(record.id)
    assert loaded.error_message == INJECTION
    assert loaded.result[INJECTION] == INJECTION
    with engine.connect() as conn:
        assert conn.execute(select(analytics.c.metrics)).scalar_one()[INJECTION] == INJECTION
        message, metadata = conn.execute(select(logs.c.message, logs.c.metadata)).one()
    assert message == INJECTION
    assert metadata == {INJECTION: [INJECTION]}


def test_injection_in_lookup_arguments_is_refused_not_run(engine):
    agent = ma.AnalyticsAgent()
    agent.save_execution(engine, full_record(agent))
    with pytest.raises(ma.ValidationError):
        agent.load_history(engine, INJECTION)
    with pytest.raises(ma.ValidationError):
        ma.ExecutionStore(engine).load_history(INJECTION, uuid.uuid4())
    with pytest.raises(ma.ValidationError):
        agent.log(engine, INJECTION, "info", "x")
    assert_schema_intact(engine)
    assert count(engine, executions) == 1


def test_unencodable_text_refused_before_the_database(engine):
    agent = ma.YouTubeAgent()
    lone_surrogate = "broken \ud800 text"
    builders = {
        "error_message": agent.builder(uuid.uuid4()).error_message(lone_surrogate),
        "result.k": agent.builder(uuid.uuid4()).result({"k": lone_surrogate}),
        "result": agent.builder(uuid.uuid4()).result({lone_surrogate: 1}),
        "result[0]": agent.builder(uuid.uuid4()).result([lone_surrogate]),
    }
    for field, builder in builders.items():
        with pytest.raises(ma.ValidationError) as info:
            agent.save_execution(engine, builder.build())
        assert info.value.field == field
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    with pytest.raises(ma.ValidationError):
        agent.log(engine, record.id, "info", lone_surrogate)
    with pytest.raises(ma.ValidationError):
        agent.save_analysis_metrics(engine, record.id, {"note": lone_surrogate})
    assert counts(engine) == (1, 0, 0)


# -- updates -----------------------------------------------------------------------------------


def test_update_replaces_every_column(engine):
    agent = ma.ProductConceptAgent()
    first = full_record(agent, status="running", completed_at=None)
    agent.save_execution(engine, first)
    saved_first = ma.ExecutionStore(engine).get_execution(first.id)
    time.sleep(0.002)

    second = dataclasses.replace(
        first,
        repository_id=uuid.uuid4(),
        user_id=None,
        issue_number=None,
        pr_number=None,
        status=ExecutionStatus.FAILED,
        started_at=None,
        completed_at=None,
        error_message=None,
        result=None,
        quality_score=None,
    )
    assert agent.save_execution(engine, second) == first.id
    loaded = ma.ExecutionStore(engine).get_execution(first.id)
    # None clears every column, but entering failed stamps a missing completed_at (0008).
    assert loaded.completed_at is not None
    assert loaded.completed_at >= saved_first.created_at
    assert without_stamps(loaded) == dataclasses.replace(second, completed_at=loaded.completed_at)
    assert loaded.created_at == saved_first.created_at
    assert loaded.updated_at is not None
    assert saved_first.updated_at is not None
    assert loaded.updated_at > saved_first.updated_at
    assert count(engine, executions) == 1
    with engine.connect() as conn:  # None clears to SQL NULL, not a JSON 'null' document
        nulls = conn.execute(
            select(func.count()).select_from(executions).where(executions.c.result.is_(None))
        ).scalar_one()
    assert nulls == 1


def check_update_sets_values_back(engine: Engine) -> None:
    agent = ma.ProductConceptAgent()
    bare = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, bare)
    filled = full_record(agent, id=bare.id, repository_id=bare.repository_id, status="failed")
    agent.save_execution(engine, filled)
    assert without_stamps(ma.ExecutionStore(engine).get_execution(bare.id)) == filled


def check_created_at_from_the_record_is_ignored_on_update(engine: Engine) -> None:
    agent = ma.SNSStrategyAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    original = ma.ExecutionStore(engine).get_execution(record.id).created_at
    forged = record.evolve(created_at=datetime(2000, 1, 1, tzinfo=UTC), status="running")
    agent.save_execution(engine, forged)
    assert ma.ExecutionStore(engine).get_execution(record.id).created_at == original


def test_update_details(engine):
    check_update_sets_values_back(engine)
    check_created_at_from_the_record_is_ignored_on_update(engine)


def test_workflow_pending_running_completed(engine):
    agent = ma.FunnelDesignAgent()
    repo = uuid.uuid4()
    pending = agent.builder(repo).issue_number(7).build()
    agent.save_execution(engine, pending)
    assert agent.get_latest_execution(engine, repo).status is ExecutionStatus.PENDING

    running = pending.evolve(status=ExecutionStatus.RUNNING, started_at=T0)
    agent.save_execution(engine, running)
    assert agent.get_latest_execution(engine, repo).status is ExecutionStatus.RUNNING

    completed = running.evolve(
        status="completed",
        completed_at=T0 + timedelta(minutes=5),
        quality_score=91,
        result={"funnel": ["aware", "buy"]},
    )
    agent.save_execution(engine, completed)
    history = agent.load_history(engine, repo)
    assert len(history) == 1
    assert without_stamps(history[0]) == completed
    assert history[0].issue_number == 7
    assert history[0].duration_seconds == 300.0
    # saving the same final state again is allowed (same -> same)
    agent.save_execution(engine, completed)
    assert agent.get_latest_execution(engine, repo).status is ExecutionStatus.COMPLETED


def test_every_transition_against_the_stored_row(engine):
    agent = ma.MarketingAgent()
    store = ma.ExecutionStore(engine)
    for stored in ExecutionStatus:
        for requested in ExecutionStatus:
            record = agent.builder(uuid.uuid4()).status(stored).build()
            agent.save_execution(engine, record)
            before = stored_row(engine, record.id)
            attempt = record.evolve(status=requested, quality_score=50, error_message="again")
            if stored.can_transition_to(requested):
                agent.save_execution(engine, attempt)
                assert store.get_execution(record.id).status is requested
            else:
                with pytest.raises(ma.InvalidStatusTransition) as info:
                    agent.save_execution(engine, attempt)
                assert info.value.current == stored.value
                assert info.value.requested == requested.value
                assert stored_row(engine, record.id) == before, (stored, requested)


def test_backwards_move_leaves_the_row_exactly_as_it_was(engine):
    agent = ma.MarketingAgent()
    record = full_record(agent)  # completed, every column filled
    agent.save_execution(engine, record)
    before = stored_row(engine, record.id)
    time.sleep(0.002)
    regressed = dataclasses.replace(
        record, status=ExecutionStatus.RUNNING, completed_at=None, result=None,
        quality_score=1, error_message=None, user_id=None,
    )
    with pytest.raises(ma.InvalidStatusTransition) as info:
        agent.save_execution(engine, regressed)
    assert isinstance(info.value, ma.ValidationError)
    assert info.value.field == "status"
    assert "completed" in str(info.value)
    assert "running" in str(info.value)
    assert stored_row(engine, record.id) == before


def test_agent_cannot_save_another_agents_result(engine):
    marketing = ma.MarketingAgent()
    record = marketing.builder(uuid.uuid4()).build()
    with pytest.raises(ma.ValidationError) as info:
        ma.SalesAgent().save_execution(engine, record)
    assert not isinstance(info.value, ma.InvalidStatusTransition)
    assert info.value.field == "agent_type"
    assert info.value.value == "MarketingAgent"
    assert "MarketingAgent" in str(info.value)
    assert counts(engine) == (0, 0, 0)


def test_agent_cannot_take_over_another_agents_execution(engine):
    marketing, sales = ma.MarketingAgent(), ma.SalesAgent()
    record = marketing.builder(uuid.uuid4()).build()
    marketing.save_execution(engine, record)
    before = stored_row(engine, record.id)
    hijack = sales.builder(record.repository_id).id(record.id).status("running").build()
    with pytest.raises(ma.ValidationError) as info:
        sales.save_execution(engine, hijack)
    assert info.value.field == "agent_type"
    assert stored_row(engine, record.id) == before


def test_save_refuses_invalid_record_built_around_the_builder(engine):
    agent = ma.MarketingAgent()
    record = dataclasses.replace(agent.builder(uuid.uuid4()).build(), quality_score=101)
    with pytest.raises(ma.ValidationError) as info:
        agent.save_execution(engine, record)
    assert info.value.field == "quality_score"
    assert count(engine, executions) == 0


# -- history -----------------------------------------------------------------------------------


def _set_created_at(engine: Engine, execution_id: uuid.UUID, stamp: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(executions).where(executions.c.id == execution_id).values(created_at=stamp)
        )


def test_load_history_order(engine):
    agent = ma.ContentCreationAgent()
    repo = uuid.uuid4()
    created = datetime(2026, 5, 1, tzinfo=UTC)
    # (started_at, created_at) per row; several ties on purpose
    plan = [
        (None, created + timedelta(hours=1)),
        (None, created + timedelta(hours=2)),
        (None, created + timedelta(hours=2)),
        (T0, created),
        (T0, created + timedelta(seconds=1)),
        (T0, created + timedelta(seconds=1)),
        (T0 + timedelta(microseconds=1), created),
        (T0 - timedelta(days=400), created + timedelta(days=30)),
        (T0 + timedelta(days=1), created - timedelta(days=30)),
    ]
    ids = []
    for started, created_at in plan:
        record = agent.builder(repo).started_at(started).build()
        agent.save_execution(engine, record)
        _set_created_at(engine, record.id, created_at)
        ids.append(record.id)

    # never-started first, then started_at DESC, then created_at DESC, then id ASC
    def key(i: int) -> tuple[Any, ...]:
        started, created_at = plan[i]
        return (
            started is not None,
            -(started - T0).total_seconds() if started else 0,
            -(created_at - created).total_seconds(),
            ids[i],
        )

    expected = [ids[i] for i in sorted(range(len(plan)), key=key)]
    assert [r.id for r in agent.load_history(engine, repo, limit=100)] == expected
    assert [r.id for r in agent.load_history(engine, repo, limit=3)] == expected[:3]
    assert [r.id for r in agent.load_history(engine, str(repo))] == expected  # default 10
    assert agent.load_history(engine, repo, limit=0) == []
    assert agent.get_latest_execution(engine, repo).id == expected[0]


def check_load_history_default_limit_is_ten(engine: Engine) -> None:
    agent = ma.ContentCreationAgent()
    repo = uuid.uuid4()
    ma.ExecutionStore(engine).save_executions(agent.builder(repo).build() for _ in range(12))
    assert len(agent.load_history(engine, repo)) == 10
    assert len(agent.load_history(engine, repo, limit=11)) == 11


def test_load_history_filters_agent_and_repository(engine):
    repo, other_repo = uuid.uuid4(), uuid.uuid4()
    agent, other = ma.PersonaAgent(), ma.ProductDesignAgent()
    mine = [agent.builder(repo).started_at(T0 + timedelta(minutes=i)).build() for i in range(3)]
    for record in mine:
        agent.save_execution(engine, record)
    agent.save_execution(engine, agent.builder(other_repo).started_at(T0).build())
    other.save_execution(engine, other.builder(repo).started_at(T0 + timedelta(days=1)).build())

    history = agent.load_history(engine, repo)
    assert [r.id for r in history] == [r.id for r in reversed(mine)]
    assert {r.agent_type for r in history} == {"PersonaAgent"}
    assert {r.repository_id for r in history} == {repo}
    assert len(other.load_history(engine, repo)) == 1
    assert other.load_history(engine, other_repo) == []


def check_load_history_bad_limit(engine: Engine) -> None:
    for limit in (-1, True, 1.5, "3", None):
        with pytest.raises(ma.ValidationError) as info:
            ma.MarketingAgent().load_history(engine, uuid.uuid4(), limit=limit)
        assert info.value.field == "limit", limit


def check_get_latest_execution_none_when_empty(engine: Engine) -> None:
    agent = ma.JonathanIveDesignAgent()
    repo = uuid.uuid4()
    assert agent.get_latest_execution(engine, repo) is None
    agent.save_execution(engine, agent.builder(repo).build())
    assert agent.get_latest_execution(engine, uuid.uuid4()) is None
    assert ma.SalesAgent().get_latest_execution(engine, repo) is None
    assert agent.get_latest_execution(engine, repo) is not None


def check_get_execution_unknown_is_not_found(engine: Engine) -> None:
    with pytest.raises(ma.NotFound):
        ma.ExecutionStore(engine).get_execution(uuid.uuid4())


def test_history_limits_and_lookups(engine):
    check_load_history_default_limit_is_ten(engine)
    check_load_history_bad_limit(engine)
    check_get_latest_execution_none_when_empty(engine)
    check_get_execution_unknown_is_not_found(engine)


# -- metrics -----------------------------------------------------------------------------------

FULL_METRICS = {
    "competitors_analyzed": 23,
    "market_size_usd": 2**63 - 1,
    "growth_rate_percent": 12.345,
    "conversion_rate": -3.5,
    "target_audience_size": 2**31 - 1,
    "estimated_revenue_usd": 0,
    "engagement_score": 100,
    "reach_estimate": 5_000_000,
    "roi_percent": -99999.99,
    "notes": {"source": "survey", "scores": [1.5, 2.5]},
    "segments": ["smb", "enterprise"],
}


def _analytics_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [r._asdict() for r in conn.execute(select(analytics))]


def test_save_analysis_metrics_fills_typed_columns_and_keeps_json(engine):
    agent = ma.MarketResearchAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    row_id = agent.save_analysis_metrics(engine, record.id, FULL_METRICS)
    assert isinstance(row_id, uuid.UUID)

    [row] = _analytics_rows(engine)
    assert row["id"] == row_id
    assert row["execution_id"] == record.id
    assert row["agent_type"] == "MarketResearchAgent"
    assert row["metrics"] == FULL_METRICS
    assert row["competitors_analyzed"] == 23
    assert row["market_size_usd"] == 2**63 - 1
    assert row["growth_rate_percent"] == 12.35  # half-up to cents
    assert row["conversion_rate"] == -3.5
    assert row["target_audience_size"] == 2**31 - 1
    assert row["estimated_revenue_usd"] == 0
    assert row["engagement_score"] == 100
    assert row["reach_estimate"] == 5_000_000
    assert row["roi_percent"] == -99999.99
    assert row["created_at"].utcoffset() == timedelta(0)


def test_partial_metrics_leave_other_columns_null(engine):
    agent = ma.MarketResearchAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    agent.save_analysis_metrics(engine, str(record.id), {"reach_estimate": 9, "x": None})
    [row] = _analytics_rows(engine)
    assert row["reach_estimate"] == 9
    assert row["metrics"] == {"reach_estimate": 9, "x": None}
    nulls = [k for k in FULL_METRICS if k in row and k != "reach_estimate" and row[k] is None]
    assert len(nulls) == 8


BAD_METRICS = [
    ("competitors_analyzed", -1),
    ("competitors_analyzed", 2**31),
    ("competitors_analyzed", 1.0),
    ("competitors_analyzed", "12"),
    ("market_size_usd", 2**63),
    ("market_size_usd", True),
    ("engagement_score", 101),
    ("engagement_score", -1),
    ("engagement_score", False),
    ("reach_estimate", 3.5),
    ("target_audience_size", [1]),
    ("estimated_revenue_usd", -5),
    ("growth_rate_percent", 1000.0),
    ("growth_rate_percent", 999.995),
    ("conversion_rate", float("nan")),
    ("conversion_rate", True),
    ("conversion_rate", "1.5"),
    ("roi_percent", 100000.0),
    ("roi_percent", float("-inf")),
]


def test_bad_metrics_refused_and_nothing_written(engine):
    agent = ma.MarketResearchAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    agent.save_analysis_metrics(engine, record.id, {"reach_estimate": 1})
    before = _analytics_rows(engine)
    for key, value in BAD_METRICS:
        with pytest.raises(ma.ValidationError) as info:
            agent.save_analysis_metrics(engine, record.id, {"reach_estimate": 2, key: value})
        assert info.value.field == f"metrics.{key}", (key, value)
        assert f"metrics.{key}" in str(info.value)
        assert info.value.value is value
    assert _analytics_rows(engine) == before


def test_bad_metrics_json_refused(engine):
    agent = ma.MarketResearchAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    bad_documents = [
        {"extra": float("nan")},
        {"deep": [{"x": float("inf")}]},
        {1: "int key"},
        {"nul": "a\x00b"},
        ["not", "a", "mapping"],
        None,
    ]
    for metrics in bad_documents:
        with pytest.raises(ma.ValidationError) as info:
            agent.save_analysis_metrics(engine, record.id, metrics)
        assert info.value.field.startswith("metrics"), metrics
    assert count(engine, analytics) == 0


def test_metrics_by_another_agent_refused(engine):
    record = ma.MarketingAgent().builder(uuid.uuid4()).build()
    ma.MarketingAgent().save_execution(engine, record)
    with pytest.raises(ma.ValidationError) as info:
        ma.SalesAgent().save_analysis_metrics(engine, record.id, {"reach_estimate": 1})
    assert info.value.field == "agent_type"
    assert count(engine, analytics) == 0


def test_metrics_and_logs_for_unknown_execution(engine):
    agent = ma.MarketingAgent()
    agent.save_execution(engine, agent.builder(uuid.uuid4()).build())
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound) as info:
        agent.save_analysis_metrics(engine, missing, {"reach_estimate": 1})
    assert isinstance(info.value, LookupError)
    assert str(missing) in str(info.value)
    with pytest.raises(ma.NotFound) as info:
        agent.log(engine, missing, "info", "hello")
    assert str(missing) in str(info.value)
    with pytest.raises(ma.NotFound):
        ma.ExecutionStore(engine).save_analysis_metrics(missing, {})
    assert counts(engine) == (1, 0, 0)


def test_metrics_inside_a_callers_transaction(engine):
    agent = ma.AnalyticsAgent()
    record = agent.builder(uuid.uuid4()).build()
    with engine.connect() as conn:
        with conn.begin():
            agent.save_execution(conn, record)
            agent.save_analysis_metrics(conn, record.id, {"reach_estimate": 3})
            agent.log(conn, record.id, "info", "in one transaction")
        assert counts(engine) == (1, 1, 1)
        trans = conn.begin()
        agent.log(conn, record.id, "debug", "rolled back")
        trans.rollback()
    assert counts(engine) == (1, 1, 1)


def test_refusals_inside_a_callers_transaction_keep_it_usable(engine):
    agent = ma.AnalyticsAgent()
    done = agent.builder(uuid.uuid4()).status("completed").build()
    fresh = agent.builder(uuid.uuid4()).build()
    with engine.connect() as conn, conn.begin():
        agent.save_execution(conn, done)
        with pytest.raises(ma.InvalidStatusTransition):
            agent.save_execution(conn, done.evolve(status="running"))
        with pytest.raises(ma.NotFound):
            agent.log(conn, uuid.uuid4(), "info", "nobody")
        with pytest.raises(ma.NotFound):
            agent.save_analysis_metrics(conn, uuid.uuid4(), {"reach_estimate": 1})
        agent.save_execution(conn, fresh)
        agent.log(conn, fresh.id, "info", "still fine")
    assert counts(engine) == (2, 0, 1)
    assert ma.ExecutionStore(engine).get_execution(done.id).status is ExecutionStatus.COMPLETED


# -- logs --------------------------------------------------------------------------------------


def test_log_levels_any_case_stored_lowercase(engine):
    agent = ma.SelfAnalysisAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    given = ["DEBUG", "Info", "warning", "ERROR", "Critical", " info "]
    ids = [agent.log(engine, record.id, level, f"m{i}") for i, level in enumerate(given)]
    assert len(set(ids)) == len(ids)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(logs.c.message, logs.c.log_level)).all())
    assert stored == {
        "m0": "debug", "m1": "info", "m2": "warning", "m3": "error", "m4": "critical",
        "m5": "info",
    }


def test_log_metadata_and_time(engine):
    agent = ma.SelfAnalysisAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    before = datetime.now(UTC)
    log_id = agent.log(engine, record.id, "warning", "ünïcode ✓", {"step": 2, "tags": ["a"]})
    after = datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(select(logs).where(logs.c.id == log_id)).one()._asdict()
    assert row["execution_id"] == record.id
    assert row["message"] == "ünïcode ✓"
    assert row["metadata"] == {"step": 2, "tags": ["a"]}
    assert before <= row["logged_at"] <= after
    agent.log(engine, record.id, "info", "no metadata")
    with engine.connect() as conn:
        nulls = conn.execute(
            select(func.count()).select_from(logs).where(logs.c.metadata.is_(None))
        ).scalar_one()
    assert nulls == 1


def check_bad_log_level(engine: Engine) -> None:
    agent = ma.SelfAnalysisAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    for level in ("verbose", "", "warn", None, 10, "info!"):
        with pytest.raises(ma.ValidationError) as info:
            agent.log(engine, record.id, level, "message")
        assert info.value.field == "level", level
        assert info.value.value == level
    assert count(engine, logs) == 0


def check_bad_log_message_or_metadata(engine: Engine) -> None:
    agent = ma.SelfAnalysisAgent()
    record = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, record)
    for message, metadata in [
        (None, None),
        (3, None),
        ("a\x00b", None),
        ("ok", ["not", "a", "mapping"]),
        ("ok", {"x": float("nan")}),
    ]:
        with pytest.raises(ma.ValidationError):
            agent.log(engine, record.id, "info", message, metadata)
    assert count(engine, logs) == 0


def test_bad_log_arguments(engine):
    check_bad_log_level(engine)
    check_bad_log_message_or_metadata(engine)


# -- cascade -----------------------------------------------------------------------------------


def check_delete_cascades_to_analytics_and_logs(engine: Engine) -> None:
    agent = ma.CRMAgent()
    doomed, kept = agent.builder(uuid.uuid4()).build(), agent.builder(uuid.uuid4()).build()
    for record in (doomed, kept):
        agent.save_execution(engine, record)
        agent.save_analysis_metrics(engine, record.id, {"reach_estimate": 1})
        agent.save_analysis_metrics(engine, record.id, {"reach_estimate": 2})
        agent.log(engine, record.id, "info", "one")
        agent.log(engine, record.id, "error", "two")
    assert counts(engine) == (2, 4, 4)
    with engine.begin() as conn:
        conn.execute(delete(executions).where(executions.c.id == doomed.id))
    assert counts(engine) == (1, 2, 2)
    assert count(engine, analytics, execution_id=doomed.id) == 0
    assert count(engine, logs, execution_id=doomed.id) == 0
    assert count(engine, analytics, execution_id=kept.id) == 2
    assert count(engine, logs, execution_id=kept.id) == 2


def check_foreign_key_enforced_on_raw_insert(engine: Engine) -> None:
    before = count(engine, logs)
    with pytest.raises(IntegrityError) as info, engine.begin() as conn:
        conn.execute(
            logs.insert().values(
                id=uuid.uuid4(), execution_id=uuid.uuid4(), log_level="info", message="x",
                logged_at=datetime.now(UTC),
            )
        )
    assert "foreign key" in str(info.value).lower()
    assert count(engine, logs) == before


def test_cascade_and_foreign_keys(engine):
    check_delete_cascades_to_analytics_and_logs(engine)
    check_foreign_key_enforced_on_raw_insert(engine)


# -- bulk --------------------------------------------------------------------------------------


def test_save_executions_inserts_many(engine):
    store = ma.ExecutionStore(engine)
    agents = [ma.agent_for(name) for name in ma.AGENT_TYPES]
    records = [
        full_record(agents[i % len(agents)], status="running", completed_at=None)
        for i in range(45)
    ]
    assert store.save_executions(records, batch_size=7) == 45
    assert count(engine, executions) == 45
    for record in records[::9]:
        loaded = store.get_execution(record.id)
        assert without_stamps(loaded) == record
        assert loaded.created_at == loaded.updated_at


def check_save_executions_accepts_a_generator_and_empty_input(engine: Engine) -> None:
    store = ma.ExecutionStore(engine)
    assert store.save_executions([]) == 0
    agent = ma.SalesAgent()
    assert store.save_executions(agent.builder(uuid.uuid4()).build() for _ in range(3)) == 3
    assert count(engine, executions) == 3


def test_save_executions_updates_existing_ids(engine):
    store = ma.ExecutionStore(engine)
    agent = ma.SalesAgent()
    old = [agent.builder(uuid.uuid4()).status("running").started_at(T0).build() for _ in range(3)]
    store.save_executions(old)
    created = {r.id: store.get_execution(r.id).created_at for r in old}
    time.sleep(0.002)
    done = [
        r.evolve(status="completed", completed_at=T0 + timedelta(seconds=i), quality_score=i)
        for i, r in enumerate(old)
    ]
    fresh = agent.builder(uuid.uuid4()).build()
    assert store.save_executions([*done, fresh]) == 4
    assert count(engine, executions) == 4
    for record in done:
        loaded = store.get_execution(record.id)
        assert without_stamps(loaded) == record
        assert loaded.created_at == created[record.id]
        assert loaded.updated_at > loaded.created_at


def test_save_executions_same_id_twice_in_a_batch(engine):
    store = ma.ExecutionStore(engine)
    agent = ma.SalesAgent()
    pending = agent.builder(uuid.uuid4()).build()
    running = pending.evolve(status="running", started_at=T0)
    assert store.save_executions([pending, running]) == 2
    assert store.get_execution(pending.id).status is ExecutionStatus.RUNNING
    with pytest.raises(ma.InvalidStatusTransition):
        store.save_executions([running.evolve(status="completed"), pending])
    assert store.get_execution(pending.id).status is ExecutionStatus.RUNNING


def test_save_executions_backwards_move_refuses_the_whole_batch(engine):
    store = ma.ExecutionStore(engine)
    agent = ma.SalesAgent()
    done = agent.builder(uuid.uuid4()).status("completed").build()
    store.save_executions([done])
    before = stored_row(engine, done.id)
    new = [agent.builder(uuid.uuid4()).build() for _ in range(3)]
    with pytest.raises(ma.InvalidStatusTransition):
        store.save_executions([new[0], done.evolve(status="running"), new[1], new[2]])
    assert count(engine, executions) == 1
    assert stored_row(engine, done.id) == before


def test_save_executions_other_agents_id_refused(engine):
    store = ma.ExecutionStore(engine)
    mine = ma.SalesAgent().builder(uuid.uuid4()).build()
    store.save_executions([mine])
    before = stored_row(engine, mine.id)
    theirs = ma.CRMAgent().builder(mine.repository_id).id(mine.id).status("running").build()
    with pytest.raises(ma.ValidationError) as info:
        store.save_executions([ma.CRMAgent().builder(uuid.uuid4()).build(), theirs])
    assert info.value.field == "agent_type"
    assert count(engine, executions) == 1
    assert stored_row(engine, mine.id) == before


INVALID_CHANGES = (
    ("quality_score", 101),
    ("started_at", datetime(2026, 1, 1)),  # noqa: DTZ001 - naive on purpose
    ("result", {"x": float("nan")}),
    ("agent_type", "NobodyAgent"),
    ("status", "finished"),
    ("issue_number", True),
)


def test_save_executions_invalid_record_stores_nothing_of_its_batch(engine):
    store = ma.ExecutionStore(engine)
    agent = ma.SalesAgent()
    for field, value in INVALID_CHANGES:
        good = [agent.builder(uuid.uuid4()).build() for _ in range(4)]
        bad = dataclasses.replace(agent.builder(uuid.uuid4()).build(), **{field: value})
        with pytest.raises(ma.ValidationError) as info:
            store.save_executions([*good[:2], bad, *good[2:]])
        assert info.value.field.split(".")[0] == field
        assert count(engine, executions) == 0, field

    # With smaller batches, earlier batches are stored and the bad record's batch is not.
    good = [agent.builder(uuid.uuid4()).build() for _ in range(4)]
    bad = dataclasses.replace(agent.builder(uuid.uuid4()).build(), quality_score=-1)
    with pytest.raises(ma.ValidationError):
        store.save_executions([*good, bad], batch_size=3)
    assert [stored_row(engine, r.id) is not None for r in good] == [True, True, True, False]
    assert stored_row(engine, bad.id) is None


def check_save_executions_bad_batch_size(engine: Engine) -> None:
    for batch_size in (0, -1, True, 2.0):
        with pytest.raises(ma.ValidationError) as info:
            ma.ExecutionStore(engine).save_executions([], batch_size=batch_size)
        assert info.value.field == "batch_size", batch_size


def test_save_executions_edge_arguments(engine):
    check_save_executions_accepts_a_generator_and_empty_input(engine)
    check_save_executions_bad_batch_size(engine)


def test_store_refuses_a_non_engine():
    with pytest.raises(ma.ValidationError):
        ma.ExecutionStore("sqlite:///x.db")  # type: ignore[arg-type]


def check_raw_sql_sees_lowercase_status(engine: Engine) -> None:
    agent = ma.SalesAgent()
    record = agent.builder(uuid.uuid4()).status("RUNNING").build()
    agent.save_execution(engine, record)
    raw = text("SELECT status FROM agent_executions WHERE id = :id").bindparams(
        bindparam("id", type_=UuidText())
    )
    with engine.connect() as conn:
        assert conn.execute(raw, {"id": record.id}).scalar_one() == "running"


def test_json_documents_round_trip(engine):
    check_result_reads_back_as_plain_json(engine)
    check_top_level_list_result(engine)
    check_empty_documents_are_not_null(engine)
    check_raw_sql_sees_lowercase_status(engine)



@pytest.mark.parametrize("bad", [float("nan"), "nul\x00inside"])
def test_a_record_mutated_after_build_is_still_refused_in_bulk(engine, bad):
    """Bulk writes trust records that were validated once; a result dict changed in place
    afterwards must still be refused as bad input, with nothing of the batch stored."""
    store = ma.ExecutionStore(engine)
    good = ma.ExecutionResultBuilder(uuid.uuid4(), "SalesAgent").result({"a": 1}).build()
    spoiled = ma.ExecutionResultBuilder(uuid.uuid4(), "SalesAgent").result({"a": 1}).build()
    spoiled.result["a"] = bad
    with pytest.raises(ma.ValidationError):
        store.save_executions([good, spoiled])
    assert not store.exists(good.id)
    assert not store.exists(spoiled.id)


def test_escaped_backslash_u0000_text_is_not_mistaken_for_nul(engine):
    store = ma.ExecutionStore(engine)
    record = ma.ExecutionResultBuilder(uuid.uuid4(), "SalesAgent").result(
        {"path": "C:\\u0000 is six characters"}
    ).build()
    store.save_executions([record])
    assert store.get_execution(record.id).result == {"path": "C:\\u0000 is six characters"}
