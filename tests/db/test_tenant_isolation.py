"""Tenant isolation: row-level security keyed to the repository (revisions 0003 and 0005).

PostgreSQL only (superusers bypass row-level security, so every scoped engine here connects as a
fresh non-superuser role made for the test and dropped after it). SQLite has no row-level
security: ``connect(repository_ids=...)`` refuses it there, which the last tests show.
"""

import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import URL, Engine, event, insert, inspect, make_url, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

import miyabi_analytics as ma
import miyabi_analytics.store.bulk as store_bulk
from miyabi_analytics._db.bulk import existing_rows
from miyabi_analytics._db.schema import report_runs
from miyabi_analytics.report_runs import ReportRunStatus, finish_run, start_run

PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
TABLES = ("agent_executions", "business_agent_analytics", "agent_execution_logs")
ROLLUPS = (  # what the aggregates read too (revision 0011); scoped by their own policy
    "agent_execution_rollups",
    "agent_execution_rollup_durations",
    "agent_execution_rollups_monthly",
    "agent_execution_rollups_yearly",
    "agent_execution_rollup_durations_monthly",
    "agent_execution_rollup_durations_total",
    "agent_execution_rollup_pending",
    "agent_execution_rollup_state",
)
RUNS = "report_runs"  # under the scope since revision 0005
VIEW = "v_business_agent_summary"
T0 = datetime(2026, 5, 4, 9, 0, 0, 123456, tzinfo=UTC)
AGENTS = (ma.MarketResearchAgent(), ma.SalesAgent(), ma.JonathanIveDesignAgent())


@dataclass
class Tenancy:
    """A migrated database, its superuser engine and a non-superuser role's URL."""

    url: URL
    owner: Engine
    role: str
    role_url: URL
    repo_a: uuid.UUID = field(default_factory=uuid.uuid4)
    repo_b: uuid.UUID = field(default_factory=uuid.uuid4)
    engines: list[Engine] = field(default_factory=list)

    def scoped(self, *repository_ids: uuid.UUID, **options: Any) -> Engine:
        engine = ma.connect(self.role_url, repository_ids=list(repository_ids), **options)
        self.engines.append(engine)
        return engine


def _create_role(owner: Engine) -> tuple[str, str]:
    role = f"miyabi_tenant_{uuid.uuid4().hex[:12]}"
    password = secrets.token_hex(16)
    assert role.replace("_", "").isalnum()  # both safe to splice into DDL
    assert password.isalnum()
    objects = ", ".join((*TABLES, *ROLLUPS, RUNS, VIEW))
    with owner.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{password}\''))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {objects} TO "{role}"'))
    return role, password


def _drop_role(owner: Engine, role: str) -> None:
    with owner.begin() as conn:
        conn.execute(text(f'DROP OWNED BY "{role}"'))  # its grants in this database
        conn.execute(text(f'DROP ROLE "{role}"'))


@pytest.fixture
def tenancy(dialect: str, empty_url: URL) -> Iterator[Tenancy]:
    assert dialect == "postgresql"
    owner = ma.connect(empty_url)
    ma.migrate(owner)
    role, password = _create_role(owner)
    state = Tenancy(
        url=empty_url,
        owner=owner,
        role=role,
        role_url=empty_url.set(username=role, password=password),
    )
    try:
        yield state
    finally:
        for engine in state.engines:
            engine.dispose()
        _drop_role(owner, role)
        owner.dispose()


def seed(engine: Engine, repository_id: uuid.UUID, tag: str) -> list[uuid.UUID]:
    """Executions of every status for ``repository_id``, with metrics, logs and errors."""
    ids = []
    for n, agent in enumerate(AGENTS):
        started = T0 + timedelta(days=n, hours=len(tag))
        done = (
            agent.builder(repository_id)
            .user_id(uuid.uuid4())
            .status("completed")
            .started_at(started)
            .completed_at(started + timedelta(seconds=30 + n))
            .quality_score(60 + n * 10 + len(tag))
            .result({"tenant": tag})
            .build()
        )
        failed = (
            agent.builder(repository_id)
            .status("failed")
            .started_at(started + timedelta(hours=1))
            .completed_at(started + timedelta(hours=1, seconds=5))
            .error_message(f"{tag} upstream timeout")
            .build()
        )
        pending = agent.builder(repository_id).build()
        for record in (done, failed, pending):
            agent.save_execution(engine, record)
            agent.log(engine, record.id, "info", f"{tag} log for {record.id}")
            ids.append(record.id)
        agent.save_analysis_metrics(
            engine,
            done.id,
            {"competitors_analyzed": 10 * (n + 1), "market_size_usd": 1_000 * len(tag)},
        )
    return ids


