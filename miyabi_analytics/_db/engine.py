"""The one engine factory: URL resolution, password masking and per-dialect connection setup."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.scope import check_repository_ids, install_scope
from miyabi_analytics._db.types import json_loads, strict_json_dumps
from miyabi_analytics.errors import ValidationError

__all__ = ["DEFAULT_URL", "connect", "libpq_conninfo", "mask_url", "resolve_url"]

DEFAULT_URL: Final = "sqlite:///miyabi.db"
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
_SCHEME: Final = re.compile(r"([A-Za-z][\w+.-]*)://")
# A malformed scheme separator ("postgresql:/user:pw@host"): the text up to the last "@" goes.
_BROKEN_SCHEME: Final = re.compile(r"[A-Za-z][\w+.-]*:/+")
# user:password@ after a "/", a space or the start, in a message that quotes a URL.
_PASSWORD_IN_TEXT: Final = re.compile(r"((?:^|[/\s])[^:/@\s]*:)[^/\s]*@")
_PASSWORD_IN_QUERY: Final = re.compile(r"((?:^|[?&])password=)[^&]*", re.IGNORECASE)


def mask_url(url: str | URL) -> str:
    """A URL as text with its password replaced by ``***``, safe for logs, errors and notebooks.

    Text that does not parse as a URL (or a message that quotes one) loses everything between
    ``://`` and the last ``@``: where the password ends cannot be known there, so all of what may
    be credentials goes.
    """
    if isinstance(url, str):
        parsed = _parse(url)
        if not isinstance(parsed, URL):
            return _mask_text(url)
        url = parsed
    if url.host is not None and "@" in url.host:
        # Parsed elsewhere with a raw "@" in the password: part of it ended up in the host.
        rest = url.set(host=url.host.rpartition("@")[2]).render_as_string(hide_password=True)
        scheme, _, authority = rest.partition("://")
        return f"{scheme}://***@{authority.rpartition('@')[2]}"
    if any(key.lower() == "password" for key in url.query):
        url = url.update_query_dict({key: "***" for key in url.query if key.lower() == "password"})
    return url.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _mask_text(text: str) -> str:
    separator = _SCHEME.search(text) or _BROKEN_SCHEME.match(text)
    if separator is not None:
        head, rest = text[: separator.end()], text[separator.end() :]
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        elif separator.start() == 0 and ":" in rest:
            rest = rest.partition(":")[0] + ":***"  # "user:password" with no host after it
        text = head + rest
    else:
        text = _PASSWORD_IN_TEXT.sub(r"\1***@", text)
    # A password in the query runs to the next "&": a raw space or "#" does not end it.
    return _PASSWORD_IN_QUERY.sub(r"\1***", text)


def _parse(text: str) -> URL | str:
    """``text`` as a URL, or why it is not one (a reason that never quotes the text).

    For a server URL, everything between ``://`` and the last ``@`` is the credentials, split at
    the first ``:`` into user name and password, each percent-decoded (UTF-8). So a raw ``@``,
    ``/``, ``?``, ``#``, ``:`` or space in a password works as meant: SQLAlchemy's ``make_url``
    would end the password at its first ``@`` and take the rest for the host. The price: an
    ``@`` after the host (in the database name or the query) must be written ``%40``.
    """
    scheme = _SCHEME.match(text)
    authority = text[scheme.end() :] if scheme is not None else ""
    userinfo, at, rest = authority.rpartition("@")
    try:
        if (
            scheme is None
            or not at
            or ":" not in userinfo  # no password: make_url parses it as it always did
            or scheme.group(1).partition("+")[0] == Dialect.SQLITE
        ):
            return make_url(text)
        username, _, password = userinfo.partition(":")
        return make_url(scheme.group(0) + rest).set(
            username=unquote(username, errors="strict") or None,
            password=unquote(password, errors="strict"),
        )
    except UnicodeDecodeError:
        return "its user name or password is not valid percent-encoded UTF-8 (write % as %25)"
    except (ArgumentError, ValueError, TypeError):
        return "not a database URL"


def resolve_url(url: str | URL | None = None) -> URL:
    """Explicit argument, then ``MIYABI_DATABASE_URL``, then ``DATABASE_URL``, then the default.

    ``postgres://`` and ``postgresql://`` are served by psycopg 3. Text is parsed as
    :func:`_parse` says (a raw ``@`` in the password works); a URL that does not parse is refused
    with a :class:`ValidationError` showing it masked, and chaining no parser error (their text
    can quote part of the password).
    """
    chosen = (
        url
        or os.environ.get("MIYABI_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_URL
    )
    parsed = chosen if isinstance(chosen, URL) else _parse(chosen)
    if not isinstance(parsed, URL):
        raise ValidationError("url", mask_url(chosen), parsed)
    if parsed.host is not None and "@" in parsed.host:
        raise ValidationError(
            "url",
            mask_url(parsed),
            "the host contains '@': a raw '@' in the password was taken for the host "
            "(give the URL as text, or write '@' as %40)",
        )
    if "password" in parsed.query:
        # In the password slot SQLAlchemy masks it in every repr; in the query it would not.
        # Given in both places, the query's wins, as it does for libpq (query after userinfo).
        secret = parsed.query["password"]
        parsed = parsed.difference_update_query(["password"]).set(
            password=secret if isinstance(secret, str) else secret[0]
        )
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", Dialect.POSTGRESQL):
        if driver not in ("", "psycopg"):
            raise ValidationError(
                "url", mask_url(parsed), "PostgreSQL is served by psycopg 3 (postgresql+psycopg)"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == Dialect.SQLITE:
        return parsed
    raise ValidationError("url", mask_url(parsed), "only postgresql and sqlite are supported")


def libpq_conninfo(url: URL) -> str:
    """A libpq connection string for a PostgreSQL ``url``, for drivers other than psycopg (ADBC).

    In keyword form, each value quoted by psycopg, with the options psycopg gets: SQLAlchemy's
    URL rendering leaves a space in a password as it is, and libpq's URI parser refuses that
    with an error that quotes the password.
    """
    from psycopg.conninfo import make_conninfo

    options: dict[str, Any] = url.translate_connect_args(username="user", database="dbname")
    for key, value in url.query.items():
        options[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo("", **options)


def connect(
    url: str | URL | None = None,
    *,
    repository_ids: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    **engine_options: Any,
) -> Engine:
    """Create an engine for ``url`` (see :func:`resolve_url`); opens no connection.

    SQLite connections get foreign keys (for ON DELETE CASCADE), WAL and a busy timeout, and run
    real ``BEGIN`` statements so DDL is transactional and writers take the lock up front.
    PostgreSQL connections are checked before use, so a restarted server costs no error.

    ``repository_ids`` (PostgreSQL only) scopes the engine to those repositories: every
    transaction sets ``miyabi.repository_ids``, and the row-level security policies of revision
    ``0003_row_level_security`` then hide every other repository's executions, analytics and
    logs from reads, aggregates and raw SQL alike, and refuse writes into them. The role must not
    bypass row-level security (no superuser, no BYPASSRLS): the first connection checks that and
    that the database has the policies. SQLite has no row-level security, so a scope is refused
    there rather than silently not enforced.
    """
    resolved = resolve_url(url)
    scope = None if repository_ids is None else check_repository_ids(repository_ids)
    if scope is not None and resolved.get_backend_name() == Dialect.SQLITE:
        raise ValidationError(
            "repository_ids",
            list(scope),
            "tenant scoping needs PostgreSQL row-level security; SQLite has none "
            "(filter with read_summary(repository_id=...) instead)",
        )
    options: dict[str, Any] = {
        "json_serializer": strict_json_dumps,
        "json_deserializer": json_loads,
        "pool_pre_ping": True,
    }
    options.update(engine_options)
    engine = create_engine(resolved, **options)
    if resolved.get_backend_name() == Dialect.SQLITE:
        _configure_sqlite(engine)
    else:
        _configure_postgresql(engine)
        if scope is not None:
            install_scope(engine, scope)
    return engine


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once; a connection that finds it switched does nothing.

    Switching needs an exclusive lock, which SQLite may refuse at once (no busy wait) while
    another new connection is switching the same file: then that one has done the work.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise


def _ensure_math(connection: Any, cursor: Any) -> None:
    """Give SQLite ``ln`` and ``ceil`` (the rollups' duration buckets) if it was built without.

    Python's own, which compute the same doubles as the C library's.
    """
    try:
        cursor.execute("SELECT ln(1), ceil(1.5)").fetchone()
    except sqlite3.OperationalError:
        connection.create_function("ln", 1, _ln, deterministic=True)
        connection.create_function("ceil", 1, _ceil, deterministic=True)


def _ln(value: float | None) -> float | None:
    return None if value is None or value <= 0 else math.log(value)


def _ceil(value: float | None) -> float | None:
    return None if value is None else float(math.ceil(value))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            _ensure_math(dbapi_connection, cursor)
            if engine.url.database not in (None, "", ":memory:"):
                _use_wal(cursor)
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("miyabi_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Buckets and text renderings in UTC whatever the server's default zone is.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()
