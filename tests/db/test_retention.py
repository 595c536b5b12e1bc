"""Retention: ``purge()`` and ``miyabi-analytics purge`` (archive to Parquet, delete, vacuum)."""

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy
from sqlalchemy import Engine, func, select, update

import miyabi_analytics as ma
from miyabi_analytics import retention
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics.cli import main
from miyabi_analytics.retention import purge

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)
TABLES = (executions, analytics, logs)


def checksum(engine: Engine) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with engine.connect() as conn:
        for table in TABLES:
            for row in conn.execute(select(table).order_by(table.c.id)):
                digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def seed(engine: Engine, old: int, recent: int, never_started_old: int = 0) -> set[uuid.UUID]:
    """``old`` executions started 200 days ago, ``recent`` ones started now, each with two log
    lines and (every other one) metrics; returns the ids that a 90-day purge takes."""
    store = ma.ExecutionStore(engine)
    records = []
    for i in range(old + recent + never_started_old):
        agent = ma.agent_for(ma.AGENT_TYPES[i % len(ma.AGENT_TYPES)])
        builder = agent.builder(uuid.uuid4()).result({"i": i, "text": "x" * 300})
        if i < old:
            start = OLD + timedelta(seconds=i)
            builder = builder.status("completed").started_at(start).completed_at(start)
        elif i < old + recent:
            builder = builder.status("running").started_at(NOW - timedelta(days=1))
        records.append(builder.build())
    store.save_executions(records)
    store.log_many(
        ma.LogEntry(r.id, level, f"line {level}", {"n": n})
        for n, r in enumerate(records)
        for level in ("info", "error")
    )
    store.save_analysis_metrics_many(
        (r.id, {"roi_percent": 12.5, "competitors_analyzed": n})
        for n, r in enumerate(records)
        if n % 2 == 0
    )
    never = [r.id for r in records[old + recent:]]
    if never:
        with engine.begin() as conn:
            conn.execute(
                update(executions).where(executions.c.id.in_(never)).values(created_at=OLD)
            )
    return {r.id for r in records[:old]} | set(never)


def archived_ids(directory: Path, table: str = "agent_executions", key: str = "id") -> list[str]:
    ids: list[str] = []
    for path in sorted(directory.glob(f"purge-*.{table}.parquet")):
        ids.extend(pq.read_table(path, columns=[key]).column(key).to_pylist())
    return ids


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def test_dry_run_counts_and_changes_nothing(engine, archive):
    expected = seed(engine, old=30, recent=10, never_started_old=5)
    before = checksum(engine)
    report = purge(engine, timedelta(days=90), archive_dir=archive, dry_run=True)
    print(f"\n{report}")
    assert report.dry_run
    assert (report.executions, report.logs) == (len(expected), 2 * len(expected))
    assert report.analytics == sum(1 for n in range(45) if n % 2 == 0 and (n < 30 or n >= 40))
    assert report.archive_files == ()
    assert checksum(engine) == before
    assert not archive.exists()


def test_purge_archives_then_deletes_in_batches(engine, archive, monkeypatch):
    monkeypatch.setattr(retention, "_CHUNK", 7)  # files written in several chunks
    expected = seed(engine, old=23, recent=7, never_started_old=4)
    totals = (count(engine, executions), count(engine, analytics), count(engine, logs))
    report = purge(engine, "90d", archive_dir=archive, batch_size=10)
    print(f"\n{report}")
    assert report.executions == len(expected) == 27
    assert report.batches == 3  # 10 + 10 + 7
    assert len(report.archive_files) == 12  # 3 batches x 4 tables
    assert all(path.parent == archive and path.is_file() for path in report.archive_files)
    assert not list(archive.glob(".*"))  # no temporary files left

    # Archived exactly once each, and only the old ones.
    ids = archived_ids(archive)
    assert len(ids) == len(set(ids)) == 27
    assert {uuid.UUID(i) for i in ids} == expected
    assert len(archived_ids(archive, "agent_execution_logs", "execution_id")) == report.logs == 54
    assert len(archived_ids(archive, "business_agent_analytics", "execution_id")) == (
        report.analytics
    )
    # Deleted, children by cascade; the recent ones kept whole.
    assert count(engine, executions) == totals[0] - 27 == 7
    assert count(engine, logs) == totals[2] - 54
    assert count(engine, analytics) == totals[1] - report.analytics
    with engine.connect() as conn:
        kept = set(conn.execute(select(executions.c.id)).scalars())
    assert not kept & expected

    # The archive keeps types: timestamps in UTC, JSON as its text.
    table = pq.read_table(sorted(archive.glob("*.agent_executions.parquet"))[0])
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"
    first = table.to_pylist()[0]
    assert first["result"].startswith('{"i":')
    assert first["status"] in ("completed", "pending")

    # Idempotent: the second run finds nothing.
    again = purge(engine, "90d", archive_dir=archive, batch_size=10)
    assert (again.executions, again.batches, again.archive_files) == (0, 0, ())


