"""Live operations: transition events as they happen (issue 15)."""

from __future__ import annotations

from miyabi_analytics.live._event import TransitionEvent

__all__ = ["TransitionEvent"]
