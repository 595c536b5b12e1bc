"""The database's own rules (revision 0008): defaults, the lifecycle guard, stamps, updated_at.

They hold for every writer of the tables, not only this package: see :mod:`.defaults` for the
column defaults, :mod:`.triggers` for the triggers and their rules, :mod:`.lifecycle` for the
legal moves and the refusal (SQLSTATE ``23M01`` on PostgreSQL); :mod:`.materialise` (revision
0009) for metrics written into ``result -> 'analysis_metrics'``, which become analytics rows;
:mod:`.history` (revision 0010) for the transition history and its notifications.
"""

from __future__ import annotations

from miyabi_analytics._db.rules.defaults import DEFAULTS, Default, now_sql, uuid_sql
from miyabi_analytics._db.rules.history import (
    CHANNEL,
    HISTORY_TRIGGERS,
    RESTORING,
    TRANSITIONS,
    backfill_history_sql,
    create_history_ddl,
    drop_history_ddl,
)
from miyabi_analytics._db.rules.lifecycle import (
    GUARD,
    LIFECYCLE_SQLSTATE,
    MESSAGE,
    RefusedMove,
    allowed_moves,
    describe_moves,
    legal_move_sql,
    refused_move,
)
from miyabi_analytics._db.rules.materialise import (
    FROM_RESULT,
    MATERIALISE_TRIGGERS,
    add_marker_ddl,
    backfill_sql,
    create_materialise_ddl,
    delete_materialised_sql,
    drop_marker_ddl,
    drop_materialise_ddl,
)
from miyabi_analytics._db.rules.triggers import TRIGGERS, create_rules_ddl, drop_rules_ddl

__all__ = [
    "CHANNEL",
    "DEFAULTS",
    "FROM_RESULT",
    "GUARD",
    "HISTORY_TRIGGERS",
    "LIFECYCLE_SQLSTATE",
    "MATERIALISE_TRIGGERS",
    "MESSAGE",
    "RESTORING",
    "TRANSITIONS",
    "TRIGGERS",
    "Default",
    "RefusedMove",
    "add_marker_ddl",
    "backfill_history_sql",
    "create_history_ddl",
    "allowed_moves",
    "backfill_sql",
    "create_materialise_ddl",
    "create_rules_ddl",
    "delete_materialised_sql",
    "describe_moves",
    "drop_history_ddl",
    "drop_marker_ddl",
    "drop_materialise_ddl",
    "drop_rules_ddl",
    "legal_move_sql",
    "now_sql",
    "refused_move",
    "uuid_sql",
]