def raw_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()  # noqa: S608
            for name in (*TABLES, VIEW)
        }


def raw_rows(engine: Engine) -> dict[str, Sequence[Any]]:
    """Every row of the tables, in a fixed order (a superuser's engine sees them all)."""
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT * FROM {name} ORDER BY id")).all()  # noqa: S608
            for name in TABLES
        }


AGGREGATES: dict[str, Callable[..., pd.DataFrame]] = {
    "success_rates": lambda e, **f: ma.success_rates(e, by=["repository_id", "agent_type"], **f),
    "success_rates_weekly": lambda e, **f: ma.success_rates(e, by="repository_id", freq="W", **f),
    "quality_trend": lambda e, **f: ma.quality_trend(e, by="repository_id", freq="D", **f),
    "duration_stats": lambda e, **f: ma.duration_stats(e, by="repository_id", **f),
    "business_metrics": lambda e, **f: ma.business_metrics(e, by="repository_id", freq=None, **f),
    "error_analysis": lambda e, **f: ma.error_analysis(e, **f),
}


# -- reads -------------------------------------------------------------------------------------


@PG_ONLY
def test_scoped_reader_sees_no_foreign_rows(tenancy: Tenancy, tmp_path: Path) -> None:
    a_ids = seed(tenancy.owner, tenancy.repo_a, "alpha")
    b_ids = seed(tenancy.owner, tenancy.repo_b, "bravo")
    a, b = str(tenancy.repo_a), str(tenancy.repo_b)
    reader = tenancy.scoped(tenancy.repo_a)

    # the owner (a superuser, unscoped) sees both tenants
    assert set(ma.read_summary(tenancy.owner)["repository_id"]) == {a, b}

    # the summary view, through every read path (ADBC, plain SQLAlchemy, Arrow, chunks, Parquet)
    frame = ma.read_summary(reader)
    assert set(frame["repository_id"]) == {a}
    assert sorted(frame["id"]) == sorted(str(i) for i in a_ids)
    expected = ma.read_summary(tenancy.owner, repository_id=tenancy.repo_a)
    pd.testing.assert_frame_equal(frame, expected)
    assert ma.read_summary(reader, repository_id=tenancy.repo_b).empty
    assert ma.read_summary(reader, columns=["id", "market_size_usd"])["id"].isin(
        [str(i) for i in a_ids]
    ).all()
    from miyabi_analytics.reader import _read_summary_simple

    assert set(_read_summary_simple(reader)["repository_id"]) == {a}
    assert set(ma.read_summary_arrow(reader).column("repository_id").to_pylist()) == {a}
    chunks = list(ma.iter_summary(reader, chunksize=2))
    assert sum(len(c) for c in chunks) == len(a_ids)
    assert all(set(c["repository_id"]) == {a} for c in chunks)
    path = tmp_path / "summary.parquet"
    assert ma.export_summary(reader, path) == len(a_ids)
    assert set(pq.read_table(path).column("repository_id").to_pylist()) == {a}

    # logs
    logs = ma.read_logs(reader)
    assert set(logs["execution_id"]) == {str(i) for i in a_ids}
    assert ma.read_logs(reader, execution_id=b_ids).empty

    # every aggregate equals the owner's answer filtered to repo_a
    for name, aggregate in AGGREGATES.items():
        scoped = aggregate(reader)
        assert not scoped.empty, name
        pd.testing.assert_frame_equal(
            scoped, aggregate(tenancy.owner, repository_id=tenancy.repo_a), obj=name
        )
        assert aggregate(reader, repository_id=tenancy.repo_b).empty, name
    errors = ma.error_analysis(reader)
    assert list(errors["error_message"]) == ["alpha upstream timeout"]

    # raw SQL on the scoped engine's own connection
    per_repo = len(a_ids)
    assert raw_counts(reader) == {
        "agent_executions": per_repo,
        "business_agent_analytics": len(AGENTS),
        "agent_execution_logs": per_repo,
        VIEW: per_repo,
    }
    assert raw_counts(tenancy.owner)["agent_executions"] == 2 * per_repo

    # the store
    store = ma.ExecutionStore(reader)
    for agent in AGENTS:
        assert store.load_history(agent.agent_type, tenancy.repo_b) == []
        assert agent.load_history(reader, tenancy.repo_b) == []
        assert agent.get_latest_execution(reader, tenancy.repo_b) is None
        assert len(agent.load_history(reader, tenancy.repo_a)) == 3
    assert not store.exists(b_ids[0])
    with pytest.raises(ma.NotFound):
        store.get_execution(b_ids[0])


