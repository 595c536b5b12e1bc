"""The 15 business agents of the design, each able to persist its own executions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final

from miyabi_analytics.errors import ValidationError
from miyabi_analytics.vocabulary import (
    AGENT_CATEGORIES,
    AGENT_TYPES,
    CATEGORY_OF,
    Category,
    agent_category,
    check_agent_type,
)

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Connection, Engine

    from miyabi_analytics.records import AgentExecutionResult

__all__ = [
    "AGENT_CATEGORIES",
    "AGENT_TYPES",
    "AIEntrepreneurAgent",
    "AnalyticsAgent",
    "CRMAgent",
    "ContentCreationAgent",
    "FunnelDesignAgent",
    "JonathanIveDesignAgent",
    "MarketResearchAgent",
    "MarketingAgent",
    "PersistableAgent",
    "PersonaAgent",
    "ProductConceptAgent",
    "ProductDesignAgent",
    "SNSStrategyAgent",
    "SalesAgent",
    "SelfAnalysisAgent",
    "YouTubeAgent",
    "agent_category",
    "agent_for",
    "check_agent_type",
]

class PersistableAgent:
    """An agent that stores its executions, metrics and logs through :class:`ExecutionStore`.

    ``agent_type`` is the class name. The engine is passed to every call, never kept, so one
    agent object serves any number of databases.
    """

    agent_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.agent_type = cls.__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    @property
    def category(self) -> Category:
        """strategy, marketing, operations or design."""
        return CATEGORY_OF[self.agent_type]  # one of the 15: never "other"

    def builder(self, repository_id: uuid.UUID | str) -> Any:
        """An :class:`ExecutionResultBuilder` already set to this agent."""
        from miyabi_analytics.records import ExecutionResultBuilder

        return ExecutionResultBuilder(repository_id, self.agent_type)

    def save_execution(self, bind: Engine | Connection, result: AgentExecutionResult) -> uuid.UUID:
        """Insert the execution, or update the stored one with the same id (lifecycle-guarded)."""
        from miyabi_analytics.store import ExecutionStore

        if result.agent_type != self.agent_type:
            raise ValidationError(
                "agent_type", result.agent_type, f"{self.agent_type} cannot save it"
            )
        return ExecutionStore(bind).save_execution(result)

    def load_history(
        self, bind: Engine | Connection, repository_id: uuid.UUID | str, limit: int = 10
    ) -> list[AgentExecutionResult]:
        """This agent's executions in the repository, newest first."""
        from miyabi_analytics.store import ExecutionStore

        return ExecutionStore(bind).load_history(self.agent_type, repository_id, limit=limit)

    def get_latest_execution(
        self, bind: Engine | Connection, repository_id: uuid.UUID | str
    ) -> AgentExecutionResult | None:
        """The newest of :meth:`load_history`, or ``None``."""
        history = self.load_history(bind, repository_id, limit=1)
        return history[0] if history else None

    def save_analysis_metrics(
        self, bind: Engine | Connection, execution_id: uuid.UUID | str, metrics: Mapping[str, Any]
    ) -> uuid.UUID:
        """Store business metrics of one of this agent's executions; returns the row id."""
        from miyabi_analytics.store import ExecutionStore

        return ExecutionStore(bind).save_analysis_metrics(
            execution_id, metrics, agent_type=self.agent_type
        )

    def log(
        self,
        bind: Engine | Connection,
        execution_id: uuid.UUID | str,
        level: str,
        message: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> uuid.UUID:
        """Append a log line to one of this agent's executions; returns the log id."""
        from miyabi_analytics.store import ExecutionStore

        return ExecutionStore(bind).log(execution_id, level, message, metadata)

    def heartbeat(self, bind: Engine | Connection, execution_id: uuid.UUID | str) -> datetime:
        """Mark one of this agent's running executions alive; returns the time stamped.

        :class:`NotFound` for an unknown id, :class:`ValidationError` (naming the status) when
        the execution is not running or (naming the agent) when it is another agent's. Running
        executions without a heartbeat for too long are failed by ``miyabi-analytics reap``.
        """
        from miyabi_analytics.store import ExecutionStore

        return ExecutionStore(bind).heartbeat(execution_id, agent_type=self.agent_type)


class AIEntrepreneurAgent(PersistableAgent):
    """Comprehensive business plan generation."""


class SelfAnalysisAgent(PersistableAgent):
    """Career and skill analysis."""


class PersonaAgent(PersistableAgent):
    """Target customer persona creation."""


class ProductConceptAgent(PersistableAgent):
    """Product concept design."""


class ProductDesignAgent(PersistableAgent):
    """Service detail design."""


class FunnelDesignAgent(PersistableAgent):
    """Customer funnel optimisation."""


class MarketResearchAgent(PersistableAgent):
    """Market trend analysis."""


class ContentCreationAgent(PersistableAgent):
    """Content production planning."""


class SNSStrategyAgent(PersistableAgent):
    """Social media strategy."""


class MarketingAgent(PersistableAgent):
    """Marketing strategy formulation."""


class YouTubeAgent(PersistableAgent):
    """YouTube channel optimisation."""


class SalesAgent(PersistableAgent):
    """Sales process optimisation."""


class CRMAgent(PersistableAgent):
    """Customer relationship management."""


class AnalyticsAgent(PersistableAgent):
    """Data analysis and the PDCA cycle."""


class JonathanIveDesignAgent(PersistableAgent):
    """UI/UX design review."""


_CLASSES: Final[dict[str, type[PersistableAgent]]] = {
    cls.agent_type: cls for cls in PersistableAgent.__subclasses__()
}
assert tuple(sorted(_CLASSES)) == tuple(sorted(AGENT_TYPES)), "one class per agent type"


def agent_for(agent_type: str) -> PersistableAgent:
    """A new agent object for an agent type name."""
    return _CLASSES[check_agent_type(agent_type)]()
