"""The purge archive never loses a row and never holds one twice (issue 12, items 1 and 8).

Every test counts where each row is: in the database, or in the archive directory's Parquet
files (all of them, as someone reading the directory sees it). A row must be in exactly one.
Killed runs are real: a forked child purges and SIGKILLs itself just before its k-th rename
(every file of the archive is renamed into place, so "before rename k" walks through every step
of a batch: parts, manifest, the delete's commit, the settled mark), for every k.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import traceback
import uuid
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, delete, insert, select, text

import miyabi_analytics as ma
from miyabi_analytics import retention
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics.cli import main
from miyabi_analytics.retention import purge

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)
TABLES = (executions, analytics, logs)
KILLED = -signal.SIGKILL
REFUSED = 3


def seed(engine: Engine, old: int, recent: int = 2) -> set[str]:
    """``old`` executions from 200 days ago and ``recent`` ones, each with two log lines and
    (every other one) metrics; returns the ids of the old ones."""
    agent = ma.agent_for("AnalyticsAgent")
    records = []
    for i in range(old + recent):
        start = OLD + timedelta(seconds=i) if i < old else NOW - timedelta(hours=1)
        builder = agent.builder(uuid.uuid4()).result({"i": i, "text": "日本" * 20})
        records.append(builder.status("completed").started_at(start).completed_at(start).build())
    store = ma.ExecutionStore(engine)
    store.save_executions(records)
    store.log_many(
        ma.LogEntry(r.id, level, f"line {n}", {"n": n})
        for n, r in enumerate(records)
        for level in ("info", "error")
    )
    store.save_analysis_metrics_many(
        (r.id, {"roi_percent": 1.25 * n, "competitors_analyzed": n})
        for n, r in enumerate(records)
        if n % 2 == 0
    )
    return {str(r.id) for r in records[:old]}


def stored(engine: Engine) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Every row of the three tables by table name and row id (all columns)."""
    with engine.connect() as conn:
        return {
            t.name: {str(row.id): tuple(row) for row in conn.execute(select(t))} for t in TABLES
        }


def filed(directory: Path, table: str) -> Counter[str]:
    """How many times each row id appears in the directory's Parquet files of ``table``."""
    found: Counter[str] = Counter()
    for path in directory.glob(f"*.{table}.parquet"):
        found.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    return found


def assert_each_row_in_one_place(engine: Engine, directory: Path, seeded: dict[str, set[str]]):
    db = stored(engine)
    for table in TABLES:
        archived = filed(directory, table.name)
        twice = sorted(i for i, n in archived.items() if n > 1)
        assert not twice, f"{table.name}: {len(twice)} rows archived more than once"
        both = set(db[table.name]) & set(archived)
        assert not both, f"{table.name}: {len(both)} rows both stored and archived"
        assert set(db[table.name]) | set(archived) == seeded[table.name], table.name


def assert_archive_committed(directory: Path) -> None:
    """Every Parquet file is listed by a manifest, every manifest settled, no temporary file."""
    listed = set()
    for manifest in directory.glob("*.manifest.json"):
        document = json.loads(manifest.read_text())
        listed.update(part["file"] for part in document["parts"])
        assert manifest.with_name(manifest.name.replace(".manifest.", ".settled.")).is_file()
    assert {p.name for p in directory.glob("*.parquet")} == listed
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]


def _purge_in_child(url: str, directory: Path, kill_at: int, batch_size: int) -> None:
    """Runs in a forked child: purge, SIGKILLed just before the ``kill_at``-th rename (just
    after the ``-kill_at``-th if negative)."""
    real = os.replace
    calls = [0]

    def replace(src: Any, dst: Any) -> None:
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
        if calls[0] == -kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace  # type: ignore[assignment]  # this forked process only
    try:
        purge(ma.connect(url), "90d", archive_dir=directory, batch_size=batch_size)
    except ma.ValidationError as exc:
        os._exit(REFUSED if "another purge" in str(exc) else 4)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def start_purge_process(
    url: str, directory: Path, kill_at: int = 0, batch_size: int = 3
) -> multiprocessing.process.BaseProcess:
    child = multiprocessing.get_context("fork").Process(
        target=_purge_in_child, args=(url, directory, kill_at, batch_size)
    )
    with warnings.catch_warnings():  # Python 3.12+ warns about fork; no thread runs here
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    return child


