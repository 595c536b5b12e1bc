"""Transition history: every status an execution entered, recorded and announced by the database.

``agent_execution_transitions`` (issue 15) and the triggers that fill it for every writer,
announcing each row on PostgreSQL with ``pg_notify('miyabi_executions', ...)``
(:mod:`miyabi_analytics._db.rules.history` holds the rules). Indexed for one execution
(``execution_id, id``) and for a time window (``at``); PostgreSQL also by ``txid`` for a
watcher's catch-up. Row-level security scopes it as 0003 scopes logs: by its execution's
repository.

The executions already stored get one transition each, from nothing to their status at their
own stamp (nothing is announced), so a replay of old history is not empty.

Downgrade: drops the triggers, then the table (its rows are history only this revision made).

Revision ID: 0010_transitions
Revises: 0009_upstream_superset
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules import (
    TRANSITIONS,
    backfill_history_sql,
    create_history_ddl,
    drop_history_ddl,
)
from miyabi_analytics._db.schema import TXID
from miyabi_analytics._db.types import UtcDateTime, UuidText

revision: str = "0010_transitions"
down_revision: str | None = "0009_upstream_superset"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "miyabi_repository_scope"  # 0003's policy, with 0003's condition for children
_SETTING = "current_setting('miyabi.repository_ids', true)"
_SCOPE = (
    f"coalesce({_SETTING}, '') = '' OR execution_id IN (SELECT e.id FROM agent_executions e "  # noqa: S608
    f"WHERE e.repository_id = ANY (string_to_array({_SETTING}, ',')::uuid[]))"
)


def upgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    op.create_table(
        TRANSITIONS,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
        ),
        sa.Column("execution_id", UuidText(), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("quality_score", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["agent_executions.id"],
            ondelete="CASCADE",
            name=op.f("fk_agent_execution_transitions_execution_id_agent_executions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_execution_transitions")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_agent_execution_transitions_execution_id_id"), TRANSITIONS, ["execution_id", "id"]
    )
    op.create_index(op.f("ix_agent_execution_transitions_at"), TRANSITIONS, ["at"])
    if dialect.is_postgresql:
        op.execute(
            f"ALTER TABLE {TRANSITIONS} ADD COLUMN {TXID} bigint NOT NULL "
            "DEFAULT pg_current_xact_id()::text::bigint"
        )
        # Rows are appended in roughly txid order: a BRIN index finds a catch-up's few pages
        # at a fraction of a B-tree's cost per insert.
        op.create_index(
            op.f(f"ix_agent_execution_transitions_{TXID}"),
            TRANSITIONS,
            [TXID],
            postgresql_using="brin",
        )
        op.execute(f"ALTER TABLE {TRANSITIONS} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {TRANSITIONS} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {POLICY} ON {TRANSITIONS} FOR ALL "
            f"USING ({_SCOPE}) WITH CHECK ({_SCOPE})"
        )
    op.execute(backfill_history_sql(dialect))
    for statement in create_history_ddl(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = Dialect.of(op.get_bind())
    for statement in drop_history_ddl(dialect):
        op.execute(statement)
    op.drop_table(TRANSITIONS)
