"""``watch``: transition events as they are committed, by any writer, on either database.

This module validates the filters and picks the backend (:mod:`._postgres`: LISTEN plus an
exact catch-up after a reconnect; :mod:`._sqlite`: polling ``PRAGMA data_version``). The backend
opens its dedicated connection when ``watch`` is called, not at the first ``next()``, so a
commit made between the call and the first read is still seen. The connection is closed when
the iterator is closed, exhausted (``timeout``) or garbage collected.
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Iterator
from typing import Any, Final, Protocol

from sqlalchemy import Engine

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.live._event import TransitionEvent
from miyabi_analytics.live._rows import EventFilter

__all__ = ["Source", "Watcher", "watch"]

_KEYWORDS: Final = ("agent_type", "agent_types", "repository_id", "status", "statuses")


def _event_filter(filters: dict[str, Any]) -> EventFilter:
    """The keyword filters validated as the reader's are (unknown name: ValidationError)."""
    for name in filters:
        if name not in _KEYWORDS:
            raise ValidationError(
                name, filters[name], f"not a watch filter; expected one of {', '.join(_KEYWORDS)}"
            )
    for one, many in (("agent_type", "agent_types"), ("status", "statuses")):
        if filters.get(one) is not None and filters.get(many) is not None:
            raise ValidationError(one, filters[one], f"pass {one} or {many}, not both")
    agent_types = filters.get("agent_types", filters.get("agent_type"))
    statuses = filters.get("statuses", filters.get("status"))
    built = SummaryFilters.build(
        repository_id=filters.get("repository_id"), agent_types=agent_types, statuses=statuses
    )
    return EventFilter(
        repository_ids=None if built.repository_ids is None else frozenset(built.repository_ids),
        agent_types=None if built.agent_types is None else frozenset(built.agent_types),
        statuses=None if built.statuses is None else frozenset(s.value for s in built.statuses),
    )


class Source(Protocol):
    """A backend's open watcher: its events, then ``close`` (idempotent)."""

    def events(self, timeout: float | None) -> Generator[TransitionEvent, None, None]: ...

    def close(self) -> None: ...


def watch(
    engine: Engine, *, timeout: float | None = None, **filters: Any
) -> Watcher:
    """Yield each transition committed after this call, in commit order, each exactly once.

    ``timeout``: seconds to wait for the next matching event; when they pass with none, the
    iterator ends (``None``: wait forever). Filters: ``repository_id``, ``agent_type`` (or
    ``agent_types``), ``status`` (or ``statuses``, matching the status entered), each one value
    or many. A scoped engine (``connect(url, repository_ids=...)``) yields only its
    repositories' events. Close the iterator (or let it go) to close its connection.

    PostgreSQL: a dedicated connection (not from the engine's pool) that LISTENs and, after a
    lost connection, reconnects with backoff and catches up from the table. SQLite: a dedicated
    connection polling ``PRAGMA data_version`` every 25 ms.
    """
    seconds: object = timeout
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0
    ):
        raise ValidationError("timeout", timeout, "expected seconds >= 0, or None")
    wanted = _event_filter(filters)
    source: Source
    if Dialect.of(engine).is_postgresql:
        from miyabi_analytics.live._postgres import PostgresSource

        source = PostgresSource(engine, wanted)
    else:
        from miyabi_analytics.live._sqlite import SqliteSource

        source = SqliteSource(engine, wanted)
    return Watcher(source, timeout)


class Watcher(Iterator[TransitionEvent]):
    """The iterator ``watch`` returns: its connection is already open, and closes with it.

    A class rather than a generator, so that ``close()`` (or ``with``, or garbage collection)
    closes the connection even before the first ``next()``.
    """

    def __init__(self, source: Source, timeout: float | None) -> None:
        self._events = source.events(timeout)
        self._finalizer = weakref.finalize(self, _close, self._events, source)

    def __next__(self) -> TransitionEvent:
        try:
            return next(self._events)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Close the connection; the iterator then ends. Safe to call again."""
        self._finalizer()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<miyabi_analytics watch {'closed' if not self._finalizer.alive else 'open'}>"


def _close(events: Generator[TransitionEvent, None, None], source: Source) -> None:
    try:
        events.close()
    finally:
        source.close()
