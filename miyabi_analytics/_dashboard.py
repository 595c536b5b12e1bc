"""The dashboard's state and data, without ipywidgets: filters, cached queries, KPIs, figures.

:class:`DashboardModel` holds a filter state (:class:`DashboardFilters`), runs the aggregates for
it in :meth:`~DashboardModel.refresh`, cached by filter state (going back to a selection costs no
query), and computes the KPIs (:mod:`miyabi_analytics.kpis`) against the previous period of
equal length. :func:`build_figures` turns its data into new plotly figures.
:mod:`miyabi_analytics.widgets` wires it to controls.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
from sqlalchemy import Engine

from miyabi_analytics import aggregates
from miyabi_analytics._db.buckets import Freq
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.engine import mask_url
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.kpis import Kpi, Totals, totals_of, totals_queries
from miyabi_analytics.vocabulary import (
    AGENT_CATEGORIES,
    AGENT_TYPES,
    ExecutionStatus,
    agent_category,
    agent_type_order,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "DEFAULT_DAYS",
    "STATUSES",
    "TABS",
    "DashboardData",
    "DashboardFilters",
    "DashboardModel",
    "Kpi",
    "build_figures",
    "default_window",
]

DEFAULT_DAYS: Final = 28
"""Days the dashboard shows when given no dates: the last 28, today (UTC) included."""

TABS: Final[Mapping[str, tuple[str, ...]]] = {
    "Quality": ("quality",),
    "Success": ("success", "success_over_time"),
    "Durations": ("durations",),
    "Business": ("business",),
    "Errors": ("errors", "failures"),
}
"""Tab title -> the names of the figures it shows, top to bottom."""

STATUSES: Final = tuple(s.value for s in ExecutionStatus)


def _selected(values: object) -> list[object] | None:
    """A selection's values (one, or an iterable); nothing selected (None, empty) is all."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Iterable):
        return [values]
    return list(values) or None


def _canonical(values: Iterable[str] | None, order: Callable[[str], Any]) -> tuple[str, ...] | None:
    """Validated values deduplicated in a canonical order, so equal selections hash equal."""
    return None if values is None else tuple(sorted(set(values), key=order))


def _check_category(value: object) -> str:
    if isinstance(value, str) and value in AGENT_CATEGORIES:
        return value
    raise ValidationError("categories", value, f"expected one of {', '.join(AGENT_CATEGORIES)}")


@dataclass(frozen=True, slots=True)
class DashboardFilters:
    """One filter state; hashable, it keys the model's cache.

    ``since`` (inclusive) and ``until`` (exclusive) bound ``started_at``, ``None`` leaves that side
    open. The selections are tuples in a canonical order; ``None`` means all. Agents shown are
    those in ``agent_types`` that belong to one of ``categories``. Build with :meth:`build`;
    :meth:`summary_filters` is what every query of the dashboard is given.
    """

    since: datetime | None = None
    until: datetime | None = None
    repository_ids: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    agent_types: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None

    @classmethod
    def build(
        cls,
        *,
        since: object = None,
        until: object = None,
        repository_ids: Iterable[object] | None = None,
        categories: Iterable[object] | None = None,
        agent_types: Iterable[object] | None = None,
        statuses: Iterable[object] | None = None,
    ) -> DashboardFilters:
        """Validated filters; dates mean UTC midnight, an empty selection means all.

        The query filters are checked by :meth:`SummaryFilters.build`, as every reader's and
        aggregate's are; only ``categories`` (the dashboard's own) is checked here.
        """
        try:
            checked = SummaryFilters.build(
                repository_id=_selected(repository_ids),
                agent_types=_selected(agent_types),
                statuses=_selected(statuses),
                since=since,
                until=until,
            )
        except ValidationError as exc:  # named as the dashboard's argument
            if exc.field != "repository_id":
                raise
            raise ValidationError("repository_ids", exc.value, exc.reason) from None
        chosen = _selected(categories)
        filters = cls(
            since=checked.since,
            until=checked.until,
            repository_ids=_canonical(
                None if checked.repository_ids is None else map(str, checked.repository_ids),
                str,
            ),
            categories=_canonical(
                None if chosen is None else map(_check_category, chosen),
                AGENT_CATEGORIES.index,
            ),
            # Open, as every filter: the 15 in the design's order, then other writers' types.
            agent_types=_canonical(checked.agent_types, agent_type_order),
            statuses=_canonical(
                None if checked.statuses is None else (s.value for s in checked.statuses),
                STATUSES.index,
            ),
        )
        if filters.agent_selection() == ():
            raise ValidationError(
                "agent_types", agent_types, "none of them is in the selected categories"
            )
        return filters

    def changed(self, **changes: object) -> DashboardFilters:
        """These filters with some fields changed, validated again."""
        current: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        return DashboardFilters.build(**{**current, **changes})

    def agent_selection(self) -> tuple[str, ...] | None:
        """The agent types to query: ``agent_types`` within ``categories``; ``None``: all."""
        if self.categories is None:
            return self.agent_types
        chosen = self.agent_types or AGENT_TYPES
        return tuple(a for a in chosen if agent_category(a) in self.categories)

    def summary_filters(self) -> SummaryFilters:
        """The filters of every query for this state (``filters=``), from validated fields."""
        return SummaryFilters(
            repository_ids=(
                None if self.repository_ids is None else tuple(map(uuid.UUID, self.repository_ids))
            ),
            agent_types=self.agent_selection(),
            statuses=None if self.statuses is None else tuple(map(ExecutionStatus, self.statuses)),
            since=self.since,
            until=self.until,
        )

    def previous_period(self) -> DashboardFilters | None:
        """The same filters over the period of equal length just before; ``None`` if open."""
        if self.since is None or self.until is None:
            return None
        return replace(self, since=self.since - (self.until - self.since), until=self.since)

    def is_short(self) -> bool:
        """At most two months: daily buckets for trends, weekly for the rest."""
        return (
            self.since is not None
            and self.until is not None
            and self.until - self.since <= timedelta(days=62)
        )


