"""Metrics written into ``result -> 'analysis_metrics'`` become analytics rows (revision 0009).

Upstream Miyabi's writer saves an execution's metrics with ``UPDATE agent_executions SET result
= jsonb_set(COALESCE(result, '{}'), '{analysis_metrics}', $2) WHERE id = $1``, not as an
analytics row: the summary and the aggregates would never see them. So the database turns
every such write, by any writer, into the row ``save_analysis_metrics`` would have stored:

- **When.** After an INSERT of an execution whose ``result -> 'analysis_metrics'`` is a JSON
  object, and after an UPDATE of ``result`` that makes it an object different from the old one
  (re-saving the same document, as upstream's ``update_execution`` does, adds nothing; erasing
  it removes nothing: a saved metrics row stays saved).
- **What.** One ``business_agent_analytics`` row: the execution's id and agent type, the object
  as ``metrics``, each typed column (:data:`~miyabi_analytics.vocabulary.METRIC_COLUMNS`) from
  its key when the value keeps the column's rule (integers only, no booleans, within range;
  rates rounded half away from zero to cents and within ``numeric(p, 2)``, the float first, as
  :func:`~miyabi_analytics.metrics.validate_metrics` does), else NULL (the value stays in the
  JSON only; a bad value never fails the writer's statement), ``created_at`` the execution's
  final ``updated_at`` (the JSON's write time), and :data:`FROM_RESULT` true.
- **Later write wins.** The summary's latest analytics row is the latest ``created_at``, then
  the write order: a JSON write after a ``save_analysis_metrics`` has a later ``updated_at``,
  and the other way round the saved row's ``created_at`` is later.

:data:`FROM_RESULT` marks the rows made here, so the downgrade deletes exactly those. The upgrade
materialises the documents already stored once, with an INSERT only (no UPDATE of an execution,
which would move its ``updated_at``).

SQLite fires a table's triggers newest first, so this one runs before revision 0008's
``updated_at`` touch: it computes the touched value itself (the same ``now``: SQLite holds the
time constant within one statement). PostgreSQL's ``AFTER`` trigger sees the final row.
"""

from __future__ import annotations

from typing import Final

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules.defaults import now_sql
from miyabi_analytics._db.schema import FROM_RESULT
from miyabi_analytics.vocabulary import METRIC_COLUMNS, IntColumn, RateColumn

__all__ = [
    "FROM_RESULT",
    "MATERIALISE_TRIGGERS",
    "add_marker_ddl",
    "backfill_sql",
    "create_materialise_ddl",
    "delete_materialised_sql",
    "drop_marker_ddl",
    "drop_materialise_ddl",
]

EXECUTIONS: Final = "agent_executions"
ANALYTICS: Final = "business_agent_analytics"
KEY: Final = "analysis_metrics"
ON_INSERT: Final = "miyabi_metrics_from_result_insert"
ON_UPDATE: Final = "miyabi_metrics_from_result_update"
MATERIALISE_TRIGGERS: Final = (ON_INSERT, ON_UPDATE)
PG_FUNCTION: Final = "miyabi_metrics_from_result"

_TYPED: Final = tuple(METRIC_COLUMNS)
_INSERTED: Final = ("execution_id", "agent_type", "metrics", *_TYPED, "created_at", FROM_RESULT)


def _pg_document(row: str) -> str:
    return f"({row}.result -> '{KEY}')"


def _sqlite_document(row: str) -> str:
    """The metrics object's JSON text; NULL when ``result`` is no valid JSON (never an error)."""
    return f"(CASE WHEN json_valid({row}.result) THEN json_extract({row}.result, '$.{KEY}') END)"


def _sqlite_is_object(row: str) -> str:
    """The type of the metrics value, or NULL; a text search for the key before any parse.

    SQLite evaluates a trigger's WHEN for every row written: parsing every document of the
    store's bulk writes would cost more than finding the key absent (a key spelled with
    escapes is not seen).
    """
    return (
        f"(CASE WHEN instr({row}.result, '\"{KEY}\"') > 0 AND json_valid({row}.result) "
        f"THEN json_type({row}.result, '$.{KEY}') END)"
    )


