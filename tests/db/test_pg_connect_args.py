"""The fast PostgreSQL read uses the engine's connection settings (issue 12, item 2).

ADBC opens a connection of its own. It used to open it from the URL alone, so an engine built
with ``connect_args`` (``options=-csearch_path=...``, a password, an application name) or with
a "connect" hook running ``SET search_path`` read another schema than every other read and
aggregate. Here a schema ``other`` holds migrated tables with two executions, ``public`` one.
"""

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import URL, Engine, event, text

import miyabi_analytics as ma
from miyabi_analytics.reader import _read_summary_simple
from tests.conftest import create_pg_database, drop_pg_database, require_postgres

OTHER = "other"
PASSWORD = "s3cret with space " + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def two_schemas() -> Iterator[URL]:
    """A database with migrated tables in ``public`` (1 execution) and ``other`` (2)."""
    require_postgres()
    url = create_pg_database()
    try:
        public = ma.connect(url)
        ma.migrate(public)
        with public.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {OTHER}"))
        ma.ExecutionStore(public).save_executions([ma.SalesAgent().builder(uuid.uuid4()).build()])
        public.dispose()
        other = ma.connect(url, connect_args={"options": f"-csearch_path={OTHER}"})
        ma.migrate(other)
        agent = ma.CRMAgent()
        ma.ExecutionStore(other).save_executions(
            [agent.builder(uuid.uuid4()).status("running").start_now().build() for _ in range(2)]
        )
        other.dispose()
        yield url
    finally:
        drop_pg_database(url)


def _hooked(url: URL) -> Engine:
    engine = ma.connect(url)

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {OTHER}")
        dbapi_connection.commit()

    return engine


ENGINES: dict[str, Callable[[URL], Engine]] = {
    "connect_args": lambda url: ma.connect(
        url, connect_args={"options": f"-csearch_path={OTHER}"}
    ),
    "connect hook": _hooked,
}


@pytest.mark.parametrize("make", ENGINES.values(), ids=ENGINES.keys())
def test_every_read_sees_the_engines_schema(two_schemas, make, tmp_path):
    engine = make(two_schemas)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_schema()")).scalar() == OTHER
            by_connection = ma.read_summary(conn)
        fast = ma.read_summary(engine)
        assert len(fast) == 2
        assert fast["agent_type"].tolist() == ["CRMAgent", "CRMAgent"]
        pd_equal(fast, by_connection)
        pd_equal(fast, _read_summary_simple(engine))
        assert ma.read_summary_arrow(engine).num_rows == 2
        assert sum(len(chunk) for chunk in ma.iter_summary(engine, chunksize=1)) == 2
        assert ma.export_summary(engine, tmp_path / "x.parquet") == 2
        assert int(ma.success_rates(engine)["executions"].sum()) == 2
        assert int(ma.duration_stats(engine)["executions"].sum()) == 0  # none finished
    finally:
        engine.dispose()


def pd_equal(a: Any, b: Any) -> None:
    from pandas.testing import assert_frame_equal

    assert_frame_equal(a, b)


class _Spied:
    """An ADBC connection that, before it closes (after the read), notes its session."""

    def __init__(self, connection: Any, has_password: bool, seen: list[dict[str, Any]]):
        self._connection, self._has_password, self._seen = connection, has_password, seen

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def close(self) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, current_setting('application_name'), "
                "current_setting('search_path')"
            )
            user, application, search_path = cursor.fetchone()
        self._seen.append({"user": user, "application_name": application,
                           "search_path": search_path, "has_password": self._has_password})
        self._connection.close()


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each ADBC session the fast path opened, as it was when the read was done."""
    import adbc_driver_postgresql.dbapi as adbc

    seen: list[dict[str, Any]] = []
    connect = adbc.connect

    def spy(uri: str, *args: Any, **kwargs: Any) -> Any:
        # Whether the password is in the conninfo, without ever showing the conninfo.
        return _Spied(connect(uri, *args, **kwargs), PASSWORD in uri, seen)

    monkeypatch.setattr(adbc, "connect", spy)
    return seen


@pytest.fixture
def reader_role(two_schemas: URL) -> Iterator[str]:
    """A login role with a password, allowed to read ``other`` (and nothing set by default)."""
    name = "miyabi_reader_" + uuid.uuid4().hex[:8]
    admin = ma.connect(two_schemas)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {OTHER} TO {name}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {OTHER} TO {name}"))
    try:
        yield name
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {name}"))
            conn.execute(text(f"DROP ROLE {name}"))
        admin.dispose()


def test_password_and_parameters_given_outside_the_url_are_carried(
    two_schemas, reader_role, sessions
):
    application = "miyabi-test-" + uuid.uuid4().hex[:6]
    url = two_schemas.set(username=reader_role, password=None)
    engine = ma.connect(url, connect_args={
        "password": PASSWORD,
        "application_name": application,
        "options": f"-csearch_path={OTHER}",
    })
    try:
        assert len(ma.read_summary(engine)) == 2
        assert sessions, "the fast path opened no ADBC session"
        assert all(s["has_password"] for s in sessions), "the password was not carried"
        assert {(s["user"], s["application_name"], s["search_path"]) for s in sessions} == {
            (reader_role, application, OTHER)
        }
    finally:
        engine.dispose()


def test_role_set_by_a_hook_is_carried(two_schemas, reader_role, sessions):
    engine = _hooked(two_schemas)

    @event.listens_for(engine, "connect")
    def _role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {reader_role}")
        dbapi_connection.commit()

    try:
        assert len(ma.read_summary(engine)) == 2
        assert [(s["user"], s["search_path"]) for s in sessions] == [(reader_role, OTHER)]
    finally:
        engine.dispose()


def test_session_state_that_cannot_be_carried_falls_back_to_the_engine(two_schemas, sessions):
    """Temporary tables live in the engine's session only (one could shadow a table of the
    read): with any, the read goes through the engine's own connection."""
    engine = _hooked(two_schemas)

    @event.listens_for(engine, "connect")
    def _temporary(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE scratch (x int)")
        dbapi_connection.commit()

    try:
        expected = _read_summary_simple(engine)
        assert len(expected) == 2
        pd_equal(ma.read_summary(engine), expected)
        pd_equal(
            ma.read_summary(engine, columns=["id", "roi_percent"]),
            expected[["id", "roi_percent"]],
        )
        assert sum(len(chunk) for chunk in ma.iter_summary(engine, chunksize=1)) == 2
        assert sessions == []  # no ADBC session was opened
    finally:
        engine.dispose()