def run_purge_process(url: str, directory: Path, kill_at: int = 0, batch_size: int = 3) -> int:
    child = start_purge_process(url, directory, kill_at, batch_size)
    child.join(120)
    assert child.exitcode is not None, "purge child hung"
    return child.exitcode


def fresh(engine: Engine, old: int) -> tuple[set[str], dict[str, set[str]]]:
    with engine.begin() as conn:
        conn.execute(delete(executions))  # analytics and logs go by cascade
    old_ids = seed(engine, old)
    return old_ids, {name: set(rows) for name, rows in stored(engine).items()}


# -- item 1: killed runs --------------------------------------------------------------------------


@pytest.mark.parametrize("kills", [1, 2], ids=["killed-once", "killed-twice"])
def test_killed_at_every_step_each_row_stays_in_one_place(engine, db_url, tmp_path, kills):
    """2 batches (3 + 2 executions); the run is killed just before, and just after, its 1st,
    2nd, ... rename until it completes: after the parts, after the manifest (before the delete),
    after the delete's commit (before the settled mark), after the mark. With ``killed-twice``
    (just after each rename only, to save time) the run that picks up is killed too, before
    its first rename. Then a complete run: every row is in the database or the archive, never
    both or twice; every old execution is archived."""
    url = db_url.render_as_string(hide_password=False)
    steps, misplaced = 0, []
    sides = (1, -1) if kills == 1 else (-1,)
    for point in (k * side for k in range(1, 40) for side in sides):
        old, seeded = fresh(engine, old=5)
        directory = tmp_path / f"kill{point}"
        if run_purge_process(url, directory, point) == 0:
            break  # it ran to the end before that rename
        steps += 1
        if kills == 2:
            assert run_purge_process(url, directory, kill_at=1) in (0, KILLED)
        purge(engine, "90d", archive_dir=directory, batch_size=3)
        try:
            assert_each_row_in_one_place(engine, directory, seeded)
            assert set(filed(directory, executions.name)) == old
        except AssertionError as exc:
            where = f"{'before' if point > 0 else 'after'} rename {abs(point)}"
            misplaced.append(f"killed {where}: {str(exc).splitlines()[0]}")
    assert not misplaced, "\n".join(misplaced)
    assert steps == 2 * 6 * len(sides)  # 2 batches x (4 parts, manifest, settled mark)
    assert_archive_committed(directory)
    assert {str(i) for i in retention.archived_executions(directory)} == old


def test_parts_of_a_killed_batch_are_removed_not_counted(engine, db_url, tmp_path):
    """Killed after a batch's child parts, before its executions part (what used to leave
    orphans that the next run archived a second time)."""
    url = db_url.render_as_string(hide_password=False)
    _old, seeded = fresh(engine, old=5)
    directory = tmp_path / "archive"
    assert run_purge_process(url, directory, kill_at=3, batch_size=10) == KILLED
    assert len(list(directory.glob("*.parquet"))) == 2  # analytics and logs only
    report = purge(engine, "90d", archive_dir=directory)
    assert_each_row_in_one_place(engine, directory, seeded)
    assert (report.executions, report.orphans_removed, report.resumed) == (5, 2, 0)
    assert_archive_committed(directory)


def test_an_archive_of_the_former_layout_is_adopted(engine, db_url, tmp_path):
    """Files of the former version (``purge-<run>-<n>.<table>.parquet``, no manifests): its
    complete batches are kept and listed, its newest batch, archived but not deleted, is
    finished, and child parts without an executions part (a run killed half-way) removed."""
    url = db_url.render_as_string(hide_password=False)
    old, seeded = fresh(engine, old=5)
    directory = tmp_path / "archive"
    # Batch 1 done (6 renames), batch 2 killed just after its manifest: not deleted.
    assert run_purge_process(url, directory, kill_at=-11, batch_size=3) == KILLED
    for manifest in sorted(directory.glob("*.manifest.json")):
        batch = manifest.name.removesuffix(".manifest.json")
        former = "-".join(batch.split("-")[:2] + batch.split("-")[3:])  # without the token
        for part in directory.glob(f"{batch}.*.parquet"):
            part.rename(directory / part.name.replace(batch, former))
        manifest.unlink()
        manifest.with_name(f"{batch}.settled.json").unlink(missing_ok=True)
    halfway = directory / "purge-20200101T000000000000Z-00001.agent_execution_logs.parquet"
    halfway.write_bytes(next(directory.glob("*-00002.agent_execution_logs.parquet")).read_bytes())
    kept = {p.name: p.read_bytes() for p in directory.glob("*.parquet") if p != halfway}
    assert len(kept) == 8

    report = purge(engine, "90d", archive_dir=directory)
    assert_each_row_in_one_place(engine, directory, seeded)
    assert (report.resumed, report.executions, report.orphans_removed) == (2, 2, 1)
    assert all((directory / name).read_bytes() == data for name, data in kept.items())
    assert_archive_committed(directory)
    assert {str(i) for i in retention.archived_executions(directory)} == old


