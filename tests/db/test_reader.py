import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import analytics
from miyabi_analytics.reader import _read_summary_simple

T0 = datetime(2026, 4, 1, 12, 0, 0, 250001, tzinfo=UTC)
STRING_COLUMNS = ("id", "repository_id", "user_id", "error_message")
TIME_COLUMNS = ("started_at", "completed_at", "created_at", "updated_at")
NULLABLE_INTS = (
    "issue_number", "quality_score", "pr_number", "competitors_analyzed", "market_size_usd",
    "target_audience_size", "estimated_revenue_usd", "engagement_score", "reach_estimate",
)
FLOATS = ("duration_seconds", "growth_rate_percent", "conversion_rate", "roi_percent")
CATEGORIES = {
    "agent_type": list(ma.AGENT_TYPES),
    "agent_category": ["strategy", "marketing", "operations", "design", "other"],
    "status": ["pending", "running", "completed", "failed"],
}
SUMMARY_COLUMNS = [
    "id", "repository_id", "user_id", "agent_type", "issue_number", "status", "started_at",
    "completed_at", "error_message", "result", "quality_score", "pr_number", "created_at",
    "updated_at", "duration_seconds", "agent_category", "competitors_analyzed", "market_size_usd",
    "growth_rate_percent", "conversion_rate", "target_audience_size", "estimated_revenue_usd",
    "engagement_score", "reach_estimate", "roi_percent",
]
LOG_COLUMNS = ["id", "execution_id", "log_level", "message", "metadata", "logged_at"]


def assert_summary_dtypes(frame: pd.DataFrame) -> None:
    for name, dtype in frame.dtypes.items():
        if name in STRING_COLUMNS:
            assert isinstance(dtype, pd.StringDtype), (name, dtype)
        elif name in TIME_COLUMNS:
            assert str(dtype) == "datetime64[us, UTC]", (name, dtype)
        elif name in CATEGORIES:
            assert isinstance(dtype, pd.CategoricalDtype), (name, dtype)
            assert list(dtype.categories) == CATEGORIES[name], name
        elif name in NULLABLE_INTS:
            assert dtype == "Int64", (name, dtype)
        elif name in FLOATS:
            assert dtype == "float64", (name, dtype)
        elif name == "result":
            assert dtype == np.dtype(object), (name, dtype)
        else:
            pytest.fail(f"unexpected column {name}")


