"""The words of the domain, defined once: agents, categories, statuses, log levels, metrics.

Every other module (the persistence layer included) takes these names from here, so a rule
such as "which agent is in which category" or "which status may follow which" has one
definition. This module is the bottom of the house: it imports nothing from the package but
:mod:`~miyabi_analytics.errors`, the exceptions its checks raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final, Literal

from miyabi_analytics.errors import ValidationError

__all__ = [
    "AGENT_CATEGORIES",
    "AGENT_TYPES",
    "CATEGORY_OF",
    "INT32_MAX",
    "INT64_MAX",
    "LOG_LEVELS",
    "LOG_LEVEL_ALIASES",
    "METRIC_COLUMNS",
    "OTHER_CATEGORY",
    "READ_CATEGORIES",
    "AVERAGED_METRICS",
    "SUMMED_METRICS",
    "TYPED_METRICS",
    "Category",
    "ExecutionStatus",
    "IntColumn",
    "RateColumn",
    "ReadCategory",
    "agent_category",
    "agent_type_order",
    "check_agent_type",
    "check_log_level",
    "check_read_agent_type",
    "check_read_log_level",
    "log_level_spellings",
    "read_log_level",
]

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1

# -- agents and their categories ------------------------------------------------------------

Category = Literal["strategy", "marketing", "operations", "design"]

_BY_CATEGORY: Final[dict[Category, tuple[str, ...]]] = {
    "strategy": (
        "AIEntrepreneurAgent",
        "SelfAnalysisAgent",
        "PersonaAgent",
        "ProductConceptAgent",
        "ProductDesignAgent",
        "FunnelDesignAgent",
    ),
    "marketing": (
        "MarketResearchAgent",
        "ContentCreationAgent",
        "SNSStrategyAgent",
        "MarketingAgent",
        "YouTubeAgent",
    ),
    "operations": ("SalesAgent", "CRMAgent", "AnalyticsAgent"),
    "design": ("JonathanIveDesignAgent",),
}

AGENT_TYPES: Final[tuple[str, ...]] = tuple(t for types in _BY_CATEGORY.values() for t in types)
"""The 15 agent types, in the design's order."""
AGENT_CATEGORIES: Final[tuple[Category, ...]] = tuple(_BY_CATEGORY)
CATEGORY_OF: Final[Mapping[str, Category]] = {
    t: category for category, types in _BY_CATEGORY.items() for t in types
}
"""Each agent type's category: the one mapping the view, the reader and the aggregates share."""
OTHER_CATEGORY: Final = "other"
"""The category read for an agent type outside the 15 (the fleet's other agents share the table)."""

ReadCategory = Literal[Category, "other"]
READ_CATEGORIES: Final[tuple[ReadCategory, ...]] = (*AGENT_CATEGORIES, OTHER_CATEGORY)
"""Every category a read can give: the design's four in their order, then ``"other"``."""


def check_agent_type(agent_type: object, field: str = "agent_type") -> str:
    """Return ``agent_type`` if it is one of the 15, else raise ValidationError.

    The check of every write through this package: its agents are the 15.
    """
    if isinstance(agent_type, str) and agent_type in CATEGORY_OF:
        return agent_type
    raise ValidationError(field, agent_type, "unknown agent type; see AGENT_TYPES")


def check_read_agent_type(agent_type: object, field: str = "agent_type") -> str:
    """Return ``agent_type`` if it can name an agent type in the database, else ValidationError.

    Reads and filters are open: other writers sharing the table (the upstream fleet's
    ``CoordinatorAgent``, ``CodeGenAgent``, ...) store types outside the 15, so any non-empty
    string is accepted as is (a name no row has simply matches nothing), unless no database
    can hold it (NUL characters, lone surrogates): the query would fail, not match nothing.
    """
    if isinstance(agent_type, str) and agent_type.strip() and "\x00" not in agent_type:
        try:
            agent_type.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return agent_type
    raise ValidationError(field, agent_type, "expected an agent type name (non-empty text)")


def agent_category(agent_type: str) -> ReadCategory:
    """The design's category of an agent type; ``"other"`` for a type outside the 15.

    Open because it names what is read: a row another writer stored reads as ``"other"``.
    Writes stay closed (:func:`check_agent_type`). A non-string is a ValidationError.
    """
    if not isinstance(agent_type, str):
        raise ValidationError("agent_type", agent_type, "expected an agent type name (a string)")
    return CATEGORY_OF.get(agent_type, OTHER_CATEGORY)


def agent_type_order(agent_type: str) -> tuple[int, str]:
    """Sort key of agent types: the 15 in the design's order, then any other type by name."""
    try:
        return AGENT_TYPES.index(agent_type), ""
    except ValueError:
        return len(AGENT_TYPES), agent_type


# -- the lifecycle --------------------------------------------------------------------------


