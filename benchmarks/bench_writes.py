"""Bulk write benchmark: ExecutionStore.save_executions against raw psycopg binary COPY.

    python benchmarks/bench_writes.py [--rows 100000] [--one-by-one 2000] [--sqlite]

Same rows, same process, same empty table each run; prints medians and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from psycopg.types.json import Jsonb
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from _common import scratch_pg, timed

import miyabi_analytics as ma
from miyabi_analytics.demo import generate_history

COLUMNS = (
    "id, repository_id, user_id, agent_type, issue_number, status, started_at, completed_at, "
    "error_message, result, quality_score, pr_number, created_at, updated_at"
)
TYPES = ["uuid", "uuid", "uuid", "varchar", "int4", "varchar", "timestamptz", "timestamptz",
         "text", "jsonb", "int4", "int4", "timestamptz", "timestamptz"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--one-by-one", type=int, default=2_000)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()

    records = generate_history(args.rows, seed=7).executions
    now = datetime.now(UTC)
    tuples = [
        (r.id, r.repository_id, r.user_id, r.agent_type, r.issue_number, r.status.value,
         r.started_at, r.completed_at, r.error_message,
         None if r.result is None else Jsonb(r.result), r.quality_score, r.pr_number, now, now)
        for r in records
    ]
    print(f"{args.rows:,} executions")
    with scratch_pg() as url:
        engine = ma.connect(url)
        ma.migrate(engine)

        def truncate() -> None:
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE agent_executions CASCADE"))

        def raw_copy() -> None:
            with engine.begin() as conn:
                raw = conn.connection.dbapi_connection
                with raw.cursor() as cur, cur.copy(
                    f"COPY agent_executions ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(TYPES)
                    for row in tuples:
                        copy.write_row(row)

        store = ma.ExecutionStore(engine)
        # Paired runs, interleaved, so both ways see the same moments of a noisy machine; the
        # ratio reported is the median of the per-pair ratios.
        pairs = []
        for _ in range(args.pairs):
            base_run = timed(raw_copy, setup=truncate, repeat=1)
            ours_run = timed(
                lambda: store.save_executions(records, progress=False), setup=truncate, repeat=1
            )
            pairs.append((base_run, ours_run))
        base = statistics.median(b for b, _ in pairs)
        ours = statistics.median(o for _, o in pairs)
        ratio = statistics.median(o / b for b, o in pairs)

        sample = records[: args.one_by_one]
        agent_of = {t: ma.agent_for(t) for t in ma.AGENT_TYPES}

        def one_by_one() -> None:
            for r in sample:
                agent_of[r.agent_type].save_execution(engine, r)

        single = timed(one_by_one, setup=truncate, repeat=1) * len(records) / len(sample)
        engine.dispose()
    print(f"PostgreSQL raw psycopg binary COPY      {base:7.2f} s")
    print(f"PostgreSQL save_executions              {ours:7.2f} s   ratio {ratio:.2f}x COPY "
          f"(median of {args.pairs} paired runs)")
    print(f"PostgreSQL one by one (extrapolated)    {single:7.2f} s   "
          f"save_executions is {single / ours:.0f}x faster")

    with tempfile.TemporaryDirectory() as tmp:
        engine = ma.connect(f"sqlite:///{tmp}/bench.db")
        ma.migrate(engine)

        def truncate_sqlite() -> None:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM agent_executions"))

        store = ma.ExecutionStore(engine)
        lite = timed(lambda: store.save_executions(records, progress=False),
                     setup=truncate_sqlite)
        sample = records[: args.one_by_one]

        def one_by_one_sqlite() -> None:
            for r in sample:
                ma.agent_for(r.agent_type).save_execution(engine, r)

        single = timed(one_by_one_sqlite, setup=truncate_sqlite, repeat=1) * len(records) / len(
            sample
        )
        engine.dispose()
    print(f"SQLite save_executions                  {lite:7.2f} s")
    print(f"SQLite one by one (extrapolated)        {single:7.2f} s   "
          f"save_executions is {single / lite:.0f}x faster")


if __name__ == "__main__":
    main()
