"""Reading a purge archive back, and putting archived executions back into the database.

An archive directory (``purge --archive DIR``) is append-only: files are added, never changed
(see :mod:`miyabi_analytics._archive_layout`). What it holds is what its manifests list, less
what was taken out again: for each execution the newest batch listing it decides, and its copy
counts unless it was restored from there (or released: the database kept a newer version). Read
it with :func:`read_archive` rather than by globbing the Parquet files, which also shows earlier
copies of executions that were restored and purged again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, Engine, insert, select

from miyabi_analytics import _archive_layout as layout
from miyabi_analytics._archive_parts import (
    BASE_TABLES,
    HISTORY,
    ArchivedTable,
    from_arrow,
    read_part,
    reflect_tables,
)
from miyabi_analytics._db.references import references_found
from miyabi_analytics._db.rules.restore import (
    advance_history_ids,
    forget_recorded,
    silence_history,
    stored_transitions,
    unstamp,
)
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.tx import begin
from miyabi_analytics._validate import as_uuid
from miyabi_analytics.errors import ValidationError

__all__ = ["archived_executions", "read_archive", "restore"]


def archived_executions(archive_dir: str | os.PathLike[str]) -> dict[uuid.UUID, str]:
    """Each execution the archive holds, with the name of the batch whose copy counts."""
    directory = _existing(archive_dir)
    copies = layout.current_copies(layout.batches(directory, layout.scan(directory)))
    return {execution_id: batch.name for execution_id, batch in copies.items()}


def read_archive(
    archive_dir: str | os.PathLike[str],
    execution_ids: Iterable[uuid.UUID | str] | None = None,
) -> dict[str, pa.Table]:
    """The archived rows that count, as one Arrow table per database table (by its name).

    Every part read is checked against the checksum in its manifest. ``execution_ids`` limits
    the result to those executions (and their analytics, logs and transitions); it reads the
    whole archive into memory otherwise, so for a large archive pass the ids, or read the parts
    a manifest lists with ``pyarrow.dataset``. Columns that only later batches have are null in
    earlier ones; a column that earlier batches archived typed and later ones as text (see
    ``_archive_parts``) reads as text. Batches written before the history was archived
    (format 1) add no rows to ``agent_execution_transitions``.
    """
    directory = _existing(archive_dir)
    copies = layout.current_copies(layout.batches(directory, layout.scan(directory)))
    if execution_ids is not None:
        wanted = {as_uuid("execution_ids", i) for i in execution_ids}
        copies = {i: b for i, b in copies.items() if i in wanted}
    return _read(directory, copies)


def _read(directory: Path, copies: dict[uuid.UUID, layout.Batch]) -> dict[str, pa.Table]:
    result: dict[str, pa.Table] = {}
    for name, pieces in _pieces(directory, copies).items():
        if pieces:
            result[name] = _concat(pieces)
        else:
            base = next(b for b in BASE_TABLES if b.name == name)
            result[name] = pa.table({c.name: pa.array([], pa.null()) for c in base.columns})
    return result


def _pieces(directory: Path, copies: dict[uuid.UUID, layout.Batch]) -> dict[str, list[pa.Table]]:
    """Each table's rows of these copies, one Arrow table per batch, as its part has them."""
    by_batch: dict[str, tuple[layout.Batch, list[uuid.UUID]]] = {}
    for execution_id, batch in copies.items():
        by_batch.setdefault(batch.name, (batch, []))[1].append(execution_id)
    result: dict[str, list[pa.Table]] = {}
    for base in BASE_TABLES:
        key = "id" if base is executions else "execution_id"
        result[base.name] = [
            read_part(directory, part.path, part.sha256, key, ids)
            for batch, ids in by_batch.values()
            if (part := batch.parts.get(base.name)) is not None  # format 1: no history part
        ]
    return result


def _concat(pieces: list[pa.Table]) -> pa.Table:
    """One table of a table's parts; a column typed in some and text in others reads as text.

    A column this package does not know was archived typed by earlier versions (a
    ``numeric`` as a float, a SQLite timestamp as a timestamp) and is kept as text now (see
    ``_archive_parts``); a part's own values never change, only how the two read together.
    """
    kinds: dict[str, set[pa.DataType]] = {}
    for piece in pieces:
        for item in piece.schema:
            if not pa.types.is_null(item.type):
                kinds.setdefault(item.name, set()).add(item.type)
    as_text = {
        name for name, found in kinds.items() if len(found) > 1 and pa.string() in found
    }
    if as_text:
        pieces = [_as_text(piece, as_text) for piece in pieces]
    return pa.concat_tables(pieces, promote_options="permissive")


def _as_text(piece: pa.Table, names: set[str]) -> pa.Table:
    for index, item in enumerate(piece.schema):
        if item.name in names and not pa.types.is_string(item.type):
            piece = piece.set_column(index, item.name, piece.column(index).cast(pa.string()))
    return piece


