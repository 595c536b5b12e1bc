"""Every status change recorded and announced, by the database, for every writer (revision 0010).

``agent_execution_transitions`` gets one row when an execution is inserted (``from_status``
NULL) and one per UPDATE that changes its ``status``, whoever the writer is (this package, the
Rust agents, psql). Each row holds the execution's ``quality_score`` and ``error_message`` at
that moment, and ``at``: the time the row itself gives for entering the status (``started_at``
for running, ``completed_at`` for completed and failed, ``created_at`` for pending, each after
revision 0008's stamps filled a missing one), so a history saved with past timestamps replays
at its own times and the running span equals the summary's duration.

On PostgreSQL the same triggers send ``pg_notify('miyabi_executions', payload)``, delivered
when the transaction commits and never when it rolls back. The payload is a small JSON object:
``transition`` (the row's id), ``txid`` (the writing transaction, see below), ``id``,
``repository_id``, ``agent_type``, ``from``, ``to`` and ``at`` (ISO 8601). An INSERT of more
than :data:`ANNOUNCED_ROWS` executions (a bulk load) is announced once, as ``{"txid", "count",
"first", "last"}`` (its rows' ids lie between ``first`` and ``last``): a watcher reads those
rows from the table. Building and queueing one payload per row cost a bulk ``COPY`` of 50,000
executions more than the rows themselves (benchmarks/bench_transitions.py).

``txid`` (PostgreSQL only: the 64-bit ``pg_current_xact_id()`` as ``bigint``, the
database's column as the write order is) lets a watcher that lost its connection catch up
exactly: a transition it has not seen belongs to a transaction that was still open at its
last snapshot, so its ``txid`` is at least that snapshot's ``xmin``
(:mod:`miyabi_analytics.live`). Ids come from a sequence, which concurrent transactions may
commit out of order, so an id cursor alone could skip a row.

Inserts are recorded by a statement-level trigger over the statement's new rows (one call for a
bulk insert of any size); status changes by a row-level trigger whose ``WHEN`` skips every
UPDATE that keeps the status (heartbeats, metrics). The functions are ``SECURITY DEFINER``,
with ``search_path`` pinned to the tables' schema and ``pg_temp`` last, so a writer that may
write executions (the agents' own role) needs no grant on the history table and cannot divert
it into a temporary table of its own.

Setting ``miyabi.restoring`` to ``on`` for a transaction (``SET LOCAL``) silences both: restore
puts archived history back itself. SQLite has no session settings: restore deletes the rows
its inserts made. SQLite fires a table's triggers newest first, so these run before revision
0008's stamps: ``at`` is computed here from the same ``now`` (constant within a statement).
"""

from __future__ import annotations

from typing import Final

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.defaults import now_sql
from miyabi_analytics._db.schema import TXID
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "CHANNEL",
    "HISTORY_TRIGGERS",
    "RESTORING",
    "TRANSITIONS",
    "TXID",
    "backfill_history_sql",
    "create_history_ddl",
    "drop_history_ddl",
]

EXECUTIONS: Final = "agent_executions"
TRANSITIONS: Final = "agent_execution_transitions"
CHANNEL: Final = "miyabi_executions"
RESTORING: Final = "miyabi.restoring"
ON_INSERT: Final = "miyabi_history_insert"
ON_UPDATE: Final = "miyabi_history_update"
HISTORY_TRIGGERS: Final = (ON_INSERT, ON_UPDATE)
PG_FUNCTIONS: Final = ("miyabi_record_inserts", "miyabi_record_move")

ANNOUNCED_ROWS: Final = 100
"""An INSERT of more rows than this is announced by one notification (PostgreSQL), see above."""
_COLUMNS: Final = "execution_id, from_status, to_status, at, quality_score, error_message"
_RUNNING: Final = ExecutionStatus.RUNNING.value
_FINISHED_SQL: Final = ", ".join(repr(s.value) for s in ExecutionStatus if s.is_terminal)
_AWAKE: Final = f"coalesce(current_setting('{RESTORING}', true), '') <> 'on'"


def at_sql(dialect: Dialect, row: str = "NEW") -> str:
    """When ``row`` entered its status, as revision 0008's stamps give it."""
    now = now_sql(dialect)
    if dialect.is_postgresql:
        end = f"coalesce({row}.completed_at, greatest({now}, {row}.started_at))"
    else:
        end = f"coalesce({row}.completed_at, max({now}, coalesce({row}.started_at, {now})))"
    return (
        f"CASE WHEN {row}.status = '{_RUNNING}' THEN coalesce({row}.started_at, {now}) "
        f"WHEN {row}.status IN ({_FINISHED_SQL}) THEN {end} "
        f"ELSE coalesce({row}.created_at, {now}) END"
    )


def _payload(t: str, e: str) -> str:
    """The notification's JSON text for transition row ``t`` of execution row ``e``."""
    return (
        f"json_build_object('transition', {t}.id, 'txid', {t}.{TXID}, 'id', {e}.id, "
        f"'repository_id', {e}.repository_id, 'agent_type', {e}.agent_type, "
        f"'from', {t}.from_status, 'to', {t}.to_status, 'at', {t}.at)::text"
    )