def test_killed_after_the_manifest_finishes_without_archiving_again(engine, db_url, tmp_path):
    url = db_url.render_as_string(hide_password=False)
    _old, seeded = fresh(engine, old=5)
    directory = tmp_path / "archive"
    assert run_purge_process(url, directory, kill_at=-5, batch_size=10) == KILLED
    assert len(stored(engine)[executions.name]) == 7  # the delete never happened
    before = sorted(p.name for p in directory.iterdir())
    report = purge(engine, "90d", archive_dir=directory)
    assert (report.executions, report.resumed, report.batches, report.archive_files) == (
        5, 5, 0, ()
    )
    assert sorted(p.name for p in directory.iterdir() if "settled" not in p.name) == before
    assert_each_row_in_one_place(engine, directory, seeded)


def test_changed_since_archived_is_released_not_lost(engine, db_url, tmp_path):
    """A run killed after its manifest; before the next run, a log line is added to one of the
    batch's executions. Deleting it would lose that line: the database keeps it, the batch's
    copy no longer counts, and the next batch archives it whole."""
    url = db_url.render_as_string(hide_password=False)
    old, _ = fresh(engine, old=4)
    directory = tmp_path / "archive"
    assert run_purge_process(url, directory, kill_at=-5, batch_size=10) == KILLED
    changed = sorted(old)[0]
    ma.agent_for("AnalyticsAgent").log(engine, uuid.UUID(changed), "info", "late line")
    report = purge(engine, "90d", archive_dir=directory)
    assert (report.resumed, report.released, report.executions) == (3, 1, 4)
    assert report.logs == 3 * 2 + 3
    assert set(ma.retention.archived_executions(directory)) == {uuid.UUID(i) for i in old}
    rows = retention.read_archive(directory, [changed])
    assert "late line" in rows[logs.name].column("message").to_pylist()
    assert rows[logs.name].num_rows == 3
    assert not stored(engine)[executions.name].keys() & old


# -- item 1: restore, then purge again -------------------------------------------------------------


def restore_by_hand(engine: Engine, directory: Path, execution_id: str) -> None:
    """Read the execution's rows from the Parquet files and insert them (no helper)."""
    with engine.begin() as conn:
        for table in TABLES:
            key = "id" if table is executions else "execution_id"
            for path in directory.glob(f"*.{table.name}.parquet"):
                for row in pq.read_table(path).to_pylist():
                    if row[key] != execution_id:
                        continue
                    # the columns of the model: PostgreSQL's write order (seq) is the database's
                    row = {c.name: row[c.name] for c in table.columns}
                    for column in table.columns:
                        if row[column.name] is not None and "JSON" in repr(column.type).upper():
                            row[column.name] = json.loads(row[column.name])
                    conn.execute(insert(table).values(row))


@pytest.mark.parametrize("older_than", ["90d", "36500d"], ids=["repurged", "kept"])
def test_restore_by_hand_then_purge_keeps_the_whole_archive(engine, tmp_path, older_than):
    old = seed(engine, old=12)
    before = stored(engine)
    directory = tmp_path / "archive"
    purge(engine, "90d", archive_dir=directory, batch_size=5)
    archived = {t.name: set(filed(directory, t.name)) for t in TABLES}
    back = sorted(old)[-1]  # in the newest batch, the one an interrupted run would finish
    restore_by_hand(engine, directory, back)
    restored = stored(engine)
    for table in TABLES:  # every column comes back as it was
        for row_id, row in restored[table.name].items():
            assert row == before[table.name][row_id]

    report = purge(engine, older_than, archive_dir=directory, batch_size=5)
    for table in TABLES:  # no archived row is lost
        assert archived[table.name] <= set(filed(directory, table.name)), table.name
    assert report.resumed == 0
    in_db = set(stored(engine)[executions.name])
    if older_than == "90d":
        assert report.executions == 1
        assert back not in in_db
    else:
        assert report.executions == 0
        assert back in in_db
    # Put back by hand, it is not withdrawn from the archive: kept in the database, it is in
    # both until purged again (restore() withdraws it).
    assert {str(i) for i in retention.archived_executions(directory)} == old