@PG_ONLY
def test_scope_of_several_repositories(tenancy: Tenancy) -> None:
    seed(tenancy.owner, tenancy.repo_a, "alpha")
    seed(tenancy.owner, tenancy.repo_b, "bravo")
    repo_c = uuid.uuid4()
    seed(tenancy.owner, repo_c, "charlie")
    both = tenancy.scoped(tenancy.repo_b, tenancy.repo_a, tenancy.repo_a)
    seen = set(ma.read_summary(both)["repository_id"])
    assert seen == {str(tenancy.repo_a), str(tenancy.repo_b)}
    only_c = tenancy.scoped(repo_c)
    assert set(ma.read_summary(only_c)["repository_id"]) == {str(repo_c)}
    with both.connect() as conn:
        setting = conn.execute(text("SELECT current_setting('miyabi.repository_ids')")).scalar()
    assert setting == ",".join(sorted(str(r) for r in (tenancy.repo_a, tenancy.repo_b)))


@PG_ONLY
def test_scope_holds_in_autocommit_mode(tenancy: Tenancy) -> None:
    seed(tenancy.owner, tenancy.repo_a, "alpha")
    seed(tenancy.owner, tenancy.repo_b, "bravo")
    reader = tenancy.scoped(tenancy.repo_a)
    autocommit = reader.execution_options(isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        first = conn.execute(text("SELECT count(*) FROM agent_executions")).scalar_one()
        second = conn.execute(text("SELECT count(*) FROM agent_executions")).scalar_one()
    assert first == second == 3 * len(AGENTS)
    assert set(ma.read_summary(autocommit)["repository_id"]) == {str(tenancy.repo_a)}


@PG_ONLY
def test_two_phase_transactions_are_refused(tenancy: Tenancy) -> None:
    reader = tenancy.scoped(tenancy.repo_a)
    with reader.connect() as conn, pytest.raises(ma.ValidationError, match="two-phase"):
        conn.begin_twophase()


@PG_ONLY
def test_scope_is_transaction_local_on_pooled_connections(tenancy: Tenancy) -> None:
    seed(tenancy.owner, tenancy.repo_a, "alpha")
    reader = tenancy.scoped(tenancy.repo_a)
    with reader.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agent_executions")).scalar_one() > 0
        conn.commit()
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()  # the same server session, outside any transaction
        try:
            cursor.execute("SELECT current_setting('miyabi.repository_ids', true)")
            row = cursor.fetchone()
        finally:
            cursor.close()
        assert row is not None
        assert row[0] in ("", None)  # set_config(..., true) ended with its transaction
        dbapi.rollback()


# -- writes ------------------------------------------------------------------------------------


@PG_ONLY
def test_scoped_writer_cannot_write_into_another_repository(tenancy: Tenancy) -> None:
    b_ids = seed(tenancy.owner, tenancy.repo_b, "bravo")
    writer = tenancy.scoped(tenancy.repo_a)
    agent = ma.SalesAgent()
    before = raw_counts(tenancy.owner)

    foreign = agent.builder(tenancy.repo_b).status("running").start_now().build()
    with pytest.raises(ma.ValidationError) as info:
        agent.save_execution(writer, foreign)
    assert info.value.field == "repository_id"
    assert info.value.value == tenancy.repo_b
    assert str(tenancy.repo_b) in str(info.value)
    assert str(tenancy.repo_a) in str(info.value)  # the scope it was held to

    own = agent.builder(tenancy.repo_a).build()
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(writer).save_executions([own, foreign])
    assert info.value.field == "repository_id"
    assert info.value.value == tenancy.repo_b
    assert raw_counts(tenancy.owner) == before  # the whole batch was refused

    # metrics and logs aimed at another tenant's execution: not found, from this engine
    with pytest.raises(ma.NotFound):
        agent.save_analysis_metrics(writer, b_ids[0], {"competitors_analyzed": 1})
    with pytest.raises(ma.NotFound):
        ma.ExecutionStore(writer).log(b_ids[0], "info", "sneaky")
    with pytest.raises(ma.NotFound):
        ma.ExecutionStore(writer).log_many([ma.LogEntry(b_ids[0], "info", "sneaky")])
    assert raw_counts(tenancy.owner) == before


@PG_ONLY
def test_scoped_writer_cannot_move_or_take_over_rows(tenancy: Tenancy) -> None:
    b_ids = seed(tenancy.owner, tenancy.repo_b, "bravo")
    writer = tenancy.scoped(tenancy.repo_a)
    agent = ma.MarketResearchAgent()
    store = ma.ExecutionStore(tenancy.owner)

    # moving its own execution into another repository
    own = agent.builder(tenancy.repo_a).status("running").start_now().build()
    agent.save_execution(writer, own)
    moved = own.evolve(repository_id=tenancy.repo_b)
    with pytest.raises(ma.ValidationError) as info:
        agent.save_execution(writer, moved)
    assert info.value.field == "repository_id"
    assert info.value.value == tenancy.repo_b
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(writer).save_executions([moved])
    assert info.value.field == "repository_id"
    assert store.get_execution(own.id) == ma.ExecutionStore(writer).get_execution(own.id)
    assert store.get_execution(own.id).repository_id == tenancy.repo_a

    # overwriting another tenant's execution by its id, relabelled as its own
    victim = store.get_execution(b_ids[2])  # a pending MarketResearchAgent run of repo_b
    hijack = victim.evolve(repository_id=tenancy.repo_a, status="failed", error_message="x")
    with pytest.raises(ma.ValidationError) as info:
        agent.save_execution(writer, hijack)
    assert info.value.field == "repository_id"
    assert str(victim.id) in str(info.value)
    assert store.get_execution(victim.id) == victim


@PG_ONLY
def test_bulk_save_cannot_take_over_another_tenants_id(tenancy: Tenancy) -> None:
    """The bulk path cannot see the foreign row, so it inserts; the primary key refuses that."""
    b_ids = seed(tenancy.owner, tenancy.repo_b, "bravo")
    writer = tenancy.scoped(tenancy.repo_a)
    store = ma.ExecutionStore(tenancy.owner)
    agent = ma.MarketResearchAgent()
    victim = store.get_execution(b_ids[2])  # a pending MarketResearchAgent run of repo_b
    hijack = victim.evolve(repository_id=tenancy.repo_a, status="failed", error_message="x")
    counts, rows = raw_counts(tenancy.owner), raw_rows(tenancy.owner)

    def refused(batch: list[ma.AgentExecutionResult], **options: Any) -> ma.ValidationError:
        with pytest.raises(ma.ValidationError) as info:
            ma.ExecutionStore(writer).save_executions(batch, **options)
        assert info.value.field == "repository_id"
        assert info.value.value == tenancy.repo_a  # the record's (relabelled) repository
        assert str(victim.id) in str(info.value)  # the id that is taken
        assert str(tenancy.repo_a) in str(info.value)  # the scope it was held to
        assert raw_counts(tenancy.owner) == counts
        assert raw_rows(tenancy.owner) == rows  # the database exactly as it was
        return info.value

    refused([hijack])
    # new records of its own around the hijack: the whole batch is refused, none stored
    own = [agent.builder(tenancy.repo_a).build() for _ in range(4)]
    refused([*own[:2], hijack, *own[2:]])
    refused([hijack, *own])
    refused([*own, hijack.evolve(status="running", error_message=None), hijack])
    assert ma.read_summary(writer).empty
    assert store.get_execution(victim.id) == victim

    # its own stored records (the guarded path: looked up, then updated) with the hijack
    assert ma.ExecutionStore(writer).save_executions(own) == 4
    counts, rows = raw_counts(tenancy.owner), raw_rows(tenancy.owner)
    refused([*(r.evolve(status="running") for r in own), hijack])
    refused([hijack], batch_size=1)
    assert store.get_execution(victim.id) == victim
    assert {store.get_execution(r.id).status for r in own} == {ma.ExecutionStatus.PENDING}

    # on the caller's connection: refused the same way, and the caller's transaction goes on
    with writer.connect() as conn, conn.begin():
        with pytest.raises(ma.ValidationError) as info:
            ma.ExecutionStore(conn).save_executions([hijack, own[0].evolve(status="running")])
        assert info.value.field == "repository_id"
        assert str(victim.id) in str(info.value)
        assert ma.ExecutionStore(conn).save_executions([own[1].evolve(status="running")]) == 1
    assert raw_rows(tenancy.owner)["agent_executions"] != rows["agent_executions"]
    assert store.get_execution(own[1].id).status == ma.ExecutionStatus.RUNNING
    assert store.get_execution(own[0].id).status == ma.ExecutionStatus.PENDING
    assert store.get_execution(victim.id) == victim


@PG_ONLY
@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "unscoped"])
def test_bulk_save_retries_a_duplicate_of_its_own_scope(
    tenancy: Tenancy, monkeypatch: pytest.MonkeyPatch, scoped: bool
) -> None:
    """Two writers of one scope inserting the same new id: the loser is retried, not refused."""
    writer = tenancy.scoped(tenancy.repo_a) if scoped else tenancy.owner
    agent = ma.SalesAgent()
    record = agent.builder(tenancy.repo_a).status("running").start_now().build()
    agent.save_execution(writer, record)  # the other writer, committed first
    lookups: list[int] = []

    def late_lookup(*args: Any) -> Any:
        lookups.append(len(args[2]))
        # the first lookup ran before the other writer's commit: it found nothing
        return {} if len(lookups) == 1 else existing_rows(*args)

    monkeypatch.setattr(store_bulk, "existing_rows", late_lookup)
    done = record.evolve(status="completed", completed_at=record.started_at)
    assert ma.ExecutionStore(writer).save_executions([done]) == 1
    assert lookups == [1, 1]  # the duplicate key was retried, and the retry updated the row
    stored = ma.ExecutionStore(tenancy.owner).get_execution(record.id)
    assert stored.status == ma.ExecutionStatus.COMPLETED
    assert stored.completed_at == done.completed_at

    # a visible duplicate is never taken for another tenant's id, even when retries run out
    monkeypatch.setattr(store_bulk, "existing_rows", lambda *args: {})
    with pytest.raises(IntegrityError, match="pk_agent_executions"):
        ma.ExecutionStore(writer).save_executions([done])


