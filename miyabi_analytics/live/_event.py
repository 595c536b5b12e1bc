"""One transition as :func:`~miyabi_analytics.live.watch` yields it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

__all__ = ["TransitionEvent"]


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """An execution entered ``to_status`` (from ``from_status``, ``None`` when it was inserted).

    ``transition_id`` is the ``agent_execution_transitions`` row's id: unique, so a consumer
    can tell a repeat; ids grow with time but concurrent writers may commit them out of order.
    """

    transition_id: int
    execution_id: uuid.UUID
    repository_id: uuid.UUID
    agent_type: str
    from_status: str | None
    to_status: str
    at: datetime
