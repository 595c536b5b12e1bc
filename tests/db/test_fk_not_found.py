"""A write whose repository_id/user_id an upstream foreign key refuses: NotFound (issue 14).

An adopted Miyabi database has ``agent_executions.repository_id REFERENCES repositories(id)``
and ``user_id REFERENCES users(id)``. Each test builds that in a fresh database of its own
(never the session's shared one); the store must raise ``NotFound`` naming the column and the
value, keep nothing of the write, and never look the value up first.
"""

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    URL,
    Column,
    Engine,
    ForeignKeyConstraint,
    MetaData,
    Table,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from miyabi_analytics import retention
from miyabi_analytics._db.schema import executions
from tests.conftest import create_pg_database, drop_pg_database, require_postgres

AGENT = ma.SalesAgent()
NOW = datetime.now(UTC)


@dataclass
class Upstream:
    url: URL
    engine: Engine
    repo: uuid.UUID = field(default_factory=uuid.uuid4)
    user: uuid.UUID = field(default_factory=uuid.uuid4)


def _add_upstream_keys(engine: Engine, repo: uuid.UUID, user: uuid.UUID, names: dict[str, str]):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id uuid PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE repositories (id uuid PRIMARY KEY)"))
        conn.execute(text("INSERT INTO users (id) VALUES (:id)"), {"id": user})
        conn.execute(text("INSERT INTO repositories (id) VALUES (:id)"), {"id": repo})
        for column, parent in (("repository_id", "repositories"), ("user_id", "users")):
            name = names[column]
            assert name.replace("_", "").isalnum()  # safe to splice into DDL
            conn.execute(
                text(
                    f"ALTER TABLE agent_executions ADD CONSTRAINT {name} FOREIGN KEY "
                    f"({column}) REFERENCES {parent}(id) ON DELETE CASCADE"
                )
            )


UPSTREAM_NAMES = {
    "repository_id": "agent_executions_repository_id_fkey",
    "user_id": "agent_executions_user_id_fkey",
}


@pytest.fixture(params=["upstream_names", "other_names"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    require_postgres()
    url = create_pg_database()
    engine = ma.connect(url)
    try:
        ma.migrate(engine)
        state = Upstream(url, engine)
        names = UPSTREAM_NAMES if request.param == "upstream_names" else {
            "repository_id": "exec_repo_owner", "user_id": "who_ran_it"
        }
        _add_upstream_keys(engine, state.repo, state.user, names)
        yield state
    finally:
        engine.dispose()
        drop_pg_database(url)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(executions)).scalar_one())


def record(repo: uuid.UUID, user: uuid.UUID | None = None, **changes: Any) -> Any:
    builder = AGENT.builder(repo).status("running").started_at(NOW - timedelta(minutes=5))
    if user is not None:
        builder = builder.user_id(user)
    built: ma.AgentExecutionResult = builder.build()
    return built.evolve(**changes) if changes else built


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(executions).order_by(executions.c.id))]


def assert_not_found(caught: pytest.ExceptionInfo[ma.NotFound], what: str, key: object) -> None:
    assert caught.value.what == what
    assert caught.value.key == key
    assert str(caught.value) == f"{what} {key} not found"
    assert isinstance(caught.value.__cause__, IntegrityError)  # the database's own refusal


def test_known_keys_are_stored(upstream):
    AGENT.save_execution(upstream.engine, record(upstream.repo, upstream.user))
    ma.ExecutionStore(upstream.engine).save_executions(
        [record(upstream.repo) for _ in range(3)]
    )
    assert count(upstream.engine) == 4


def test_save_execution_unknown_repository_is_not_found(upstream):
    AGENT.save_execution(upstream.engine, record(upstream.repo))
    before = stored(upstream.engine)
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound) as caught:
        AGENT.save_execution(upstream.engine, record(missing, upstream.user))
    assert_not_found(caught, "repository_id", missing)
    assert stored(upstream.engine) == before


def test_save_execution_unknown_user_is_not_found(upstream):
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound) as caught:
        ma.ExecutionStore(upstream.engine).save_execution(record(upstream.repo, missing))
    assert_not_found(caught, "user_id", missing)
    assert count(upstream.engine) == 0


def test_update_to_an_unknown_repository_is_not_found_and_keeps_the_row(upstream):
    first = record(upstream.repo)
    AGENT.save_execution(upstream.engine, first)
    before = stored(upstream.engine)
    missing = uuid.uuid4()
    moved = first.evolve(repository_id=missing, status="completed", completed_at=NOW)
    with pytest.raises(ma.NotFound) as caught:
        AGENT.save_execution(upstream.engine, moved)
    assert_not_found(caught, "repository_id", missing)
    assert stored(upstream.engine) == before


@pytest.mark.parametrize("path", ["all_new", "with_stored"])
def test_bulk_batch_with_an_unknown_repository_keeps_nothing(upstream, path):
    store = ma.ExecutionStore(upstream.engine)
    kept = record(upstream.repo)
    store.save_executions([kept])
    before = stored(upstream.engine)
    missing = uuid.uuid4()
    batch = [record(upstream.repo) for _ in range(5)]
    batch.insert(2, record(missing))
    if path == "with_stored":  # the guarded path: a stored id in the batch
        batch.append(kept.evolve(quality_score=90))
    with pytest.raises(ma.NotFound) as caught:
        store.save_executions(batch, batch_size=100)
    assert_not_found(caught, "repository_id", missing)
    assert stored(upstream.engine) == before