@PG_ONLY
def test_scoped_writer_writes_its_own_repository(tenancy: Tenancy) -> None:
    writer = tenancy.scoped(tenancy.repo_a)
    agent = ma.CRMAgent()
    record = agent.builder(tenancy.repo_a).status("running").start_now().build()
    agent.save_execution(writer, record)
    agent.save_execution(writer, record.evolve(status="completed", completed_at=record.started_at))
    agent.save_analysis_metrics(writer, record.id, {"reach_estimate": 5})
    agent.log(writer, record.id, "INFO", "done")
    bulk = [agent.builder(tenancy.repo_a).build() for _ in range(5)]
    assert ma.ExecutionStore(writer).save_executions(bulk, batch_size=2) == 5
    assert ma.ExecutionStore(writer).save_executions(
        [r.evolve(status="failed") for r in bulk]
    ) == 5
    owner_view = ma.read_summary(tenancy.owner)
    assert len(owner_view) == 6
    assert set(owner_view["repository_id"]) == {str(tenancy.repo_a)}
    assert raw_counts(tenancy.owner)["business_agent_analytics"] == 1
    assert raw_counts(tenancy.owner)["agent_execution_logs"] == 1


@PG_ONLY
def test_readme_notebook_role(tenancy: Tenancy) -> None:
    """The README's read-only notebook role: SELECT only, and a default scope for the role."""
    seed(tenancy.owner, tenancy.repo_a, "alpha")
    seed(tenancy.owner, tenancy.repo_b, "bravo")
    role = f"miyabi_notebook_{uuid.uuid4().hex[:12]}"
    objects = ", ".join((*TABLES, *ROLLUPS, VIEW))
    with tenancy.owner.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT ON {objects} TO "{role}"'))
        conn.execute(
            text(f"ALTER ROLE \"{role}\" SET miyabi.repository_ids = '{tenancy.repo_b}'")
        )
    url = tenancy.url.set(username=role, password=None)
    try:
        plain = ma.connect(url)  # no repository_ids: the role's default scope holds
        scoped = ma.connect(url, repository_ids=[tenancy.repo_a])  # the engine's scope wins
        tenancy.engines += [plain, scoped]
        assert set(ma.read_summary(plain)["repository_id"]) == {str(tenancy.repo_b)}
        assert raw_counts(plain)["agent_executions"] == 3 * len(AGENTS)
        assert set(ma.read_summary(scoped)["repository_id"]) == {str(tenancy.repo_a)}
        assert set(ma.read_logs(scoped)["execution_id"]).isdisjoint(
            ma.read_logs(plain)["execution_id"]
        )
        with pytest.raises(DBAPIError, match="permission denied"):  # read-only
            ma.SalesAgent().save_execution(scoped, ma.SalesAgent().builder(tenancy.repo_a).build())
    finally:
        for engine in tenancy.engines:
            engine.dispose()
        _drop_role(tenancy.owner, role)


