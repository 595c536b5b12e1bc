"""Adopting an upstream Miyabi database in place, and giving it back (issue 14 item 3).

Each test gets a fresh PostgreSQL database built by ``tests.upstream`` exactly as the upstream
sqlx migrations leave it, filled through the upstream writer's own statements. Upstream is
PostgreSQL only; on SQLite the refusal of an unknown database is tested.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

import miyabi_analytics as ma
from miyabi_analytics._db.migrate import current_revision, head_revision
from miyabi_analytics.cli import main
from miyabi_analytics.errors import SchemaError
from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.upstream import UpstreamWriter, build_upstream, fill_upstream

TABLES = ("agent_executions", "business_agent_analytics", "agent_execution_logs")


def _raw(url: URL) -> Engine:
    return create_engine(url)


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Iterator[URL]:
    """A fresh database in upstream's shape; ``indirect`` params: dict(quality_columns, dirty)."""
    require_postgres()
    options: dict[str, Any] = getattr(request, "param", {})
    url = create_pg_database()
    engine = _raw(url)
    try:
        quality = options.get("quality_columns", True)
        with engine.begin() as conn:
            build_upstream(conn, quality_columns=quality)
        if quality:  # the upstream writer names quality_score: it cannot write without it
            with engine.connect() as conn:
                fill_upstream(
                    UpstreamWriter(conn), seed=7, executions=60, dirty=options.get("dirty", False)
                )
        yield url
    finally:
        engine.dispose()
        drop_pg_database(url)


