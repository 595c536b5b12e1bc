"""Repository scope: tenant isolation through PostgreSQL row-level security.

Revision ``0003_row_level_security`` puts a policy on the three tables that keeps the rows whose
repository (for analytics and logs: whose execution's repository) is listed in the session
setting ``miyabi.repository_ids`` (comma-separated uuids). Unset or empty, the policy keeps
every row, so unscoped engines and the table owner work as before.

``connect(url, repository_ids=[...])`` returns an engine that sets the setting with
``set_config(..., true)`` (transaction-local, bound value) at the start of every transaction.
In autocommit mode a transaction-local value would not outlive the statement that sets it, so
there it is set for the session, and the connection's setting is ``RESET`` (back to the role's or
database's default, which may itself be a scope) before it goes back to the pool: nothing of a
scope lingers on a pooled connection. The ids are exact ``uuid.UUID`` objects (or text parsed
into one), written out from their 128 bits: a subclass could render itself as anything, "" (the
empty setting, which the policies read as unscoped) included.
Everything else that talks to the database on its own (the ADBC fast path) asks the engine for
its scope with :func:`session_scope` and applies it to its own connection.

The setting is chosen by the client: it keeps trusted code (a service, a notebook helper) from
reading or writing another tenant's rows by mistake. It is not a boundary against someone who
can run arbitrary SQL on the connection: they can set it to anything (see the README).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Boolean, Connection, Engine, String, bindparam, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolResetState

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.tx import begin
from miyabi_analytics.errors import SchemaError, ValidationError

__all__ = [
    "SCOPE_SETTING",
    "check_repository_ids",
    "install_scope",
    "is_row_security_violation",
    "out_of_scope",
    "parse_scope",
    "reset_session_scope",
    "scope_errors",
    "scope_text",
    "session_scope",
]

SCOPE_SETTING: Final = "miyabi.repository_ids"
_RESET_SQL: Final = "RESET miyabi.repository_ids"
_SESSION_SCOPED: Final = "miyabi_session_scoped"  # pool record info: set for the session
_CHECKED: Final = "miyabi_scope_checked"
_RLS_SQLSTATE: Final = "42501"  # insufficient_privilege, also raised by a failed policy check
_UNIQUE_SQLSTATE: Final = "23505"  # unique_violation
_EXECUTIONS_PK: Final = executions.primary_key.name

# One round trip per new pool connection: a scope the server would silently not apply
# (a role that bypasses RLS, a database not migrated to it yet) is refused instead.
_CHECK_SQL: Final = (
    "SELECT r.rolsuper OR r.rolbypassrls, c.oid IS NOT NULL, "
    "coalesce(c.relrowsecurity AND c.relforcerowsecurity, false) "
    "FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('agent_executions') "
    "WHERE r.rolname = current_user"
)

_set_scope = select(
    func.set_config(
        bindparam("name", SCOPE_SETTING, type_=String()),
        bindparam("value", type_=String()),
        bindparam("local", type_=Boolean()),
    )
)


def check_repository_ids(value: object) -> tuple[uuid.UUID, ...]:
    """One repository id or an iterable of them, deduplicated and sorted; never empty.

    An empty scope is refused rather than read as "no repository": the database reads an empty
    setting as unscoped (every row), and that must never happen by accident. Each id is an exact
    ``uuid.UUID`` or text parsed into one (see :func:`_exact_uuid`).
    """
    if isinstance(value, str | uuid.UUID):
        items: list[object] = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ValidationError("repository_ids", value, "expected a UUID or an iterable of UUIDs")
    ids = sorted({_exact_uuid(item) for item in items})
    if not ids:
        raise ValidationError(
            "repository_ids", value, "a scope needs at least one repository id"
        )
    return tuple(ids)


def _exact_uuid(item: object) -> uuid.UUID:
    """A plain ``uuid.UUID`` with the bits of ``item``: a UUID (exactly) or its text.

    A subclass is refused, not converted: its ``__str__``, ``hex`` or ``int`` may say something
    else than what its owner thinks it holds, and the scope is written out as text.
    """
    if type(item) is uuid.UUID:
        return uuid.UUID(int=item.int)
    if isinstance(item, uuid.UUID):
        raise ValidationError(
            "repository_ids",
            f"<{type(item).__qualname__} instance>",
            "expected a uuid.UUID or its text, not a subclass of uuid.UUID",
        )
    if isinstance(item, str):
        try:
            return uuid.UUID(str.__str__(item))  # the characters, whatever a subclass overrides
        except ValueError:
            pass
    raise ValidationError("repository_ids", item, "expected a UUID")


def scope_text(repository_ids: Iterable[uuid.UUID]) -> str:
    """The ``miyabi.repository_ids`` value of a scope: canonical uuids from their 128 bits."""
    parts = []
    for repository_id in repository_ids:
        digits = f"{_exact_uuid(repository_id).int:032x}"
        parts.append(
            f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        )
    if not parts:
        raise ValidationError("repository_ids", [], "a scope needs at least one repository id")
    return ",".join(parts)


def parse_scope(text: str | None) -> frozenset[uuid.UUID] | None:
    """The repositories of a ``miyabi.repository_ids`` value; ``None`` when unscoped."""
    if not text:
        return None
    return frozenset(uuid.UUID(part) for part in text.split(","))


def install_scope(engine: Engine, repository_ids: Sequence[uuid.UUID]) -> None:
    """Make every transaction of ``engine`` (a PostgreSQL one) see only ``repository_ids``."""
    value = scope_text(repository_ids)

    @event.listens_for(engine, "connect")
    def _check_connection(dbapi_connection: Any, record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_CHECK_SQL)
            row = cursor.fetchone()
        dbapi_connection.rollback()
        problem: Exception | None = None
        if row is None or row[0]:
            problem = ValidationError(
                "repository_ids",
                list(repository_ids),
                "this database role bypasses row-level security (a superuser or BYPASSRLS), "
                "so the scope would not apply; connect as a role without it",
            )
        elif row[1] and not row[2]:
            problem = SchemaError(
                "agent_executions has no row-level security, so repository_ids would not "
                "apply: migrate the database to head (revision 0003_row_level_security) with "
                "an unscoped engine first"
            )
        if problem is not None:
            dbapi_connection.close()  # refused: nothing may run on this connection
            raise problem

    @event.listens_for(engine, "begin")
    def _scope_transaction(conn: Connection) -> None:
        # Transaction-local, so nothing outlives the transaction on a pooled connection. In
        # autocommit mode a transaction-local value would vanish after this very statement, so
        # there it is set for the session: every connection of this engine carries this scope.
        autocommit = bool(getattr(conn.connection.dbapi_connection, "autocommit", False))
        if autocommit:
            conn.connection.info[_SESSION_SCOPED] = True  # before: a failed set may have set it
        conn.execute(_set_scope, {"value": value, "local": not autocommit}).close()

    @event.listens_for(engine, "reset")
    def _reset_scope(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        # Before the pool's rollback, on every return of a connection to the pool. Raising here
        # makes the pool log the error and close the connection instead of pooling it.
        if record.info.pop(_SESSION_SCOPED, False) and not state.terminate_only:
            reset_session_scope(dbapi_connection)

    @event.listens_for(engine, "begin_twophase")
    def _refuse_twophase(conn: Connection, xid: Any) -> None:
        raise ValidationError(
            "repository_ids", list(repository_ids), "two-phase transactions are not scoped"
        )


def reset_session_scope(dbapi_connection: Any) -> None:
    """``RESET miyabi.repository_ids`` on a psycopg connection in any state, and keep it.

    An open or failed transaction is rolled back first (a failed one refuses every statement).
    The setting goes back to the session's default (the role's or database's ``ALTER ... SET``),
    not to "", which the policies would read as unscoped.
    """
    autocommit = bool(dbapi_connection.autocommit)
    if not autocommit:
        dbapi_connection.rollback()
    with dbapi_connection.cursor() as cursor:
        cursor.execute(_RESET_SQL)
    if not autocommit:
        dbapi_connection.commit()


def session_scope(bind: Engine | Connection) -> str | None:
    """The ``miyabi.repository_ids`` a transaction on ``bind`` runs with (``None``: unscoped).

    Asked of the database rather than remembered beside the engine, so whatever sets the scope
    (this module's hook, a caller's own listener) is honoured the same way by every read path.
    """
    if not Dialect.of(bind).is_postgresql:
        return None
    with begin(bind) as conn:
        text = conn.execute(select(func.current_setting(SCOPE_SETTING, True))).scalar()
    return text or None


def is_row_security_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL refusing a row by a row-level security policy."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) == _RLS_SQLSTATE and "row-level security" in str(orig)


def out_of_scope(
    bind: Engine | Connection, records: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> ValidationError:
    """The error for writes (``(id, repository_id)`` pairs) a row-level security policy refused.

    Names the first repository outside the scope; if every one is inside, an execution with
    one of these ids is stored in a repository outside it.
    """
    pairs = list(records)
    scope = parse_scope(session_scope(bind))
    shown = "none" if scope is None else ", ".join(sorted(str(i) for i in scope))
    for _, repository_id in pairs:
        if scope is not None and repository_id not in scope:
            return ValidationError(
                "repository_id",
                repository_id,
                f"outside the repositories this engine is scoped to ({shown})",
            )
    execution_id, repository_id = pairs[0]
    return ValidationError(
        "repository_id",
        repository_id,
        f"execution {execution_id}{' (or another of this batch)' if len(pairs) > 1 else ''} "
        f"is stored in a repository outside the ones this engine is scoped to ({shown})",
    )


def _is_duplicate_execution_id(exc: DBAPIError) -> bool:
    """Whether ``exc`` is ``agent_executions``' primary key refusing an id already stored."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    return (
        getattr(orig, "sqlstate", None) == _UNIQUE_SQLSTATE
        and getattr(diag, "constraint_name", None) == _EXECUTIONS_PK
    )