def _pg_typed(row: str, name: str, spec: IntColumn | RateColumn) -> str:
    """Key ``name`` of the metrics as its column's value, or NULL if it breaks the rule.

    Nested CASEs: PostgreSQL may evaluate an AND's operands in any order, a CASE's in order,
    and no cast below runs on a value it could fail on.
    """
    value = f"({_pg_document(row)} -> '{name}')"
    text = f"({value} #>> '{{}}')"
    if isinstance(spec, IntColumn):
        # jsonb prints a number without exponent; an integer is digits only (1.0 is not one).
        inner = (
            f"CASE WHEN {text} ~ '^-?[0-9]+$' AND CAST({text} AS numeric) "
            f"BETWEEN {spec.low} AND {spec.high} THEN CAST({text} AS bigint) END"
        )
    else:
        # The number as the float Python reads, in its shortest text (extra_float_digits = 1),
        # rounded half away from zero to cents: Decimal(repr(float)).quantize(ROUND_HALF_UP).
        cents = f"round(CAST(CAST(CAST({text} AS float8) AS text) AS numeric), 2)"
        inner = (
            f"CASE WHEN abs(CAST({text} AS numeric)) <= {spec.bound + 1} THEN "
            f"CASE WHEN abs({cents}) <= {spec.bound} THEN {cents} END END"
        )
    return f"CASE WHEN jsonb_typeof({value}) = 'number' THEN {inner} END"


def _sqlite_typed(row: str, name: str, spec: IntColumn | RateColumn) -> str:
    """Key ``name`` of the metrics as its column's value, or NULL if it breaks the rule."""
    path = f"'$.{KEY}.{name}'"
    kind = f"CASE WHEN json_valid({row}.result) THEN json_type({row}.result, {path}) END"
    value = f"json_extract({row}.result, {path})"
    if isinstance(spec, IntColumn):
        # An integer literal beyond 64 bits reads as a REAL: typeof() tells it apart.
        return (
            f"CASE WHEN ({kind}) = 'integer' AND typeof({value}) = 'integer' "
            f"AND {value} BETWEEN {spec.low} AND {spec.high} THEN {value} END"
        )
    # SQLite's round() rounds the shortest decimal text half away from zero, as Python's path.
    return (
        f"CASE WHEN ({kind}) IN ('integer', 'real') AND abs({value}) <= {spec.bound + 1} "
        f"AND abs(round({value}, 2)) <= {spec.bound} THEN round({value}, 2) END"
    )


def _values(dialect: Dialect, row: str, created_at: str) -> list[str]:
    """The values of :data:`_INSERTED` for execution ``row``."""
    if dialect.is_postgresql:
        typed = [_pg_typed(row, n, s) for n, s in METRIC_COLUMNS.items()]
        document, true = _pg_document(row), "true"
    else:
        typed = [_sqlite_typed(row, n, s) for n, s in METRIC_COLUMNS.items()]
        document, true = _sqlite_document(row), "1"
    return [f"{row}.id", f"{row}.agent_type", document, *typed, created_at, true]


def _insert(dialect: Dialect, row: str, created_at: str) -> str:
    values = ",\n        ".join(_values(dialect, row, created_at))
    return f"INSERT INTO {ANALYTICS} ({', '.join(_INSERTED)})\n    SELECT {values}"


def _is_object(dialect: Dialect, row: str) -> str:
    if dialect.is_postgresql:
        return f"jsonb_typeof({_pg_document(row)}) = 'object'"
    return f"{_sqlite_is_object(row)} = 'object'"


def _changed(dialect: Dialect) -> str:
    if dialect.is_postgresql:
        return f"{_pg_document('OLD')} IS DISTINCT FROM {_pg_document('NEW')}"
    return f"{_sqlite_document('OLD')} IS NOT {_sqlite_document('NEW')}"


def create_materialise_ddl(dialect: Dialect) -> list[str]:
    """The trigger(s) (and PostgreSQL's function) that materialise metrics written as JSON."""
    if dialect.is_postgresql:
        return _pg_ddl()
    return _sqlite_ddl()