def test_restore_helper_withdraws_then_purge_archives_anew(engine, tmp_path):
    old = seed(engine, old=6)
    before = stored(engine)
    directory = tmp_path / "archive"
    purge(engine, "90d", archive_dir=directory, batch_size=4)
    files = {p.name: p.read_bytes() for p in directory.glob("purge-*")}
    back = sorted(old)[:2]

    assert retention.restore(engine, directory, back) == 2
    after = stored(engine)
    for table in TABLES:
        for row_id, row in after[table.name].items():
            assert row == before[table.name][row_id]
    assert {str(i) for i in retention.archived_executions(directory)} == old - set(back)
    assert all(path.read_bytes() == files[name] for name, path in (
        (name, directory / name) for name in files
    ))  # append-only: nothing rewritten

    with pytest.raises(ma.ValidationError, match="already stored"):
        retention.restore(engine, directory, back[:1])
    with pytest.raises(ma.ValidationError, match="not in the archive"):
        retention.restore(engine, directory, [uuid.uuid4()])
    with pytest.raises(ma.ValidationError, match="execution_ids"):
        retention.restore(engine, directory, ["not-a-uuid"])

    report = purge(engine, "90d", archive_dir=directory)
    assert report.executions == 2
    copies = retention.archived_executions(directory)
    assert {str(i) for i in copies} == old
    rows = retention.read_archive(directory)
    assert sorted(rows[executions.name].column("id").to_pylist()) == sorted(old)
    assert rows[logs.name].num_rows == 2 * len(old)
    assert all(path.read_bytes() == files[name] for name, path in (
        (name, directory / name) for name in files
    ))


def test_restore_and_archive_keep_columns_this_package_does_not_know(empty_url, tmp_path):
    """A column added by a later migration (an identity ``seq``, a ``note``) is archived, and
    restored; the identity numbers the restored row anew."""
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine)
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":  # PostgreSQL has its identity seq since 0007
                conn.execute(text("ALTER TABLE agent_execution_logs ADD COLUMN seq integer"))
            conn.execute(text("ALTER TABLE agent_executions ADD COLUMN note text"))
        old = seed(engine, old=2, recent=0)
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(text("UPDATE agent_execution_logs SET seq = rowid"))
            conn.execute(text("UPDATE agent_executions SET note = 'kept: ' || id"))
        purge(engine, "90d", archive_dir=tmp_path / "archive")
        rows = retention.read_archive(tmp_path / "archive")
        assert rows[logs.name].column("seq").null_count == 0
        assert all(n.startswith("kept: ") for n in rows[executions.name].column("note").to_pylist())

        assert retention.restore(engine, tmp_path / "archive", old) == 2
        with engine.connect() as conn:
            notes = conn.execute(text("SELECT id, note FROM agent_executions")).all()
            seqs = conn.execute(text("SELECT seq FROM agent_execution_logs")).scalars().all()
        assert {str(n) for _, n in notes} == {f"kept: {i}" for i in old}
        assert len(seqs) == 4
        assert None not in seqs
    finally:
        engine.dispose()


# -- item 1: concurrent runs -------------------------------------------------------------------


