"""PostgreSQL reads through ADBC (libpq's Arrow driver), on a session like the engine's own.

ADBC opens a connection of its own, which the engine's pool never sees. So that it reads what
the engine's connections read, it is opened from one of them: a connection checked out of the
engine's pool (its URL, ``connect_args``, ``creator`` and "connect" hooks applied, and the
"begin" hooks, which set the repository scope) gives libpq's effective connection parameters
(password included) and the session settings its hooks made (``SET search_path``, ``SET
ROLE``, ...), which the ADBC session takes over. Whatever cannot be carried over (a driver
other than psycopg 3, temporary tables, a parameter or setting ADBC refuses) sends the read
through the engine's own connection instead: slower, never another schema's rows. One gap:
custom settings (``SET myapp.x``) are not listed by the server, so only the repository scope's
own (``miyabi.repository_ids``) is carried.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa
from sqlalchemy import Engine, Select, String, column, exists, func, select, table
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.exc import DBAPIError

from miyabi_analytics._db.fastread.rows import prefetched, rechunk, row_batches
from miyabi_analytics._db.fastread.source import BatchRead
from miyabi_analytics._db.scope import SCOPE_SETTING
from miyabi_analytics._db.tx import begin

__all__ = ["PostgresBatches", "pg_batches"]

_PG_NUMERIC_DOLLAR: Final = PGDialect_psycopg(  # type: ignore[no-untyped-call]
    paramstyle="numeric_dollar"
)

# This connection runs one query. JIT compiling it costs more than it saves when every row is
# streamed out (0.5 s of a 1M-row read, measured); filtered reads are below its threshold anyway.
# Room to hash the analytics rows of a whole read in memory (82 MB for 770k rows), where the
# default 4 MB makes the planner hash the executions instead, spilling them to disk in 64
# batches: 1.35 s -> 1.05 s of server time on 1M rows (measured). A session setting of the
# engine's own wins over these.
_READ_SETTINGS: Final = (("jit", "off"), ("work_mem", "64MB"))

# How values travel, which is the driver's business (ADBC reads binary COPY, in UTF-8), not
# which rows are read; and the characteristics of the transaction the settings were read in.
_NOT_CARRIED: Final = frozenset({
    "client_encoding", "datestyle", "intervalstyle", "extra_float_digits", "bytea_output",
    "transaction_isolation", "transaction_read_only", "transaction_deferrable",
})

_pg_settings = table(
    "pg_settings", column("name", String), column("source", String), column("context", String)
)
_pg_class = table("pg_class", column("relnamespace"))

# Settings the session itself made (SET, set_config): the ones a connection's hooks leave.
# "user" and "superuser" settings are the ones SET can change after the connection started.
_SESSION_SETTINGS: Final = select(
    _pg_settings.c.name, func.current_setting(_pg_settings.c.name, type_=String)
).where(_pg_settings.c.source == "session", _pg_settings.c.context.in_(["user", "superuser"]))

# What pg_settings does not show: the session user and role (SET SESSION AUTHORIZATION, SET
# ROLE), the repository scope (a custom setting), and temporary relations (which would shadow
# the tables for this session only, and cannot be carried over).
_SESSION_STATE: Final = select(
    func.session_user(type_=String),
    func.current_user(type_=String),
    func.current_setting(SCOPE_SETTING, True, type_=String),
    exists().where(_pg_class.c.relnamespace == func.pg_my_temp_schema()),
)


@dataclass(frozen=True, slots=True)
class _Session:
    """How to open a session like the engine's: libpq parameters and settings, in order."""

    conninfo: str = field(repr=False)  # carries the password
    settings: tuple[tuple[str, str], ...]


class PostgresBatches:
    """Reads through ADBC on a session like ``engine``'s (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def batches(self, read: BatchRead) -> Iterator[pa.RecordBatch]:
        """``read``'s rows in ``chunksize`` batches (``rows`` is not needed here)."""
        return pg_batches(self._engine, read.stmt, read.schema, read.chunksize)


