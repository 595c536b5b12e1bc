"""A writer that is not this package: plain SQL through the bare driver, in its own process.

``python tests/db/watch_writer.py URL REPOSITORY_ID COUNT [PAUSE] [AGENT_TYPE]`` inserts COUNT
pending executions of REPOSITORY_ID one transaction each, then moves each to running and to
completed (3 transitions per execution), and prints one line per commit: the execution id, the
status it entered and ``time.perf_counter()`` right after the commit (a system-wide clock on
Linux, so the watching process can subtract it). Used by tests/db/test_watch.py and
benchmarks/bench_watch_latency.py.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any


def _connect(url: str) -> tuple[Any, str]:
    if url.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn, "?"
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")), "%s"


def main(argv: list[str]) -> None:
    url, repository_id, count = argv[0], argv[1], int(argv[2])
    pause = float(argv[3]) if len(argv) > 3 else 0.0
    agent_type = argv[4] if len(argv) > 4 else "SalesAgent"
    conn, p = _connect(url)
    sqlite = p == "?"

    def commit(sql: str, params: tuple[Any, ...], execution_id: str, status: str) -> None:
        if sqlite:
            conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql.replace("?", p), params)
        conn.commit() if not sqlite else conn.execute("COMMIT")
        print(execution_id, status, repr(time.perf_counter()), flush=True)
        if pause:
            time.sleep(pause)

    for _ in range(count):
        execution_id = str(uuid.uuid4())
        commit(
            "INSERT INTO agent_executions (id, repository_id, agent_type, status) "
            "VALUES (?, ?, ?, 'pending')",
            (execution_id, repository_id, agent_type), execution_id, "pending",
        )
        for status in ("running", "completed"):
            commit(
                "UPDATE agent_executions SET status = ? WHERE id = ?",
                (status, execution_id), execution_id, status,
            )
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
