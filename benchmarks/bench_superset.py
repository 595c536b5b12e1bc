"""What the superset view (revision 0009) costs reads that do not name upstream's columns.

    python benchmarks/bench_superset.py --url postgresql --executions 100000
    python benchmarks/bench_superset.py --url sqlite --executions 100000

``postgresql`` / ``sqlite``: a scratch database (dropped after) filled with the synthetic
history, logs included (4 a execution), migrated to head. Then, on the same data in one
process, the view is swapped between revision 0008's (``Shape.ORIGINAL``) and 0009's
(``Shape.SUPERSET``), round by round, and each read is timed on both; the figure is the median
of the per-round ratios 0009 / 0008 (1.00: no cost). Reads: ``read_summary`` whole (PostgreSQL
reads the tables there, SQLite the view), ``read_summary`` of one month (``since``/``until``),
``iter_summary`` (the view on both), and for scale ``SELECT *`` of the 0009 view (the counts
computed) against 0008's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parent))
from _common import scratch_pg

import miyabi_analytics as ma
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.summary import VIEW, Shape, view_ddl
from miyabi_analytics.demo import generate_history

END = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 50_000


@contextmanager
def database(kind: str) -> Iterator[Engine]:
    if kind == "postgresql":
        with scratch_pg() as url:
            engine = ma.connect(url)
            yield engine
            engine.dispose()
        return
    with tempfile.TemporaryDirectory() as tmp:
        engine = ma.connect(f"sqlite:///{tmp}/bench.db")
        yield engine
        engine.dispose()


def fill(engine: Engine, executions: int) -> None:
    ma.migrate(engine)
    store = ma.ExecutionStore(engine)
    done = chunk = 0
    while done < executions:
        n = min(CHUNK, executions - done)
        history = generate_history(n, seed=1 + chunk, end=END, days=365)
        store.save_executions(history.executions, progress=False)
        store.save_analysis_metrics_many(history.metrics)
        store.log_many(history.logs)
        done += n
        chunk += 1
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def use_view(engine: Engine, shape: Shape) -> None:
    """Replace the view by ``shape``'s (as the revisions create it)."""
    postgresql = Dialect.of(engine).is_postgresql
    with engine.begin() as conn:
        conn.execute(text(f"DROP VIEW {VIEW}"))
        ddl = view_ddl(conn.dialect, shape=shape, security_invoker=postgresql)
        conn.execute(text(ddl))


def _select_all(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text(f"SELECT * FROM {VIEW}")).fetchall()  # noqa: S608 (a constant)


READS: dict[str, Callable[[Engine], Any]] = {
    "read_summary (whole)": ma.read_summary,
    "read_summary (one month)": lambda e: ma.read_summary(
        e, since=datetime(2026, 6, 1, tzinfo=UTC), until=datetime(2026, 7, 1, tzinfo=UTC)
    ),
    "iter_summary (whole)": lambda e: sum(len(f) for f in ma.iter_summary(e, chunksize=50_000)),
    "SELECT * FROM the view (raw rows)": _select_all,
}


def clock(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", choices=("postgresql", "sqlite"), required=True)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with database(args.url) as engine:
        fill(engine, args.executions)
        ratios: dict[str, list[float]] = {name: [] for name in READS}
        seconds: dict[str, dict[Shape, list[float]]] = {
            name: {Shape.ORIGINAL: [], Shape.SUPERSET: []} for name in READS
        }
        for name, read in READS.items():
            read(engine)  # warm the cache once
            for index in range(args.rounds):
                # Alternate which view goes first, so neither always runs on a warmer cache.
                order = (Shape.ORIGINAL, Shape.SUPERSET)
                taken: dict[Shape, float] = {}
                for shape in order if index % 2 == 0 else order[::-1]:
                    use_view(engine, shape)
                    taken[shape] = clock(lambda read=read: read(engine))  # type: ignore[misc]
                    seconds[name][shape].append(taken[shape])
                ratios[name].append(taken[Shape.SUPERSET] / taken[Shape.ORIGINAL])
        print(f"{args.url}, {args.executions:,} executions, {args.rounds} rounds")
        print("| read | 0008 view (median s) | 0009 view (median s) | 0009 / 0008 (median) |")
        print("|---|---|---|---|")
        for name in READS:
            old = statistics.median(seconds[name][Shape.ORIGINAL])
            new = statistics.median(seconds[name][Shape.SUPERSET])
            ratio = statistics.median(ratios[name])
            print(f"| {name} | {old:.3f} | {new:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
