"""Reads of an SQLite file always see every committed row, and lose none (issue 12, item 0).

The whole read of a file used to go through ADBC's SQLite driver in this process: a second
copy of SQLite beside Python's ``sqlite3``. Its connection, closing, took itself for the last
one (POSIX locks are per process), checkpointed and deleted the WAL that the engine's open
connection still wrote to: later commits went to an unlinked file, so reads from the same
engine, a fresh engine or another process stayed at the old snapshot, and the rows were lost
if the process died. Each case here holds an engine connection open during the reads, as a
notebook does, and reads through every path: in-process (small reads) and through the child
process (large ones: the threshold is lowered to one row, so the cases stay small).
"""

import json
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, column, select, table, text
from sqlalchemy.exc import DBAPIError

import miyabi_analytics as ma
from miyabi_analytics import reader

REPO = Path(__file__).resolve().parents[2]

# Lowers the threshold in a process, so that its whole reads go through the child process.
# (Before the fix the module did not exist and every whole read of a file went through ADBC
# in the reading process itself: the case these tests were written against.)
_THROUGH_CHILD = """
try:
    from miyabi_analytics._db.fastread import sqlite as fastread_sqlite
    fastread_sqlite.PROCESS_ROWS = __ROWS__
except ImportError:
    pass
"""