class ExecutionStatus(StrEnum):
    """Lifecycle of an execution: pending -> running -> completed | failed; pending -> failed."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    def can_transition_to(self, new: ExecutionStatus | str) -> bool:
        """Whether a stored execution in this state may be saved again with ``new``."""
        target = ExecutionStatus(new)
        return target is self or target in _NEXT[self]

    @property
    def is_terminal(self) -> bool:
        """Completed and failed executions never change state again."""
        return not _NEXT[self]

    @classmethod
    def parse(cls, value: object, field: str = "status") -> ExecutionStatus:
        """Accept the enum or its value in any case; anything else is a ValidationError."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        allowed = ", ".join(s.value for s in cls)
        raise ValidationError(field, value, f"expected one of {allowed}")

    def allowed_predecessors(self) -> tuple[ExecutionStatus, ...]:
        """Stored states from which a save with this state is legal."""
        return tuple(s for s in ExecutionStatus if s.can_transition_to(self))


# The database's lifecycle guard is generated from this table (``_db/rules/lifecycle.py``, revision
# 0008): a change here needs a revision that creates the triggers again.
_NEXT: Final[Mapping[ExecutionStatus, frozenset[ExecutionStatus]]] = {
    ExecutionStatus.PENDING: frozenset({ExecutionStatus.RUNNING, ExecutionStatus.FAILED}),
    ExecutionStatus.RUNNING: frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED}),
    ExecutionStatus.COMPLETED: frozenset(),
    ExecutionStatus.FAILED: frozenset(),
}

# -- log levels -----------------------------------------------------------------------------

LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
LOG_LEVEL_ALIASES: Final[Mapping[str, str]] = {"warn": "warning"}
"""Stored spellings other writers use (the upstream agents write ``warn``) and how they read."""


def check_log_level(level: object) -> str:
    """A log level in any case, returned lowercase: the check of every write (no aliases)."""
    if isinstance(level, str) and level.strip().lower() in LOG_LEVELS:
        return level.strip().lower()
    raise ValidationError("level", level, f"expected one of {', '.join(LOG_LEVELS)}")


def check_read_log_level(level: object, field: str = "levels") -> str:
    """A log level to filter on, in any case, an alias (``warn``) read as its level."""
    if isinstance(level, str):
        name = level.strip().lower()
        name = LOG_LEVEL_ALIASES.get(name, name)
        if name in LOG_LEVELS:
            return name
    raise ValidationError(field, level, "unknown log level")


def read_log_level(stored: str) -> str:
    """How a stored log level reads: an alias as its level, anything else as stored."""
    return LOG_LEVEL_ALIASES.get(stored, stored)


def log_level_spellings(level: str) -> tuple[str, ...]:
    """The stored values that read as ``level``: itself, then its aliases (sorted)."""
    return (level, *sorted(a for a, target in LOG_LEVEL_ALIASES.items() if target == level))


# -- business metrics with typed columns ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntColumn:
    """An integer metric column: counts and money from ``low`` (0) to ``high``."""

    high: int
    low: int = 0


@dataclass(frozen=True, slots=True)
class RateColumn:
    """numeric(precision, 2): may be negative, must fit after rounding to cents."""

    precision: int

    @property
    def bound(self) -> Decimal:
        """The largest magnitude the column holds."""
        return Decimal(10) ** (self.precision - 2) - Decimal("0.01")


METRIC_COLUMNS: Final[Mapping[str, IntColumn | RateColumn]] = {
    "competitors_analyzed": IntColumn(INT32_MAX),
    "market_size_usd": IntColumn(INT64_MAX),
    "growth_rate_percent": RateColumn(5),
    "conversion_rate": RateColumn(5),
    "target_audience_size": IntColumn(INT32_MAX),
    "estimated_revenue_usd": IntColumn(INT64_MAX),
    "engagement_score": IntColumn(100),
    "reach_estimate": IntColumn(INT32_MAX),
    "roi_percent": RateColumn(7),
}
"""The metric keys with typed columns and the range of each; other keys stay in JSON only."""

TYPED_METRICS: Final[tuple[str, ...]] = tuple(METRIC_COLUMNS)

SUMMED_METRICS: Final[tuple[str, ...]] = (
    "competitors_analyzed",
    "market_size_usd",
    "target_audience_size",
    "estimated_revenue_usd",
    "reach_estimate",
)
"""The metrics ``business_metrics`` sums (and the rollups keep sums of)."""

AVERAGED_METRICS: Final[Mapping[str, int]] = {
    "growth_rate_percent": 100,  # numeric(5, 2): summed as whole cents
    "conversion_rate": 100,
    "engagement_score": 1,  # an integer
    "roi_percent": 100,  # numeric(7, 2)
}
"""The metrics ``business_metrics`` averages, each with the integer scale its sum is kept at."""
