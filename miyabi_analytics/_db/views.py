"""The summary view as a selectable (in its own MetaData, so ``alembic check`` ignores it)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText
from miyabi_analytics.vocabulary import TYPED_METRICS as TYPED_METRICS

view_metadata = MetaData()

summary = Table(
    "v_business_agent_summary",
    view_metadata,
    Column("id", UuidText()),
    Column("repository_id", UuidText()),
    Column("user_id", UuidText()),
    Column("agent_type", String(50)),
    Column("issue_number", Integer),
    Column("status", String(20)),
    Column("started_at", UtcDateTime()),
    Column("completed_at", UtcDateTime()),
    Column("error_message", Text),
    Column("result", JsonDocument),
    Column("quality_score", Integer),
    Column("pr_number", Integer),
    Column("created_at", UtcDateTime()),
    Column("updated_at", UtcDateTime()),
    Column("duration_seconds", Float),
    Column("agent_category", String(20)),
    Column("competitors_analyzed", Integer),
    Column("market_size_usd", BigInteger),
    Column("growth_rate_percent", Float),
    Column("conversion_rate", Float),
    Column("target_audience_size", Integer),
    Column("estimated_revenue_usd", BigInteger),
    Column("engagement_score", Integer),
    Column("reach_estimate", Integer),
    Column("roi_percent", Float),
)
