"""Aggregate benchmark: SQL GROUP BY in the database against read_sql of the view + pandas.

    python benchmarks/bench_aggregates.py --url postgresql://postgres@127.0.0.1:5432/miyabi_bench

The baseline loads the whole view once with ``pandas.read_sql`` (its time is charged to every
aggregate, as a notebook computing any one of them that way would pay it) and then groups in
pandas. Ours: each aggregate as the library runs it. Medians of --repeat; same process.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

import miyabi_analytics as ma


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def pandas_ways(frame: pd.DataFrame) -> dict[str, Callable[[], Any]]:
    started = frame.dropna(subset=["started_at"])
    day = started["started_at"].dt.floor("D")

    def success() -> Any:
        g = started.assign(period=day).groupby(["period", "agent_type"], observed=True)
        done = g["status"].apply(lambda s: (s == "completed").sum())
        failed = g["status"].apply(lambda s: (s == "failed").sum())
        return done / (done + failed)

    def quality() -> Any:
        return started.assign(period=day).groupby(["period", "agent_type"], observed=True)[
            "quality_score"
        ].agg(["count", "mean", "min", "max"])

    def durations() -> Any:
        return frame.groupby("agent_type", observed=True)["duration_seconds"].describe(
            percentiles=[0.5, 0.95]
        )

    def business() -> Any:
        month = started["started_at"].dt.tz_convert(None).dt.to_period("M")
        return started.assign(period=month).groupby(["period", "agent_type"], observed=True)[
            ["estimated_revenue_usd", "market_size_usd", "roi_percent"]
        ].agg(["sum", "mean"])

    def errors() -> Any:
        failed = frame[frame["status"] == "failed"]
        return failed.groupby("error_message").agg(
            failures=("id", "size"), first_seen=("started_at", "min")
        )

    return {
        "success_rates(freq=D)": success,
        "quality_trend(freq=D)": quality,
        "duration_stats": durations,
        "business_metrics(freq=M)": business,
        "error_analysis": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    engine = ma.connect(args.url)
    ours = {
        "success_rates(freq=D)": lambda: ma.success_rates(engine, freq="D"),
        "quality_trend(freq=D)": lambda: ma.quality_trend(engine, freq="D"),
        "duration_stats": lambda: ma.duration_stats(engine),
        "business_metrics(freq=M)": lambda: ma.business_metrics(engine, freq="M"),
        "error_analysis": lambda: ma.error_analysis(engine),
    }
    timings = {name: median_time(fn, args.repeat) for name, fn in ours.items()}

    began = time.perf_counter()
    frame = pd.read_sql("SELECT * FROM v_business_agent_summary", engine)
    read_sql = time.perf_counter() - began
    frame = ma.read_summary(engine)  # same data with the contract's dtypes for the groupbys
    print(f"rows: {len(frame):,}; pandas.read_sql of the view: {read_sql:.2f} s")
    header = ("aggregate", "ours s", "pandas groupby s", "baseline s", "x faster")
    print(f"{header[0]:<26} {header[1]:>8} {header[2]:>17} {header[3]:>11} {header[4]:>9}")
    for name, fn in pandas_ways(frame).items():
        group = median_time(fn, 1)
        baseline = read_sql + group
        print(f"{name:<26} {timings[name]:8.2f} {group:17.2f} {baseline:11.2f} "
              f"{baseline / timings[name]:9.1f}")

    try:
        from miyabi_analytics.widgets import DashboardModel
    except ImportError:
        return
    slowest = max(timings.values())
    model = DashboardModel(engine)
    began = time.perf_counter()
    model.refresh()
    first = time.perf_counter() - began
    print(f"dashboard first render (all tabs' queries): {first:.2f} s = "
          f"{first / slowest:.2f}x the slowest aggregate ({slowest:.2f} s)")


if __name__ == "__main__":
    main()
