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
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
from sqlalchemy import Engine

from miyabi_analytics import aggregates
from miyabi_analytics._dashboard_filters import STATUSES, DashboardFilters
from miyabi_analytics._db.buckets import Freq
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.engine import mask_url
from miyabi_analytics.kpis import Kpi, Query, Totals, totals_of, totals_queries

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
    "FIGURE_FRAMES",
    "build_figures",
    "dashboard_queries",
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


@dataclass(frozen=True, slots=True)
class DashboardData:
    """Everything the dashboard shows for one filter state: aggregate frames and KPIs."""

    filters: DashboardFilters
    frames: Mapping[str, pd.DataFrame]
    kpis: tuple[Kpi, ...]
    seconds: float
    stuck: int = 0  # running, no heartbeat for STUCK_AFTER (or none for MAX_RUNTIME), all repos
    rollup: str = ""  # how fresh the rollups are (RollupStatus.describe)


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


def _rollup_line(engine: Engine) -> pd.DataFrame:
    """How fresh the rollups the aggregates read are (answers stay exact when they are not)."""
    from miyabi_analytics.rollups import rollup_status

    status = rollup_status(engine)
    return pd.DataFrame({"rollup": [status.describe()], "stale": [status.stale]})


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


def dashboard_queries(filters: DashboardFilters) -> dict[str, Query]:
    """Every query of one filter state, by name, so a live event can name those it touches.

    The tabs' frames (:data:`FRAME_KEYS`), ``now.quality`` (the mean quality tile), ``stuck``,
    ``rollup`` (the rollups' freshness line), and the previous period's totals (``before.*``)
    when the range is closed.
    """
    where = {"filters": filters.summary_filters()}  # validated once, by DashboardFilters
    fine: Freq = "D" if filters.is_short() else "W"
    coarse: Freq = "W" if filters.is_short() else "M"
    before = filters.previous_period()
    jobs: dict[str, Query] = {
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
        "rollup": (_rollup_line, {}),
    }
    if before is not None:
        jobs.update(totals_queries(before.summary_filters(), prefix="before.", durations=False))
    return jobs


def _assemble(
    filters: DashboardFilters, results: Mapping[str, pd.DataFrame], seconds: float
) -> DashboardData:
    """The data shown for ``filters`` from the results of its :func:`dashboard_queries`."""
    business = results["business"]
    frames = {key: results[key] for key in FRAME_KEYS}
    frames["business"] = business[business["period"].notna()].reset_index(drop=True)
    current = totals_of(
        success=results["success"], quality=results["now.quality"], business=business
    )
    previous = None
    if filters.previous_period() is not None:
        previous = totals_of(
            success=results["before.success"],
            quality=results["before.quality"],
            business=results["before.business"],
        )
    stuck = int(results["stuck"]["stuck"].iloc[0])
    rollup = str(results["rollup"]["rollup"].iloc[0])
    return DashboardData(filters, frames, _tiles(current, previous), seconds, stuck, rollup)


class DashboardModel:
    """Filter state, cached aggregate queries and KPIs of one engine's database.

    Queries run only in :meth:`refresh` for a filter state not yet cached (or with
    ``force=True``); ``queries_run`` counts the aggregate queries run so far.
    """

    def __init__(self, engine: Engine, filters: DashboardFilters | None = None) -> None:
        self.engine = engine
        self.filters = filters or DashboardFilters()
        self.queries_run = 0
        self.last_recomputed: frozenset[str] = frozenset()
        self._count_lock = threading.Lock()
        self._cache: dict[DashboardFilters, DashboardData] = {}
        self._results: dict[DashboardFilters, dict[str, pd.DataFrame]] = {}
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

    def _query_all(self, jobs: Mapping[str, Query]) -> dict[str, pd.DataFrame]:
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
            self._results.clear()
            self._repositories = None
        cached = self._cache.get(self.filters)
        if cached is not None:
            return cached
        return self._compute(self.filters, dashboard_queries(self.filters), {})

    def recompute(self, keys: Collection[str]) -> DashboardData:
        """The current filters' data with only the queries named in ``keys`` run again.

        The other queries' results are reused from the cache (everything is queried when the
        current filters have none). ``last_recomputed`` names the queries that ran.
        """
        filters = self.filters
        kept = self._results.get(filters)
        jobs = dashboard_queries(filters)
        if kept is None or filters not in self._cache:
            return self._compute(filters, jobs, {})
        return self._compute(filters, {k: q for k, q in jobs.items() if k in keys}, kept)

    def cached_filters(self) -> list[DashboardFilters]:
        """The filter states whose data is cached, the current one (if cached) first."""
        others = [f for f in self._cache if f != self.filters]
        return [self.filters, *others] if self.filters in self._cache else others

    def forget(self, filters: DashboardFilters) -> None:
        """Drop the cached data of ``filters`` (queried again when they are next shown)."""
        self._cache.pop(filters, None)
        self._results.pop(filters, None)

    def forget_repositories(self) -> None:
        """Drop the repository list (read again when next asked for: a new one may be there)."""
        self._repositories = None

    def _compute(
        self, filters: DashboardFilters, jobs: dict[str, Query], kept: Mapping[str, pd.DataFrame]
    ) -> DashboardData:
        began = time.perf_counter()
        results = {**kept, **self._query_all(jobs)}
        self.last_recomputed = frozenset(jobs)
        data = _assemble(filters, results, time.perf_counter() - began)
        self._cache[filters] = data
        self._results[filters] = results
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


FIGURE_FRAMES: Final[Mapping[str, str]] = {
    "quality": "quality",
    "success": "success",
    "success_over_time": "success_over_time",
    "durations": "durations",
    "business": "business",
    "errors": "errors",
    "failures": "success_over_time",
}
"""Figure name (see :data:`TABS`) -> the frame (and query) it is drawn from."""


def build_figures(
    data: DashboardData, names: Collection[str] | None = None
) -> dict[str, go.Figure]:
    """One new plotly figure per name in :data:`TABS` (or in ``names``), from ``data``."""
    from miyabi_analytics import figures

    frames = data.frames
    short = data.filters.is_short()
    drawers: dict[str, Callable[[], go.Figure]] = {
        "quality": lambda: figures.quality_trend_figure(
            frames["quality"], rolling=7 if short else 4
        ),
        "success": lambda: figures.success_rate_figure(frames["success"]),
        "success_over_time": lambda: figures.success_heatmap_figure(frames["success_over_time"]),
        "durations": lambda: figures.duration_figure(frames["durations"]),
        "business": lambda: figures.business_figure(frames["business"], by="agent_category"),
        "errors": lambda: figures.errors_figure(frames["errors"]),
        "failures": lambda: figures.failures_figure(frames["success_over_time"]),
    }
    return {name: draw() for name, draw in drawers.items() if names is None or name in names}


def default_window(today: date | None = None, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """``(since, until)`` of the ``days`` days up to and including ``today`` (UTC)."""
    last = today or datetime.now(UTC).date()
    return last - timedelta(days=days - 1), last + timedelta(days=1)