@contextmanager
def _rolled_back(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction on ``bind`` (a savepoint inside the caller's), always rolled back."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            transaction = conn.begin()
            try:
                yield conn
            finally:
                transaction.rollback()
        return
    nested = bind.begin_nested() if bind.in_transaction() else bind.begin()
    try:
        yield bind
    finally:
        nested.rollback()


def _stored_out_of_scope(
    bind: Engine | Connection, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The pairs whose execution id is stored in a row the scope of ``bind`` hides.

    PostgreSQL leaves the key out of a duplicate-key error on a table under row-level security,
    so the ids are tried again: placeholder rows with them, ``ON CONFLICT DO NOTHING`` (which a
    hidden row still conflicts with, without a policy error), in a transaction that is rolled
    back. Every pair's repository must be inside the scope (the policy checks the placeholders).
    """
    now = datetime.now(UTC)
    rows = [
        {
            "id": execution_id,
            "repository_id": repository_id,
            "agent_type": "",
            "status": "pending",
            "created_at": now,
            "updated_at": now,
        }
        for execution_id, repository_id in dict(pairs).items()
    ]
    probe = pg_insert(executions).on_conflict_do_nothing(index_elements=[executions.c.id])
    with _rolled_back(bind) as conn:
        inserted = set(conn.execute(probe.returning(executions.c.id), rows).scalars())
        taken = [row["id"] for row in rows if row["id"] not in inserted]
        if not taken:
            return []
        visible = set(
            conn.execute(select(executions.c.id).where(executions.c.id.in_(taken))).scalars()
        )
    hidden = set(taken) - visible
    return [pair for pair in pairs if pair[0] in hidden]


@contextmanager
def scope_errors(
    bind: Engine | Connection, records: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> Iterator[None]:
    """Turn a write refused by row-level security into :func:`out_of_scope`'s ValidationError.

    Two refusals are translated: a policy check failing (a repository outside the scope), and,
    on a scoped engine, the primary key of ``agent_executions`` refusing an id stored in a
    repository outside the scope (a bulk insert cannot see that row, so it tries to insert it).
    A duplicate id the scope can see was inserted by a concurrent writer: re-raised as it is,
    for the caller to retry. ``records`` is read only when a write failed.

    Enter it outside the write's transaction, so that is rolled back before the scope is read.
    """
    try:
        yield
    except DBAPIError as exc:
        if is_row_security_violation(exc):
            raise out_of_scope(bind, records) from exc
        if not Dialect.of(bind).is_postgresql or not _is_duplicate_execution_id(exc):
            raise
        scope = parse_scope(session_scope(bind))
        if scope is None:
            raise  # unscoped: every row is visible, so this is a concurrent writer's id
        pairs = list(records)
        if any(repository_id not in scope for _, repository_id in pairs):
            raise out_of_scope(bind, pairs) from exc  # names that repository
        hidden = _stored_out_of_scope(bind, pairs)
        if not hidden:
            raise
        raise out_of_scope(bind, hidden) from exc