def create_history_ddl(dialect: Dialect) -> list[str]:
    """The triggers (and PostgreSQL functions) that record and announce every transition."""
    if dialect.is_postgresql:
        return _pg_ddl()
    return _sqlite_ddl()


def drop_history_ddl(dialect: Dialect) -> list[str]:
    """The statements that remove what :func:`create_history_ddl` made."""
    if dialect.is_postgresql:
        return [f"DROP TRIGGER IF EXISTS {t} ON {EXECUTIONS}" for t in HISTORY_TRIGGERS] + [
            f"DROP FUNCTION IF EXISTS {f}()" for f in PG_FUNCTIONS
        ]
    return [f"DROP TRIGGER IF EXISTS {t}" for t in HISTORY_TRIGGERS]


def backfill_history_sql(dialect: Dialect) -> str:
    """One transition per execution already stored: from nothing to its status, at its stamp.

    In the order the executions began, so ids follow time; nothing is announced.
    """
    at = at_sql(dialect, "e")
    return (
        f"INSERT INTO {TRANSITIONS} ({_COLUMNS}) "  # noqa: S608 (DDL from this module's constants)
        f"SELECT e.id, NULL, e.status, {at}, e.quality_score, e.error_message "
        f"FROM {EXECUTIONS} e ORDER BY coalesce(e.started_at, e.created_at), e.id"
    )


def _pg_ddl() -> list[str]:
    inserts, move = PG_FUNCTIONS
    at = at_sql(Dialect.POSTGRESQL, "n")
    definer = "SECURITY DEFINER"
    return [
        f"""CREATE FUNCTION {inserts}() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
DECLARE
    note text;
    added bigint;
    first_id bigint;
    last_id bigint;
BEGIN
    IF (SELECT count(*) FROM new_rows) <= {ANNOUNCED_ROWS} THEN
        FOR note IN
            WITH t AS (
                INSERT INTO {TRANSITIONS} ({_COLUMNS})
                SELECT n.id, NULL, n.status, {at}, n.quality_score, n.error_message
                FROM new_rows n
                RETURNING *
            )
            SELECT {_payload("t", "n")} FROM t JOIN new_rows n ON n.id = t.execution_id
            ORDER BY t.id
        LOOP
            PERFORM pg_notify('{CHANNEL}', note);
        END LOOP;
    ELSE
        WITH t AS (
            INSERT INTO {TRANSITIONS} ({_COLUMNS})
            SELECT n.id, NULL, n.status, {at}, n.quality_score, n.error_message FROM new_rows n
            RETURNING id
        )
        SELECT count(*), min(id), max(id) INTO added, first_id, last_id FROM t;
        PERFORM pg_notify('{CHANNEL}', json_build_object(
            'txid', pg_current_xact_id()::text::bigint, 'count', added,
            'first', first_id, 'last', last_id)::text);
    END IF;
    RETURN NULL;
END
$$""",  # noqa: S608 (DDL from this module's constants)
        f"""CREATE FUNCTION {move}() RETURNS trigger LANGUAGE plpgsql {definer} AS $$
DECLARE
    t {TRANSITIONS}%ROWTYPE;
BEGIN
    INSERT INTO {TRANSITIONS} ({_COLUMNS})
    VALUES (NEW.id, OLD.status, NEW.status, {at_sql(Dialect.POSTGRESQL)},
            NEW.quality_score, NEW.error_message)
    RETURNING * INTO t;
    PERFORM pg_notify('{CHANNEL}', {_payload("t", "NEW")});
    RETURN NULL;
END
$$""",  # noqa: S608 (DDL from this module's constants)
        # A definer's search_path is pinned to the tables' schema with pg_temp last: otherwise
        # a temporary table of the writer's named like the history would be searched first.
        f"""DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION {inserts}() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION {move}() SET search_path = %I, pg_temp', current_schema());
END $$""",
        f"CREATE TRIGGER {ON_INSERT} AFTER INSERT ON {EXECUTIONS} "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        f"WHEN ({_AWAKE}) EXECUTE FUNCTION {inserts}()",
        f"CREATE TRIGGER {ON_UPDATE} AFTER UPDATE OF status ON {EXECUTIONS} FOR EACH ROW "
        f"WHEN (OLD.status IS DISTINCT FROM NEW.status AND {_AWAKE}) "
        f"EXECUTE FUNCTION {move}()",
    ]


def _sqlite_ddl() -> list[str]:
    at = at_sql(Dialect.SQLITE)
    return [
        f"""CREATE TRIGGER {ON_INSERT} AFTER INSERT ON {EXECUTIONS} FOR EACH ROW
BEGIN
    INSERT INTO {TRANSITIONS} ({_COLUMNS})
    VALUES (NEW.id, NULL, NEW.status, {at}, NEW.quality_score, NEW.error_message);
END""",  # noqa: S608 (DDL from this module's constants)
        f"""CREATE TRIGGER {ON_UPDATE} AFTER UPDATE OF status ON {EXECUTIONS} FOR EACH ROW
WHEN OLD.status IS NOT NEW.status
BEGIN
    INSERT INTO {TRANSITIONS} ({_COLUMNS})
    VALUES (NEW.id, OLD.status, NEW.status, {at}, NEW.quality_score, NEW.error_message);
END""",  # noqa: S608 (DDL from this module's constants)
    ]
