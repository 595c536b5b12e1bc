"""Putting a row back as it was: undoing the stamps an INSERT gave a restored execution.

An INSERT is not a move, but one in ``running`` without ``started_at`` (or finished without
``completed_at``) is stamped (:mod:`.triggers`, rule 2). A row restored from an archive must
come back exactly as it was archived, missing timestamps included, so the restore clears the
stamps again. Two UPDATEs, neither a move nor a change the ``updated_at`` rule would stamp:
the first clears the timestamps and sets ``updated_at`` to a value other than the stored one
(so the writer "set it"); the second puts the archived ``updated_at`` back (only it changes).

The history is put back as it was too, not recorded anew (:mod:`.history`): on PostgreSQL the
restoring transaction turns the history triggers off for itself (``miyabi.restoring``: nothing
recorded, nothing announced; a watcher saw these transitions when they happened), on SQLite it
deletes the transitions its inserts recorded. Then the archived rows go in with their ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, bindparam, case, delete, func, select, update

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.history import RESTORING, TRANSITIONS
from miyabi_analytics._db.schema import executions, transitions
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "advance_history_ids",
    "forget_recorded",
    "silence_history",
    "stamped_by_insert",
    "stored_transitions",
    "unstamp",
]

_RUNNING: Final = ExecutionStatus.RUNNING.value
_FINISHED: Final = frozenset(s.value for s in ExecutionStatus if s.is_terminal)

_CLEAR: Final = (
    update(executions)
    .where(executions.c.id == bindparam("key"))
    .values(
        started_at=bindparam("was_started"),
        completed_at=bindparam("was_completed"),
        updated_at=bindparam("other_time"),
    )
)
_PUT_BACK: Final = (
    update(executions)
    .where(executions.c.id == bindparam("key"))
    .values(updated_at=bindparam("was_updated"))
)


def stamped_by_insert(row: Mapping[str, Any]) -> bool:
    """Whether inserting this execution row has the database fill in a timestamp."""
    status = row.get("status")
    if status == _RUNNING:
        return row.get("started_at") is None
    return status in _FINISHED and row.get("completed_at") is None


def unstamp(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Clear the stamps of just-inserted execution ``rows`` (values as inserted); how many."""
    chosen = [row for row in rows if stamped_by_insert(row)]
    if not chosen:
        return 0
    clear, put_back = [], []
    for row in chosen:
        updated = row.get("updated_at")
        other = (updated or datetime.now(UTC)) + timedelta(microseconds=1)
        clear.append({
            "key": row["id"],
            "was_started": row.get("started_at"),
            "was_completed": row.get("completed_at"),
            "other_time": other,
        })
        put_back.append({"key": row["id"], "was_updated": updated})
    conn.execute(_CLEAR, clear)
    conn.execute(_PUT_BACK, put_back)
    return len(chosen)


def silence_history(conn: Connection) -> None:
    """PostgreSQL: no history recorded nor announced for the rest of this transaction."""
    if Dialect.of(conn).is_postgresql:
        conn.execute(select(func.set_config(RESTORING, "on", True)))


def forget_recorded(conn: Connection, execution_ids: Sequence[Any]) -> None:
    """SQLite: delete the transitions that inserting these executions just recorded."""
    if execution_ids and not Dialect.of(conn).is_postgresql:
        conn.execute(delete(transitions).where(transitions.c.execution_id.in_(execution_ids)))


def stored_transitions(conn: Connection, ids: Sequence[int]) -> list[tuple[int, Any]]:
    """Which of these transition ids the table already holds (id, execution id)."""
    if not ids:
        return []
    stmt = select(transitions.c.id, transitions.c.execution_id).where(transitions.c.id.in_(ids))
    return [(row[0], row[1]) for row in conn.execute(stmt.order_by(transitions.c.id))]


def advance_history_ids(conn: Connection, top: int) -> None:
    """PostgreSQL: move the identity sequence past ``top`` if it is behind it.

    Only an archive of another database can be ahead of the sequence; otherwise it is left
    as it is, but for the one value read to know. SQLite's ``AUTOINCREMENT`` follows explicit
    ids by itself.
    """
    if not Dialect.of(conn).is_postgresql:
        return
    sequence = func.pg_get_serial_sequence(TRANSITIONS, "id")
    conn.execute(select(case((func.nextval(sequence) < top, func.setval(sequence, top)))))
