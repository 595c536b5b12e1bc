"""read_transitions and replay on both databases: the recorded history as frames, exactly.

Executions are written three ways (the upstream writer's SQL text, SQLAlchemy statements that
bypass the store, the store) and the database's triggers record their transitions; the frames
must show them with the reader's dtypes, filters and open vocabularies.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Connection, Engine, insert, text, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions, logs, transitions
from tests.db.test_database_rules import upstream_insert
from tests.db.test_tenant_isolation import Tenancy, seed, tenancy  # noqa: F401 (fixture)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO_A = uuid.UUID("0a1c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
REPO_B = uuid.UUID("0b1c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
USER = uuid.UUID("0c1c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
UTC_US = pd.DatetimeTZDtype(unit="us", tz="UTC")
PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def insert_execution(conn: Connection, **values: Any) -> uuid.UUID:
    """A row written by a plain statement (no store), with its own created_at."""
    row = {"id": uuid.uuid4(), "repository_id": REPO_A, "agent_type": "SalesAgent",
           "status": "pending", "created_at": T0, "updated_at": T0, **values}
    conn.execute(insert(executions).values(**row))
    return uuid.UUID(str(row["id"]))


def move(conn: Connection, execution_id: uuid.UUID, **values: Any) -> None:
    conn.execute(update(executions).where(executions.c.id == execution_id).values(**values))


def log_line(conn: Connection, execution_id: uuid.UUID, level: str, message: str,
             at: datetime) -> uuid.UUID:
    key = uuid.uuid4()
    conn.execute(insert(logs).values(
        id=key, execution_id=execution_id, log_level=level, message=message, logged_at=at
    ))
    return key


def lifecycle(engine: Engine) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """pending at 0 s, running at 10 s, completed at 60 s, logs at 5, 20, 20 and 60 s."""
    with engine.begin() as conn:
        ex = insert_execution(conn, created_at=s(0), user_id=USER, issue_number=7)
        lines = [log_line(conn, ex, "debug", "queued", s(5))]
    with engine.begin() as conn:
        move(conn, ex, status="running", started_at=s(10))
        lines.append(log_line(conn, ex, "info", "step 1", s(20)))
        lines.append(log_line(conn, ex, "warning", "step 2 <slow>", s(20)))
    with engine.begin() as conn:
        move(conn, ex, status="completed", completed_at=s(60), quality_score=90)
        lines.append(log_line(conn, ex, "info", "done", s(60)))
    return ex, lines


# -- read_transitions ---------------------------------------------------------------------------


def test_transitions_of_every_writer_read_with_the_reader_dtypes(engine: Engine) -> None:
    ex, _ = lifecycle(engine)
    with engine.begin() as conn:
        upstream = upstream_insert(
            conn, repository_id=REPO_B, agent_type="MarketingAgent", status="running",
            started_at=s(100),
        )
    stored = (
        ma.ExecutionResultBuilder(REPO_B, "SalesAgent").status("failed").started_at(s(200))
        .completed_at(s(230)).error_message("boom").quality_score(12).build()
    )
    ma.agents.SalesAgent().save_execution(engine, stored)

    frame = ma.read_transitions(engine)
    assert list(frame.columns) == [
        "id", "execution_id", "repository_id", "user_id", "agent_type", "from_status",
        "to_status", "at", "quality_score", "error_message",
    ]
    assert frame["id"].dtype == "int64"
    assert frame["at"].dtype == UTC_US
    assert frame["quality_score"].dtype == "Int64"
    for name in ("agent_type", "from_status", "to_status"):
        assert isinstance(frame[name].dtype, pd.CategoricalDtype), name
    assert list(frame["to_status"].cat.categories) == ["pending", "running", "completed", "failed"]
    got = [
        (r.execution_id, r.from_status if isinstance(r.from_status, str) else None,
         r.to_status, r.at.to_pydatetime())
        for r in frame.itertuples()
    ]
    assert got == [
        (str(ex), None, "pending", s(0)),
        (str(ex), "pending", "running", s(10)),
        (str(ex), "running", "completed", s(60)),
        (str(upstream), None, "running", s(100)),
        (str(stored.id), None, "failed", s(230)),
    ]
    assert frame["id"].is_unique
    assert frame["quality_score"].tolist()[2] == 90
    assert frame["error_message"].iloc[4] == "boom"
    assert frame["repository_id"].tolist() == [str(REPO_A)] * 3 + [str(REPO_B)] * 2
    assert frame["user_id"].iloc[0] == str(USER)
    assert pd.isna(frame["user_id"].iloc[3])


def test_transition_filters(engine: Engine) -> None:
    ex, _ = lifecycle(engine)
    with engine.begin() as conn:
        other = insert_execution(conn, repository_id=REPO_B, agent_type="MarketingAgent",
                                 created_at=s(30))
        move(conn, other, status="failed", completed_at=s(40), error_message="x")

    def ids(**filters: Any) -> list[tuple[str, str]]:
        frame = ma.read_transitions(engine, **filters)
        return [(str(e)[:8], str(t)) for e, t in zip(frame["execution_id"], frame["to_status"],
                                                     strict=True)]

    a, b = str(ex)[:8], str(other)[:8]
    assert ids(repository_id=REPO_B) == [(b, "pending"), (b, "failed")]
    assert ids(user_id=str(USER)) == [(a, "pending"), (a, "running"), (a, "completed")]
    assert ids(agent_types="MarketingAgent") == [(b, "pending"), (b, "failed")]
    assert ids(statuses=["FAILED", "running"]) == [(a, "running"), (b, "failed")]
    # since/until are on the transition's time, not on started_at
    assert ids(since=s(10), until=s(40)) == [(a, "running"), (b, "pending")]
    assert ids(since="2026-03-01T12:00:40+00:00") == [(b, "failed"), (a, "completed")]
    assert ids(execution_id=other) == [(b, "pending"), (b, "failed")]
    assert ids(execution_id=[str(ex)], statuses="completed") == [(a, "completed")]
    empty = ma.read_transitions(engine, repository_id=uuid.uuid4())
    assert empty.empty
    assert empty.dtypes.to_dict() == ma.read_transitions(engine).dtypes.to_dict()


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"execution_id": "nope"}, "execution_id"),
        ({"execution_id": []}, "execution_id"),
        ({"statuses": "paused"}, "statuses"),
        ({"since": s(10), "until": s(0)}, "until"),
        ({"since": datetime(2026, 3, 1)}, "since"),  # noqa: DTZ001 (naive on purpose)
    ],
)
def test_bad_filters_are_refused_naming_the_field(engine: Engine, filters: Any,
                                                  field: str) -> None:
    with pytest.raises(ma.ValidationError) as caught:
        ma.read_transitions(engine, **filters)
    assert caught.value.field == field


def test_unknown_stored_values_become_categories(engine: Engine) -> None:
    with engine.begin() as conn:
        ex = insert_execution(conn, agent_type="CoordinatorAgent", status="running",
                              started_at=s(1))
        conn.execute(insert(transitions).values(
            execution_id=ex, from_status="running", to_status="paused", at=s(2)
        ))
        log_line(conn, ex, "warn", "upstream spelling", s(3))
        log_line(conn, ex, "trace", "another writer's level", s(4))
    frame = ma.read_transitions(engine, agent_types="CoordinatorAgent")
    assert frame["agent_type"].tolist() == ["CoordinatorAgent", "CoordinatorAgent"]
    assert list(frame["agent_type"].cat.categories) == [*ma.AGENT_TYPES, "CoordinatorAgent"]
    assert frame["to_status"].tolist() == ["running", "paused"]
    assert list(frame["to_status"].cat.categories)[-1] == "paused"
    assert frame["from_status"].isna().tolist() == [True, False]

    timeline = ma.replay(engine, ex)
    assert timeline["status"].tolist() == ["running", "paused", "paused", "paused"]
    assert timeline["level"].tolist()[2:] == ["warning", "trace"]
    assert list(timeline["level"].cat.categories) == [*ma.LOG_LEVELS, "trace"]
    assert timeline["duration"].tolist()[:2] == [timedelta(seconds=1), pd.NaT]


# -- replay --------------------------------------------------------------------------------------


def test_replay_merges_transitions_and_logs_in_time_order(engine: Engine) -> None:
    ex, lines = lifecycle(engine)
    frame = ma.replay(engine, ex)
    assert list(frame.columns) == [
        "at", "kind", "status", "from_status", "to_status", "end", "duration", "level",
        "message", "quality_score", "error_message", "transition_id", "log_id",
    ]
    rows = [
        (r.at.to_pydatetime(), r.kind, r.status, r.level if isinstance(r.level, str) else None,
         r.message if isinstance(r.message, str) else None)
        for r in frame.itertuples()
    ]
    assert rows == [
        (s(0), "transition", "pending", None, None),
        (s(5), "log", "pending", "debug", "queued"),
        (s(10), "transition", "running", None, None),
        (s(20), "log", "running", "info", "step 1"),
        (s(20), "log", "running", "warning", "step 2 <slow>"),
        (s(60), "transition", "completed", None, None),
        (s(60), "log", "completed", "info", "done"),  # at one instant: the transition first
    ]
    states = frame[frame["kind"] == "transition"]
    assert states["duration"].tolist() == [
        timedelta(seconds=10), timedelta(seconds=50), timedelta(0)
    ]
    assert [t.to_pydatetime() for t in states["end"]] == [s(10), s(60), s(60)]
    assert [None if pd.isna(v) else v for v in states["from_status"]] == [
        None, "pending", "running"
    ]
    assert states["quality_score"].tolist()[2] == 90
    assert frame.loc[frame["kind"] == "log", "log_id"].tolist() == [str(k) for k in lines]
    assert frame.loc[frame["kind"] == "log", "duration"].isna().all()
    recorded = ma.read_transitions(engine, execution_id=ex)
    assert states["transition_id"].tolist() == recorded["id"].tolist()
    assert frame["at"].dtype == UTC_US
    assert frame["end"].dtype == UTC_US
    assert frame["duration"].dtype == "timedelta64[us]"
    assert frame["kind"].dtype == pd.CategoricalDtype(["execution", "transition", "log"])


def test_a_current_state_has_no_duration_yet(engine: Engine) -> None:
    with engine.begin() as conn:
        ex = insert_execution(conn, created_at=s(0))
    with engine.begin() as conn:
        move(conn, ex, status="running", started_at=s(3))
    frame = ma.replay(engine, ex)
    assert frame["to_status"].tolist() == ["pending", "running"]
    assert frame["duration"].tolist() == [timedelta(seconds=3), pd.NaT]
    assert frame["end"].isna().tolist() == [False, True]


def test_a_history_inserted_finished_shows_its_running_span_as_derived(engine: Engine) -> None:
    done = (
        ma.ExecutionResultBuilder(REPO_A, "SalesAgent").status("completed").started_at(s(0))
        .completed_at(s(42.5)).quality_score(70).build()
    )
    ma.ExecutionStore(engine).save_executions([done])  # the bulk path, as the demo loads
    frame = ma.replay(engine, done.id)
    assert frame["kind"].tolist() == ["execution", "transition"]
    assert frame["to_status"].tolist() == ["running", "completed"]
    assert frame["duration"].tolist() == [timedelta(seconds=42.5), timedelta(0)]
    assert frame["transition_id"].isna().tolist() == [True, False]
    assert frame["at"].iloc[0].to_pydatetime() == s(0)
    summary = ma.read_summary(engine, columns=["duration_seconds"])
    assert frame["duration"].iloc[0].total_seconds() == summary["duration_seconds"].iloc[0]


def test_replay_of_an_unknown_execution_is_not_found(engine: Engine) -> None:
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound) as caught:
        ma.replay(engine, missing)
    assert caught.value.key == missing
    assert str(missing) in str(caught.value)
    with pytest.raises(ma.ValidationError) as bad:
        ma.replay(engine, "not-a-uuid")
    assert bad.value.field == "execution_id"


def test_timeline_figure_draws_the_states_and_the_logs(engine: Engine) -> None:
    ex, _ = lifecycle(engine)
    fig = ma.timeline_figure(ma.replay(engine, ex))
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.name for b in bars] == ["pending", "running"]
    assert [list(b.x) for b in bars] == [[10_000.0], [50_000.0]]  # milliseconds
    assert [pd.Timestamp(b.base[0]) for b in bars] == [pd.Timestamp("2026-03-01 12:00:00"),
                                                      pd.Timestamp("2026-03-01 12:00:10")]
    ends = [t for t in fig.data if t.name == "finished"]
    assert len(ends) == 1
    assert list(ends[0].y) == ["completed"]
    marks = {t.name: t for t in fig.data if t.type == "scatter" and t.name.startswith("log: ")}
    assert sorted(marks) == ["log: debug", "log: info", "log: warning"]
    assert [len(marks[n].x) for n in ("log: debug", "log: info", "log: warning")] == [1, 2, 1]
    assert set(marks["log: info"].y) == {"logs"}
    assert marks["log: warning"].customdata[0][0] == "step 2 &lt;slow&gt;"  # escaped in hover
    assert marks["log: info"].marker.color != marks["log: warning"].marker.color
    assert fig.layout.xaxis.type == "date"


# -- scope ---------------------------------------------------------------------------------------


@PG_ONLY
def test_a_scoped_engine_sees_only_its_repositories(tenancy: Tenancy) -> None:  # noqa: F811
    mine = seed(tenancy.owner, tenancy.repo_a, "a")
    theirs = seed(tenancy.owner, tenancy.repo_b, "b")
    with tenancy.owner.begin() as conn:  # the tenant role's grants name the tables it reads
        conn.execute(text(f'GRANT SELECT ON agent_execution_transitions TO "{tenancy.role}"'))
    scoped = tenancy.scoped(tenancy.repo_a)
    frame = ma.read_transitions(scoped)
    assert not frame.empty
    assert set(frame["repository_id"]) == {str(tenancy.repo_a)}
    assert set(frame["execution_id"]) == {str(i) for i in mine}
    assert not ma.replay(scoped, mine[0]).empty
    with pytest.raises(ma.NotFound):
        ma.replay(scoped, theirs[0])
    with scoped.connect() as conn:  # RLS, not the reader's filter, keeps the rows out
        count = conn.execute(text("SELECT count(*) FROM agent_execution_transitions")).scalar()
    assert count == len(frame)
