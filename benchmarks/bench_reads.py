"""Read benchmark: the whole summary view into pandas, ours against the usual ways.

    python benchmarks/bench_reads.py --url postgresql://postgres@127.0.0.1:5432/miyabi_bench
    python benchmarks/bench_reads.py --url sqlite:////tmp/miyabi_bench.db

Each way runs in a fresh subprocess (so peak RSS is its own), on the same data, in one run;
medians of --repeat runs. Only the read is timed: imports and the engine come first. Ratios
are against the floor (``psql \\copy`` of the view to /dev/null on PostgreSQL, the ``sqlite3``
CLI on SQLite) and against ``pandas.read_sql``.
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


def run_way(url: str, name: str) -> dict[str, float]:
    setup, timed = WAYS[name]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--read-sql-repeat", type=int, default=1)
    args = parser.parse_args()
    pg = make_url(args.url).drivername.startswith("postgres")
    if not pg and shutil.which("sqlite3") is None:
        sys.exit("the sqlite3 CLI is needed for the SQLite floor")

    results: dict[str, tuple[float, float, int]] = {}
    floors = [floor(args.url) for _ in range(args.repeat)]
    results["floor"] = (statistics.median(floors), 0.0, 0)
    ways = ["read_summary", "pandas.read_sql"] + (["adbc_to_pandas"] if pg else [])
    for name in ways:
        repeat = args.read_sql_repeat if name == "pandas.read_sql" else args.repeat
        if repeat == 0:
            continue
        runs = [run_way(args.url, name) for _ in range(repeat)]
        results[name] = (
            statistics.median(r["seconds"] for r in runs),
            max(r["rss_mb"] for r in runs),
            int(runs[0]["rows"]),
        )
    base = results["floor"][0]
    read_sql = results.get("pandas.read_sql", (float("nan"),))[0]
    label = "psql \\copy" if pg else "sqlite3 CLI"
    print(f"{'way':<20} {'seconds':>8} {'peak RSS':>9} {'x floor':>8} {'read_sql/x':>10}")
    for name, (seconds, rss, _rows) in results.items():
        shown = label if name == "floor" else name
        rss_text = f"{rss:.0f} MB" if rss else "-"
        print(f"{shown:<20} {seconds:8.2f} {rss_text:>9} {seconds / base:8.2f} "
              f"{read_sql / seconds:10.1f}")
    print(f"rows: {results['read_summary'][2]:,}")


if __name__ == "__main__":
    main()
