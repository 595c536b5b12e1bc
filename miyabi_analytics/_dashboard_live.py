"""The dashboard's live mode: transition events in, only the queries they touch run again.

Events come from :func:`miyabi_analytics.live.watch` (LISTEN on PostgreSQL, ``PRAGMA
data_version`` on SQLite), never from a timer that re-runs the dashboard's queries. A
:class:`~miyabi_analytics._live_feed.LiveFeed` reads them on a daemon thread and hands them
over in batches: the first event opens a window of :data:`COALESCE_SECONDS`, everything that
arrives in it (or queued up while the previous batch was being applied) is one batch, so a
burst costs one refresh. :class:`LiveModel` applies a batch to a
:class:`~miyabi_analytics._dashboard.DashboardModel`.

What an event *touches*, for one filter state (:func:`touched_queries`):

* nothing when the execution is outside the selection: another repository, an agent type not
  selected, a status filter that holds neither its old nor its new status, or a ``started_at``
  outside the window (and outside the previous period the KPI tiles compare with). An execution
  entering ``running`` started at the event's ``at``; the others' ``started_at`` is read once per
  batch, by primary key;
* otherwise the queries that read a fact the transition changed. Entering ``running`` stamps
  ``started_at`` (the row joins the window: every frame); a final status brings
  ``completed_at``, ``quality_score`` and ``error_message`` (success counts, quality, durations;
  the error table only for ``failed``); an insert brings a whole row but no analytics yet (all
  but the business frame); a row crossing the status filter joins or leaves every frame.
  ``stuck`` (a count over all repositories) runs again when the event enters or leaves
  ``running``. An event in the previous period touches the ``before.*`` totals of the tiles.

The current filter state runs its touched queries again at once; any other cached state that
is touched is dropped and queried when it is shown again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy import Engine

from miyabi_analytics._dashboard import (
    FIGURE_FRAMES,
    DashboardData,
    DashboardFilters,
    DashboardModel,
    dashboard_queries,
)
from miyabi_analytics._db.schema import executions
from miyabi_analytics._live_feed import COALESCE_SECONDS, WAIT_SECONDS, EventSource, LiveFeed
from miyabi_analytics.live import TransitionEvent, watch
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "COALESCE_SECONDS",
    "FRESHNESS_SECONDS",
    "WAIT_SECONDS",
    "EventSource",
    "LiveFeed",
    "LiveModel",
    "recomputed_figures",
    "touched_queries",
    "watch_source",
]

FRESHNESS_SECONDS: Final = 60.0
"""How often a quiet live dashboard reads the rollups' freshness again (a cron refresh)."""
_ROLLUP: Final = frozenset({"rollup"})
_RUNNING: Final = ExecutionStatus.RUNNING.value
_FAILED: Final = ExecutionStatus.FAILED.value
_ROW: Final = frozenset(
    {"success", "success_over_time", "quality", "now.quality", "durations", "errors", "business"}
)
_FINISH: Final = frozenset({"success", "success_over_time", "quality", "now.quality", "durations"})
_BEFORE: Final[Mapping[str, str]] = {
    "success": "before.success",
    "success_over_time": "before.success",
    "quality": "before.quality",
    "now.quality": "before.quality",
    "business": "before.business",
}


def watch_source(engine: Engine) -> EventSource:
    """Every transition of ``engine``'s database, from :func:`miyabi_analytics.live.watch`.

    Unfiltered: the dashboard's filters change while it runs; :func:`touched_queries` applies
    them to each event.
    """

    def source() -> Iterator[TransitionEvent]:
        return watch(engine, timeout=WAIT_SECONDS)  # a Watcher: close() closes its connection

    return source


def _facts(event: TransitionEvent, statuses: tuple[str, ...] | None) -> frozenset[str]:
    """The queries that read what ``event`` changed, if its row is in the window."""
    inserted = event.from_status is None
    if statuses is None:
        crossing = inserted
    else:
        before = not inserted and event.from_status in statuses
        after = event.to_status in statuses
        if not before and not after:
            return frozenset()
        crossing = before != after
    if crossing or event.to_status == _RUNNING:
        keys = _ROW - {"business"} if inserted else _ROW  # no analytics before the row exists
    else:
        keys = _FINISH | ({"errors"} if event.to_status == _FAILED else frozenset())
    if _RUNNING in (event.from_status, event.to_status):
        keys |= {"stuck"}
    return keys