@dataclass(frozen=True, slots=True)
class DashboardData:
    """Everything the dashboard shows for one filter state: aggregate frames and KPIs."""

    filters: DashboardFilters
    frames: Mapping[str, pd.DataFrame]
    kpis: tuple[Kpi, ...]
    seconds: float
    stuck: int = 0  # running, no heartbeat for STUCK_AFTER (or none for MAX_RUNTIME), all repos


FRAME_KEYS: Final = ("quality", "success", "success_over_time", "durations", "business", "errors")
_PARALLEL_QUERIES: Final = 4


STUCK_AFTER: Final = timedelta(minutes=30)
MAX_RUNTIME: Final = timedelta(hours=1)
"""For executions that never sent a heartbeat (upstream writers never do): running this long."""


def _stuck_count(engine: Engine) -> pd.DataFrame:
    """Running executions ``reap --stale-after 30m --max-runtime 1h`` would fail now."""
    from miyabi_analytics.store import ExecutionStore

    store = ExecutionStore(engine)
    return pd.DataFrame({"stuck": [store.count_stuck(STUCK_AFTER, max_runtime=MAX_RUNTIME)]})


TILES: Final = (
    ("executions", "Executions"),
    ("success_rate", "Success rate"),
    ("mean_quality", "Mean quality"),
    ("revenue", "Estimated revenue"),
)
"""``(key, label)`` of the KPI tiles, left to right; each key a field of :class:`Totals`."""


def _tiles(current: Totals, previous: Totals | None) -> tuple[Kpi, ...]:
    """The tiles, each against the previous period; a revenue nobody reported shows $0."""

    def shown(totals: Totals | None, key: str) -> float | None:
        value = None if totals is None else getattr(totals, key)
        if value is None:
            return 0.0 if totals is not None and key == "revenue" else None
        return float(value)

    return tuple(Kpi(key, label, shown(current, key), shown(previous, key)) for key, label in TILES)


