"""The triggers on ``agent_executions``: the lifecycle guard, timestamp stamps, ``updated_at``.

Rules, the same for every writer and on both databases:

1. **Guard.** An UPDATE that changes ``status`` along a move the lifecycle forbids is refused
   (:mod:`.lifecycle`); the row is left exactly as it was. An INSERT is not a move (a restored
   or back-filled row may be in any state); an UPDATE that keeps the status is never refused.
   A new status outside the vocabulary is left to the CHECK constraint
   ``ck_agent_executions_status_known``, which names itself.
2. **Stamps.** A row entering ``running`` without ``started_at`` gets it now; entering
   ``completed`` or ``failed`` without ``completed_at`` gets that now (never before its
   ``started_at``). "Entering" is an INSERT in that status or an UPDATE that changes the status
   to it; a value the writer gives is kept.
3. **updated_at.** An UPDATE that changes a column of the record (any but ``updated_at`` and
   ``last_heartbeat_at``) and leaves ``updated_at`` as it was gets ``updated_at`` now. So a
   writer that sets ``updated_at`` itself (this package's store, the upstream writer's
   ``updated_at = NOW()``) keeps its value, a heartbeat is not an update of the record, and an
   UPDATE that only sets the metrics (``jsonb_set`` of ``result``) moves it.

"Now" is the transaction's start on PostgreSQL (``now()``, as the upstream ``DEFAULT NOW()``);
SQLite's clock, to the millisecond, in the stored text form (:mod:`.defaults`).

PostgreSQL changes the row in ``BEFORE`` triggers, fired in name order (guard, stamps, touch).
SQLite cannot change ``NEW``: its ``AFTER`` triggers update the row once more, by rowid. They
rely on SQLite's default ``recursive_triggers = OFF`` (a trigger does not fire itself); the
insert's stamp puts ``updated_at`` back after the update trigger touched it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.defaults import now_sql
from miyabi_analytics._db.rules.lifecycle import (
    GUARD,
    LIFECYCLE_SQLSTATE,
    MESSAGE,
    describe_moves,
    legal_move_sql,
)
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["PG_FUNCTIONS", "TRIGGERS", "create_rules_ddl", "drop_rules_ddl"]

TABLE: Final = "agent_executions"
STAMP_INSERT: Final = "miyabi_stamp_insert"
STAMP_UPDATE: Final = "miyabi_stamp_update"
TOUCH: Final = "miyabi_touch_updated_at"
TRIGGERS: Final = (GUARD, STAMP_INSERT, STAMP_UPDATE, TOUCH)
PG_FUNCTIONS: Final = ("miyabi_refuse_status_move", "miyabi_stamp_execution", "miyabi_touch")

_RUNNING: Final = ExecutionStatus.RUNNING.value
_FINISHED: Final = tuple(s.value for s in ExecutionStatus if s.is_terminal)
_FINISHED_SQL: Final = ", ".join(repr(s) for s in _FINISHED)
_CHANGED: Final = "OLD.status IS DISTINCT FROM NEW.status"
# A status outside the vocabulary is the CHECK constraint's to refuse, with its own name.
_KNOWN: Final = f"NEW.status IN ({', '.join(repr(s.value) for s in ExecutionStatus)})"


def _needs_start(row: str = "NEW") -> str:
    return f"({row}.status = '{_RUNNING}' AND {row}.started_at IS NULL)"


def _needs_end(row: str = "NEW") -> str:
    return f"({row}.status IN ({_FINISHED_SQL}) AND {row}.completed_at IS NULL)"


def _touch_sql(columns: Sequence[str], dialect: Dialect) -> str:
    """The writer left ``updated_at`` alone and changed one of ``columns``."""
    same = "IS NOT DISTINCT FROM" if dialect.is_postgresql else "IS"
    unchanged = " AND ".join(f"NEW.{c} {same} OLD.{c}" for c in columns)
    return f"(NEW.updated_at {same} OLD.updated_at AND NOT ({unchanged}))"


def create_rules_ddl(dialect: Dialect, record_columns: Sequence[str]) -> list[str]:
    """The statements that create the rules; ``record_columns`` as rule 3 counts them.

    The caller (a migration) passes the columns as they are at its revision, so the DDL does not
    change when the models do. Identifiers and values come from this module and the vocabulary.
    """
    if dialect.is_postgresql:
        return _pg_ddl(record_columns)
    return _sqlite_ddl(record_columns)


def drop_rules_ddl(dialect: Dialect) -> list[str]:
    """The statements that remove every trigger (and function) :func:`create_rules_ddl` made."""
    if dialect.is_postgresql:
        return [f"DROP TRIGGER IF EXISTS {t} ON {TABLE}" for t in TRIGGERS] + [
            f"DROP FUNCTION IF EXISTS {f}()" for f in PG_FUNCTIONS
        ]
    return [f"DROP TRIGGER IF EXISTS {t}" for t in TRIGGERS]


def _pg_ddl(columns: Sequence[str]) -> list[str]:
    refuse, stamp, touch = PG_FUNCTIONS
    now = now_sql(Dialect.POSTGRESQL)
    return [
        f"""CREATE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = '{LIFECYCLE_SQLSTATE}',
        MESSAGE = format('{MESSAGE}: execution %s cannot move from %L to %L',
                         OLD.id, OLD.status, NEW.status),
        DETAIL = 'legal moves: {describe_moves()}',
        CONSTRAINT = TG_NAME, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA, COLUMN = 'status';
