"""What a summary row is, defined once: the view, the reader, the aggregates and the migrations.

One row per execution: its columns (:data:`EXECUTION_COLUMNS`), ``duration_seconds``
(``completed_at - started_at``, NULL while unfinished), ``agent_category`` (from
:data:`~miyabi_analytics.vocabulary.CATEGORY_OF`; ``"other"`` for a type outside the 15, NULL
before revision 0009), the typed metric columns (:data:`~miyabi_analytics.vocabulary.
TYPED_METRICS`) of its latest analytics row (latest ``created_at``, ties by :class:`Tie`),
NULL where it has none, and from revision 0009 upstream's view columns
(:data:`UPSTREAM_COLUMNS`). :class:`Shape` names each revision's row.

- :mod:`.rules`: each computed column as an SQL expression on the tables (the aggregates use
  them directly);
- :mod:`.view`: the whole row as one SELECT, and the view's DDL compiled from it (the
  migrations create the view with it);
- :mod:`.arrow`: the same rules on Arrow arrays, for the reader's whole reads.
"""

from __future__ import annotations

from miyabi_analytics._db.summary.rules import (
    EXACT_MICROS,
    DurationMicros,
    DurationSeconds,
    Shape,
    Tie,
    agent_category_of,
    is_latest_analytics,
)
from miyabi_analytics._db.summary.view import (
    EXECUTION_COLUMNS,
    UPSTREAM_COLUMNS,
    VIEW,
    drop_view_ddl,
    summary_select,
    summary_table,
    view_ddl,
)

__all__ = [
    "EXACT_MICROS",
    "EXECUTION_COLUMNS",
    "UPSTREAM_COLUMNS",
    "VIEW",
    "DurationMicros",
    "DurationSeconds",
    "Shape",
    "Tie",
    "agent_category_of",
    "drop_view_ddl",
    "is_latest_analytics",
    "summary_select",
    "summary_table",
    "view_ddl",
]