class DashboardModel:
    """Filter state, cached aggregate queries and KPIs of one engine's database.

    Queries run only in :meth:`refresh` for a filter state not yet cached (or with
    ``force=True``); ``queries_run`` counts the aggregate queries run so far.
    """

    def __init__(self, engine: Engine, filters: DashboardFilters | None = None) -> None:
        self.engine = engine
        self.filters = filters or DashboardFilters()
        self.queries_run = 0
        self._count_lock = threading.Lock()
        self._cache: dict[DashboardFilters, DashboardData] = {}
        self._repositories: list[tuple[str, int]] | None = None

    def __repr__(self) -> str:
        return f"DashboardModel({mask_url(self.engine.url)!r}, {self.filters!r})"

    def update(self, **changes: object) -> DashboardFilters:
        """Change some filters (validated; nothing is queried until :meth:`refresh`)."""
        self.filters = self.filters.changed(**changes)
        return self.filters

    def _query(self, function: Callable[..., pd.DataFrame], **arguments: Any) -> pd.DataFrame:
        with self._count_lock:
            self.queries_run += 1
        return function(self.engine, **arguments)

    def _query_all(
        self, jobs: dict[str, tuple[Callable[..., pd.DataFrame], dict[str, Any]]]
    ) -> dict[str, pd.DataFrame]:
        """Run independent queries side by side on the engine's pool.

        The database then works on them in parallel. An in-memory SQLite database is private to
        each connection, so there they run one after another.
        """
        database = self.engine.url.database
        if Dialect.of(self.engine) is Dialect.SQLITE and database in (None, "", ":memory:"):
            return {key: self._query(fn, **args) for key, (fn, args) in jobs.items()}
        with ThreadPoolExecutor(max_workers=_PARALLEL_QUERIES) as pool:
            futures = {
                key: pool.submit(self._query, fn, **args) for key, (fn, args) in jobs.items()
            }
            return {key: future.result() for key, future in futures.items()}

    def refresh(self, *, force: bool = False) -> DashboardData:
        """The data of the current filters: from the cache, else queried (``force``: re-query)."""
        if force:
            self._cache.clear()
            self._repositories = None
        cached = self._cache.get(self.filters)
        if cached is not None:
            return cached
        began = time.perf_counter()
        filters = self.filters
        where = {"filters": filters.summary_filters()}  # validated once, by DashboardFilters
        fine: Freq = "D" if filters.is_short() else "W"
        coarse: Freq = "W" if filters.is_short() else "M"
        before = filters.previous_period()
        jobs: dict[str, tuple[Callable[..., pd.DataFrame], dict[str, Any]]] = {
            "quality": (aggregates.quality_trend, {"freq": fine, **where}),
            "success": (aggregates.success_rates, where),
            "success_over_time": (aggregates.success_rates, {"freq": coarse, **where}),
            "durations": (aggregates.duration_stats, where),
            # With the never-started rows (a NaT period): the revenue KPI counts them too, and
            # one latest-analytics join serves both (it is the dashboard's costliest query).
            "business": (
                aggregates.business_metrics_with_unstarted,
                {"by": "agent_category", "freq": coarse, "unstarted": True, **where},
            ),
            "errors": (aggregates.error_analysis, where),
            "now.quality": (aggregates.quality_trend, {"by": None, "freq": None, **where}),
            "stuck": (_stuck_count, {}),
        }
        if before is not None:
            jobs.update(
                totals_queries(before.summary_filters(), prefix="before.", durations=False)
            )
        results = self._query_all(jobs)
        business = results["business"]
        results["business"] = business[business["period"].notna()].reset_index(drop=True)
        frames = {key: results[key] for key in FRAME_KEYS}
        current = totals_of(
            success=results["success"], quality=results["now.quality"], business=business
        )
        previous = None
        if before is not None:
            previous = totals_of(
                success=results["before.success"],
                quality=results["before.quality"],
                business=results["before.business"],
            )
        kpis = _tiles(current, previous)
        stuck = int(results["stuck"]["stuck"].iloc[0])
        data = DashboardData(filters, frames, kpis, time.perf_counter() - began, stuck)
        self._cache[filters] = data
        return data

    def kpis(self) -> tuple[Kpi, ...]:
        """The KPIs of the current filters (see :meth:`refresh`)."""
        return self.refresh().kpis

    def repositories(self) -> list[tuple[str, int]]:
        """``(repository_id, executions)`` of every repository, all time; cached until forced."""
        if self._repositories is None:
            frame = self._query(aggregates.success_rates, by="repository_id")
            self._repositories = [
                (str(r), int(n))
                for r, n in zip(frame["repository_id"], frame["executions"], strict=True)
            ]
        return self._repositories


def build_figures(data: DashboardData) -> dict[str, go.Figure]:
    """One new plotly figure per name in :data:`TABS`, from the frames of ``data``."""
    from miyabi_analytics import figures

    frames = data.frames
    short = data.filters.is_short()
    return {
        "quality": figures.quality_trend_figure(frames["quality"], rolling=7 if short else 4),
        "success": figures.success_rate_figure(frames["success"]),
        "success_over_time": figures.success_heatmap_figure(frames["success_over_time"]),
        "durations": figures.duration_figure(frames["durations"]),
        "business": figures.business_figure(frames["business"], by="agent_category"),
        "errors": figures.errors_figure(frames["errors"]),
        "failures": figures.failures_figure(frames["success_over_time"]),
    }


def default_window(today: date | None = None, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """``(since, until)`` of the ``days`` days up to and including ``today`` (UTC)."""
    last = today or datetime.now(UTC).date()
    return last - timedelta(days=days - 1), last + timedelta(days=1)
