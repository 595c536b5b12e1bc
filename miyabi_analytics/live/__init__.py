"""Live operations: transition events as they happen (issue 15)."""

from __future__ import annotations

from miyabi_analytics.live._event import TransitionEvent
from miyabi_analytics.live._watch import watch

__all__ = ["TransitionEvent", "watch"]