def pg_batches(
    engine: Engine, stmt: Select[Any], schema: pa.Schema, chunksize: int | None
) -> Iterator[pa.RecordBatch]:
    """``stmt`` through ADBC on a session like ``engine``'s, else through ``engine`` itself."""
    compiled = stmt.compile(dialect=_PG_NUMERIC_DOLLAR, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    values = [_adbc_value(params[name]) for name in compiled.positiontup or ()]
    query = str(compiled)
    session = _engine_session(engine)
    connection = None if session is None else _open(session)
    if connection is None:
        yield from row_batches(engine, stmt, schema, chunksize, stream=True)
        return
    with closing(prefetched(_adbc_fetch, connection, query, values)) as batches:
        yield from rechunk(batches, schema, chunksize)


def _engine_session(engine: Engine) -> _Session | None:
    """The session a transaction of ``engine`` runs with, or ``None`` if it cannot be copied."""
    from psycopg.conninfo import make_conninfo

    with begin(engine) as conn:
        info = getattr(conn.connection.dbapi_connection, "info", None)
        if not callable(getattr(info, "get_parameters", None)):
            return None  # not psycopg 3: its parameters are not known here
        assert info is not None
        parameters: dict[str, str] = info.get_parameters()  # never the password
        password, login = info.password, info.user
        settings = [(str(n), str(v)) for n, v in conn.execute(_SESSION_SETTINGS)]
        session_user, current_user, scope, temporary = conn.execute(_SESSION_STATE).one()
    if temporary:
        return None
    if password:
        parameters["password"] = password
    carried = [(n, v) for n, v in settings if n.lower() not in _NOT_CARRIED]
    named = {n.lower() for n, _ in carried}
    ours = [(n, v) for n, v in _READ_SETTINGS if n not in named]
    who: list[tuple[str, str]] = []
    if session_user != login:
        who.append(("session_authorization", session_user))
    if current_user != session_user:
        who.append(("role", current_user))
    if scope:
        carried.append((SCOPE_SETTING, scope))
    # The role last: what the session's own user may set, it sets before giving up rights.
    return _Session(make_conninfo("", **parameters), (*ours, *carried, *who))


def _open(session: _Session) -> Any:
    """An ADBC connection with ``session``'s settings, or ``None`` if it would not take them.

    A failure here (a parameter the driver's libpq does not know, a setting it may not make)
    leaves the read to the engine's own connection, which reports whatever is really wrong.
    """
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc

    try:
        connection = adbc.connect(session.conninfo, autocommit=True)
    except adbc_driver_manager.Error:
        return None
    try:
        with closing(connection.cursor()) as cursor:
            for name, value in session.settings:
                # For the session, not a transaction (each statement is one here): the
                # connection is this query's alone and closed right after.
                cursor.execute("SELECT set_config($1, $2, false)", [name, value])
                cursor.fetchall()
    except adbc_driver_manager.Error:
        connection.close()
        return None
    return connection


@contextmanager
def driver_errors(query: str, values: list[Any]) -> Iterator[None]:
    """ADBC's errors as SQLAlchemy's DBAPIError, the family every other path raises.

    The driver's exception stays the ``orig`` (with its ``sqlstate``), as SQLAlchemy keeps
    psycopg's; the connection parameters never appear in the message.
    """
    import adbc_driver_manager

    try:
        yield
    except adbc_driver_manager.Error as exc:
        raise DBAPIError(query, values, exc) from exc


def _adbc_fetch(
    connection: Any, query: str, values: list[Any]
) -> Generator[pa.RecordBatch, None, None]:
    with (
        closing(connection),
        driver_errors(query, values),
        closing(connection.cursor()) as cursor,
    ):
        cursor.execute(query, values or None)
        yield from cursor.fetch_record_batch()


def _adbc_value(value: Any) -> Any:
    import uuid

    return str(value) if isinstance(value, uuid.UUID) else value
