"""A repository scope never outlives its use of a pooled connection, and only exact UUIDs make one.

PostgreSQL, as a fresh non-superuser role (superusers bypass row-level security). The engines
here keep one pooled connection (``pool_size=1``), so "the next use" is the same server session,
which each test checks by its backend pid.
"""

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from sqlalchemy import URL, Engine, create_engine, text

import miyabi_analytics as ma
from miyabi_analytics._db.scope import check_repository_ids, reset_session_scope, scope_text

PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
TABLES = ("agent_executions", "business_agent_analytics", "agent_execution_logs",
          "v_business_agent_summary", "report_runs")
SETTING = "SELECT current_setting('miyabi.repository_ids', true)"
COUNT = "SELECT count(*) FROM agent_executions"


@dataclass
class Role:
    owner: Engine
    name: str
    url: URL
    repo_a: uuid.UUID
    repo_b: uuid.UUID

    def scoped(self, *ids: Any) -> Engine:
        return ma.connect(self.url, repository_ids=list(ids), pool_size=1, max_overflow=0)


@pytest.fixture
def role(dialect: str, empty_url: URL) -> Iterator[Role]:
    assert dialect == "postgresql"
    owner = ma.connect(empty_url)
    ma.migrate(owner)
    name = f"miyabi_pool_{uuid.uuid4().hex[:12]}"
    password = secrets.token_hex(16)
    with owner.begin() as conn:
        conn.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{name}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE ON {", ".join(TABLES)} TO "{name}"'))
    state = Role(owner, name, empty_url.set(username=name, password=password),
                 uuid.uuid4(), uuid.uuid4())
    agent = ma.SalesAgent()
    for repo, n in ((state.repo_a, 2), (state.repo_b, 3)):
        for _ in range(n):
            agent.save_execution(owner, agent.builder(repo).build())
    try:
        yield state
    finally:
        with owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{name}"'))
            conn.execute(text(f'DROP ROLE "{name}"'))
        owner.dispose()