def _through_child(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    try:
        from miyabi_analytics._db.fastread import sqlite as fastread_sqlite
    except ImportError:
        return
    monkeypatch.setattr(fastread_sqlite, "PROCESS_ROWS", rows)


@pytest.fixture(params=["child process", "in process"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The threshold of the child process: 1 (every whole read) or beyond these cases' rows."""
    rows = 1 if request.param == "child process" else 1_000_000
    _through_child(monkeypatch, rows)
    return rows


@pytest.fixture
def db_file(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "fresh.db"
    shutil.copyfile(sqlite_template, path)
    return path


def _records(count: int) -> list[ma.AgentExecutionResult]:
    agent = ma.SalesAgent()
    repository = uuid.uuid4()
    return [agent.builder(repository).status("running").start_now().build() for _ in range(count)]


def _run_python(code: str, *args: str) -> str:
    """``code`` in a fresh interpreter (this checkout's package); its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


_WRITER = """
import sys, uuid
import miyabi_analytics as ma
engine = ma.connect(sys.argv[1])
agent = ma.CRMAgent()
records = [agent.builder(uuid.UUID(sys.argv[2])).build() for _ in range(int(sys.argv[3]))]
ma.ExecutionStore(engine).save_executions(records)
engine.dispose()
print(" ".join(str(r.id) for r in records))
"""


def _write_elsewhere(url: str, count: int) -> set[str]:
    """``count`` executions saved by another process; their ids."""
    return set(_run_python(_WRITER, url, str(uuid.uuid4()), str(count)).split())


def _ids_everywhere(engine: Engine, url: str, tmp_path: Path) -> dict[str, set[str] | int]:
    """What each read path sees now: the ids (or, for an aggregate, the count)."""
    seen: dict[str, set[str] | int] = {
        "read_summary": set(ma.read_summary(engine, columns=["id", "status"])["id"]),
        "read_summary_arrow": set(ma.read_summary_arrow(engine).column("id").to_pylist()),
        "iter_summary": {i for c in ma.iter_summary(engine, chunksize=3) for i in c["id"]},
        "success_rates": int(ma.success_rates(engine)["executions"].sum()),
    }
    target = tmp_path / f"export-{uuid.uuid4().hex}.parquet"
    ma.export_summary(engine, target)
    import pyarrow.parquet as pq

    seen["export_summary"] = set(pq.read_table(target).column("id").to_pylist())
    fresh = ma.connect(url)
    try:
        seen["read_summary, fresh engine"] = set(ma.read_summary(fresh)["id"])
    finally:
        fresh.dispose()
    return seen


def _check(seen: dict[str, set[str] | int], expected: set[str], label: str) -> None:
    wrong = []
    for path, got in seen.items():
        want: set[str] | int = len(expected) if isinstance(got, int) else expected
        if got != want:
            found = got if isinstance(got, int) else len(got & expected)
            wrong.append(f"{path} sees {found}")
    if wrong:
        pytest.fail(f"{label}, {len(expected)} rows committed: {'; '.join(wrong)}")


def test_reads_interleaved_with_writes_see_every_committed_row(way, db_file, tmp_path):
    url = f"sqlite:///{db_file}"
    engine = ma.connect(url)
    store = ma.ExecutionStore(engine)
    held = engine.connect()  # a notebook's connection, open throughout
    try:
        held.execute(text("SELECT count(*) FROM agent_executions")).scalar_one()
        assert held.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        expected: set[str] = set()
        for step in ("saved here", "saved by another process", "saved here again"):
            if step == "saved by another process":
                expected |= _write_elsewhere(url, 5)
            else:
                records = _records(10)
                store.save_executions(records)
                expected |= {str(r.id) for r in records}
            _check(_ids_everywhere(engine, url, tmp_path), expected, step)
        assert db_file.with_name(db_file.name + "-wal").exists()  # nobody deleted it
        held.rollback()
        assert held.execute(text("SELECT count(*) FROM agent_executions")).scalar_one() == len(
            expected
        )
    finally:
        held.close()
        engine.dispose()
    check = ma.connect(url)
    try:
        with check.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    finally:
        check.dispose()


_DIES_WITHOUT_CLOSING = (
    """
import json, os, sys, uuid
import miyabi_analytics as ma
"""
    + _THROUGH_CHILD
    + """
engine = ma.connect(sys.argv[1])
store = ma.ExecutionStore(engine)
held = engine.connect()
held.exec_driver_sql("SELECT 1").all()
agent = ma.AnalyticsAgent()
store.save_executions([agent.builder(uuid.uuid4()).build() for _ in range(5)])
read = len(ma.read_summary(engine))
store.save_executions([agent.builder(uuid.uuid4()).build() for _ in range(7)])
again = len(ma.read_summary(engine))
with open("/proc/self/maps") as maps:
    second_sqlite = "adbc_driver_sqlite" in maps.read()
print(json.dumps({"read": read, "again": again, "second_sqlite": second_sqlite}), flush=True)
os._exit(0)  # dies with its connections open: what was committed must be in the file
"""
)


@pytest.mark.parametrize("rows", [1, 1_000_000], ids=["child process", "in process"])
def test_committed_rows_survive_a_process_that_dies_after_reading(rows, db_file):
    url = f"sqlite:///{db_file}"
    out = _run_python(_DIES_WITHOUT_CLOSING.replace("__ROWS__", str(rows)), url)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["read"] == 5
    assert report["again"] == 12
    # The root of the matter: no second copy of SQLite was ever loaded beside sqlite3.
    assert report["second_sqlite"] is False
    engine = ma.connect(url)
    try:
        assert len(ma.read_summary(engine)) == 12
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    finally:
        engine.dispose()


# -- the child process itself --------------------------------------------------------------------


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every child process the SQLite fast read starts, each with a batch of one row."""
    from miyabi_analytics._db.fastread import sqlite as fastread_sqlite

    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def record(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = popen(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(fastread_sqlite.subprocess, "Popen", record)
    monkeypatch.setattr(fastread_sqlite, "PROCESS_ROWS", 1)
    monkeypatch.setattr(fastread_sqlite, "BATCH_ROWS", 1)  # the pipe fills: the child waits
    yield started
    for child in started:  # never left behind, whatever a case did
        assert child.poll() is not None


# One-row batches of about 300 bytes each: 3 MB, far more than the 1 MB pipe and the
# reader's queue hold, so the child is still sending when the reader stops.
ROWS_BEYOND_THE_PIPE = 10_000


def _fill(engine: Engine, count: int) -> None:
    ma.ExecutionStore(engine).save_executions(_records(count))


def test_a_reader_stopping_early_kills_the_child(children, db_file):
    from miyabi_analytics._db.dialect import Dialect
    from miyabi_analytics._db.fastread import record_batches
    from miyabi_analytics.filters import SummaryFilters
    from miyabi_analytics.frames import SUMMARY_DTYPES, arrow_schema
    from miyabi_analytics.reader._select import filtered_select

    engine = ma.connect(f"sqlite:///{db_file}")
    try:
        _fill(engine, ROWS_BEYOND_THE_PIPE)
        spec = {"id": SUMMARY_DTYPES["id"], "result": SUMMARY_DTYPES["result"]}
        schema = arrow_schema(spec)
        stmt = filtered_select(Dialect.SQLITE, spec, SummaryFilters(), wire=schema, ordered=False)
        batches = record_batches(engine, stmt, schema, None)
        assert next(batches).num_rows == 1
        (child,) = children
        assert child.poll() is None  # still sending: more rows than the pipe holds
        batches.close()
        assert child.returncode == -signal.SIGKILL
        with engine.connect() as conn:  # the file is as it was
            count = conn.execute(text("SELECT count(*) FROM agent_executions")).scalar()
        assert count == ROWS_BEYOND_THE_PIPE
    finally:
        engine.dispose()


def test_a_failing_conversion_kills_the_child(children, db_file, monkeypatch):
    engine = ma.connect(f"sqlite:///{db_file}")
    try:
        _fill(engine, ROWS_BEYOND_THE_PIPE)
        calls = []

        def fail(*args: Any) -> Any:
            calls.append(args)
            if len(calls) == 3:
                raise RuntimeError("conversion failed")
            return real(*args)

        from miyabi_analytics.reader import _whole

        real = _whole.with_derived
        monkeypatch.setattr(_whole, "with_derived", fail)
        with pytest.raises(RuntimeError, match="conversion failed"):
            ma.read_summary(engine)
        (child,) = children
        assert child.returncode == -signal.SIGKILL  # killed before the error came out
    finally:
        engine.dispose()


def test_an_error_in_the_child_is_a_dbapi_error(children, db_file):
    from miyabi_analytics._db.fastread.sqlite import sqlite_batches

    engine = ma.connect(f"sqlite:///{db_file}")
    try:
        _fill(engine, 3)
        missing = table("no_such_table", column("id"))
        schema = pa.schema([pa.field("id", pa.string())])
        rows = select(text("1")).select_from(table("agent_executions"))
        with pytest.raises(DBAPIError) as info:
            list(sqlite_batches(engine, select(missing.c.id), schema, str(db_file), rows))
        assert "no such table: no_such_table" in str(info.value)
        assert info.value.orig is not None
        assert len(children) == 1
    finally:
        engine.dispose()


def test_a_child_that_cannot_start_is_a_dbapi_error(children, db_file, monkeypatch):
    from miyabi_analytics._db.fastread import sqlite as fastread_sqlite

    broken = db_file.with_name("broken_child.py")
    broken.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr(fastread_sqlite, "_CHILD", broken)
    engine = ma.connect(f"sqlite:///{db_file}")
    try:
        _fill(engine, 3)
        with pytest.raises(DBAPIError, match=r"SQLite read process failed \(exit status 3\)"):
            ma.read_summary(engine)
        assert len(children) == 1
    finally:
        engine.dispose()


def test_the_child_process_reads_what_the_simple_path_reads(children, db_file, tmp_path):
    """Whole reads through the child process against _read_summary_simple, value for value.

    One row per batch, so the placeholder row leads a batch of its own.
    """
    from pandas.testing import assert_frame_equal

    from tests.db.test_fastpaths import (
        SUBSETS,
        T0,
        check_all_paths,
        metrics_for,
        record_for,
        store_records,
    )

    engine = ma.connect(f"sqlite:///{db_file}")
    try:
        repos = [uuid.uuid4() for _ in range(3)]
        users: list[uuid.UUID | None] = [uuid.uuid4(), uuid.uuid4(), None]
        records = [record_for(i, repos, users) for i in range(150)]
        store_records(engine, records)
        entries = [
            ma.MetricsEntry(record.id, metrics_for(i + k), T0)
            for i, record in enumerate(records)
            if i % 3 == 0
            for k in range(1 + i % 2)
        ]
        ma.ExecutionStore(engine).save_analysis_metrics_many(entries)
        check_all_paths(engine, tmp_path)
        check_all_paths(engine, repository_id=repos[1], statuses=["failed", "completed"])
        for columns in SUBSETS:
            assert_frame_equal(
                ma.read_summary(engine, columns=columns),
                reader._read_summary_simple(engine, columns=columns),
            )
        assert len(children) == 4 + len(SUBSETS)  # read_summary and _arrow, twice each
    finally:
        engine.dispose()