def _within(started: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if since is None and until is None:
        return True  # no time filter: rows that never started count too
    if started is None:
        return False
    return (since is None or started >= since) and (until is None or started < until)


def touched_queries(
    filters: DashboardFilters,
    events: Iterable[TransitionEvent],
    started_at: Callable[[TransitionEvent], datetime | None],
) -> frozenset[str]:
    """The names of :func:`~miyabi_analytics._dashboard.dashboard_queries` the events touch.

    Args:
        filters: The filter state.
        events: A batch of transitions.
        started_at: The ``started_at`` of an event's execution (asked only for events that pass
            the repository, agent and status filters, and only when the range is bounded).
    """
    repositories = None if filters.repository_ids is None else set(filters.repository_ids)
    agents = filters.agent_selection()
    previous = filters.previous_period()
    touched: set[str] = set()
    for event in events:
        if repositories is not None and str(event.repository_id) not in repositories:
            continue
        if agents is not None and event.agent_type not in agents:
            continue
        keys = _facts(event, filters.statuses)
        if not keys:
            continue
        bounded = filters.since is not None or filters.until is not None
        started = started_at(event) if bounded else None
        if _within(started, filters.since, filters.until):
            touched |= keys
        if previous is not None and _within(started, previous.since, previous.until):
            touched |= {_BEFORE[k] for k in keys if k in _BEFORE}
    if touched:  # a change marks its day pending: the rollups' freshness line moves too
        touched.add("rollup")
    return frozenset(touched)


class _StartedAt:
    """``started_at`` of the batch's executions, read at most once, in one query."""

    def __init__(self, engine: Engine, events: Sequence[TransitionEvent]) -> None:
        self._engine = engine
        self._events = events
        self._known: dict[uuid.UUID, datetime | None] | None = None
        self.queries = 0

    def __call__(self, event: TransitionEvent) -> datetime | None:
        if event.to_status == _RUNNING:
            return event.at  # entering running stamps started_at: the event's own time
        if self._known is None:
            ids = {e.execution_id for e in self._events if e.to_status != _RUNNING}
            statement = sa.select(executions.c.id, executions.c.started_at).where(
                executions.c.id.in_(ids)
            )
            with self._engine.connect() as conn:
                self._known = {row.id: row.started_at for row in conn.execute(statement)}
            self.queries += 1
        return self._known.get(event.execution_id)  # a deleted execution: outside every window


class LiveModel:
    """A :class:`DashboardModel` kept current by a :class:`LiveFeed`.

    Each batch is applied under ``lock`` (hold it too when changing the model's filters from
    another thread); ``on_change(data, queries)`` gets the current filters' new data and the
    names of the queries that ran, only when some ran. ``last_event`` is when the last batch
    arrived (UTC); ``last_queries`` the queries the last batch ran (empty: it touched nothing).
    A batch whose queries failed (the database away) has them rerun with the next batch.
    ``source`` defaults to :func:`watch_source`; ``idle`` is its streams' timeout (see
    :class:`~miyabi_analytics._live_feed.LiveFeed`).
    """

    def __init__(
        self,
        model: DashboardModel,
        source: EventSource | None = None,
        *,
        lock: threading.RLock | None = None,
        on_change: Callable[[DashboardData, frozenset[str]], None] | None = None,
        on_state: Callable[[str, BaseException | None], None] | None = None,
        coalesce: float = COALESCE_SECONDS,
        idle: float | None = WAIT_SECONDS,
        freshness: float = FRESHNESS_SECONDS,
    ) -> None:
        self.model = model
        self.lock = lock or threading.RLock()
        self.last_event: datetime | None = None
        self.last_queries: frozenset[str] = frozenset()
        self.lookups = 0
        self._pending: tuple[DashboardFilters, frozenset[str]] | None = None
        self._on_change = on_change
        self.freshness = freshness
        self._freshness_read = time.monotonic()
        self.feed = LiveFeed(
            source or watch_source(model.engine),
            self.apply,
            coalesce=coalesce,
            idle=idle,
            on_state=on_state,
            on_quiet=self.quiet,
        )

    def start(self) -> LiveModel:
        """Start listening; returns ``self``."""
        self.feed.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop listening (see :meth:`LiveFeed.stop`)."""
        return self.feed.stop(timeout)

    def _touched(self, events: list[TransitionEvent]) -> frozenset[str]:
        """What the batch touches in the current filters; touched other states are dropped."""
        model = self.model
        started = _StartedAt(model.engine, events)
        current: frozenset[str] = frozenset()
        try:
            for filters in model.cached_filters():
                keys = touched_queries(filters, events, started)
                if filters == model.filters:
                    current = keys
                elif keys:
                    model.forget(filters)
        finally:
            self.lookups += started.queries
        return current

    def quiet(self) -> frozenset[str]:
        """Between events: the rollups' freshness line, read again every ``freshness`` seconds.

        A refresh from cron changes no execution, so no event tells the dashboard; without
        this, the line would say the rollup is stale until the next change. ``on_change`` is
        called only when the line moved; returns the queries run (``{"rollup"}`` or none).
        """
        if time.monotonic() - self._freshness_read < self.freshness:
            return frozenset()
        with self.lock:
            self._freshness_read = time.monotonic()
            model = self.model
            if model.filters not in model.cached_filters():
                return frozenset()  # nothing shown yet: the first refresh reads it anyway
            before = model.refresh().rollup
            data = model.recompute({"rollup"})
            if data.rollup != before and self._on_change is not None:
                self._on_change(data, _ROLLUP)
            return _ROLLUP

    def apply(self, events: list[TransitionEvent]) -> frozenset[str]:
        """Apply one batch: the queries it touches run again; returns their names."""
        with self.lock:
            arrived = datetime.now(UTC)
            model = self.model
            if any(e.from_status is None for e in events):
                model.forget_repositories()  # read again when next needed, not now
            current: frozenset[str] | None = None
            try:
                current = self._touched(events)
                if self._pending and model.filters == self._pending[0]:
                    current |= self._pending[1]  # what a failed batch could not rerun
                self._pending = None
                self.last_queries = current
                if current:
                    data = model.recompute(current)
            except BaseException:
                # The database went away: rerun with the next batch what this one touched,
                # or everything when even that could not be told.
                everything = frozenset(dashboard_queries(model.filters))
                self._pending = (model.filters, everything if current is None else current)
                raise
            self.last_event = arrived  # once applied: the indicator then tells the truth
            if current and self._on_change is not None:
                self._on_change(data, current)
            return current


def recomputed_figures(queries: Collection[str]) -> list[str]:
    """The figures drawn from frames the named queries give (see ``FIGURE_FRAMES``)."""
    return [name for name, frame in FIGURE_FRAMES.items() if frame in queries]
