"""What the store's modules share: the clock, refusals of stored values, lookups by id.

The clock is read as ``_shared.now()`` everywhere, so a test that freezes it patches one name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from miyabi_analytics._db.references import Written, references_found
from miyabi_analytics._db.rules import RefusedMove, refused_move
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.scope import scope_errors
from miyabi_analytics._db.tx import begin
from miyabi_analytics._validate import as_json
from miyabi_analytics.errors import InvalidStatusTransition, MiyabiError, ValidationError
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "belongs_to", "json_mapping", "moves_refused", "now", "refusals", "storable", "stored",
]



def now() -> datetime:
    """The time every row written by one store call is stamped with."""
    return datetime.now(UTC)


@contextmanager
def storable(field: str, value: object, *, data_errors: bool = True) -> Iterator[None]:
    """A value the serializer (with ``data_errors``: or the database) refuses: ValidationError.

    A backstop: records are checked again right before writing (their ``result`` documents
    too, see ``validate_record``), so only what that check cannot see gets here; the strict
    JSON serializer, a column type or the database refuses it, and the transaction around it
    is rolled back, so nothing is kept. A bulk batch reports the
    database's DataError this way too, as it cannot name the row; a single save leaves it as
    it is, with the row in its message.
    """
    refused = (ValueError, DataError) if data_errors else (ValueError,)
    try:
        yield
    except MiyabiError:
        raise  # already says what is wrong (a ValidationError is a ValueError too)
    except refused as exc:
        raise ValidationError(field, value, f"a value cannot be stored: {exc}") from exc
    except StatementError as exc:  # a bind processor's ValueError, wrapped by SQLAlchemy
        if isinstance(exc, DBAPIError) or not isinstance(exc.orig, ValueError):
            raise
        raise ValidationError(field, value, f"a value cannot be stored: {exc.orig}") from exc


@contextmanager
def refusals(
    bind: Engine | Connection,
    records: Iterable[tuple[uuid.UUID, uuid.UUID]],
    field: str,
    value: object,
    *,
    data_errors: bool = True,
    moves: Iterable[tuple[uuid.UUID, str]] = (),
    written: Written | None = None,
) -> Iterator[None]:
    """A write's refusals as ValidationErrors: row-level security first, then stored values.

    ``records`` are the ``(execution id, repository id)`` pairs written, read only on a
    failure; see ``scope_errors`` and :func:`storable`; ``moves`` see :func:`moves_refused`;
    ``written`` see :func:`references_found` (a foreign key's refusal becomes NotFound).
    Entered around each attempt of a write, outside its transaction (``write``'s ``errors``).
    """
    with (
        references_found(bind, written or (lambda name: ())),
        moves_refused(bind, moves),
        scope_errors(bind, records),
        storable(field, value, data_errors=data_errors),
    ):
        yield


@contextmanager
def moves_refused(
    bind: Engine | Connection, moves: Iterable[tuple[uuid.UUID, str]]
) -> Iterator[None]:
    """The database's lifecycle guard refusing a move, as :class:`InvalidStatusTransition`.

    The store checks every move first; this is for a write that reached the trigger anyway (a
    check bypassed, a row changed by another writer in between). ``moves`` are the ``(id,
    requested status)`` pairs written, read only on a refusal: PostgreSQL names the row and
    both statuses, SQLite names none, so the stored statuses are read to find the refused one.
    Entered outside the write's transaction, so that is rolled back before anything is read.
    """
    try:
        yield
    except DBAPIError as exc:
        move = refused_move(exc)
        if move is None:
            raise
        raise _transition(bind, move, moves) from exc


def _transition(
    bind: Engine | Connection, move: RefusedMove, moves: Iterable[tuple[uuid.UUID, str]]
) -> InvalidStatusTransition:
    if move.execution_id is not None and move.current is not None and move.requested:
        try:
            key: object = uuid.UUID(move.execution_id)
        except ValueError:
            key = move.execution_id
        return InvalidStatusTransition(key, move.current, move.requested)
    wanted = dict(moves)
    with begin(bind) as conn:
        rows = conn.execute(
            select(executions.c.id, executions.c.status).where(executions.c.id.in_(wanted))
        ).all()
    for row in rows:
        if not ExecutionStatus(row.status).can_transition_to(wanted[row.id]):
            return InvalidStatusTransition(row.id, row.status, wanted[row.id])
    # Not found again (changed meanwhile): say what was asked, without the stored status.
    first = next(iter(wanted.items()), ("?", "?"))
    return InvalidStatusTransition(first[0], "?", first[1])


def belongs_to(agent_type: str, execution_id: uuid.UUID, owner: str) -> ValidationError:
    """The refusal of a write naming one agent for another agent's execution."""
    return ValidationError("agent_type", agent_type, f"execution {execution_id} belongs to {owner}")


def stored(conn: Connection, table: Table, row_id: uuid.UUID) -> bool:
    """Whether ``table`` holds a row with this id (a retry's check for a lost commit)."""
    return conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is not None


def json_mapping(field: str, value: object) -> Any:
    """``value`` as a JSON document that must be a mapping (a log line's ``metadata``)."""
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, "expected a mapping")
    return as_json(field, value)