def test_bulk_update_to_an_unknown_user_is_not_found(upstream):
    store = ma.ExecutionStore(upstream.engine)
    kept = record(upstream.repo, upstream.user)
    store.save_executions([kept])
    before = stored(upstream.engine)
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound) as caught:
        store.save_executions([kept.evolve(user_id=missing)])
    assert_not_found(caught, "user_id", missing)
    assert stored(upstream.engine) == before


def test_no_lookup_before_the_write(upstream):
    seen: list[str] = []
    event.listen(
        upstream.engine, "before_cursor_execute",
        lambda conn, cursor, statement, *rest: seen.append(statement),
    )
    with pytest.raises(ma.NotFound):
        AGENT.save_execution(upstream.engine, record(uuid.uuid4()))
    assert not any("repositories" in statement for statement in seen)


def test_unknown_execution_for_metrics_and_logs_is_still_not_found(upstream):
    missing = uuid.uuid4()
    store = ma.ExecutionStore(upstream.engine)
    with pytest.raises(ma.NotFound) as caught:
        store.log(missing, "info", "x")
    assert (caught.value.what, caught.value.key) == ("execution", missing)
    with pytest.raises(ma.NotFound) as caught:
        store.save_analysis_metrics(missing, {"roi_percent": 1.0})
    assert (caught.value.what, caught.value.key) == ("execution", missing)
    with pytest.raises(ma.NotFound) as caught:
        store.log_many([ma.LogEntry(missing, "info", "y")])
    assert (caught.value.what, caught.value.key) == ("execution", missing)


# -- the key hidden from the writer (row-level security): the constraint names the column ----


@pytest.fixture
def scoped(upstream) -> Iterator[tuple[Engine, Upstream]]:
    role = f"miyabi_fk_{uuid.uuid4().hex[:12]}"
    password = secrets.token_hex(16)
    with upstream.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        conn.execute(
            text(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON agent_executions, "
                f"business_agent_analytics, agent_execution_logs TO {role}"
            )
        )
    engine = ma.connect(
        upstream.url.set(username=role, password=password), repository_ids=[upstream.repo]
    )
    try:
        yield engine, upstream
    finally:
        engine.dispose()
        with upstream.engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))


def test_hidden_key_is_named_by_the_constraint(scoped):
    engine, upstream = scoped
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound) as caught:
        AGENT.save_execution(engine, record(upstream.repo, missing))
    # PostgreSQL leaves the key out of the error under row-level security; the column comes
    # from the constraint, the value from the write.
    cause = caught.value.__cause__
    assert "Key (" not in (cause.orig.diag.message_detail or "")
    assert_not_found(caught, "user_id", missing)
    with pytest.raises(ma.NotFound) as caught:
        ma.ExecutionStore(engine).save_executions(
            [record(upstream.repo, missing), record(upstream.repo, missing)]
        )
    assert_not_found(caught, "user_id", missing)
    # Two users in the batch and the database does not say which it refused: both are named.
    with pytest.raises(ma.NotFound) as caught:
        ma.ExecutionStore(engine).save_executions(
            [record(upstream.repo, upstream.user), record(upstream.repo, missing)]
        )
    assert caught.value.what == "user_id"
    assert caught.value.key == tuple(sorted([upstream.user, missing], key=str))
    assert count(upstream.engine) == 0


# -- SQLite: the refusal names nothing; the table's foreign keys say where to look --------------


def test_sqlite_foreign_key_is_not_found(tmp_path):
    # SQLite cannot add a foreign key to a table: build agent_executions with one from the start.
    metadata = MetaData()
    repositories = Table(
        "repositories", metadata, Column("id", executions.c.repository_id.type, primary_key=True)
    )
    table = executions.to_metadata(metadata)
    table.append_constraint(ForeignKeyConstraint(["repository_id"], ["repositories.id"]))
    engine = ma.connect(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        metadata.create_all(engine)
        repo = uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(repositories.insert().values(id=repo))
        AGENT.save_execution(engine, record(repo))
        before = stored(engine)
        missing = uuid.uuid4()
        with pytest.raises(ma.NotFound) as caught:
            AGENT.save_execution(engine, record(missing))
        assert_not_found(caught, "repository_id", missing)
        with pytest.raises(ma.NotFound) as caught:
            ma.ExecutionStore(engine).save_executions([record(repo), record(missing)])
        assert_not_found(caught, "repository_id", missing)
        assert stored(engine) == before
    finally:
        engine.dispose()


def test_restore_of_an_execution_whose_repository_is_gone_is_not_found(upstream, tmp_path):
    old = NOW - timedelta(days=200)
    gone = uuid.uuid4()
    with upstream.engine.begin() as conn:
        conn.execute(text("INSERT INTO repositories (id) VALUES (:id)"), {"id": gone})
    records = [
        AGENT.builder(repo).status("completed").started_at(old).completed_at(old).build()
        for repo in (upstream.repo, gone)
    ]
    ma.ExecutionStore(upstream.engine).save_executions(records)
    archive = tmp_path / "archive"
    assert retention.purge(upstream.engine, "90d", archive_dir=archive).executions == 2
    with upstream.engine.begin() as conn:
        conn.execute(text("DELETE FROM repositories WHERE id = :id"), {"id": gone})
    with pytest.raises(ma.NotFound) as caught:
        retention.restore(upstream.engine, archive, [r.id for r in records])
    assert_not_found(caught, "repository_id", gone)
    assert count(upstream.engine) == 0  # all or nothing: the other one is not restored either
    assert set(retention.archived_executions(archive)) == {r.id for r in records}  # still archived
    assert retention.restore(upstream.engine, archive, [records[0].id]) == 1
