"""Retention: archive old executions (analytics, logs, history too) to Parquet, then delete them.

Which executions are old: those that *started* before the cutoff (``now - older_than``); an
execution that never started goes by its ``created_at`` instead. Age alone decides, whatever the
status: a run still ``running`` after the retention period is stuck (see ``reap``).

The work goes in batches (``batch_size`` executions, 5,000 by default), each one transaction:
lock the batch's executions, write its four Parquet parts (``agent_executions``,
``business_agent_analytics``, ``agent_execution_logs``, ``agent_execution_transitions``, every
column the database has), then its manifest, delete the executions (``ON DELETE CASCADE``
removes their analytics, logs and transitions),
commit, and mark the batch settled. The layout of the archive directory and the rules that make
it append-only are in :mod:`miyabi_analytics._archive_layout`; in short:

- the manifest commits a batch to the archive, the database commit deletes its rows; a row is
  always in the database or in a committed batch, never in neither;
- a run holds ``DIR/purge.lock``; a second run on the same directory is refused at once
  (``ValidationError``, exit 2 from the command line) rather than interleaving with the first;
- at the start of a run, under the lock: every manifest and part is checked (a damaged file
  is refused, naming it, before anything changes); parts no manifest lists (a run killed
  before its manifest) are removed, their rows are still in the database; a batch with a
  manifest but not settled (a run killed before its commit, or between its commit and the
  mark) is finished: its executions still stored whose rows equal the archived ones are
  deleted, not archived again; those that changed since are *released* (the archived copy
  no longer counts, the database keeps them and a later batch takes them). The cutoff does
  not apply there: the batch was old when it was written;
- a settled batch is never acted upon again: an execution put back into the database (see
  :func:`miyabi_analytics.archive.restore`) is a new row, and a later purge archives it in a
  new batch, leaving the old files as they were.

On PostgreSQL a batch takes only executions no other transaction holds (``FOR UPDATE SKIP
LOCKED``), so two purges of one database into two directories share the work instead of
archiving a row twice. (One case no lock covers: a run into ``DIR`` killed before its commit,
then a purge of the same database into another directory before ``DIR`` is purged again:
both directories then hold that batch. Finish an interrupted run with its own directory.)
On SQLite the file is ``VACUUM``-ed afterwards so it shrinks.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.exc import OperationalError

from miyabi_analytics import _archive_layout as layout
from miyabi_analytics._archive_parts import (
    ArchivedTable,
    read_part,
    reflect_tables,
    sha256,
    stream_part,
    to_arrow,
)
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import analytics, executions, logs, transitions
from miyabi_analytics._db.tx import begin
from miyabi_analytics._durations import as_duration
from miyabi_analytics._validate import as_int
from miyabi_analytics.archive import archived_executions, read_archive, restore
from miyabi_analytics.errors import ValidationError

__all__ = ["PurgeReport", "archived_executions", "purge", "read_archive", "restore"]

log = logging.getLogger("miyabi_analytics.retention")

DEFAULT_BATCH_SIZE: Final = 5_000
MAX_BATCH_SIZE: Final = 1_000_000
_CHUNK: Final = 20_000
_CHILDREN: Final = {"analytics": analytics, "logs": logs, "transitions": transitions}
_COUNTED: Final = {**{k: t.name for k, t in _CHILDREN.items()}, "executions": executions.name}


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What :func:`purge` did (or, with ``dry_run``, would do)."""

    cutoff: datetime
    dry_run: bool
    executions: int = 0
    analytics: int = 0
    logs: int = 0
    transitions: int = 0
    """Rows of the executions' status history (``agent_execution_transitions``)."""
    batches: int = 0
    resumed: int = 0
    """Executions of an interrupted earlier run's batch, deleted now (already archived)."""
    archive_files: tuple[Path, ...] = field(default=())
    vacuumed: bool = False
    orphans_removed: int = 0
    """Parts of a batch an earlier run did not commit (no manifest), removed."""
    released: int = 0
    """Executions of an interrupted batch that changed since: kept in the database."""

    def __str__(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        text = (
            f"{verb} {self.executions} executions ({self.analytics} analytics rows, "
            f"{self.logs} log lines, {self.transitions} transitions) "
            f"older than {self.cutoff.isoformat(timespec='seconds')}"
        )
        if not self.dry_run:
            text += f" in {self.batches} batch{'' if self.batches == 1 else 'es'}"
            if self.archive_files:
                text += f"; archived to {len(self.archive_files)} Parquet files"
            if self.resumed:
                text += f"; finished an interrupted batch of {self.resumed}"
        return text


def purge(
    engine: Engine,
    older_than: timedelta | str,
    *,
    archive_dir: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> PurgeReport:
    """Archive (if ``archive_dir``) and delete executions older than ``older_than``.

    See the module docstring for what "older" means, the batches, the archive and how an
    interrupted run is finished. ``dry_run`` counts what would go and changes nothing (no
    directory or file either). Returns a :class:`PurgeReport`.

    Raises:
        ValidationError: bad arguments; ``archive_dir`` not usable, holding a damaged file
            (named in the message), or being written by another purge. Nothing is changed.
    """
    if not isinstance(engine, Engine):
        raise ValidationError("engine", engine, "expected a SQLAlchemy Engine")
    age = as_duration("older_than", older_than)
    size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
    now = datetime.now(UTC)
    cutoff = now - age
    old = _old(cutoff)
    if dry_run:
        return _count(engine, old, cutoff)
    if archive_dir is None:
        run = _Run(engine, None, {})
        run.batches(old, size, "")
        return run.report(cutoff)
    directory = layout.prepare(archive_dir)
    with layout.locked(directory):
        found = layout.scan(directory)  # refuses a damaged archive before anything changes
        with begin(engine) as conn:
            tables = reflect_tables(conn)
        batches, orphans = layout.tidy(directory, found)
        if orphans:
            log.warning("removed %d parts of a purge batch that was never committed", orphans)
        run = _Run(engine, directory, tables, orphans_removed=orphans)
        for batch in batches:
            if not batch.settled:
                run.finish(batch)
        stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
        run.batches(old, size, f"purge-{stamp}-{uuid.uuid4().hex[:8]}")
        return run.report(cutoff)


def _old(cutoff: datetime) -> ColumnElement[bool]:
    c = executions.c
    # Two indexed ranges (started_at, created_at) rather than coalesce(), which no index serves.
    return or_(c.started_at < cutoff, and_(c.started_at.is_(None), c.created_at < cutoff))


def _count(engine: Engine, old: ColumnElement[bool], cutoff: datetime) -> PurgeReport:
    chosen = select(executions.c.id).where(old)
    with begin(engine) as conn:
        counts = {key: _count_children(conn, t, chosen) for key, t in _CHILDREN.items()}
        stmt = select(func.count()).select_from(executions).where(old)
        counts["executions"] = conn.execute(stmt).scalar_one()
    return PurgeReport(cutoff=cutoff, dry_run=True, archive_files=(), vacuumed=False, **counts)


def _ids(bind: Engine | Connection, ids: Sequence[uuid.UUID]) -> Any:
    """``SELECT`` of the given ids as one bound parameter, however many (cf. ``existing_rows``)."""
    if Dialect.of(bind).is_postgresql:
        keys = (
            func.unnest(bindparam("ids", list(ids), type_=ARRAY(PG_UUID())))
            .table_valued("key_id")
            .render_derived(name="keys")
        )
        return select(keys.c.key_id)
    listed = func.json_each(bindparam("ids", json.dumps([str(i) for i in ids]))).table_valued(
        "value"
    )
    return select(listed.c.value)


def _count_children(conn: Connection, table: Table, keys: Any) -> int:
    stmt = select(func.count()).select_from(table).where(table.c.execution_id.in_(keys))
    count: int = conn.execute(stmt).scalar_one()
    return count


class _Run:
    """One purge run's work and running totals."""

    def __init__(
        self,
        engine: Engine,
        directory: Path | None,
        tables: dict[str, ArchivedTable],
        orphans_removed: int = 0,
    ) -> None:
        self.engine = engine
        self.directory = directory
        self.tables = tables
        self.totals = dict.fromkeys(_COUNTED, 0)
        self.files: list[Path] = []
        self.count = 0
        self.resumed = 0
        self.released = 0
        self.orphans_removed = orphans_removed

    def report(self, cutoff: datetime) -> PurgeReport:
        vacuumed = self.totals["executions"] > 0 and _vacuum_sqlite(self.engine)
        return PurgeReport(
            cutoff=cutoff,
            dry_run=False,
            batches=self.count,
            resumed=self.resumed,
            archive_files=tuple(self.files),
            vacuumed=vacuumed,
            orphans_removed=self.orphans_removed,
            released=self.released,
            **self.totals,
        )

    def batches(self, old: ColumnElement[bool], size: int, prefix: str) -> None:
        while self.batch(old, size, f"{prefix}-{self.count + 1:05d}"):
            self.count += 1

    def batch(self, which: ColumnElement[bool], size: int, name: str) -> bool:
        """One transaction: lock up to ``size`` old executions, archive them, delete them.

        With an archive: the parts, then the manifest, are on disk before the delete is sent;
        the batch is marked settled once the delete has committed.
        """
        batch: layout.Batch | None = None
        with begin(self.engine, write=True) as conn:
            chosen = select(executions.c.id).where(which).limit(size)
            if Dialect.of(conn).is_postgresql:
                # Locked until commit: a log or metrics insert aimed at them waits, then fails
                # its foreign key, rather than slipping in between the archive and the delete.
                # SKIP LOCKED: rows another purge has taken are its to archive, not ours.
                chosen = chosen.with_for_update(skip_locked=True)
            ids = list(conn.execute(chosen).scalars())
            if not ids:
                return False
            keys = _ids(conn, ids)
            if self.directory is not None:
                parts = [self._write_part(conn, t, keys, name) for t in self.tables.values()]
                rows = {p.table: p.rows for p in parts}
                counts = {key: rows[table] for key, table in _COUNTED.items()}
                batch = layout.Batch(name, tuple(ids), {p.table: p for p in parts})
                layout.write_manifest(self.directory, batch)
            else:
                counts = {key: _count_children(conn, t, keys) for key, t in _CHILDREN.items()}
                counts["executions"] = len(ids)
            deleted = conn.execute(delete(executions).where(executions.c.id.in_(keys))).rowcount
            assert deleted == len(ids), (deleted, len(ids))  # the rows are locked
        if self.directory is not None and batch is not None:
            layout.settle(self.directory, batch, len(ids), ())
        for key in self.totals:
            self.totals[key] += counts[key]
        return True

    def _write_part(
        self, conn: Connection, archived: ArchivedTable, keys: Any, name: str
    ) -> layout.Part:
        assert self.directory is not None
        path = self.directory / f"{name}.{archived.name}.parquet"
        rows = 0

        def write(temp: Path) -> None:
            nonlocal rows
            rows = stream_part(conn, archived, keys, temp, _CHUNK)

        layout.write_atomic(path, write)
        self.files.append(path)
        return layout.Part(archived.name, path, rows, sha256(path))

    def finish(self, batch: layout.Batch) -> None:
        """Settle a batch an earlier run committed to the archive but may not have deleted.

        Its executions still stored (and not restored since) are deleted if their rows, and
        their analytics, logs and transitions, equal the archived ones: the archive has them
        already. Those that differ changed after the batch was written: the database keeps
        them, the batch releases its copy. A batch of the former format has no transitions:
        an execution with stored history is released rather than deleted with it.
        """
        assert self.directory is not None
        pending = [i for i in batch.executions if i not in batch.withdrawn]
        same: list[uuid.UUID] = []
        present: list[uuid.UUID] = []
        with begin(self.engine, write=True) as conn:
            if pending:
                stmt = select(executions.c.id).where(executions.c.id.in_(_ids(conn, pending)))
                if Dialect.of(conn).is_postgresql:
                    stmt = stmt.with_for_update()
                present = list(conn.execute(stmt).scalars())
            if present:
                same = self._unchanged(conn, batch, present)
            if same:
                keys = _ids(conn, same)
                for key, table in _CHILDREN.items():
                    self.totals[key] += _count_children(conn, table, keys)
                conn.execute(delete(executions).where(executions.c.id.in_(keys)))
        released = sorted(set(present) - set(same))
        if same or released:
            log.warning(
                "finished interrupted purge batch %s: deleted %d executions it archived, "
                "released %d that changed since",
                batch.name,
                len(same),
                len(released),
            )
        layout.settle(self.directory, batch, len(same), released)
        self.resumed += len(same)
        self.totals["executions"] += len(same)
        self.released += len(released)

    def _unchanged(
        self, conn: Connection, batch: layout.Batch, ids: list[uuid.UUID]
    ) -> list[uuid.UUID]:
        """The executions among ``ids`` whose stored rows are all exactly the archived ones."""
        assert self.directory is not None
        keys = _ids(conn, ids)
        differ: set[str] = set()
        for archived in self.tables.values():
            part = batch.parts.get(archived.name)
            key = archived.key.name
            stored = to_arrow(
                archived,
                conn.execute(archived.select().where(archived.key.in_(keys))).all(),
            )
            mine: dict[str, dict[str, dict[str, Any]]] = {}  # no part: nothing archived
            if part is not None:
                kept = read_part(self.directory, part.path, part.sha256, key, ids)
                if kept.column_names != stored.column_names:
                    return []  # the table changed shape since: release them all
                mine = _grouped(kept.to_pylist(), key)
            theirs = _grouped(stored.to_pylist(), key)
            differ.update(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        return [i for i in ids if str(i) not in differ]


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row[key]), {})[str(row["id"])] = row
    return grouped


# -- SQLite: give the space back ----------------------------------------------------------------


def _vacuum_sqlite(engine: Engine) -> bool:
    """VACUUM (outside any transaction) and truncate the WAL, so the file shrinks on disk."""
    if engine.dialect.name != Dialect.SQLITE:
        return False
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        try:
            dbapi.execute("VACUUM")
            dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (sqlite3.OperationalError, OperationalError) as exc:
            # The purge itself is committed; another connection holding the database only
            # keeps the space from being returned until the next VACUUM.
            log.warning("purge done, but VACUUM did not run: %s", exc)
            return False
    return True
