"""purge --archive keeps the status history, and restore puts it back exactly (issue 15, item 1).

The executions' transitions (recorded by the database's triggers on real status changes) go
into the archive with their executions and come back with the same ids and values, nothing
recorded or announced for the restore itself. An archive written before the history was
archived (format 1) still restores: its executions get the one transition their insert records.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.engine import URL

import miyabi_analytics as ma
from miyabi_analytics import retention
from miyabi_analytics._archive_layout import FORMAT, FORMER_FORMAT
from miyabi_analytics._db.rules import CHANNEL
from miyabi_analytics._db.schema import analytics, executions, logs, transitions
from miyabi_analytics.cli import main

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=200)
REPO = uuid.UUID("0f5e9a52-8d0b-4b8e-9a3c-6f1d2c3b4a51")
HISTORY = transitions.name
PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


def lived(engine: Engine, start: datetime, *, fail: bool = False) -> uuid.UUID:
    """An execution written as a writer lives it: pending, then running, then finished, each
    in its own transaction (plain SQL through Core), so the triggers record three rows."""
    key = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(executions).values(
            id=key, repository_id=REPO, agent_type="SalesAgent", status="pending",
            created_at=start, updated_at=start,
        ))
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == key).values(
            status="running", started_at=start + timedelta(seconds=1), quality_score=10,
        ))
    end = {"status": "failed", "error_message": f"boom {key}"} if fail else {
        "status": "completed", "quality_score": 90
    }
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == key).values(
            completed_at=start + timedelta(seconds=7, microseconds=123456), **end
        ))
    ma.agent_for("SalesAgent").log(engine, key, "info", "done", {"k": 1})
    return key


def seed(engine: Engine, old: int, recent: int = 1) -> list[uuid.UUID]:
    """``old`` executions from 200 days ago (every third one failed), ``recent`` from now."""
    ids = [lived(engine, OLD + timedelta(minutes=n), fail=n % 3 == 2) for n in range(old)]
    for n in range(recent):
        lived(engine, NOW - timedelta(hours=1, minutes=n))
    return ids


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the four tables, all columns of the models, in id order."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
            for t in (executions, analytics, logs, transitions)
        }


def history_of(snapshot: dict[str, list[tuple[Any, ...]]], ids: list[uuid.UUID]) -> list[Any]:
    return [row for row in snapshot[HISTORY] if row[1] in set(ids)]


def archived_history(directory: Path, ids: list[uuid.UUID] | None = None) -> list[Any]:
    """The archive's transitions as the database's tuples (execution ids as UUIDs)."""
    table = retention.read_archive(directory, ids)[HISTORY]
    found = [
        (r["id"], uuid.UUID(r["execution_id"]), r["from_status"], r["to_status"], r["at"],
         r["quality_score"], r["error_message"])
        for r in table.to_pylist()
    ]
    return sorted(found)


def test_purge_archives_the_history_and_restore_puts_it_back(engine: Engine, tmp_path: Path):
    old = seed(engine, old=5, recent=2)
    before = rows(engine)
    assert len(history_of(before, old)) == 15  # pending, running, completed|failed each
    directory = tmp_path / "archive"

    dry = retention.purge(engine, "90d", dry_run=True)
    assert (dry.executions, dry.transitions) == (5, 15)
    assert "15 transitions" in str(dry)
    report = retention.purge(engine, "90d", archive_dir=directory, batch_size=2)
    assert (report.executions, report.logs, report.transitions) == (5, 5, 15)
    assert "15 transitions" in str(report)
    assert len(list(directory.glob(f"*.{HISTORY}.parquet"))) == 3  # one part per batch
    for manifest in directory.glob("*.manifest.json"):
        assert json.loads(manifest.read_text())["format"] == FORMAT

    purged = rows(engine)
    assert history_of(purged, old) == []  # gone with their executions
    assert purged[HISTORY] == [r for r in before[HISTORY] if r not in history_of(before, old)]
    assert archived_history(directory) == history_of(before, old)

    assert retention.restore(engine, directory, old) == 5
    assert rows(engine) == before  # same ids and values, no row recorded by the restore
    assert retention.archived_executions(directory) == {}
    assert len(archived_history(directory)) == 0

    # Purged again, a restored execution's history goes to the archive again, unchanged.
    retention.purge(engine, "90d", archive_dir=directory)
    assert archived_history(directory) == history_of(before, old)


def test_cli_purge_archives_the_history(engine: Engine, db_url: URL, tmp_path: Path, capsys):
    old = seed(engine, old=3)
    before = rows(engine)
    url = db_url.render_as_string(hide_password=False)
    directory = tmp_path / "archive"
    assert main(["purge", "--url", url, "--older-than", "90d", "--dry-run"]) == 0
    assert "9 transitions" in capsys.readouterr().out
    assert main(["purge", "--url", url, "--older-than", "90d", "--archive", str(directory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "9 transitions" in lines[0]
    parts = [Path(line) for line in lines[1:] if line.endswith(f".{HISTORY}.parquet")]
    assert len(parts) == 1
    assert pq.read_metadata(parts[0]).num_rows == 9
    assert history_of(rows(engine), old) == []
    retention.restore(engine, directory, old)
    assert rows(engine) == before


def _as_former_format(directory: Path) -> None:
    """Make the archive what the version before this one wrote: no history part, format 1."""
    for manifest in directory.glob("*.manifest.json"):
        document = json.loads(manifest.read_text())
        for part in document["parts"]:
            if part["table"] == HISTORY:
                (directory / part["file"]).unlink()
        document["parts"] = [p for p in document["parts"] if p["table"] != HISTORY]
        document["format"] = FORMER_FORMAT
        manifest.write_text(json.dumps(document))
    for settled in directory.glob("*.settled.json"):
        document = json.loads(settled.read_text())
        settled.write_text(json.dumps({**document, "format": FORMER_FORMAT}))


def test_an_archive_without_history_restores_with_one_recorded_transition(
    engine: Engine, tmp_path: Path
):
    """Format 1 (no history part): each execution comes back with the one transition its
    insert records, as a new row would; restored together with executions of a format-2
    batch, those get their archived history, exactly."""
    former = seed(engine, old=2, recent=0)
    first = rows(engine)
    directory = tmp_path / "archive"
    retention.purge(engine, "90d", archive_dir=directory)
    _as_former_format(directory)
    current = seed(engine, old=2, recent=0)
    before = rows(engine)
    retention.purge(engine, "90d", archive_dir=directory)  # a format-2 batch next to it
    assert archived_history(directory, former) == []
    assert archived_history(directory, current) == history_of(before, current)
    assert sorted(retention.read_archive(directory, former)[executions.name]["id"].to_pylist()) \
        == sorted(str(i) for i in former)

    assert retention.restore(engine, directory, [*former, *current]) == 4
    after = rows(engine)
    assert history_of(after, current) == history_of(before, current)
    recorded = history_of(after, former)
    assert sorted((r[1], r[2], r[3]) for r in recorded) == sorted(
        (i, None, "completed") for i in former
    )
    assert min(r[0] for r in recorded) > max(r[0] for r in before[HISTORY])  # new rows
    for table in (executions.name, logs.name):  # the rows themselves, exactly
        assert sorted(after[table], key=str) == sorted(first[table] + before[table], key=str)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of the four tables, the database's own too (``txid``, ``seq``)."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t.name} ORDER BY id"))]  # noqa: S608
            for t in (executions, analytics, logs, transitions)
        }


def test_a_failed_restore_leaves_the_database_as_it_was(engine: Engine, tmp_path: Path):
    old = seed(engine, old=3)
    directory = tmp_path / "archive"
    archived = retention.purge(engine, "90d", archive_dir=directory)
    assert archived.transitions == 9
    ids = sorted(r[0] for r in archived_history(directory))

    # An id already stored: refused before anything is written.
    kept = next(r[0] for r in rows(engine)[executions.name])
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError, match="already stored"):
        retention.restore(engine, directory, [old[0], kept])
    assert snapshot(engine) == before

    # One archived transition id taken (an archive of another database): refused after the
    # executions, logs and the other transitions went in; all of it rolled back.
    other = lived(engine, NOW)
    with engine.begin() as conn:
        mine = conn.execute(
            select(transitions.c.id).where(transitions.c.execution_id == other)
        ).scalars().first()
        conn.execute(update(transitions).where(transitions.c.id == mine).values(id=ids[-1]))
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError, match=f"transition {ids[-1]} is already stored"):
        retention.restore(engine, directory, old)
    assert snapshot(engine) == before
    assert set(retention.archived_executions(directory)) == set(old)  # nothing withdrawn


def test_restore_into_another_database_moves_the_sequence_past_its_ids(
    engine: Engine, empty_url: URL, tmp_path: Path
):
    """The history keeps its ids in a database whose sequence is behind them, and that
    database's next transition is numbered after them (no collision)."""
    old = seed(engine, old=3, recent=0)
    before = history_of(rows(engine), old)
    directory = tmp_path / "archive"
    retention.purge(engine, "90d", archive_dir=directory)
    target = ma.connect(empty_url)
    try:
        ma.migrate(target)
        assert retention.restore(target, directory, old) == 3
        assert rows(target)[HISTORY] == before
        fresh = lived(target, NOW)
        newest = [r[0] for r in rows(target)[HISTORY] if r[1] == fresh]
        assert len(newest) == 3
        assert min(newest) > max(r[0] for r in before)
    finally:
        target.dispose()