def catalog(conn: Connection) -> dict[str, Any]:
    """Everything a schema holds that adoption could touch, as comparable text."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
        "constraints": "SELECT conrelid::regclass::text, conname, convalidated, "
        "pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "ORDER BY 1",
        "triggers": "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
        "WHERE NOT tgisinternal ORDER BY 1, 2",
        "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' "
        "ORDER BY 1",
        "relations": "SELECT relname, relkind, relrowsecurity FROM pg_class "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v') ORDER BY 1",
        "comments": "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v') ORDER BY 1",
        "types": "SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace "
        "AND typtype = 'e' ORDER BY 1",
    }
    return {name: [tuple(row) for row in conn.execute(text(sql))] for name, sql in queries.items()}


def rows(conn: Connection, table: str, *, exclude: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """Every row of ``table`` as stored, by id, without the columns named in ``exclude``."""
    columns = [
        name
        for name in conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = :t ORDER BY ordinal_position"
            ),
            {"t": table},
        ).scalars()
        if name not in exclude
    ]
    listed = ", ".join(columns)
    return [tuple(r) for r in conn.execute(text(f"SELECT {listed} FROM {table} ORDER BY id"))]  # noqa: S608


def snapshot(url: URL) -> tuple[dict[str, Any], dict[str, list[tuple[Any, ...]]]]:
    engine = _raw(url)
    try:
        with engine.connect() as conn:
            present = [t for t in TABLES if conn.execute(
                text("SELECT to_regclass(:t)"), {"t": t}).scalar() is not None]
            return catalog(conn), {t: rows(conn, t) for t in present}
    finally:
        engine.dispose()


# -- the plan, and what adoption keeps ----------------------------------------------------------


def test_dry_run_prints_the_plan_and_changes_nothing(
    upstream: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(upstream)
    url = upstream.render_as_string(hide_password=False)
    assert main(["migrate", "--url", url, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert snapshot(upstream) == before
    assert any(line.startswith("replace view v_business_agent_summary") for line in out)
    assert "record the database as at revision 0001_initial" in out
    assert out[-2].startswith(f"apply revision {head_revision()}")
    assert out[-1] == f"dry run: {len(out) - 1} change(s) planned, nothing was changed"
    assert ma.migrate(upstream, dry_run=True) == out[:-1]


def test_adoption_rewrites_no_row_and_keeps_theirs(upstream: URL) -> None:
    before_catalog, before_rows = snapshot(upstream)
    ma.migrate(upstream)
    after_catalog, _ = snapshot(upstream)
    engine = _raw(upstream)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        # Every stored value as it was, updated_at included (no UPDATE ran): our added
        # columns aside, and analytics rows materialised from JSON metrics aside.
        added = ("last_heartbeat_at", "seq", "from_result")
        for table in TABLES:
            now = {r[0]: r for r in rows(conn, table, exclude=added)}
            for row in before_rows[table]:
                assert now[row[0]] == row
    engine.dispose()
    kept = ("constraints", "indexes", "triggers")
    for kind in kept:  # every one of theirs still there (ours added beside them)
        for item in before_catalog[kind]:
            name = item[1] if kind != "indexes" else item[0]
            assert name in {x[1] if kind != "indexes" else x[0] for x in after_catalog[kind]}
    theirs = {name for name, *_ in before_catalog["relations"]} - {"v_business_agent_summary"}
    assert theirs <= {name for name, *_ in after_catalog["relations"]}
    assert before_catalog["types"] == after_catalog["types"]


def test_upstream_statements_work_after_adoption(upstream: URL) -> None:
    ma.migrate(upstream)
    engine = _raw(upstream)
    with engine.begin() as conn:
        writer = UpstreamWriter(conn)
        repository = conn.execute(text("SELECT id FROM repositories LIMIT 1")).scalar_one()
        execution = writer.create_execution(repository, None, "CoordinatorAgent", "pending")
        writer.update_execution(execution, "running")
        writer.save_analysis_metrics(execution, {"market_size_usd": 1234, "page_views": 9})
        result = conn.execute(
            text("SELECT result FROM agent_executions WHERE id = :i"), {"i": execution}
        ).scalar_one()
        writer.update_execution(execution, "completed", result=result, quality_score=88)
        history = writer.load_history("CoordinatorAgent", repository, 5)
        assert history[0]["id"] == execution
        started = conn.execute(
            text("SELECT started_at FROM agent_executions WHERE id = :i"), {"i": execution}
        ).scalar_one()
        assert started is not None  # entering running stamped it (upstream never writes it)
        view = {r["execution_id"]: r for r in writer.query_view()}
        assert view[execution]["log_count"] == 0
    engine.dispose()
    ours = ma.connect(upstream)
    frame = ma.read_summary(ours, agent_types=["CoordinatorAgent"])
    ours.dispose()
    mine = frame.set_index("id").loc[str(execution)]
    assert mine["status"] == "completed"
    assert mine["quality_score"] == 88
    assert mine["agent_category"] == "other"
    assert mine["market_size_usd"] == 1234


# -- rules the stored rows break ----------------------------------------------------------------


@pytest.mark.parametrize("upstream", [{"dirty": True}], indirect=True)
def test_broken_rules_stay_not_valid_until_the_rows_are_fixed(
    upstream: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    url = upstream.render_as_string(hide_password=False)
    assert main(["migrate", "--url", url]) == 0
    out = capsys.readouterr().out
    engine = _raw(upstream)
    with engine.connect() as conn:
        bad_status = conn.execute(
            text("SELECT CAST(id AS text) FROM agent_executions WHERE status NOT IN "
                 "('pending', 'running', 'completed', 'failed')")
        ).scalars().all()
        no_repository = conn.execute(
            text("SELECT CAST(id AS text) FROM agent_executions WHERE repository_id IS NULL")
        ).scalars().all()
        invalid = set(conn.execute(
            text("SELECT conname FROM pg_constraint WHERE NOT convalidated")
        ).scalars())
    assert bad_status
    assert no_repository
    assert "ck_agent_executions_status_known" in invalid
    assert "ck_agent_executions_quality_score_range" in invalid
    assert "ck_agent_executions_repository_id_not_null" in invalid
    for row_id in [*bad_status, *no_repository]:
        assert row_id in out  # the offending rows are named
    # New writes obey the rule at once.
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("INSERT INTO agent_executions (repository_id, agent_type, status) "
                          "SELECT id, 'X', 'cancelled' FROM repositories LIMIT 1"))
    # Once the rows are fixed (by their owner, not by us), the next migrate validates.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM agent_executions WHERE status NOT IN "
                          "('pending', 'running', 'completed', 'failed')"))
        conn.execute(text("DELETE FROM agent_executions WHERE repository_id IS NULL"))
        conn.execute(text("DELETE FROM agent_executions WHERE quality_score > 100"))
    assert main(["migrate", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "validate ck_agent_executions_status_known" in out
    assert "set NOT NULL on agent_executions.repository_id" in out
    with engine.connect() as conn:
        assert not conn.execute(
            text("SELECT conname FROM pg_constraint WHERE NOT convalidated "
                 "AND conrelid = 'agent_executions'::regclass")
        ).all()
        nullable = conn.execute(text(
            "SELECT is_nullable FROM information_schema.columns "
            "WHERE table_name = 'agent_executions' AND column_name = 'repository_id'"
        )).scalar_one()
        assert nullable == "NO"
    engine.dispose()


# -- giving it back ----------------------------------------------------------------------------


def test_downgrade_to_upstream_restores_the_shape_and_the_data(
    upstream: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    before_catalog, before_rows = snapshot(upstream)
    ma.migrate(upstream)
    url = upstream.render_as_string(hide_password=False)
    assert main(["downgrade", "--url", url, "--revision", "upstream"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("has its upstream Miyabi shape again")
    after_catalog, after_rows = snapshot(upstream)
    assert after_catalog == before_catalog
    assert after_rows == before_rows
    # Upstream's writer and view work as before; adopting again works.
    engine = _raw(upstream)
    with engine.begin() as conn:
        repository = conn.execute(text("SELECT id FROM repositories LIMIT 1")).scalar_one()
        UpstreamWriter(conn).create_execution(repository, None, "CodeGenAgent", "pending")
        assert UpstreamWriter(conn).query_view()
    engine.dispose()
    ma.migrate(upstream)
    ours = ma.connect(upstream)
    assert current_revision(ours) == head_revision()
    ours.dispose()


@pytest.mark.parametrize("upstream", [{"quality_columns": False}], indirect=True)
def test_missing_quality_columns_are_added_and_kept(upstream: URL) -> None:
    ma.migrate(upstream)
    ma.downgrade(upstream, "upstream")
    engine = _raw(upstream)
    with engine.connect() as conn:
        names = set(conn.execute(text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'agent_executions'"
        )).scalars())
        assert {"quality_score", "pr_number"} <= names
        assert "last_heartbeat_at" not in names
        assert conn.execute(text("SELECT to_regclass('alembic_version')")).scalar() is None
    engine.dispose()


def test_base_is_refused_on_an_adopted_database(upstream: URL) -> None:
    ma.migrate(upstream)
    before = snapshot(upstream)
    with pytest.raises(SchemaError, match="downgrade to 'upstream' instead"):
        ma.downgrade(upstream, "base")
    assert snapshot(upstream) == before


def test_upstream_is_refused_on_a_database_of_ours(empty_url: URL, dialect: str) -> None:
    ma.migrate(empty_url)
    with pytest.raises(ma.ValidationError, match="not adopted from upstream"):
        ma.downgrade(empty_url, "upstream")


# -- what is refused ---------------------------------------------------------------------------


def test_an_unknown_postgresql_database_is_refused_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_postgres()
    url = create_pg_database()
    engine = _raw(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE agent_executions (id integer PRIMARY KEY)"))
        before = snapshot(url)[0]
        assert main(["migrate", "--url", url.render_as_string(hide_password=False)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert "found agent_executions" in err
        assert "agent_executions lacks" in err
        assert snapshot(url)[0] == before
    finally:
        engine.dispose()
        drop_pg_database(url)


def test_a_sqlite_file_with_our_tables_but_no_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE agent_executions (id TEXT PRIMARY KEY)")
    with pytest.raises(SchemaError, match="refusing to migrate: found agent_executions"):
        ma.migrate(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert names == {"agent_executions", "sqlite_autoindex_agent_executions_1"}


def test_dry_run_on_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    lines = ma.migrate(f"sqlite:///{path}", dry_run=True)
    assert lines[0] == f"create the SQLite database {path}"
    assert lines[-1].startswith(f"apply revision {head_revision()}")
    assert not path.exists()


# -- two at once -------------------------------------------------------------------------------


def test_two_processes_adopting_at_once_adopt_once(upstream: URL) -> None:
    errors: list[BaseException] = []
    outputs: list[list[str]] = []

    def run() -> None:
        try:
            outputs.append(ma.migrate(upstream))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    adopted = [out for out in outputs if "record the database as at revision 0001_initial" in out]
    assert len(adopted) == 1
    engine = _raw(upstream)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()
