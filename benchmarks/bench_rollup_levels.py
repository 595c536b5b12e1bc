"""All-time reads against the rows each rollup level holds, at two history lengths.

    python benchmarks/bench_rollup_levels.py --sizes 250000,2500000

Each size gets a scratch PostgreSQL database filled by ``_growth_fill`` at 2,740 executions a
day, ``VACUUM ANALYZE``, then a timed ``refresh_rollups`` (the full build). It prints the rows
of the all-time duration histogram and of the yearly and monthly rollups, and the median of
--repeat timings of three all-time reads; then each read's growth, largest size over smallest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parent))

from _common import scratch_pg
from _growth_fill import fill

import miyabi_analytics as ma

LEVELS = (
    "agent_execution_rollup_durations_total",
    "agent_execution_rollups_yearly",
    "agent_execution_rollups_monthly",
)
READS: dict[str, Callable[[Engine], Any]] = {
    "duration_stats(exact=False)": lambda e: ma.duration_stats(e, exact=False),
    "success_rates": lambda e: ma.success_rates(e),
    "error_analysis": lambda e: ma.error_analysis(e),
}


def one_size(size: int, per_day: float, repeat: int) -> dict[str, float]:
    with scratch_pg() as url:
        engine = ma.connect(url.render_as_string(hide_password=False))
        try:
            ma.migrate(engine)
            fill(engine, size, end=datetime.now(UTC), days=size / per_day)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            began = time.perf_counter()
            ma.refresh_rollups(engine)
            print(f"{size:,}: build {time.perf_counter() - began:.1f} s", flush=True)
            with engine.connect() as conn:
                for table in LEVELS:
                    rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
                    print(f"  {table:48} {rows:>9,} rows")
            times = {}
            for name, read in READS.items():
                read(engine)  # warm
                samples = []
                for _ in range(repeat):
                    began = time.perf_counter()
                    read(engine)
                    samples.append(time.perf_counter() - began)
                times[name] = statistics.median(samples)
                print(f"  {name:48} {times[name]:.4f} s", flush=True)
            return times
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="250000,2500000")
    parser.add_argument("--per-day", type=float, default=2740.0)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    measured = [one_size(size, args.per_day, args.repeat) for size in sizes]
    for name in READS:
        print(f"{name}: x{measured[-1][name] / measured[0][name]:.2f}")


if __name__ == "__main__":
    main()