def raw_state(engine: Engine) -> tuple[int, str | None, int]:
    """(backend pid, setting, visible executions) on the pool's connection, outside SQLAlchemy."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute(SETTING)
        setting = cursor.fetchone()[0]
        cursor.execute(COUNT)
        count = cursor.fetchone()[0]
        cursor.close()
        raw.rollback()
        return int(pid), setting or None, int(count)
    finally:
        raw.close()


def autocommit_use(engine: Engine) -> int:
    """Read through the scoped engine in AUTOCOMMIT mode; returns the backend pid."""
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        assert conn.execute(text(COUNT)).scalar_one() == 2  # repo_a's rows only
        assert conn.execute(text(COUNT)).scalar_one() == 2  # and still, statement after statement
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@PG_ONLY
def test_autocommit_scope_is_reset_when_the_connection_returns_to_the_pool(role):
    engine = role.scoped(role.repo_a)
    try:
        pid = autocommit_use(engine)
        # The same session, taken raw (no transaction hook runs): the role's default, unscoped.
        assert raw_state(engine) == (pid, None, 5)
        # An engine without a scope on the same pool: sees every repository.
        unscoped = create_engine("postgresql+psycopg://", pool=engine.pool)
        with unscoped.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == pid
            assert conn.execute(text(SETTING)).scalar() in ("", None)
            assert conn.execute(text(COUNT)).scalar_one() == 5
        # The scoped engine itself is scoped again, in either mode.
        with engine.connect() as conn:
            assert conn.execute(text(COUNT)).scalar_one() == 2
        assert autocommit_use(engine) == pid
    finally:
        engine.dispose()


@PG_ONLY
def test_reset_restores_the_roles_own_default_scope(role):
    """RESET, not set_config(''): an empty setting would widen a role limited by ALTER ROLE."""
    with role.owner.begin() as conn:
        conn.execute(text(f"ALTER ROLE \"{role.name}\" SET miyabi.repository_ids = "
                          f"'{scope_text([role.repo_b])}'"))
    engine = role.scoped(role.repo_a)
    try:
        pid = autocommit_use(engine)
        assert raw_state(engine) == (pid, str(role.repo_b), 3)  # repo_b's default, not repo_a
    finally:
        engine.dispose()


@PG_ONLY
def test_transaction_local_scope_leaves_nothing_either(role):
    engine = role.scoped(role.repo_a)
    try:
        with engine.connect() as conn:
            assert conn.execute(text(COUNT)).scalar_one() == 2
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert raw_state(engine) == (pid, None, 5)
    finally:
        engine.dispose()


@PG_ONLY
def test_reset_works_on_a_connection_in_a_failed_transaction(role):
    conn = psycopg.connect(role.url.set(drivername="postgresql").render_as_string(False))
    try:
        conn.execute("SELECT set_config('miyabi.repository_ids', %s, false)",
                     [str(role.repo_a)])
        conn.commit()
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        reset_session_scope(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute(SETTING).fetchone()[0] in ("", None)
        assert conn.execute(COUNT).fetchone()[0] == 5
        conn.rollback()
        conn.autocommit = True
        conn.execute("SELECT set_config('miyabi.repository_ids', %s, false)", [str(role.repo_a)])
        reset_session_scope(conn)
        assert conn.execute(SETTING).fetchone()[0] in ("", None)
    finally:
        conn.close()


@PG_ONLY
def test_a_connection_whose_scope_cannot_be_reset_is_not_pooled(role, caplog):
    engine = role.scoped(role.repo_a)
    admin = create_engine(role.owner.url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with admin.connect() as killer:
                assert killer.execute(text("SELECT pg_terminate_backend(:p, 5000)"),
                                      {"p": pid}).scalar()
        # The reset failed on the dead session: the pool dropped it, the next use is a new one.
        new_pid, setting, count = raw_state(engine)
        assert new_pid != pid
        assert (setting, count) == (None, 5)
    finally:
        admin.dispose()
        engine.dispose()


# -- exact UUIDs only --------------------------------------------------------------------------


class Shifty(uuid.UUID):
    """A UUID that renders as something else than its bits."""

    def __init__(self, shown: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        object.__setattr__(self, "_shown", shown)

    def __str__(self) -> str:
        return str(object.__getattribute__(self, "_shown"))


class ShiftyText(str):
    __slots__ = ()

    def __str__(self) -> str:
        return ""

    def replace(self, *args: Any, **kwargs: Any) -> str:  # uuid.UUID(text) calls it
        return "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("shown", ["a,b", "", "00000000-0000-0000-0000-000000000001,x"])
def test_a_uuid_subclass_is_refused(shown):
    evil = Shifty(shown, int=uuid.uuid4().int)
    for ids in (evil, [evil], [uuid.uuid4(), evil], (evil,)):
        with pytest.raises(ma.ValidationError) as info:
            ma.connect("postgresql://miyabi@db.example/miyabi", repository_ids=ids)
        assert info.value.field == "repository_ids"
        assert "subclass" in str(info.value)


def test_text_is_read_for_its_characters_and_written_from_the_bits():
    repo = uuid.uuid4()
    parsed = check_repository_ids([ShiftyText(str(repo).upper()), f"{{{repo}}}", repo.urn])
    assert parsed == (repo,)
    assert type(parsed[0]) is uuid.UUID
    assert scope_text(parsed) == str(repo)
    with pytest.raises(ma.ValidationError):
        scope_text([Shifty("", int=repo.int)])


@PG_ONLY
def test_a_uuid_subclass_cannot_widen_a_scope(role):
    """An id rendering as "" would have set the empty setting: every repository's rows."""
    with pytest.raises(ma.ValidationError):
        role.scoped(Shifty("", int=role.repo_a.int))
    engine = role.scoped(uuid.UUID(int=role.repo_a.int))
    try:
        with engine.connect() as conn:
            assert conn.execute(text(COUNT)).scalar_one() == 2
            assert conn.execute(text(SETTING)).scalar() == str(role.repo_a)
    finally:
        engine.dispose()