def _listener(url: URL) -> psycopg.Connection[Any]:
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    return conn


@PG_ONLY
def test_restore_announces_nothing(engine: Engine, db_url: URL, tmp_path: Path):
    """LISTEN miyabi_executions during a restore: no notification for the restored rows (a
    watcher saw them when they happened); the next real change is announced as usual. An
    execution of a format-1 archive is announced as the insert it is."""
    old = seed(engine, old=3, recent=0)
    directory = tmp_path / "archive"
    retention.purge(engine, "90d", archive_dir=directory)
    listener = _listener(db_url)
    try:
        retention.restore(engine, directory, old)
        assert list(listener.notifies(timeout=1.0)) == []
        new = lived(engine, NOW)  # the listener does hear what happens
        got = [json.loads(n.payload) for n in listener.notifies(timeout=3, stop_after=3)]
        assert [(g["id"], g["from"], g["to"]) for g in got] == [
            (str(new), None, "pending"),
            (str(new), "pending", "running"),
            (str(new), "running", "completed"),
        ]

        retention.purge(engine, "90d", archive_dir=tmp_path / "former")
        _as_former_format(tmp_path / "former")
        retention.restore(engine, tmp_path / "former", old)
        got = [json.loads(n.payload) for n in listener.notifies(timeout=3, stop_after=3)]
        assert sorted((g["id"], g["from"]) for g in got) == sorted((str(i), None) for i in old)
    finally:
        listener.close()


def test_an_interrupted_batch_without_history_releases_rather_than_loses_it(
    engine: Engine, db_url: URL, tmp_path: Path
):
    """A former version's batch archived (manifest) but not deleted, then this version
    finishes it: deleting the executions would lose the history that batch lacks, so they are
    released (kept) and archived anew in a batch with their history."""
    from tests.db.test_purge_archive import KILLED, run_purge_process

    old = seed(engine, old=3)
    before = rows(engine)
    directory = tmp_path / "archive"
    url = db_url.render_as_string(hide_password=False)
    assert run_purge_process(url, directory, kill_at=-5, batch_size=10) == KILLED  # manifest
    assert not list(directory.glob("*.settled.json"))
    _as_former_format(directory)
    assert rows(engine) == before  # the delete never happened

    report = retention.purge(engine, "90d", archive_dir=directory)
    assert (report.released, report.resumed, report.executions) == (3, 0, 3)
    assert report.transitions == 9
    assert history_of(rows(engine), old) == []
    assert archived_history(directory) == history_of(before, old)
    retention.restore(engine, directory, old)
    assert rows(engine) == before
