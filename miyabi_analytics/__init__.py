"""Track and analyse the executions of Miyabi's 15 business agents, from Jupyter and scripts.

The names below are imported when first used (PEP 562), so ``import miyabi_analytics`` costs
milliseconds and imports neither pandas nor SQLAlchemy until they are needed; the errors are
imported at once (cheap, and ``except ma.ValidationError`` needs no lookup). Type checkers read
the ``TYPE_CHECKING`` imports, which tests/unit/test_lazy_import.py keeps equal to ``_EXPORTS``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import Final as _Final

from miyabi_analytics.errors import AggregateOverflowError as AggregateOverflowError
from miyabi_analytics.errors import InvalidStatusTransition as InvalidStatusTransition
from miyabi_analytics.errors import MiyabiError as MiyabiError
from miyabi_analytics.errors import NotFound as NotFound
from miyabi_analytics.errors import SchemaError as SchemaError
from miyabi_analytics.errors import ValidationError as ValidationError

if _TYPE_CHECKING:
    from miyabi_analytics import agents as agents
    from miyabi_analytics._db.engine import connect as connect
    from miyabi_analytics._db.engine import mask_url as mask_url
    from miyabi_analytics._db.migrate import downgrade as downgrade
    from miyabi_analytics._db.migrate import migrate as migrate
    from miyabi_analytics.agents import AGENT_CATEGORIES as AGENT_CATEGORIES
    from miyabi_analytics.agents import AGENT_TYPES as AGENT_TYPES
    from miyabi_analytics.agents import AIEntrepreneurAgent as AIEntrepreneurAgent
    from miyabi_analytics.agents import AnalyticsAgent as AnalyticsAgent
    from miyabi_analytics.agents import ContentCreationAgent as ContentCreationAgent
    from miyabi_analytics.agents import CRMAgent as CRMAgent
    from miyabi_analytics.agents import FunnelDesignAgent as FunnelDesignAgent
    from miyabi_analytics.agents import JonathanIveDesignAgent as JonathanIveDesignAgent
    from miyabi_analytics.agents import MarketingAgent as MarketingAgent
    from miyabi_analytics.agents import MarketResearchAgent as MarketResearchAgent
    from miyabi_analytics.agents import PersistableAgent as PersistableAgent
    from miyabi_analytics.agents import PersonaAgent as PersonaAgent
    from miyabi_analytics.agents import ProductConceptAgent as ProductConceptAgent
    from miyabi_analytics.agents import ProductDesignAgent as ProductDesignAgent
    from miyabi_analytics.agents import SalesAgent as SalesAgent
    from miyabi_analytics.agents import SelfAnalysisAgent as SelfAnalysisAgent
    from miyabi_analytics.agents import SNSStrategyAgent as SNSStrategyAgent
    from miyabi_analytics.agents import YouTubeAgent as YouTubeAgent
    from miyabi_analytics.agents import agent_category as agent_category
    from miyabi_analytics.agents import agent_for as agent_for
    from miyabi_analytics.aggregates import business_metrics as business_metrics
    from miyabi_analytics.aggregates import duration_stats as duration_stats
    from miyabi_analytics.aggregates import error_analysis as error_analysis
    from miyabi_analytics.aggregates import quality_trend as quality_trend
    from miyabi_analytics.aggregates import success_rates as success_rates
    from miyabi_analytics.figures import timeline_figure as timeline_figure
    from miyabi_analytics.live import watch as watch
    from miyabi_analytics.reader import export_summary as export_summary
    from miyabi_analytics.reader import iter_summary as iter_summary
    from miyabi_analytics.reader import read_logs as read_logs
    from miyabi_analytics.reader import read_summary as read_summary
    from miyabi_analytics.reader import read_summary_arrow as read_summary_arrow
    from miyabi_analytics.reader import read_transitions as read_transitions
    from miyabi_analytics.reader import replay as replay
    from miyabi_analytics.records import AgentExecutionResult as AgentExecutionResult
    from miyabi_analytics.records import BusinessMetrics as BusinessMetrics
    from miyabi_analytics.records import ExecutionResultBuilder as ExecutionResultBuilder
    from miyabi_analytics.records import ExecutionStatus as ExecutionStatus
    from miyabi_analytics.records import LogEntry as LogEntry
    from miyabi_analytics.records import MetricsEntry as MetricsEntry
    from miyabi_analytics.report_runs import read_report_runs as read_report_runs
    from miyabi_analytics.rollups import refresh_rollups as refresh_rollups
    from miyabi_analytics.rollups import rollup_status as rollup_status
    from miyabi_analytics.store import ExecutionStore as ExecutionStore
    from miyabi_analytics.vocabulary import LOG_LEVELS as LOG_LEVELS
    from miyabi_analytics.widgets import dashboard as dashboard

    __version__: str

_EXPORTS: _Final[dict[str, tuple[str, ...]]] = {
    "miyabi_analytics._db.engine": (
        "connect",
        "mask_url",
    ),
    "miyabi_analytics._db.migrate": (
        "downgrade",
        "migrate",
    ),
    "miyabi_analytics.agents": (
        "AGENT_CATEGORIES",
        "AGENT_TYPES",
        "AIEntrepreneurAgent",
        "AnalyticsAgent",
        "ContentCreationAgent",
        "CRMAgent",
        "FunnelDesignAgent",
        "JonathanIveDesignAgent",
        "MarketingAgent",
        "MarketResearchAgent",
        "PersistableAgent",
        "PersonaAgent",
        "ProductConceptAgent",
        "ProductDesignAgent",
        "SalesAgent",
        "SelfAnalysisAgent",
        "SNSStrategyAgent",
        "YouTubeAgent",
        "agent_category",
        "agent_for",
    ),
    "miyabi_analytics.aggregates": (
        "business_metrics",
        "duration_stats",
        "error_analysis",
        "quality_trend",
        "success_rates",
    ),
    "miyabi_analytics.figures": ("timeline_figure",),
    "miyabi_analytics.live": ("watch",),
    "miyabi_analytics.reader": (
        "export_summary",
        "iter_summary",
        "read_logs",
        "read_summary",
        "read_summary_arrow",
        "read_transitions",
        "replay",
    ),
    "miyabi_analytics.records": (
        "AgentExecutionResult",
        "BusinessMetrics",
        "ExecutionResultBuilder",
        "ExecutionStatus",
        "LogEntry",
        "MetricsEntry",
    ),
    "miyabi_analytics.report_runs": ("read_report_runs",),
    "miyabi_analytics.rollups": ("refresh_rollups", "rollup_status"),
    "miyabi_analytics.store": ("ExecutionStore",),
    "miyabi_analytics.vocabulary": ("LOG_LEVELS",),
    "miyabi_analytics.widgets": ("dashboard",),
}
"""Where each lazily imported public name lives: module -> names."""
_WHERE: _Final = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [
    "AGENT_CATEGORIES",
    "AGENT_TYPES",
    "AIEntrepreneurAgent",
    "AgentExecutionResult",
    "AggregateOverflowError",
    "AnalyticsAgent",
    "BusinessMetrics",
    "CRMAgent",
    "ContentCreationAgent",
    "ExecutionResultBuilder",
    "ExecutionStatus",
    "ExecutionStore",
    "FunnelDesignAgent",
    "InvalidStatusTransition",
    "JonathanIveDesignAgent",
    "LOG_LEVELS",
    "LogEntry",
    "MarketResearchAgent",
    "MarketingAgent",
    "MetricsEntry",
    "MiyabiError",
    "NotFound",
    "PersistableAgent",
    "PersonaAgent",
    "ProductConceptAgent",
    "ProductDesignAgent",
    "SNSStrategyAgent",
    "SalesAgent",
    "SchemaError",
    "SelfAnalysisAgent",
    "ValidationError",
    "YouTubeAgent",
    "agent_category",
    "agent_for",
    "agents",
    "business_metrics",
    "connect",
    "dashboard",
    "downgrade",
    "duration_stats",
    "error_analysis",
    "export_summary",
    "iter_summary",
    "mask_url",
    "migrate",
    "quality_trend",
    "read_logs",
    "read_report_runs",
    "read_summary",
    "read_summary_arrow",
    "read_transitions",
    "refresh_rollups",
    "replay",
    "rollup_status",
    "success_rates",
    "timeline_figure",
    "watch",
]


if not _TYPE_CHECKING:  # hidden from type checkers: a misspelt name stays a type error

    def __getattr__(name: str) -> _Any:
        """Import a public name on first use, then keep it as a module global."""
        if name in _WHERE:
            value = getattr(_importlib.import_module(_WHERE[name]), name)
        elif name == "__version__":
            from miyabi_analytics._version import package_version

            value = package_version()
        elif not name.startswith("_"):  # a public submodule: ma.figures, ma.formatting, ...
            try:
                value = _importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
                raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
