"""Tables of the schema, as SQLAlchemy Core metadata (what ``alembic check`` compares against).

The database's own rules (revision 0008: column defaults, the lifecycle guard, timestamp stamps
and ``updated_at``) are not declared here: they are per-dialect SQL, defined once in
:mod:`miyabi_analytics._db.rules`. ``alembic check`` compares neither server defaults nor
triggers, and the store sends every value itself, so the models need not know them.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    true,
)
from sqlalchemy.schema import SchemaItem

from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText
from miyabi_analytics.vocabulary import AVERAGED_METRICS, SUMMED_METRICS

# Constraints are given their short name (``name="status_known"``) and the convention makes the
# full one (``ck_agent_executions_status_known``). A migration that spells a full name out wraps
# it in ``op.f()``, or the convention prefixes it again: revisions 0001 and 0002 did not, and
# 0007 renamed what they made. tests/db/test_constraint_names.py holds the database to these.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

WINDOW_COLUMNS: Final = ("id", "completed_at", "agent_type", "repository_id", "status",
                         "quality_score")
"""What the aggregates read of a window's rows, carried by the ``started_at`` index (PG)."""

executions = Table(
    "agent_executions",
    metadata,
    Column("id", UuidText(), primary_key=True),
    Column("repository_id", UuidText(), nullable=False),
    Column("user_id", UuidText(), nullable=True),
    Column("agent_type", String(50), nullable=False),
    Column("issue_number", Integer, nullable=True),
    Column("status", String(20), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("completed_at", UtcDateTime(), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("result", JsonDocument, nullable=True),
    Column("quality_score", Integer, nullable=True),
    Column("pr_number", Integer, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # Last sign of life of a running execution (``ExecutionStore.heartbeat``); records do not
    # carry it, so saving a record keeps it. Last on purpose: the bulk encoders use column order.
    Column("last_heartbeat_at", UtcDateTime(), nullable=True),
    CheckConstraint(
        "quality_score IS NULL OR (quality_score >= 0 AND quality_score <= 100)",
        name="quality_score_range",
    ),
    CheckConstraint(
        "status IN ('pending', 'running', 'completed', 'failed')", name="status_known"
    ),
    Index(None, "repository_id"),
    Index(None, "agent_type"),
    Index(None, "status"),
    Index(None, "created_at"),
    # PostgreSQL (revision 0011): covering, so a time window is read from the index alone
    # (an index-only scan), however the window's rows lie in the heap.
    Index(None, "started_at", postgresql_include=list(WINDOW_COLUMNS)),
)

analytics = Table(
    "business_agent_analytics",
    metadata,
    Column("id", UuidText(), primary_key=True),
    Column(
        "execution_id",
        UuidText(),
        ForeignKey("agent_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("agent_type", String(50), nullable=False),
    Column("metrics", JsonDocument, nullable=False),
    Column("competitors_analyzed", Integer, nullable=True),
    Column("market_size_usd", BigInteger, nullable=True),
    Column("growth_rate_percent", Numeric(5, 2, asdecimal=False), nullable=True),
    Column("conversion_rate", Numeric(5, 2, asdecimal=False), nullable=True),
    Column("target_audience_size", Integer, nullable=True),
    Column("estimated_revenue_usd", BigInteger, nullable=True),
    Column("engagement_score", Integer, nullable=True),
    Column("reach_estimate", Integer, nullable=True),
    Column("roi_percent", Numeric(7, 2, asdecimal=False), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    CheckConstraint(
        "engagement_score IS NULL OR (engagement_score >= 0 AND engagement_score <= 100)",
        name="engagement_score_range",
    ),
    Index(None, "execution_id"),
    Index(None, "agent_type"),
)

logs = Table(
    "agent_execution_logs",
    metadata,
    Column("id", UuidText(), primary_key=True),
    Column(
        "execution_id",
        UuidText(),
        ForeignKey("agent_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("log_level", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("metadata", JsonDocument, nullable=True),
    Column("logged_at", UtcDateTime(), nullable=False),
    Index(None, "execution_id"),
    Index(None, "log_level"),
    Index(None, "logged_at"),
    Index(None, "execution_id", "log_level"),  # revision 0011: the view's error count
)

transitions = Table(
    "agent_execution_transitions",
    metadata,
    # PostgreSQL: a bigint identity; SQLite: the rowid with AUTOINCREMENT, so an id is never
    # reused after the newest rows are purged (a watcher's cursor would skip the reuse).
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
    ),
    Column(
        "execution_id",
        UuidText(),
        ForeignKey("agent_executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("from_status", String(20), nullable=True),
    Column("to_status", String(20), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("quality_score", Integer, nullable=True),
    Column("error_message", Text, nullable=True),
    Index(None, "execution_id", "id"),
    Index(None, "at"),
    sqlite_autoincrement=True,
)
"""Every status an execution entered (revision 0010), written by the database's triggers only
(:mod:`miyabi_analytics._db.rules.history`): one row on insert (``from_status`` NULL) and one
per status change, by any writer."""

def _rollup_keys() -> list[Column[object]]:
    """The key of a rollup row: a UTC day and the columns every rollup is filtered by."""
    return [
        Column("day", UtcDateTime(), nullable=False),
        Column("agent_type", String(50), nullable=False),
        Column("repository_id", UuidText(), nullable=False),
        Column("status", String(20), nullable=False),
    ]


def _counts(*names: str) -> list[Column[object]]:
    return [Column(name, BigInteger, nullable=False) for name in names]


def _values(*names: str, type_: type[Integer] = BigInteger) -> list[Column[object]]:
    return [Column(name, type_(), nullable=True) for name in names]


def _rollup_table(name: str, *extra: Column[object]) -> Table:
    return Table(
        name,
        metadata,
        *_rollup_keys(),
        *extra,
        # failed rows only (NULL otherwise): error_analysis groups failures by their message
        Column("error_message", Text, nullable=True),
        # false: executions that never started, under the day they were created (revision 0012)
        Column("started", Boolean, nullable=False, server_default=true()),
        *_counts("executions", "scored", "timed", "analysed"),
        *_values("quality_sum", "quality_sq_sum"),
        *_values("quality_min", "quality_max", type_=Integer),
        *_values("micros_hi", "micros_lo", "micros_min", "micros_max"),
        Column("started_min", UtcDateTime(), nullable=True),
        Column("started_max", UtcDateTime(), nullable=True),
        *_values(*(f"{name}_{half}" for name in SUMMED_METRICS for half in ("hi", "lo"))),
        *_values(*(f"{name}_{part}" for name in AVERAGED_METRICS for part in ("total", "count"))),
        Index(None, "day"),
    )


def _histogram_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        *_rollup_keys(),
        Column("bucket", Integer, nullable=False),
        Column("count", BigInteger, nullable=False),
        Index(None, "day"),
    )


rollups = _rollup_table("agent_execution_rollups")
"""Per (UTC day of ``started_at``, agent type, repository, status, failure message): what every
aggregate needs, kept by ``refresh_rollups`` (revision 0011, :mod:`miyabi_analytics._db.rollup`).
Integer sums that could pass 64 bits are kept as the sums of their high and low 32-bit halves."""

monthly_rollups = _rollup_table("agent_execution_rollups_monthly")
"""The same per UTC month (``day`` is the month's first day), summed from :data:`rollups`: what
all-time and monthly aggregates read, twelve rows a year per key."""

yearly_rollups = _rollup_table(
    "agent_execution_rollups_yearly", Column("next_year", UtcDateTime(), nullable=True)
)
"""The same per UTC year (``day`` its first day, ``next_year`` the next one's; NULL after year
9999), summed from :data:`monthly_rollups` (revision 0014): what all time reads of the years
none of whose days is pending, a row a year per key."""

rollup_durations = _histogram_table("agent_execution_rollup_durations")
"""The durations of each rollup key as a logarithmic histogram (``duration_stats(exact=False)``)."""

monthly_rollup_durations = _histogram_table("agent_execution_rollup_durations_monthly")
"""The histograms of :data:`monthly_rollups`' keys."""

total_rollup_durations = Table(
    "agent_execution_rollup_durations_total",
    metadata,
    *_rollup_keys()[1:],
    Column("bucket", Integer, nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint("agent_type", "repository_id", "status", "bucket"),
)
"""The sum of every month's histogram (revision 0013), kept equal to it by each refresh: an
all-time histogram reads this, less the months with a pending day, whatever the history's
length (buckets times keys rows)."""

rollup_pending = Table(
    "agent_execution_rollup_pending",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
    ),
    Column("day", UtcDateTime(), nullable=False),
    Column("next_day", UtcDateTime(), nullable=False),
    Column("month", UtcDateTime(), nullable=False),
    Column("next_month", UtcDateTime(), nullable=False),
    Index(None, "day"),
    sqlite_autoincrement=True,
)
"""Days whose rollup no longer matches the rows, marked by the database's triggers for every
writer: readers take these days from the rows until ``refresh_rollups`` recomputes them."""

rollup_state = Table(
    "agent_execution_rollup_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("refreshed_at", UtcDateTime(), nullable=True),
    CheckConstraint("id = 1", name="one_row"),
)
"""One row: when ``refresh_rollups`` last finished (NULL: never)."""

report_runs = Table(
    "report_runs",
    metadata,
    Column("id", UuidText(), primary_key=True),
    Column("parameters", JsonDocument, nullable=False),
    Column("since", UtcDateTime(), nullable=False),
    Column("until", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("status", String(20), nullable=False),
    Column("output_path", Text, nullable=True),
    Column("error", Text, nullable=True),
    # The scope (comma-separated repository uuids) of the session that started the run, NULL
    # when unscoped; row-level security keys on it (revision 0005). Written by the server
    # default on PostgreSQL (the session's setting), so no server_default here: it is
    # PostgreSQL-only SQL, and ``alembic check`` does not compare server defaults.
    Column("repository_scope", Text, nullable=True),
    CheckConstraint("status IN ('running', 'completed', 'failed')", name="status_known"),
    Index(None, "started_at"),
)
"""One row per report run (``miyabi-analytics report``); ``parameters`` hold no password."""

WRITE_ORDER: Final = "seq"
"""The order in which rows of :data:`analytics` and :data:`logs` were inserted (revision 0007).

PostgreSQL: a ``bigint`` identity column of this name that the database fills on every insert.
SQLite: the table's ``rowid``, which needs no column. So it is not a column of the models (a
``select(logs)`` would fail on SQLite, and writers must never supply it); it is read through
:func:`miyabi_analytics._db.expressions.write_order`, and ``alembic check`` is told to leave it
out (:func:`include_object`).
"""


FROM_RESULT: Final = "from_result"
"""``business_agent_analytics.from_result`` (revision 0009): true on the rows the database made
from metrics written into ``result -> 'analysis_metrics'`` (:mod:`miyabi_analytics._db.rules.
materialise`), so its downgrade can delete exactly those. ``boolean NOT NULL DEFAULT false``.

Not a column of the models, as :data:`WRITE_ORDER`: the store's bulk writers send every column
of the models, and this one is the database's alone (writers leave it to its default).
"""

TXID: Final = "txid"
"""``agent_execution_transitions.txid`` (revision 0010, PostgreSQL only): the writing
transaction's id (``bigint``, default ``pg_current_xact_id()``: the 64-bit xid8, which a
``bigint`` holds and every client reads), which a watcher's catch-up keys
on (:mod:`miyabi_analytics._db.rules.history`). The database's alone, as :data:`WRITE_ORDER`.
"""

_DATABASE_ONLY: Final = {
    analytics.name: (WRITE_ORDER, FROM_RESULT),
    logs.name: (WRITE_ORDER,),
    transitions.name: (TXID,),
}
_DATABASE_ONLY_INDEXES: Final = {f"ix_{transitions.name}_{TXID}"}


def include_object(
    item: SchemaItem,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    """Alembic's object filter: the database's own columns are not a drift.

    :data:`WRITE_ORDER`, :data:`FROM_RESULT` and :data:`TXID`.
    """
    if type_ == "index" and reflected and compare_to is None:
        return name not in _DATABASE_ONLY_INDEXES
    table = getattr(item, "table", None)
    return not (
        type_ == "column"
        and reflected
        and compare_to is None
        and table is not None
        and name in _DATABASE_ONLY.get(table.name, ())
    )