def restore(
    engine: Engine, archive_dir: str | os.PathLike[str], execution_ids: Iterable[uuid.UUID | str]
) -> int:
    """Put archived executions back into the database, with their analytics, logs and history.

    Every archived column that the table still has comes back, except a column the database
    generates itself (an identity column numbers the restored row anew). The transitions come
    back as archived, ids included, and none is recorded or announced for the restore (see
    :mod:`miyabi_analytics._db.rules.restore`). An execution archived before the history was
    (format 1) has none to put back: it comes back with the one transition its insert records,
    as a new execution would. The executions are withdrawn from the archive (a ``restored``
    file records it, the parts stay as they are): they are in the database again, and a later
    purge archives them in a new batch.
    All or nothing, in one transaction. Returns the number of executions restored.

    Raises:
        ValidationError: an id that is not a UUID, not in the archive, or already stored (or
            one of its archived transition ids is); a damaged archive file; another purge or
            restore writing to the directory.
        NotFound: a foreign key of the table refusing an archived value (an upstream
            database's ``repositories`` or ``users`` no longer has it), naming the column.
    """
    if not isinstance(engine, Engine):
        raise ValidationError("engine", engine, "expected a SQLAlchemy Engine")
    if isinstance(execution_ids, str | uuid.UUID):
        raise ValidationError("execution_ids", execution_ids, "expected a collection of ids")
    wanted = sorted({as_uuid("execution_ids", i) for i in execution_ids})
    directory = _existing(archive_dir)
    with layout.locked(directory):
        copies = layout.current_copies(layout.batches(directory, layout.scan(directory)))
        restored: list[dict[str, Any]] = []  # the execution rows, for a foreign key's refusal
        written = lambda name: (row.get(name) for row in restored)  # noqa: E731
        with references_found(engine, written), begin(engine, write=True) as conn:
            stmt = select(executions.c.id).where(executions.c.id.in_(wanted))
            stored = sorted(conn.execute(stmt).scalars())
            if stored:
                reason = "already stored; nothing was restored"
                raise ValidationError("execution_ids", str(stored[0]), reason)
            missing = [i for i in wanted if i not in copies]
            if missing:
                raise ValidationError("execution_ids", str(missing[0]), "not in the archive")
            chosen = {i: copies[i] for i in wanted}
            tables = reflect_tables(conn)
            # Those archived without history first, while the triggers still record their
            # insert; then those with it, the triggers off (PostgreSQL) for the rest.
            former = {i: b for i, b in chosen.items() if HISTORY not in b.parts}
            current = {i: b for i, b in chosen.items() if i not in former}
            for group, history in ((former, False), (current, True)):
                if group:
                    _put_back(conn, tables, _pieces(directory, group), history, restored)
        by_batch: dict[str, tuple[layout.Batch, list[uuid.UUID]]] = {}
        for execution_id, batch in chosen.items():
            by_batch.setdefault(batch.name, (batch, []))[1].append(execution_id)
        for batch, ids in by_batch.values():
            layout.record_restored(directory, batch, ids)
    return len(wanted)


def _put_back(
    conn: Connection,
    tables: dict[str, ArchivedTable],
    pieces: dict[str, list[pa.Table]],
    history: bool,
    restored: list[dict[str, Any]],
) -> None:
    """Insert archived rows, executions first (the others refer to them).

    ``history``: with their archived transitions instead of those the inserts would record.
    """

    def values(name: str) -> list[dict[str, Any]]:
        # Batch by batch: each part's values as it has them (types may differ by batch).
        return [row for piece in pieces[name] for row in from_arrow(tables[name], piece)]

    if history:
        silence_history(conn)
    rows = values(executions.name)
    restored.extend(rows)
    conn.execute(insert(tables[executions.name].table), rows)
    unstamp(conn, rows)  # exactly as archived, missing timestamps too
    if history:
        forget_recorded(conn, [row["id"] for row in rows])
    for base in reversed(BASE_TABLES[:-1]):
        children = values(base.name)
        if base.name == HISTORY and children:
            taken = stored_transitions(conn, [row["id"] for row in children])
            if taken:
                reason = (
                    f"its archived transition {taken[0][0]} is already stored (for execution "
                    f"{taken[0][1]}): not this database's archive?; nothing was restored"
                )
                owner = next(r["execution_id"] for r in children if r["id"] == taken[0][0])
                raise ValidationError("execution_ids", str(owner), reason)
        if children:
            conn.execute(insert(tables[base.name].table), children)
        if base.name == HISTORY and children:
            advance_history_ids(conn, max(row["id"] for row in children))


def _existing(archive_dir: str | os.PathLike[str]) -> Path:
    if not isinstance(archive_dir, str | os.PathLike):
        raise ValidationError("archive_dir", archive_dir, "expected a path")
    directory = Path(archive_dir)
    if not directory.is_dir():
        raise ValidationError("archive_dir", str(archive_dir), "no such directory")
    return directory
