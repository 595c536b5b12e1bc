"""Latency from a commit in another process to a ``watch`` consumer receiving it.

    python benchmarks/bench_watch_latency.py [--events 1000] [--pause 0.002] [--sqlite-only]

The writer (tests/db/watch_writer.py: the bare driver, one transaction per transition) prints
``time.perf_counter()`` right after each commit; this process notes it when ``watch`` yields the
event (``perf_counter`` is the system-wide monotonic clock on Linux, so the two subtract).
Prints p50 / p99 / max per database. Goal: p99 < 100 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import scratch_pg

import miyabi_analytics as ma

WRITER = Path(__file__).parent.parent / "tests" / "db" / "watch_writer.py"
REPO = uuid.uuid4()


def measure(url: str, events: int, pause: float) -> list[float]:
    """Latencies (seconds) of ``events`` transitions written by another process."""
    engine = ma.connect(url)
    ma.migrate(engine)
    executions = -(-events // 3)
    received: dict[tuple[str, str], float] = {}
    watcher = ma.watch(engine, timeout=10)
    out: list[str] = []

    def write() -> None:
        done = subprocess.run(
            [sys.executable, str(WRITER), url, str(REPO), str(executions), str(pause)],
            capture_output=True, text=True, check=True,
        )
        out.extend(done.stdout.splitlines())

    thread = threading.Thread(target=write)
    thread.start()
    for event in watcher:
        received[(str(event.execution_id), event.to_status)] = time.perf_counter()
        if len(received) == 3 * executions:
            break
    watcher.close()
    thread.join()
    engine.dispose()
    committed = {(line.split()[0], line.split()[1]): float(line.split()[2]) for line in out}
    assert committed.keys() == received.keys(), "an event was lost"
    return [received[key] - committed[key] for key in committed][:events]


def report(name: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[int(0.99 * (len(ms) - 1))]
    print(f"{name:<11} {len(ms):>5} events  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
          f"max {ms[-1]:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--pause", type=float, default=0.002, help="writer's pause per commit")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report("SQLite", measure(f"sqlite:///{tmp}/watch.db", args.events, args.pause))
    if not args.sqlite_only:
        with scratch_pg() as url:
            report("PostgreSQL", measure(url.render_as_string(hide_password=False),
                                         args.events, args.pause))


if __name__ == "__main__":
    main()
