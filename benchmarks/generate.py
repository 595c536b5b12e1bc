"""Load a seeded synthetic history of N executions (with analytics and logs) into a database.

    python benchmarks/generate.py --url postgresql://postgres@127.0.0.1:5432/miyabi_bench \
        [--executions 1000000] [--seed 1] [--days 365] [--no-logs]

The database is created on PostgreSQL if missing and migrated; the history goes in through
ExecutionStore's bulk paths in chunks, so memory stays flat whatever N is.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import miyabi_analytics as ma
from miyabi_analytics.demo import generate_history

CHUNK = 50_000


def ensure_database(url: str) -> None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres"):
        return
    admin = create_engine(
        parsed.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
        ).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-logs", action="store_true")
    args = parser.parse_args()

    ensure_database(args.url)
    engine = ma.connect(args.url)
    ma.migrate(engine)
    store = ma.ExecutionStore(engine)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    began = time.perf_counter()
    done = metrics = logs = 0
    chunk = 0
    while done < args.executions:
        n = min(CHUNK, args.executions - done)
        history = generate_history(n, seed=args.seed * 100_003 + chunk, end=end, days=args.days)
        store.save_executions(history.executions, progress=False)
        metrics += store.save_analysis_metrics_many(history.metrics)
        if not args.no_logs:
            logs += store.log_many(history.logs)
        done += n
        chunk += 1
        print(f"{done:,} executions, {metrics:,} analytics, {logs:,} logs "
              f"({time.perf_counter() - began:.0f}s)", flush=True)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


if __name__ == "__main__":
    main()