# -- report runs (revision 0005) ---------------------------------------------------------------


def _run_ids(engine: Engine) -> set[str]:
    return set(ma.read_report_runs(engine)["id"])


def _start(engine: Engine, title: str) -> str:
    return str(start_run(engine, parameters={"title": title}, since=T0, until=T0 + timedelta(1)))


@PG_ONLY
def test_report_runs_follow_the_scope(tenancy: Tenancy) -> None:
    a = tenancy.scoped(tenancy.repo_a)
    b = tenancy.scoped(tenancy.repo_b)
    both = tenancy.scoped(tenancy.repo_b, tenancy.repo_a)
    run_a = _start(a, "a")
    run_owner = _start(tenancy.owner, "owner")
    run_both = _start(both, "both")

    assert _run_ids(tenancy.owner) == {run_a, run_owner, run_both}
    assert _run_ids(a) == {run_a}
    assert _run_ids(b) == set()
    assert _run_ids(both) == {run_a, run_both}  # runs of any part of its scope
    with tenancy.owner.connect() as conn:
        scopes = dict(conn.execute(select(report_runs.c.id, report_runs.c.repository_scope)).all())
    assert {str(k): v for k, v in scopes.items()} == {
        run_a: str(tenancy.repo_a),
        run_owner: None,  # unscoped: only unscoped sessions see it
        run_both: ",".join(sorted(str(r) for r in (tenancy.repo_a, tenancy.repo_b))),
    }

    # finishing a run the scope cannot see matches no row: nothing changes
    before = ma.read_report_runs(tenancy.owner)
    finish_run(b, uuid.UUID(run_a), ReportRunStatus.FAILED, error="not yours")
    finish_run(a, uuid.UUID(run_owner), ReportRunStatus.FAILED, error="not yours")
    finish_run(a, uuid.UUID(run_both), ReportRunStatus.FAILED, error="not all yours")
    pd.testing.assert_frame_equal(ma.read_report_runs(tenancy.owner), before)
    # its own run it finishes as before
    finish_run(a, uuid.UUID(run_a), ReportRunStatus.COMPLETED, output_path="/tmp/a.html")
    runs = ma.read_report_runs(tenancy.owner).set_index("id")
    assert runs.loc[run_a, "status"] == "completed"
    assert runs.loc[run_a, "output_path"] == "/tmp/a.html"
    assert runs.loc[[run_owner, run_both], "status"].tolist() == ["running", "running"]
    finish_run(tenancy.owner, uuid.UUID(run_both), ReportRunStatus.FAILED, error="boom")
    assert ma.read_report_runs(both).set_index("id").loc[run_both, "error"] == "boom"


