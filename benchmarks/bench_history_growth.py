"""History growth: the same daily rate, longer histories; what each read costs per size.

    python benchmarks/bench_history_growth.py --dialect postgresql --sizes 250000,1000000,4000000
    python benchmarks/bench_history_growth.py --dialect sqlite --sizes 250000,1000000 --pandas

Each size gets a fresh migrated database (PostgreSQL: a scratch database; SQLite: a file under
--dir) filled by SQL (benchmarks/_growth_fill.py: executions, analytics, logs, history rows by
revision 0010's triggers) at --per-day executions a day ending now, then ANALYZEd (PostgreSQL:
VACUUM ANALYZE, as autovacuum would leave it), then ``refresh_rollups`` builds the rollups
(timed; --no-rollup skips it, and every day is then read from the rows). Timed, medians of
--repeat: the dashboard's first refresh (a new DashboardModel with the default 28-day window,
as widgets.dashboard opens it; and without a window, i.e. all time, as DashboardModel(engine)
alone reads), each contract aggregate over the last 28 days and over all time, and an
incremental refresh after 200 late updates. The table gives seconds per size
and the growth ratio largest / smallest. --pandas (at the largest size) also times
``pandas.read_sql`` of the whole view plus the equivalent groupby (bench_aggregates.py's)
against each all-time aggregate.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parent))

from _common import peak_rss_mb, scratch_pg, timed
from _growth_fill import fill
from bench_aggregates import pandas_ways

import miyabi_analytics as ma
from miyabi_analytics._dashboard import DashboardFilters, DashboardModel, default_window

AGGREGATES: dict[str, Callable[..., Any]] = {
    "success_rates": lambda e, **w: ma.success_rates(e, **w),
    "success_rates(freq=D)": lambda e, **w: ma.success_rates(e, freq="D", **w),
    "quality_trend(freq=D)": lambda e, **w: ma.quality_trend(e, freq="D", **w),
    "duration_stats": lambda e, **w: ma.duration_stats(e, **w),
    "duration_stats(exact=False)": lambda e, **w: ma.duration_stats(e, exact=False, **w),
    "business_metrics(freq=M)": lambda e, **w: ma.business_metrics(e, freq="M", **w),
    "error_analysis": lambda e, **w: ma.error_analysis(e, **w),
}


@contextmanager
def database(dialect: str, size: int, directory: Path) -> Iterator[Engine]:
    if dialect == "postgresql":
        with scratch_pg() as url:
            engine = ma.connect(url.render_as_string(hide_password=False))
            try:
                yield engine
            finally:
                engine.dispose()
        return
    path = directory / f"miyabi_growth_{size}.db"
    for leftover in directory.glob(f"{path.name}*"):
        leftover.unlink()
    engine = ma.connect(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()
        for made in directory.glob(f"{path.name}*"):
            made.unlink()


def counts(engine: Engine) -> dict[str, int]:
    tables = ("agent_executions", "business_agent_analytics", "agent_execution_logs",
              "agent_execution_transitions")
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
                for t in tables}


def analyze(engine: Engine) -> None:
    """Statistics for the planner (without them SQLite may pick a quadratic plan for the view)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sqlite_stat1")).scalar_one() > 0


def window() -> dict[str, datetime]:
    since, until = default_window()
    return {"since": datetime(since.year, since.month, since.day, tzinfo=UTC),
            "until": datetime(until.year, until.month, until.day, tzinfo=UTC)}


def measure(engine: Engine, repeat: int) -> dict[str, float]:
    ma.success_rates(engine)  # warm the pool and the process's imports, untimed
    opened = DashboardFilters.build(**window())  # as widgets.dashboard() opens it
    out = {"dashboard first refresh, 28 days": timed(
               lambda: DashboardModel(engine, opened).refresh(), repeat=repeat),
           "dashboard first refresh, no window (all time)": timed(
               lambda: DashboardModel(engine).refresh(), repeat=repeat)}
    for name, fn in AGGREGATES.items():
        out[f"{name}, last 28 days"] = timed(lambda fn=fn: fn(engine, **window()), repeat=repeat)
    for name, fn in AGGREGATES.items():
        out[f"{name}, all time"] = timed(lambda fn=fn: fn(engine), repeat=repeat)
    return out


