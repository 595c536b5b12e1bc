"""Read benchmark: the whole summary view into pandas, ours against the usual ways.

    python benchmarks/bench_reads.py --url postgresql://postgres@127.0.0.1:5432/miyabi_bench
    python benchmarks/bench_reads.py --url sqlite:////tmp/miyabi_bench.db

    python benchmarks/bench_reads.py --url sqlite:////tmp/miyabi_bench.db --sizes 25000,100000

Each way runs in a fresh subprocess (so peak RSS is its own), on the same data, in one run.
Only the read is timed: imports and the engine come first. The floor (``psql \\copy`` of the
view to /dev/null on PostgreSQL, the ``sqlite3`` CLI on SQLite) and the fast ways alternate for
--repeat rounds; "x floor" is the median of the per-round ratios. ``pandas.read_sql`` runs
--read-sql-repeat times after them. On SQLite, ``read_summary`` of the whole view goes through
the child process (ADBC's driver); "read_summary rows" is the same read kept in the process
(raw sqlite3 rows), and ``--sizes`` times both ways on the latest N executions (``since``), to
show where the child process starts to pay (``_db.fastread.sqlite.PROCESS_ROWS``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from sqlalchemy.engine import make_url

# name -> (setup, timed): the imports and the engine are made before the clock starts, as in a
# notebook that has already imported pandas; only the read itself is timed.
WAYS = {
    "read_summary": (
        "import miyabi_analytics as ma\nengine = ma.connect(URL)",
        "frame = ma.read_summary(engine)",
    ),
    "read_summary rows": (
        "import miyabi_analytics as ma\nengine = ma.connect(URL)\n"
        "from miyabi_analytics._db.fastread import sqlite as fastread_sqlite\n"
        "fastread_sqlite.PROCESS_ROWS = 10**12  # never the child process",
        "frame = ma.read_summary(engine)",
    ),
    "pandas.read_sql": (
        "import pandas as pd\nimport miyabi_analytics as ma\nengine = ma.connect(URL)",
        'frame = pd.read_sql("SELECT * FROM v_business_agent_summary", engine)',
    ),
    "adbc_to_pandas": (
        "import adbc_driver_postgresql.dbapi as adbc\nimport pandas as pd\n"
        "from sqlalchemy.engine import make_url\n"
        'uri = make_url(URL).set(drivername="postgresql").render_as_string(hide_password=False)',
        "with adbc.connect(uri) as conn, conn.cursor() as cur:\n"
        '    cur.execute("SELECT * FROM v_business_agent_summary")\n'
        "    frame = cur.fetch_arrow_table().to_pandas()",
    ),
}

RUNNER = """
import resource, time, json
URL = {url!r}
{setup}
began = time.perf_counter()
{timed}
seconds = time.perf_counter() - began
print(json.dumps({{"seconds": seconds, "rows": len(frame),
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_way(url: str, name: str, since: str | None = None) -> dict[str, float]:
    setup, timed = WAYS[name]
    if since is not None:
        timed = timed.replace("(engine)", f"(engine, since={since!r})")
    code = RUNNER.format(url=url, setup=setup, timed=timed)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def floor(url: str) -> float:
    parsed = make_url(url)
    began = time.perf_counter()
    if parsed.drivername.startswith("postgres"):
        conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(
            ["psql", conninfo, "-qc",
             r"\copy (SELECT * FROM v_business_agent_summary) TO '/dev/null'"],
            check=True,
        )
    else:
        subprocess.run(
            ["sqlite3", parsed.database, "SELECT * FROM v_business_agent_summary"],
            check=True, stdout=subprocess.DEVNULL,
        )
    return time.perf_counter() - began


def since_for(url: str, rows: int) -> str:
    """The ``since`` that keeps the latest ``rows`` started executions."""
    import miyabi_analytics as ma

    engine = ma.connect(url)
    frame = ma.read_summary(engine, columns=["started_at"], since="1970-01-01")
    engine.dispose()
    starts = frame["started_at"].sort_values(ascending=False, ignore_index=True)
    return str(starts[min(rows, len(starts)) - 1].isoformat())


def crossover(url: str, sizes: list[int], repeat: int) -> None:
    """Both SQLite ways on reads of each size, alternating: where the child process pays."""
    print(f"{'rows':>9} {'child s':>8} {'rows s':>8} {'child/rows':>10}")
    for size in sizes:
        since = since_for(url, size)
        child: list[float] = []
        rows: list[float] = []
        count = 0
        for _ in range(repeat):
            done = run_way(url, "read_summary", since)
            child.append(done["seconds"])
            count = int(done["rows"])
            rows.append(run_way(url, "read_summary rows", since)["seconds"])
        ratios = statistics.median(c / r for c, r in zip(child, rows, strict=True))
        print(f"{count:9,} {statistics.median(child):8.2f} {statistics.median(rows):8.2f} "
              f"{ratios:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--read-sql-repeat", type=int, default=1)
    parser.add_argument("--sizes", help="SQLite: comma-separated row counts, both ways each")
    args = parser.parse_args()
    pg = make_url(args.url).drivername.startswith("postgres")
    if not pg and shutil.which("sqlite3") is None:
        sys.exit("the sqlite3 CLI is needed for the SQLite floor")
    if args.sizes:
        crossover(args.url, [int(n) for n in args.sizes.split(",")], args.repeat)
        return

    # The floor and the fast ways run round by round, each round's ratio against the floor
    # of that round: the VM drifts by 10-20% over minutes, a ratio of medians taken minutes
    # apart would measure the drift. pandas.read_sql (30 s a run) is timed on its own.
    fast = ["read_summary"] + (["adbc_to_pandas"] if pg else ["read_summary rows"])
    floors: list[float] = []
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in fast}
    for _ in range(args.repeat):
        floors.append(floor(args.url))
        for name in fast:
            runs[name].append(run_way(args.url, name))
    if args.read_sql_repeat:
        runs["pandas.read_sql"] = [
            run_way(args.url, "pandas.read_sql") for _ in range(args.read_sql_repeat)
        ]
    sql_runs = runs.get("pandas.read_sql")
    read_sql = statistics.median(r["seconds"] for r in sql_runs) if sql_runs else float("nan")
    label = "psql \\copy" if pg else "sqlite3 CLI"
    print(f"{'way':<20} {'seconds':>8} {'peak RSS':>9} {'x floor':>8} {'read_sql/x':>10}")
    base = statistics.median(floors)
    print(f"{label:<20} {base:8.2f} {'-':>9} {1:8.2f} {read_sql / base:10.1f}")
    for name, done in runs.items():
        seconds = statistics.median(r["seconds"] for r in done)
        rss = max(r["rss_mb"] for r in done)
        if name in fast:  # median of the per-round ratios
            ratio = statistics.median(r["seconds"] / f for r, f in zip(done, floors, strict=True))
        else:
            ratio = seconds / base
        print(f"{name:<20} {seconds:8.2f} {rss:6.0f} MB {ratio:8.2f} {read_sql / seconds:10.1f}")
    rounds = " ".join(
        f"{r['seconds'] / f:.2f}" for r, f in zip(runs["read_summary"], floors, strict=True)
    )
    print(f"read_summary x floor by round: {rounds}")
    print(f"rows: {int(runs['read_summary'][0]['rows']):,}")


if __name__ == "__main__":
    main()