def test_second_purge_on_the_same_directory_is_refused(
    engine, db_url, tmp_path, monkeypatch, capsys
):
    """While one purge is in its first batch, a second on the same directory is refused at
    once (it used to interleave: FileNotFoundError, rows archived twice)."""
    url = db_url.render_as_string(hide_password=False)
    old = seed(engine, old=8)
    seeded = {name: set(rows) for name, rows in stored(engine).items()}
    directory = tmp_path / "archive"
    paused, go = threading.Event(), threading.Event()
    real_delete = retention.delete

    def slow_delete(table: Any) -> Any:
        if threading.current_thread().name == "first":
            paused.set()
            go.wait(30)
        return real_delete(table)

    monkeypatch.setattr(retention, "delete", slow_delete)
    outcome: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            outcome[name] = purge(engine, "90d", archive_dir=directory, batch_size=3)
        except BaseException as exc:
            outcome[name] = exc

    def run_cli() -> None:
        argv = ["purge", "--url", url, "--older-than", "1d", "--archive", str(directory)]
        outcome["cli"] = main(argv)

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    assert paused.wait(30)
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    second.join(15)
    cli = threading.Thread(target=run_cli, name="cli")
    if not second.is_alive():
        cli.start()
        cli.join(15)
    go.set()
    first.join(60)
    assert not second.is_alive(), "the second purge waited instead of being refused"
    assert isinstance(outcome["second"], ma.ValidationError), outcome["second"]
    assert "another purge" in str(outcome["second"])
    assert str(directory) in str(outcome["second"])
    assert outcome["cli"] == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "another purge" in err
    assert outcome["first"].executions == 8
    assert_each_row_in_one_place(engine, directory, seeded)
    assert set(filed(directory, executions.name)) == old


def test_racing_purges_on_one_directory(engine, db_url, tmp_path):
    """Two processes started together: one purges, the other is refused or finds nothing."""
    url = db_url.render_as_string(hide_password=False)
    old, seeded = fresh(engine, old=60)
    directory = tmp_path / "archive"
    children = [start_purge_process(url, directory, batch_size=4) for _ in range(2)]
    for child in children:
        child.join(120)
    assert sorted(c.exitcode or 0 for c in children) in ([0, 0], [0, REFUSED])
    assert_each_row_in_one_place(engine, directory, seeded)
    assert set(filed(directory, executions.name)) == old
    assert_archive_committed(directory)


def test_concurrent_purges_into_two_directories_share_the_rows(engine, tmp_path):
    old = seed(engine, old=40)
    seeded = {name: set(rows) for name, rows in stored(engine).items()}
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            barrier.wait()
            purge(engine, "90d", archive_dir=tmp_path / name, batch_size=3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for table in TABLES:
        both = filed(tmp_path / "a", table.name) + filed(tmp_path / "b", table.name)
        assert all(n == 1 for n in both.values()), table.name
        assert set(both) | set(stored(engine)[table.name]) == seeded[table.name]
    assert set(filed(tmp_path / "a", executions.name)) | set(
        filed(tmp_path / "b", executions.name)
    ) == old


# -- item 8: a damaged archive ------------------------------------------------------------------


def _damage(path: Path, how: str) -> None:
    if how == "garbage":
        path.write_bytes(b"not parquet at all " * 20)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-9])
    else:
        path.write_text("{ not json")


@pytest.mark.parametrize(
    ("victim", "how"),
    [
        ("agent_executions.parquet", "garbage"),
        ("agent_execution_logs.parquet", "truncated"),
        ("manifest.json", "garbage-json"),
    ],
)
def test_damaged_archive_is_refused_and_nothing_changes(engine, tmp_path, victim, how):
    seed(engine, old=4)
    directory = tmp_path / "archive"
    purge(engine, "90d", archive_dir=directory, batch_size=2)
    seed(engine, old=3)
    damaged = sorted(directory.glob(f"*.{victim}"))[-1]  # the newest batch's
    _damage(damaged, how)
    before_db, before_files = stored(engine), sorted(directory.iterdir())
    with pytest.raises(ma.ValidationError) as refused:
        purge(engine, "90d", archive_dir=directory)
    message = str(refused.value)
    assert damaged.name in message
    assert "\n" not in message
    assert stored(engine) == before_db
    assert sorted(directory.iterdir()) == before_files


def test_cli_damaged_archive_exits_2_with_one_line(engine, db_url, tmp_path, capsys):
    url = db_url.render_as_string(hide_password=False)
    seed(engine, old=3)
    directory = tmp_path / "archive"
    purge(engine, "90d", archive_dir=directory)
    seed(engine, old=2)
    damaged = next(directory.glob("*.agent_executions.parquet"))
    _damage(damaged, "garbage")
    before = stored(engine)
    code = main(["purge", "--url", url, "--older-than", "90d", "--archive", str(directory)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith("miyabi-analytics: error: archive_dir=")
    assert damaged.name in err
    assert stored(engine) == before