def test_purge_without_archive(engine):
    expected = seed(engine, old=12, recent=3)
    report = purge(engine, timedelta(days=90), batch_size=5)
    assert (report.executions, report.batches, report.logs) == (12, 3, 24)
    assert count(engine, executions) == 3
    assert purge(engine, timedelta(days=90)).executions == 0
    assert expected


def test_purge_resumes_after_a_crash_between_archive_and_delete(engine, archive, monkeypatch):
    expected = seed(engine, old=25, recent=5)
    calls = {"n": 0}

    def crash_on_second_batch(table: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("power cut")  # after batch 2's files, before its delete
        return sqlalchemy.delete(table)

    monkeypatch.setattr(retention, "delete", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        purge(engine, "90d", archive_dir=archive, batch_size=10)
    monkeypatch.undo()
    assert count(engine, executions) == 30 - 10  # batch 1 done, batch 2 rolled back
    assert len(archived_ids(archive)) == 20  # ... but batch 2 is archived
    # A crash in the middle of writing a file leaves only a hidden temporary file.
    (archive / ".purge-x.agent_executions.parquet.partial").write_bytes(b"half")

    report = purge(engine, "90d", archive_dir=archive, batch_size=10)
    print(f"\nafter the crash: {report}")
    assert report.resumed == 10
    assert report.executions == 15
    ids = archived_ids(archive)
    assert len(ids) == len(set(ids)) == 25  # every purged execution archived exactly once
    assert {uuid.UUID(i) for i in ids} == expected
    assert count(engine, executions) == 5
    assert not list(archive.glob(".*"))
    assert purge(engine, "90d", archive_dir=archive).executions == 0


def test_sqlite_file_shrinks(tmp_path):
    path = tmp_path / "big.db"
    engine = ma.connect(f"sqlite:///{path}")
    try:
        ma.migrate(engine)
        seed(engine, old=3_000, recent=100)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        before = path.stat().st_size
        report = purge(engine, "90d", archive_dir=tmp_path / "archive")
        wal = Path(f"{path}-wal")
        after = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        print(f"\nSQLite file: {before:,} bytes -> {after:,} bytes after {report}")
        assert report.vacuumed
        assert after < before / 5
    finally:
        engine.dispose()


@pytest.mark.parametrize("bad", ["0d", "90", "ninety days", timedelta(days=-1), None])
def test_purge_refuses_bad_ages(engine, bad):
    seed(engine, old=2, recent=0)
    with pytest.raises(ma.ValidationError, match="older_than"):
        purge(engine, bad)
    with pytest.raises(ma.ValidationError, match="batch_size"):
        purge(engine, "90d", batch_size=0)
    assert count(engine, executions) == 2


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_purge(engine, db_url, archive, capsys):
    url = db_url.render_as_string(hide_password=False)
    seed(engine, old=8, recent=2)
    before = checksum(engine)
    assert main(["purge", "--url", url, "--older-than", "90d", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert dry.startswith("would purge 8 executions (4 analytics rows, 16 log lines, 8 transi")
    assert checksum(engine) == before

    assert main(["purge", "--url", url, "--older-than", "90d", "--archive", str(archive)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("purged 8 executions (4 analytics rows, 16 log lines, 8 transiti")
    assert len(lines) == 5  # the report, then 4 parts
    assert all(os.path.isfile(line) for line in lines[1:])
    assert count(engine, executions) == 2

    assert main(["purge", "--url", url, "--older-than", "90d"]) == 0
    assert capsys.readouterr().out.startswith("purged 0 executions")


@pytest.mark.parametrize("argv", [["--older-than", "soon"], ["--older-than", "0d"], []])
def test_cli_purge_bad_arguments_exit_2(db_url, capsys, argv):
    url = db_url.render_as_string(hide_password=False)
    with pytest.raises(SystemExit) as exited:
        main(["purge", "--url", url, *argv])
    assert exited.value.code == 2
    assert "--older-than" in capsys.readouterr().err


def test_cli_purge_unusable_archive_dir_exits_2(engine, db_url, tmp_path, capsys):
    url = db_url.render_as_string(hide_password=False)
    seed(engine, old=1, recent=0)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["purge", "--url", url, "--older-than", "1d", "--archive", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("miyabi-analytics: error: archive_dir=")
    assert count(engine, executions) == 1