def drop_materialise_ddl(dialect: Dialect) -> list[str]:
    """What removes everything :func:`create_materialise_ddl` made."""
    if dialect.is_postgresql:
        return [f"DROP TRIGGER IF EXISTS {t} ON {EXECUTIONS}" for t in MATERIALISE_TRIGGERS] + [
            f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()"
        ]
    return [f"DROP TRIGGER IF EXISTS {t}" for t in MATERIALISE_TRIGGERS]


def _pg_ddl() -> list[str]:
    # An upstream database may hold executions with a NULL updated_at: then the write's time.
    created = f"coalesce(NEW.updated_at, {now_sql(Dialect.POSTGRESQL)})"
    return [
        f"""CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql
SET extra_float_digits = 1 AS $$
BEGIN
    {_insert(Dialect.POSTGRESQL, "NEW", created)};
    RETURN NULL;
END
$$""",
        # AFTER: NEW is the row as stored, its updated_at set by every BEFORE trigger (ours of
        # 0008, upstream's update_agent_executions_updated_at).
        f"CREATE TRIGGER {ON_INSERT} AFTER INSERT ON {EXECUTIONS} FOR EACH ROW "
        f"WHEN ({_is_object(Dialect.POSTGRESQL, 'NEW')}) EXECUTE FUNCTION {PG_FUNCTION}()",
        f"CREATE TRIGGER {ON_UPDATE} AFTER UPDATE OF result ON {EXECUTIONS} FOR EACH ROW "
        f"WHEN ({_is_object(Dialect.POSTGRESQL, 'NEW')} AND {_changed(Dialect.POSTGRESQL)}) "
        f"EXECUTE FUNCTION {PG_FUNCTION}()",
    ]


def _sqlite_ddl() -> list[str]:
    now = now_sql(Dialect.SQLITE)
    sqlite = Dialect.SQLITE
    # The insert stamp (0008) puts updated_at back as inserted. An UPDATE that changed the
    # metrics changed the record, so 0008's touch sets updated_at to now unless the writer did.
    touched = f"CASE WHEN NEW.updated_at IS OLD.updated_at THEN {now} ELSE NEW.updated_at END"
    return [
        f"""CREATE TRIGGER {ON_INSERT} AFTER INSERT ON {EXECUTIONS} FOR EACH ROW
WHEN {_is_object(sqlite, "NEW")}
BEGIN
    {_insert(sqlite, "NEW", "NEW.updated_at")};
END""",
        f"""CREATE TRIGGER {ON_UPDATE} AFTER UPDATE OF result ON {EXECUTIONS} FOR EACH ROW
WHEN {_is_object(sqlite, "NEW")} AND {_changed(sqlite)}
BEGIN
    {_insert(sqlite, "NEW", touched)};
END""",
    ]


def backfill_sql(dialect: Dialect) -> str:
    """The documents already stored, materialised: one row each, at the execution's ``updated_at``.

    An INSERT only: no execution row is touched (upstream's trigger would move ``updated_at``).
    """
    pg = dialect.is_postgresql
    created = "coalesce(e.updated_at, e.created_at, now())" if pg else "e.updated_at"
    insert = _insert(dialect, "e", created)
    return f"{insert}\n    FROM {EXECUTIONS} AS e WHERE {_is_object(dialect, 'e')}"


def delete_materialised_sql() -> str:
    """Delete exactly the rows materialised from JSON (the downgrade)."""
    return f"DELETE FROM {ANALYTICS} WHERE {FROM_RESULT}"  # noqa: S608 (constants only)


def add_marker_ddl(dialect: Dialect) -> str:
    """The :data:`FROM_RESULT` column (a catalog change on PostgreSQL: constant default)."""
    pg = dialect.is_postgresql
    kind = "boolean NOT NULL DEFAULT false" if pg else "BOOLEAN NOT NULL DEFAULT 0"
    return f"ALTER TABLE {ANALYTICS} ADD COLUMN {FROM_RESULT} {kind}"


def drop_marker_ddl() -> str:
    """Drop the :data:`FROM_RESULT` column."""
    return f"ALTER TABLE {ANALYTICS} DROP COLUMN {FROM_RESULT}"