@PG_ONLY
def test_report_runs_cannot_be_written_outside_the_scope(tenancy: Tenancy) -> None:
    a = tenancy.scoped(tenancy.repo_a)
    run_a = _start(a, "a")
    now = datetime.now(UTC)
    row = {"parameters": {}, "since": now, "until": now, "started_at": now, "status": "running"}
    for label in (str(tenancy.repo_b), f"{tenancy.repo_a},{tenancy.repo_b}", "", None):
        with pytest.raises(DBAPIError, match="row-level security"), a.begin() as conn:
            conn.execute(insert(report_runs).values(id=uuid.uuid4(), repository_scope=label, **row))
        with pytest.raises(DBAPIError, match="row-level security"), a.begin() as conn:
            conn.execute(
                update(report_runs)
                .where(report_runs.c.id == uuid.UUID(run_a))
                .values(repository_scope=label)
            )
    assert _run_ids(tenancy.owner) == {run_a}
    assert _run_ids(a) == {run_a}


@PG_ONLY
def test_report_runs_scope_migration_down_and_up(dialect: str, empty_url: URL) -> None:
    repo = uuid.uuid4()
    engine = ma.connect(empty_url)

    @event.listens_for(engine, "connect")
    def _scoped_session(dbapi_connection: Any, record: Any) -> None:
        # a migration run from a session with a scope: rows stored before keep NULL anyway
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT set_config('miyabi.repository_ids', %s, false)", [str(repo)])
        dbapi_connection.commit()

    def state() -> tuple[list[str], tuple[Any, ...], list[str]]:
        with engine.connect() as conn:
            columns = [c["name"] for c in inspect(conn).get_columns(RUNS)]
            flags = conn.execute(
                text(
                    "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relname = 'report_runs'"
                )
            ).one()
            policies = conn.execute(
                text("SELECT policyname FROM pg_policies WHERE tablename = 'report_runs'")
            ).scalars().all()
        return columns, tuple(flags), list(policies)

    try:
        ma.migrate(engine, "0004_heartbeat")
        old_run = _start(engine, "old")
        before = state()
        assert "repository_scope" not in before[0]
        assert before[1:] == ((False, False), [])
        for _ in range(2):
            ma.migrate(engine)
            columns, flags, policies = state()
            assert columns == [*before[0], "repository_scope"]
            assert flags == (True, True)
            assert policies == ["miyabi_repository_scope"]
            with engine.begin() as conn:
                scopes = dict(
                    conn.execute(select(report_runs.c.id, report_runs.c.repository_scope)).all()
                )
            new_run = _start(engine, "new")  # this session's scope, by the column's default
            with engine.begin() as conn:
                stored = conn.execute(
                    select(report_runs.c.repository_scope).where(
                        report_runs.c.id == uuid.UUID(new_run)
                    )
                ).scalar_one()
                conn.execute(report_runs.delete().where(report_runs.c.id == uuid.UUID(new_run)))
            assert {str(k): v for k, v in scopes.items()} == {old_run: None}
            assert stored == str(repo)
            ma.downgrade(engine, "0004_heartbeat")
            assert state() == before
            assert _run_ids(engine) == {old_run}
    finally:
        engine.dispose()