def assert_log_dtypes(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == LOG_COLUMNS
    assert isinstance(frame["id"].dtype, pd.StringDtype)
    assert isinstance(frame["execution_id"].dtype, pd.StringDtype)
    assert isinstance(frame["message"].dtype, pd.StringDtype)
    assert isinstance(frame["log_level"].dtype, pd.CategoricalDtype)
    assert list(frame["log_level"].dtype.categories) == list(ma.LOG_LEVELS)
    assert frame["metadata"].dtype == np.dtype(object)
    assert str(frame["logged_at"].dtype) == "datetime64[us, UTC]"


def save(engine: Engine, builder: ma.ExecutionResultBuilder) -> ma.AgentExecutionResult:
    record = builder.build()
    ma.agent_for(record.agent_type).save_execution(engine, record)
    return record


def ids(frame: pd.DataFrame) -> list[str]:
    return frame["id"].tolist()


# -- dtypes ------------------------------------------------------------------------------------


def test_summary_columns_and_dtypes(engine):
    agent = ma.MarketResearchAgent()
    done = save(
        engine,
        agent.builder(uuid.uuid4())
        .user_id(uuid.uuid4())
        .issue_number(3)
        .status("completed")
        .started_at(T0)
        .completed_at(T0 + timedelta(seconds=1.5))
        .quality_score(77)
        .result({"k": [1, 2]}),
    )
    agent.save_analysis_metrics(
        engine, done.id, {"competitors_analyzed": 4, "growth_rate_percent": 1.235,
                          "market_size_usd": 2**62}
    )
    bare = save(engine, ma.CRMAgent().builder(uuid.uuid4()))

    frame = ma.read_summary(engine)
    assert list(frame.columns) == SUMMARY_COLUMNS
    assert isinstance(frame.index, pd.RangeIndex)
    assert_summary_dtypes(frame)
    assert len(frame) == 2

    row = frame.set_index("id").loc[str(done.id)]
    assert row["repository_id"] == str(done.repository_id)
    assert row["user_id"] == str(done.user_id)
    assert row["agent_type"] == "MarketResearchAgent"
    assert row["agent_category"] == "marketing"
    assert row["status"] == "completed"
    assert row["started_at"] == pd.Timestamp(T0)
    assert row["started_at"].microsecond == 250001
    assert row["duration_seconds"] == 1.5
    assert row["quality_score"] == 77
    assert row["issue_number"] == 3
    assert row["result"] == {"k": [1, 2]}
    assert row["competitors_analyzed"] == 4
    assert row["market_size_usd"] == 2**62
    assert row["growth_rate_percent"] == 1.24
    assert pd.isna(row["roi_percent"])
    assert row["pr_number"] is pd.NA

    other = frame.set_index("id").loc[str(bare.id)]
    assert pd.isna(other["user_id"])
    assert pd.isna(other["started_at"])
    assert pd.isna(other["duration_seconds"])
    assert other["competitors_analyzed"] is pd.NA
    assert other["result"] is None
    assert other["agent_category"] == "operations"


def test_empty_summary_has_the_same_columns_and_dtypes(engine):
    save(engine, ma.CRMAgent().builder(uuid.uuid4()).status("running").started_at(T0))
    full = ma.read_summary(engine)
    empty = ma.read_summary(engine, repository_id=uuid.uuid4())
    never = ma.read_summary(engine, agent_types=["SalesAgent"], statuses="failed")
    assert len(full) == 1
    assert len(empty) == 0
    assert len(never) == 0
    assert list(empty.columns) == SUMMARY_COLUMNS
    assert_summary_dtypes(empty)
    assert empty.dtypes.equals(full.dtypes)
    assert never.dtypes.equals(full.dtypes)


def check_empty_database_summary(engine: Engine) -> None:
    frame = ma.read_summary(engine)
    assert frame.empty
    assert list(frame.columns) == SUMMARY_COLUMNS
    assert_summary_dtypes(frame)


def check_filtered_frames_keep_all_categories(engine: Engine) -> None:
    save(engine, ma.SalesAgent().builder(uuid.uuid4()))
    frame = ma.read_summary(engine, agent_types="SalesAgent")
    assert list(frame["agent_type"].cat.categories) == list(ma.AGENT_TYPES)
    assert frame["agent_type"].tolist() == ["SalesAgent"]


def test_empty_database_then_one_row(engine):
    check_empty_database_summary(engine)
    check_filtered_frames_keep_all_categories(engine)


# -- filters -----------------------------------------------------------------------------------


@pytest.fixture
def populated(engine: Engine) -> dict[str, Any]:
    repo_a, repo_b = uuid.uuid4(), uuid.uuid4()
    user_a, user_b = uuid.uuid4(), uuid.uuid4()
    rows = {
        "a_sales_done": save(
            engine,
            ma.SalesAgent().builder(repo_a).user_id(user_a).status("completed")
            .started_at(T0).completed_at(T0 + timedelta(minutes=1)),
        ),
        "a_crm_failed": save(
            engine,
            ma.CRMAgent().builder(repo_a).user_id(user_b).status("failed")
            .started_at(T0 + timedelta(days=1)).error_message("boom"),
        ),
        "b_sales_running": save(
            engine,
            ma.SalesAgent().builder(repo_b).user_id(user_a).status("running")
            .started_at(T0 + timedelta(days=2, microseconds=-1)),
        ),
        "b_design_pending": save(engine, ma.JonathanIveDesignAgent().builder(repo_b)),
        "a_persona_at_until": save(
            engine,
            ma.PersonaAgent().builder(repo_a).status("running").started_at(T0 + timedelta(days=2)),
        ),
    }
    return {
        "engine": engine, "rows": rows, "repo_a": repo_a, "repo_b": repo_b,
        "user_a": user_a, "user_b": user_b,
    }


def _names(populated: dict[str, Any], frame: pd.DataFrame) -> set[str]:
    by_id = {str(r.id): name for name, r in populated["rows"].items()}
    return {by_id[i] for i in ids(frame)}


def check_filter_repository_id(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    a = {"a_sales_done", "a_crm_failed", "a_persona_at_until"}
    b = {"b_sales_running", "b_design_pending"}
    assert _names(populated, ma.read_summary(engine, repository_id=populated["repo_a"])) == a
    assert _names(populated, ma.read_summary(engine, repository_id=str(populated["repo_b"]))) == b
    both = ma.read_summary(engine, repository_id=[populated["repo_a"], str(populated["repo_b"])])
    assert _names(populated, both) == a | b
    with pytest.raises(ma.ValidationError) as info:
        ma.read_summary(engine, repository_id="not-a-uuid")
    assert info.value.field == "repository_id"


def check_filter_user_id(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    frame = ma.read_summary(engine, user_id=populated["user_a"])
    assert _names(populated, frame) == {"a_sales_done", "b_sales_running"}
    frame = ma.read_summary(engine, user_id=[populated["user_b"]])
    assert _names(populated, frame) == {"a_crm_failed"}


def test_filter_ids(populated):
    check_filter_repository_id(populated)
    check_filter_user_id(populated)


def check_filter_agent_types(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    frame = ma.read_summary(engine, agent_types="SalesAgent")
    assert _names(populated, frame) == {"a_sales_done", "b_sales_running"}
    frame = ma.read_summary(engine, agent_types=["CRMAgent", "JonathanIveDesignAgent"])
    assert _names(populated, frame) == {"a_crm_failed", "b_design_pending"}
    # Open (issue 14): a type no row has matches nothing; a non-string is refused.
    frame = ma.read_summary(engine, agent_types=["SalesAgent", "CodeGenAgent"])
    assert _names(populated, frame) == {"a_sales_done", "b_sales_running"}
    with pytest.raises(ma.ValidationError) as info:
        ma.read_summary(engine, agent_types=["SalesAgent", 7])
    assert info.value.value == 7


def check_filter_statuses(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    frame = ma.read_summary(engine, statuses="running")
    assert _names(populated, frame) == {"b_sales_running", "a_persona_at_until"}
    frame = ma.read_summary(engine, statuses=[ma.ExecutionStatus.FAILED, "COMPLETED"])
    assert _names(populated, frame) == {"a_crm_failed", "a_sales_done"}
    with pytest.raises(ma.ValidationError):
        ma.read_summary(engine, statuses=["done"])


def test_filter_agent_types_and_statuses(populated):
    check_filter_agent_types(populated)
    check_filter_statuses(populated)


def check_filter_since_inclusive_until_exclusive(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    frame = ma.read_summary(engine, since=since)
    assert _names(populated, frame) == {"a_crm_failed", "b_sales_running", "a_persona_at_until"}
    frame = ma.read_summary(engine, until=until)
    assert _names(populated, frame) == {"a_sales_done", "a_crm_failed", "b_sales_running"}
    frame = ma.read_summary(engine, since=since, until=until)
    assert _names(populated, frame) == {"a_crm_failed", "b_sales_running"}
    # one microsecond either side moves exactly one row
    frame = ma.read_summary(engine, since=since + timedelta(microseconds=1), until=until)
    assert _names(populated, frame) == {"b_sales_running"}
    frame = ma.read_summary(engine, until=until + timedelta(microseconds=1), since=until)
    assert _names(populated, frame) == {"a_persona_at_until"}
    # never-started rows drop out of any time filter
    frame = ma.read_summary(engine, since=datetime(1970, 1, 1, tzinfo=UTC))
    assert "b_design_pending" not in _names(populated, frame)
    assert len(frame) == 4


def check_time_filters_in_other_zones_and_dates(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    tokyo = timezone(timedelta(hours=9))
    since = (T0 + timedelta(days=1)).astimezone(tokyo)
    frame = ma.read_summary(engine, since=since)
    assert len(frame) == 3
    frame = ma.read_summary(engine, since=date(2026, 4, 2), until="2026-04-03")
    assert _names(populated, frame) == {"a_crm_failed"}


def test_time_filters(populated):
    check_filter_since_inclusive_until_exclusive(populated)
    check_time_filters_in_other_zones_and_dates(populated)


@pytest.fixture
def unopened(tmp_path: Path) -> Iterator[Engine]:
    """An engine whose database does not exist: bad arguments must fail before any I/O."""
    engine = ma.connect(f"sqlite:///{tmp_path / 'never.db'}")
    yield engine
    engine.dispose()
    assert not (tmp_path / "never.db").exists()


BAD_BOUNDS = (datetime(2026, 4, 1, 12, 0), "2026-04-01T12:00:00", "yesterday", 5)  # noqa: DTZ001


def test_naive_or_bad_time_bounds_refused(unopened):
    for bound in BAD_BOUNDS:
        for name in ("since", "until"):
            with pytest.raises(ma.ValidationError) as info:
                ma.read_summary(unopened, **{name: bound})
            assert info.value.field == name, bound
            with pytest.raises(ma.ValidationError) as info:
                ma.read_logs(unopened, **{name: bound})
            assert info.value.field == name, bound


def test_until_before_since_refused(unopened):
    with pytest.raises(ma.ValidationError) as info:
        ma.read_summary(unopened, since=T0, until=T0 - timedelta(seconds=1))
    assert info.value.field == "until"


def test_columns_subset(populated):
    engine = populated["engine"]
    frame = ma.read_summary(engine, columns=["status", "id", "duration_seconds", "market_size_usd"])
    assert list(frame.columns) == ["status", "id", "duration_seconds", "market_size_usd"]
    assert_summary_dtypes(frame)
    assert len(frame) == 5
    empty = ma.read_summary(engine, columns=["status", "id"], repository_id=uuid.uuid4())
    assert list(empty.columns) == ["status", "id"]
    assert_summary_dtypes(empty)


def test_unknown_columns_refused(unopened):
    for columns in (["id", "nope"], ["ID"], [], ["id; DROP TABLE agent_executions"]):
        with pytest.raises(ma.ValidationError) as info:
            ma.read_summary(unopened, columns=columns)
        assert info.value.field == "columns", columns


def test_empty_or_bad_filter_values_refused(unopened):
    for name in ("repository_id", "user_id", "agent_types", "statuses"):
        with pytest.raises(ma.ValidationError) as info:
            ma.read_summary(unopened, **{name: []})
        assert info.value.field == name
    for name, value in [
        ("repository_id", "not-a-uuid"), ("user_id", 12), ("agent_types", ""),
        ("statuses", "done"),
    ]:
        with pytest.raises(ma.ValidationError) as info:
            ma.read_summary(unopened, **{name: value})
        assert info.value.field == name
    with pytest.raises(ma.ValidationError) as info:
        ma.read_logs(unopened, levels=["info", "verbose"])
    assert (info.value.field, info.value.value) == ("levels", "verbose")
    with pytest.raises(ma.ValidationError) as info:
        ma.read_logs(unopened, execution_id="nope")
    assert info.value.field == "execution_id"
    with pytest.raises(ma.ValidationError) as info:
        ma.read_logs(unopened, until=datetime(2026, 1, 1))  # noqa: DTZ001 - naive on purpose
    assert info.value.field == "until"


def check_filters_combine(populated: dict[str, Any]) -> None:
    engine = populated["engine"]
    frame = ma.read_summary(
        engine, repository_id=populated["repo_a"], agent_types=["SalesAgent", "CRMAgent"],
        statuses=["completed", "failed"], since=T0, until=T0 + timedelta(days=1, seconds=1),
        user_id=populated["user_b"],
    )
    assert _names(populated, frame) == {"a_crm_failed"}


def check_summary_order_oldest_start_first_never_started_last(populated: dict[str, Any]) -> None:
    frame = ma.read_summary(populated["engine"])
    started = frame["started_at"].tolist()
    known = [s for s in started if not pd.isna(s)]
    assert known == sorted(known)
    assert pd.isna(started[-1])


def check_reader_accepts_a_connection(populated: dict[str, Any]) -> None:
    with populated["engine"].connect() as conn:
        frame = ma.read_summary(conn, statuses="failed")
    assert len(frame) == 1


def test_combined_filters_order_and_connection(populated):
    check_filters_combine(populated)
    check_summary_order_oldest_start_first_never_started_last(populated)
    check_reader_accepts_a_connection(populated)


# -- latest analytics row ----------------------------------------------------------------------


def test_summary_uses_the_latest_analytics_row(engine):
    agent = ma.MarketingAgent()
    record = save(engine, agent.builder(uuid.uuid4()))
    first = agent.save_analysis_metrics(
        engine, record.id, {"reach_estimate": 1, "roi_percent": 10.0, "engagement_score": 5}
    )
    second = agent.save_analysis_metrics(engine, record.id, {"reach_estimate": 2})
    third = agent.save_analysis_metrics(engine, record.id, {"reach_estimate": 3})
    # make the order unambiguous whatever the clock did, and not the insertion order
    stamps = {first: T0, second: T0 + timedelta(hours=2), third: T0 + timedelta(hours=1)}
    with engine.begin() as conn:
        for row_id, stamp in stamps.items():
            conn.execute(update(analytics).where(analytics.c.id == row_id).values(created_at=stamp))

    frame = ma.read_summary(engine)
    assert len(frame) == 1  # one row per execution, however many analytics rows
    row = frame.iloc[0]
    assert row["reach_estimate"] == 2
    assert pd.isna(row["roi_percent"])  # the whole latest row, not a mix of rows
    assert row["engagement_score"] is pd.NA


def test_summary_latest_row_tie_on_created_at(engine):
    agent = ma.MarketingAgent()
    record = save(engine, agent.builder(uuid.uuid4()))
    for i in range(3):
        agent.save_analysis_metrics(engine, record.id, {"reach_estimate": i})
    with engine.begin() as conn:
        conn.execute(update(analytics).values(created_at=T0))
    frame = ma.read_summary(engine)
    assert len(frame) == 1
    assert frame.iloc[0]["reach_estimate"] == 2  # ties broken by the write order: the last


# -- logs --------------------------------------------------------------------------------------


def test_read_logs_dtypes_filters_and_order(engine):
    agent = ma.SalesAgent()
    one = save(engine, agent.builder(uuid.uuid4()))
    two = save(engine, agent.builder(uuid.uuid4()))
    store = ma.ExecutionStore(engine)
    store.log(one.id, "INFO", "one-a", {"n": 1}, logged_at=T0 + timedelta(seconds=2))
    store.log(one.id, "error", "one-b", logged_at=T0)
    store.log(two.id, "Warning", "two-a", logged_at=T0 + timedelta(seconds=1))
    store.log(two.id, "debug", "two-b", logged_at=T0 + timedelta(seconds=3))

    frame = ma.read_logs(engine)
    assert_log_dtypes(frame)
    assert frame["message"].tolist() == ["one-b", "two-a", "one-a", "two-b"]  # oldest first
    assert frame["log_level"].tolist() == ["error", "warning", "info", "debug"]
    assert frame["logged_at"].iloc[0] == pd.Timestamp(T0)
    assert frame["metadata"].tolist() == [None, None, {"n": 1}, None]
    assert frame["execution_id"].iloc[0] == str(one.id)

    assert ma.read_logs(engine, execution_id=one.id)["message"].tolist() == ["one-b", "one-a"]
    assert len(ma.read_logs(engine, execution_id=[str(one.id), two.id])) == 4
    assert ma.read_logs(engine, levels="ERROR")["message"].tolist() == ["one-b"]
    assert ma.read_logs(engine, levels=["info", "Debug"])["message"].tolist() == ["one-a", "two-b"]
    frame = ma.read_logs(engine, since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3))
    assert frame["message"].tolist() == ["two-a", "one-a"]

    empty = ma.read_logs(engine, execution_id=uuid.uuid4())
    assert empty.empty
    assert_log_dtypes(empty)
    assert empty.dtypes.equals(ma.read_logs(engine).dtypes)


def test_a_database_without_the_schema_raises_sqlalchemys_error(empty_url):
    """Every read path fails the same way on a database never migrated: a DBAPIError.

    The fast paths talk to the database through ADBC drivers; their errors come out as
    SQLAlchemy's, with the driver's own exception as ``orig``, as the simple path's do.
    """
    from sqlalchemy.exc import DBAPIError

    engine = ma.connect(empty_url)
    try:
        for read in (ma.read_summary, ma.read_summary_arrow, _read_summary_simple):
            with pytest.raises(DBAPIError) as info:
                read(engine)
            # The view, or (whole reads on PostgreSQL read the view's tables) its first table.
            message = str(info.value)
            assert "v_business_agent_summary" in message or "agent_executions" in message, (
                read.__name__
            )
            assert info.value.orig is not None
    finally:
        engine.dispose()
