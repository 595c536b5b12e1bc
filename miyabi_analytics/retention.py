"""Retention: archive old executions (with their analytics and logs) to Parquet, then delete them.

Which executions are old: those that *started* before the cutoff (``now - older_than``); an
execution that never started goes by its ``created_at`` instead. Age alone decides, whatever the
status: a run still ``running`` after the retention period is stuck (see ``reap``).

The work goes in batches (``batch_size`` executions, 5,000 by default), each one transaction:
lock the batch's executions, write its three Parquet files (``agent_executions``,
``business_agent_analytics``, ``agent_execution_logs``), delete the executions (``ON DELETE
CASCADE`` removes their analytics and logs), commit. A file is written under a temporary name,
flushed to disk and renamed into place, the executions file last, and only then is the batch
deleted, so a crash never loses a row that is not archived.

Files are named ``purge-<run start, UTC>-<batch number>.<table>.parquet``. A crash between the
files and the commit leaves a batch archived but not deleted: the next run with the same archive
directory finds it (the newest executions file whose ids are still stored), archives those
executions again under the same name and deletes them, then carries on. A second run after a
complete one finds nothing to do. On SQLite the file is ``VACUUM``-ed afterwards so it shrinks.
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

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Numeric,
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

from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UtcDateTime, UuidText, strict_json_dumps
from miyabi_analytics._durations import as_duration
from miyabi_analytics._validate import as_int
from miyabi_analytics.errors import ValidationError

__all__ = ["PurgeReport", "purge"]

log = logging.getLogger("miyabi_analytics.retention")

DEFAULT_BATCH_SIZE: Final = 5_000
MAX_BATCH_SIZE: Final = 1_000_000
# Children first, the executions file last: its presence means the batch's files are complete.
ARCHIVED: Final = (analytics, logs, executions)
_SUFFIX: Final = ".parquet"
_PARTIAL: Final = ".partial"
_CHUNK: Final = 20_000


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What :func:`purge` did (or, with ``dry_run``, would do)."""

    cutoff: datetime
    dry_run: bool
    executions: int = 0
    analytics: int = 0
    logs: int = 0
    batches: int = 0
    resumed: int = 0
    """Executions of an interrupted earlier run's batch, archived again and deleted now."""
    archive_files: tuple[Path, ...] = field(default=())
    vacuumed: bool = False

    def __str__(self) -> str:
        verb = "would purge" if self.dry_run else "purged"
        text = (
            f"{verb} {self.executions} executions ({self.analytics} analytics rows, "
            f"{self.logs} log lines) older than {self.cutoff.isoformat(timespec='seconds')}"
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

    See the module docstring for what "older" means, the batches, the archive files and how an
    interrupted run is finished. ``dry_run`` counts what would go and changes nothing (no
    directory or file either). Returns a :class:`PurgeReport`.
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

    archive = None if archive_dir is None else _archive_dir(archive_dir)
    files: list[Path] = []
    totals = {"executions": 0, "analytics": 0, "logs": 0}
    resumed = batches = 0
    if archive is not None:
        unfinished = _unfinished_batch(engine, archive)
        if unfinished is not None:
            name, ids = unfinished
            log.warning("finishing interrupted purge batch %s (%d executions)", name, len(ids))
            which = executions.c.id.in_(_ids(engine, ids))
            counts = _purge_batch(engine, which, len(ids), archive, name, files)
            resumed = counts["executions"]
            _add(totals, counts)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    while True:
        name = f"purge-{stamp}-{batches + 1:05d}"
        counts = _purge_batch(engine, old, size, archive, name, files)
        if not counts["executions"]:
            break
        batches += 1
        _add(totals, counts)
    vacuumed = totals["executions"] > 0 and _vacuum_sqlite(engine)
    return PurgeReport(
        cutoff=cutoff,
        dry_run=False,
        batches=batches,
        resumed=resumed,
        archive_files=tuple(files),
        vacuumed=vacuumed,
        **totals,
    )


def _old(cutoff: datetime) -> ColumnElement[bool]:
    c = executions.c
    # Two indexed ranges (started_at, created_at) rather than coalesce(), which no index serves.
    return or_(c.started_at < cutoff, and_(c.started_at.is_(None), c.created_at < cutoff))


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for key in totals:
        totals[key] += counts[key]


def _count(engine: Engine, old: ColumnElement[bool], cutoff: datetime) -> PurgeReport:
    chosen = select(executions.c.id).where(old)
    with begin(engine) as conn:
        counts = [
            conn.execute(select(func.count()).select_from(executions).where(old)).scalar_one(),
            _count_children(conn, analytics, chosen),
            _count_children(conn, logs, chosen),
        ]
    return PurgeReport(
        cutoff=cutoff, dry_run=True, executions=counts[0], analytics=counts[1], logs=counts[2]
    )


def _ids(bind: Engine | Connection, ids: Sequence[uuid.UUID]) -> Any:
    """``SELECT`` of the given ids as one bound parameter, however many (cf. ``existing_rows``)."""
    if bind.dialect.name == "postgresql":
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


def _purge_batch(
    engine: Engine,
    which: ColumnElement[bool],
    size: int,
    archive: Path | None,
    name: str,
    files: list[Path],
) -> dict[str, int]:
    """One transaction: lock up to ``size`` matching executions, archive them, delete them."""
    with begin(engine, write=True) as conn:
        chosen = select(executions.c.id).where(which).limit(size)
        if conn.dialect.name == "postgresql":
            # Locked until commit: a log or metrics insert aimed at them waits, then fails its
            # foreign key, rather than slipping in between the archive and the delete.
            chosen = chosen.with_for_update()
        ids = list(conn.execute(chosen).scalars())
        if not ids:
            return {"executions": 0, "analytics": 0, "logs": 0}
        keys = _ids(conn, ids)
        if archive is not None:
            counts = {
                key: _archive_table(conn, table, keys, archive, name, files)
                for key, table in zip(("analytics", "logs", "executions"), ARCHIVED, strict=True)
            }
        else:
            counts = {
                "analytics": _count_children(conn, analytics, keys),
                "logs": _count_children(conn, logs, keys),
                "executions": len(ids),
            }
        deleted = conn.execute(delete(executions).where(executions.c.id.in_(keys))).rowcount
        assert deleted == len(ids), (deleted, len(ids))  # the rows are locked
    return counts


def _count_children(conn: Connection, table: Table, keys: Any) -> int:
    stmt = select(func.count()).select_from(table).where(table.c.execution_id.in_(keys))
    count: int = conn.execute(stmt).scalar_one()
    return count


# -- archive files ------------------------------------------------------------------------------


def _archive_dir(path: str | os.PathLike[str]) -> Path:
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError("archive_dir", str(path), f"cannot create it: {exc}") from exc
    if not os.access(directory, os.W_OK):
        raise ValidationError("archive_dir", str(path), "not writable")
    for stale in directory.glob(f".purge-*{_SUFFIX}{_PARTIAL}"):
        stale.unlink(missing_ok=True)  # a crash while writing; the batch was not deleted
    return directory


def _file(archive: Path, name: str, table: Table) -> Path:
    return archive / f"{name}.{table.name}{_SUFFIX}"


def _unfinished_batch(engine: Engine, archive: Path) -> tuple[str, list[uuid.UUID]] | None:
    """The newest batch whose executions file exists but whose executions are still stored."""
    marker = f".{executions.name}{_SUFFIX}"
    newest = sorted(archive.glob(f"purge-*{marker}"))
    if not newest:
        return None
    name = newest[-1].name.removesuffix(marker)
    archived = pq.read_table(newest[-1], columns=["id"]).column("id").to_pylist()
    ids = [uuid.UUID(text) for text in archived]
    if not ids:
        return None
    with begin(engine) as conn:
        stmt = select(executions.c.id).where(executions.c.id.in_(_ids(conn, ids)))
        stored = list(conn.execute(stmt).scalars())
    return (name, stored) if stored else None


def _arrow_type(column: Any) -> pa.DataType:
    kind = column.type
    if isinstance(kind, UuidText):
        return pa.string()
    if isinstance(kind, UtcDateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, BigInteger):
        return pa.int64()
    if isinstance(kind, Integer):
        return pa.int32()
    if isinstance(kind, Numeric):
        return pa.float64()
    return pa.string()  # text, varchar, and JSON documents as their JSON text


def _encoder(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, UuidText):
        return str
    if isinstance(kind, JSON) or "JSON" in type(kind).__name__.upper():
        return strict_json_dumps
    return None


def _archive_table(
    conn: Connection, table: Table, keys: Any, archive: Path, name: str, files: list[Path]
) -> int:
    """Write the table's rows of the batch to ``<name>.<table>.parquet``; returns the row count.

    Rows are streamed in chunks, so an execution with very many log lines costs no more memory
    than a chunk.
    """
    key = table.c.id if table is executions else table.c.execution_id
    stmt = (
        select(table)
        .where(key.in_(keys))
        .order_by(table.c.id)
        .execution_options(stream_results=True, yield_per=_CHUNK)
    )
    schema = pa.schema([(c.name, _arrow_type(c)) for c in table.columns])
    encoders = [_encoder(c) for c in table.columns]
    target = _file(archive, name, table)
    partial = target.with_name(f".{target.name}{_PARTIAL}")
    count = 0
    try:
        result = conn.execute(stmt)
        with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
            for rows in result.partitions():
                columns = []
                for position, encode in enumerate(encoders):
                    values = [row[position] for row in rows]
                    if encode is not None:
                        values = [None if v is None else encode(v) for v in values]
                    columns.append(pa.array(values, type=schema.field(position).type))
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                count += len(rows)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _fsync_dir(archive)
    if target not in files:
        files.append(target)
    return count


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- SQLite: give the space back ----------------------------------------------------------------


def _vacuum_sqlite(engine: Engine) -> bool:
    """VACUUM (outside any transaction) and truncate the WAL, so the file shrinks on disk."""
    if engine.dialect.name != "sqlite":
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