def test_report_runs_on_sqlite(tmp_path: Path) -> None:
    """SQLite: only the column, always NULL; starting and finishing runs work as before."""
    engine = ma.connect(f"sqlite:///{tmp_path / 'runs.db'}")
    try:
        ma.migrate(engine)
        assert "repository_scope" in [c["name"] for c in inspect(engine).get_columns(RUNS)]
        run_id = start_run(engine, parameters={"title": "t"}, since=T0, until=T0 + timedelta(1))
        finish_run(engine, run_id, ReportRunStatus.COMPLETED, output_path="out.html")
        runs = ma.read_report_runs(engine)
        assert runs["status"].tolist() == ["completed"]
        assert "repository_scope" not in runs.columns
        with engine.connect() as conn:
            assert conn.execute(select(report_runs.c.repository_scope)).scalar_one() is None
        ma.downgrade(engine, "0004_heartbeat")
        assert "repository_scope" not in [c["name"] for c in inspect(engine).get_columns(RUNS)]
        assert len(ma.read_report_runs(engine)) == 1
        ma.migrate(engine)
    finally:
        engine.dispose()


# -- scopes the server would not apply are refused ---------------------------------------------


@PG_ONLY
def test_scope_on_a_role_that_bypasses_rls_is_refused(tenancy: Tenancy) -> None:
    superuser = ma.connect(tenancy.url, repository_ids=[tenancy.repo_a])
    tenancy.engines.append(superuser)
    with pytest.raises(ma.ValidationError) as info:
        ma.read_summary(superuser)
    assert info.value.field == "repository_ids"
    assert "bypasses row-level security" in str(info.value)
    with pytest.raises(ma.ValidationError):  # every time, not only on the first connection
        raw_counts(superuser)