END
$$""",
        f"""CREATE FUNCTION {stamp}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {_needs_start()} THEN
        NEW.started_at := {now};
    END IF;
    IF {_needs_end()} THEN
        NEW.completed_at := greatest({now}, NEW.started_at);
    END IF;
    RETURN NEW;
END
$$""",
        f"""CREATE FUNCTION {touch}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := {now};
    RETURN NEW;
END
$$""",
        # The WHEN clauses decide without calling the function: a legal move, a row with its
        # timestamps, or an UPDATE that sets updated_at costs no PL/pgSQL call.
        f"CREATE TRIGGER {GUARD} BEFORE UPDATE OF status ON {TABLE} FOR EACH ROW "
        f"WHEN ({_CHANGED} AND {_KNOWN} AND NOT {legal_move_sql()}) "
        f"EXECUTE FUNCTION {refuse}()",
        f"CREATE TRIGGER {STAMP_INSERT} BEFORE INSERT ON {TABLE} FOR EACH ROW "
        f"WHEN ({_needs_start()} OR {_needs_end()}) EXECUTE FUNCTION {stamp}()",
        f"CREATE TRIGGER {STAMP_UPDATE} BEFORE UPDATE OF status ON {TABLE} FOR EACH ROW "
        f"WHEN ({_CHANGED} AND ({_needs_start()} OR {_needs_end()})) "
        f"EXECUTE FUNCTION {stamp}()",
        f"CREATE TRIGGER {TOUCH} BEFORE UPDATE ON {TABLE} FOR EACH ROW "
        f"WHEN {_touch_sql(columns, Dialect.POSTGRESQL)} EXECUTE FUNCTION {touch}()",
    ]


def _sqlite_ddl(columns: Sequence[str]) -> list[str]:
    now = now_sql(Dialect.SQLITE)
    changed = "OLD.status IS NOT NEW.status"
    touch = _touch_sql(columns, Dialect.SQLITE)
    end_at = f"max({now}, coalesce(started_at, {now}))"
    return [
        f"CREATE TRIGGER {GUARD} BEFORE UPDATE OF status ON {TABLE} FOR EACH ROW "
        f"WHEN {changed} AND {_KNOWN} AND NOT {legal_move_sql()} "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}: legal moves are {describe_moves()}'); END",
        # Stamps and touch of an UPDATE in one statement, so neither fires the other.
        f"""CREATE TRIGGER {STAMP_UPDATE} AFTER UPDATE ON {TABLE} FOR EACH ROW
WHEN {touch} OR ({changed} AND ({_needs_start()} OR {_needs_end()}))
BEGIN
    UPDATE {TABLE} SET
        started_at = CASE WHEN {changed} AND {_needs_start()} THEN {now} ELSE started_at END,
        completed_at = CASE WHEN {changed} AND {_needs_end()} THEN {end_at}
                            ELSE completed_at END,
        updated_at = CASE WHEN {touch} THEN {now} ELSE updated_at END
    WHERE rowid = NEW.rowid;
END""",  # noqa: S608 (DDL from this module's constants)
        # The first UPDATE fires the update trigger above, which touches updated_at (a stamp
        # changed the record): the second puts back the value the row was inserted with.
        f"""CREATE TRIGGER {STAMP_INSERT} AFTER INSERT ON {TABLE} FOR EACH ROW
WHEN {_needs_start()} OR {_needs_end()}
BEGIN
    UPDATE {TABLE} SET
        started_at = CASE WHEN {_needs_start()} THEN {now} ELSE started_at END,
        completed_at = CASE WHEN {_needs_end()} THEN {end_at} ELSE completed_at END
    WHERE rowid = NEW.rowid;
    UPDATE {TABLE} SET updated_at = NEW.updated_at WHERE rowid = NEW.rowid;
END""",  # noqa: S608 (DDL from this module's constants)
    ]