def late_refresh(engine: Engine) -> float:
    """An incremental refresh: 200 executions of the last week rescored, then the refresh."""
    with engine.begin() as conn:
        conn.execute(text(
            "UPDATE agent_executions SET quality_score = 50 WHERE id IN (SELECT id FROM "
            "agent_executions WHERE quality_score IS NOT NULL ORDER BY started_at DESC "
            "LIMIT 200)"))
    return timed(lambda: ma.refresh_rollups(engine), repeat=1)


def against_pandas(engine: Engine, repeat: int) -> list[tuple[str, float, float, float]]:
    began = time.perf_counter()
    raw = pd.read_sql("SELECT * FROM v_business_agent_summary", engine)
    read_sql = time.perf_counter() - began
    del raw
    frame = ma.read_summary(engine)  # the contract's dtypes, as bench_aggregates groups them
    rows = []
    ways = pandas_ways(frame)
    ways["duration_stats(exact=False)"] = ways["duration_stats"]  # pandas's is exact
    for name, group in ways.items():
        grouping = timed(group, repeat=1)
        ours = timed(lambda name=name: AGGREGATES[name](engine), repeat=repeat)
        rows.append((name, ours, read_sql + grouping, (read_sql + grouping) / ours))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialect", choices=("postgresql", "sqlite"), required=True)
    parser.add_argument("--sizes", default="250000,1000000")
    parser.add_argument("--per-day", type=float, default=2740.0, help="executions per day")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="SQLite files")
    parser.add_argument("--no-logs", action="store_true")
    parser.add_argument("--pandas", action="store_true", help="read_sql baseline, largest size")
    parser.add_argument("--no-rollup", action="store_true",
                        help="never refresh the rollups: every day is read from the rows")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    end = datetime.now(UTC) - timedelta(minutes=1)
    results: dict[int, dict[str, float]] = {}
    baseline: list[tuple[str, float, float, float]] = []
    for size in sizes:
        days = size / args.per_day
        with database(args.dialect, size, args.dir) as engine:
            ma.migrate(engine)
            began = time.perf_counter()
            fill(engine, size, end=end, days=days, logs=not args.no_logs)
            filled = time.perf_counter() - began
            analyze(engine)
            analyzed = time.perf_counter() - began - filled
            print(f"{args.dialect} {size:,} executions over {days:.0f} days: {counts(engine)}; "
                  f"fill {filled:.0f} s, analyze {analyzed:.0f} s", flush=True)
            if not args.no_rollup:
                rolled = timed(lambda engine=engine: ma.refresh_rollups(engine), repeat=1)
                analyze(engine)
                print(f"  refresh_rollups (build, {days:.0f} days): {rolled:.1f} s", flush=True)
            results[size] = measure(engine, args.repeat)
            if not args.no_rollup:
                results[size]["refresh_rollups after 200 late updates"] = late_refresh(engine)
            for name, seconds in results[size].items():
                print(f"  {name:<45} {seconds:8.3f} s", flush=True)
            if args.pandas and size == sizes[-1]:
                baseline = against_pandas(engine, args.repeat)
    first, last = sizes[0], sizes[-1]
    print(f"\n| work ({args.dialect}, {args.per_day:g}/day) | "
          + " | ".join(f"{s:,} s" for s in sizes) + f" | growth {last // first}x rows |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for name in results[last]:
        cells = " | ".join(f"{results[s][name]:.3f}" for s in sizes)
        print(f"| {name} | {cells} | x{results[last][name] / results[first][name]:.2f} |")
    if baseline:
        print(f"\n| aggregate, all time, {last:,} executions | ours s | read_sql + groupby s "
              "| x faster |\n|---|---|---|---|")
        for name, ours, theirs, ratio in baseline:
            print(f"| {name} | {ours:.3f} | {theirs:.2f} | {ratio:.1f} |")
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