@PG_ONLY
def test_scope_on_a_database_without_rls_is_refused(tenancy: Tenancy) -> None:
    ma.downgrade(tenancy.owner, "0002_report_runs")
    reader = tenancy.scoped(tenancy.repo_a)
    with pytest.raises(ma.SchemaError, match="row-level security"):
        ma.read_summary(reader)
    ma.migrate(tenancy.owner)
    fresh = tenancy.scoped(tenancy.repo_a)
    assert ma.read_summary(fresh).empty


# -- the migration -----------------------------------------------------------------------------


def _rls_state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname IN ('agent_executions', 'business_agent_analytics', "
                "'agent_execution_logs', 'report_runs')"
            )
        ).all()
        tables = {name: (enabled, forced) for name, enabled, forced in rows}
        policies = conn.execute(
            text("SELECT tablename, policyname FROM pg_policies ORDER BY tablename")
        ).all()
        options, definition = conn.execute(
            text(
                "SELECT reloptions, pg_get_viewdef(oid) FROM pg_class "
                "WHERE relname = 'v_business_agent_summary'"
            )
        ).one()
    return {"tables": tables, "policies": policies, "options": options, "view": definition}


@PG_ONLY
def test_rls_migration_down_and_up(dialect: str, empty_url: URL) -> None:
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine, "0002_report_runs")
        before = _rls_state(engine)
        assert before["tables"] == dict.fromkeys((*TABLES, RUNS), (False, False))
        assert before["policies"] == []
        assert before["options"] is None

        for _ in range(2):
            # 0008: the last revision whose view is 0001's shape (0009 appends upstream's columns)
            ma.migrate(engine, "0008_database_rules")
            after = _rls_state(engine)
            assert after["tables"] == dict.fromkeys((*TABLES, RUNS), (True, True))
            assert sorted(t for t, _ in after["policies"]) == sorted((*TABLES, RUNS))
            assert after["options"] == ["security_invoker=true"]
            # the same view, only the option added (and 0007_write_order's tie-break)
            assert after["view"] == before["view"].replace("b.id > a.id", "b.seq > a.seq")
            assert "b.seq > a.seq" in after["view"]

            ma.downgrade(engine, "0002_report_runs")
            assert _rls_state(engine) == before
        ma.migrate(engine)  # the superset view of 0009 keeps the option
        assert _rls_state(engine)["options"] == ["security_invoker=true"]
    finally:
        engine.dispose()


# -- validation and SQLite ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "ids",
    [[], (), "not-a-uuid", [uuid.uuid4(), "nope"], 42, [None]],
    ids=["empty-list", "empty-tuple", "bad-text", "one-bad", "not-iterable", "none-item"],
)
def test_bad_repository_ids_are_refused(ids: Any) -> None:
    with pytest.raises(ma.ValidationError) as info:
        ma.connect("postgresql://miyabi@db.example/miyabi", repository_ids=ids)
    assert info.value.field == "repository_ids"


def test_one_repository_id_needs_no_list() -> None:
    repo = uuid.uuid4()
    for ids in (repo, str(repo), [str(repo)], {repo}):
        ma.connect("postgresql://miyabi@db.example/miyabi", repository_ids=ids).dispose()


def test_sqlite_refuses_a_repository_scope(tmp_path: Path) -> None:
    """SQLite has no row-level security: a scope it could not enforce is refused up front."""
    url = make_url(f"sqlite:///{tmp_path / 'tenant.db'}")
    with pytest.raises(ma.ValidationError) as info:
        ma.connect(url, repository_ids=[uuid.uuid4()])
    assert info.value.field == "repository_ids"
    assert "PostgreSQL" in str(info.value)
    assert not (tmp_path / "tenant.db").exists()
    # unscoped, SQLite works as before (the migration is a no-op there)
    engine = ma.connect(url)
    try:
        ma.migrate(engine)
        assert ma.read_summary(engine).empty
    finally:
        engine.dispose()
