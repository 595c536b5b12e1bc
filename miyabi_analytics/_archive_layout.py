"""The purge archive directory: its files, the lock, and what state a directory is in.

A directory ``DIR`` holds, per batch ``<batch>`` = ``purge-<run start, UTC>-<run token>-<n>``:

- ``<batch>.<table>.parquet``: the batch's rows of one table (a *part*), one per table;
- ``<batch>.manifest.json``: written once the parts are on disk; lists them (file, rows,
  SHA-256) and the batch's execution ids. Only a part a manifest lists belongs to the archive.
  Its ``format`` says which parts it has: ``miyabi-purge-archive/2``, every table including
  the transition history (``agent_execution_transitions``); ``miyabi-purge-archive/1`` (the
  files written before the history was archived, still read and restored) all but the history;
- ``<batch>.settled.json``: written once the batch's delete has committed. ``released`` names
  executions the database kept (changed since they were archived): the archived copy is void;
- ``<batch>.restored-<token>.json``: executions :func:`miyabi_analytics.archive.restore` put
  back into the database; their archived copy is withdrawn, the files are kept.

Every file is written under a hidden temporary name, flushed to disk, renamed into place and
the directory flushed: a file is there whole or not at all. Nothing is ever rewritten or deleted
except temporary files and parts that no manifest lists (a killed run's). ``purge.lock`` is held
(``flock``) by whoever writes to the directory.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from miyabi_analytics._archive_parts import (
    BASE_TABLES,
    HISTORY,
    footer_rows,
    fsync_file,
    unreadable,
)
from miyabi_analytics._db.schema import executions
from miyabi_analytics.errors import ValidationError

LOCK_NAME: Final = "purge.lock"
FORMAT: Final = "miyabi-purge-archive/2"
"""The format of the files written now; a manifest of it lists every table's part."""
FORMER_FORMAT: Final = "miyabi-purge-archive/1"
"""Files written before the history was archived: still read, and a former batch's manifest
is written in it (its parts are all but the history's)."""
_TABLES: Final = tuple(t.name for t in BASE_TABLES)
_FORMER_TABLES: Final = tuple(t for t in _TABLES if t != HISTORY)
_PARTS_OF: Final = {FORMAT: set(_TABLES), FORMER_FORMAT: set(_FORMER_TABLES)}
_PART: Final = re.compile(r"^(purge-.+)\.(" + "|".join(map(re.escape, _TABLES)) + r")\.parquet$")
_BATCH: Final = re.compile(r"^purge-\d{8}T\d{12}Z-[0-9a-f]{8}-\d{5}$")
"""A batch name of this format; other ``purge-*`` parts are a former version's (adopted)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One table's rows of a batch."""

    table: str
    path: Path
    rows: int
    sha256: str | None  # None for a part a former version wrote


@dataclass(slots=True)
class Batch:
    """A batch with a manifest: archived; ``settled`` once its delete is known to be done."""

    name: str
    executions: tuple[uuid.UUID, ...]
    parts: dict[str, Part]
    """By table; a batch written before the history was archived has no ``HISTORY`` part."""
    settled: bool = False
    withdrawn: set[uuid.UUID] = field(default_factory=set)
    """Released at settlement or restored: the archived copy no longer counts."""


@dataclass(frozen=True, slots=True)
class Scan:
    """What a directory holds, read and checked without changing anything."""

    batches: list[Batch]
    orphans: list[Path]
    adopt: list[tuple[str, dict[str, Path]]]
    """A former version's batches (name, parts by table): their executions part was written."""


def prepare(path: str | os.PathLike[str]) -> Path:
    """The archive directory, created if missing; refused if it cannot be written to."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError("archive_dir", str(path), f"cannot create it: {exc}") from exc
    if not os.access(directory, os.W_OK):
        raise ValidationError("archive_dir", str(path), "not writable")
    return directory


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold ``DIR/purge.lock``; refuse at once if another purge or restore holds it.

    Refusing rather than waiting: a scheduled purge that finds the previous one still running
    has nothing to wait for, the running one takes the rows. The lock goes with the process, so
    a killed run never leaves it behind.
    """
    import fcntl  # POSIX only: imported here so that the module still imports elsewhere

    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValidationError(
                "archive_dir",
                str(directory),
                f"another purge or restore is writing to it ({LOCK_NAME} is held); "
                "run again when it is done",
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write a small JSON file atomically (temporary name, fsync, rename, fsync directory)."""
    write_atomic(path, lambda temp: temp.write_text(json.dumps(document, indent=1)))


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file, flush it, rename it to ``path``, flush the directory."""
    temp = path.with_name(f".{path.name}.tmp")
    try:
        write(temp)
        fsync_file(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename) to disk where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def now_text() -> str:
    """The current UTC time as ISO text, for the JSON files."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def write_manifest(directory: Path, batch: Batch) -> None:
    """Commit a batch to the archive: after this its parts count, whatever happens next."""
    write_json(
        directory / f"{batch.name}.manifest.json",
        {
            "format": FORMAT if HISTORY in batch.parts else FORMER_FORMAT,
            "batch": batch.name,
            "written_at": now_text(),
            "parts": [
                {"table": p.table, "file": p.path.name, "rows": p.rows, "sha256": p.sha256}
                for p in batch.parts.values()
            ],
            "executions": [str(i) for i in batch.executions],
        },
    )


def settle(directory: Path, batch: Batch, deleted: int, released: Iterable[uuid.UUID]) -> None:
    """Record that the batch's delete is done (``released``: ids the database kept)."""
    kept = sorted(released)
    write_json(
        directory / f"{batch.name}.settled.json",
        {
            "format": FORMAT,
            "batch": batch.name,
            "settled_at": now_text(),
            "deleted": deleted,
            "released": [str(i) for i in kept],
        },
    )
    batch.settled = True
    batch.withdrawn.update(kept)


def record_restored(directory: Path, batch: Batch, ids: Iterable[uuid.UUID]) -> None:
    """Record that these executions of the batch are back in the database."""
    restored = sorted(ids)
    write_json(
        directory / f"{batch.name}.restored-{uuid.uuid4().hex[:12]}.json",
        {
            "format": FORMAT,
            "batch": batch.name,
            "restored_at": now_text(),
            "executions": [str(i) for i in restored],
        },
    )
    batch.withdrawn.update(restored)


# -- reading a directory ------------------------------------------------------------------------


def scan(directory: Path) -> Scan:
    """Read and check every manifest and part; raise naming the first damaged file.

    Nothing is changed, so a refusal leaves the directory (and the database) as it was.
    """
    manifests = sorted(directory.glob("purge-*.manifest.json"))
    batches = [_read_batch(directory, path) for path in manifests]
    listed = {p.path.name for b in batches for p in b.parts.values()}
    by_name = {b.name: b for b in batches}
    for path in sorted(directory.glob("purge-*.settled.json")):
        batch = _owner(directory, path, ".settled.json", by_name)
        batch.settled = True
        batch.withdrawn.update(_ids(directory, path, _load(directory, path), "released"))
    for path in sorted(directory.glob("purge-*.restored-*.json")):
        batch = _owner(directory, path, None, by_name)
        batch.withdrawn.update(_ids(directory, path, _load(directory, path), "executions"))
    unlisted: dict[str, dict[str, Path]] = {}
    for path in sorted(directory.glob("purge-*.parquet")):
        match = _PART.match(path.name)
        if match is not None and path.name not in listed:
            unlisted.setdefault(match.group(1), {})[match.group(2)] = path
    orphans: list[Path] = []
    adopt: list[tuple[str, dict[str, Path]]] = []
    for name, parts in unlisted.items():
        if _BATCH.match(name) or executions.name not in parts or name in by_name:
            orphans.extend(parts.values())  # written, but the batch was never committed
            continue
        for table in _FORMER_TABLES:
            if table not in parts:  # that version wrote the executions part last
                missing = FileNotFoundError("missing, but its executions part is there")
                raise unreadable(directory, directory / f"{name}.{table}.parquet", missing)
        for path in parts.values():
            footer_rows(directory, path)
        adopt.append((name, parts))
    return Scan(batches=batches, orphans=orphans, adopt=adopt)


def _load(directory: Path, path: Path) -> dict[str, Any]:
    known = tuple(_PARTS_OF)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise unreadable(directory, path, exc) from exc
    if not isinstance(document, dict) or document.get("format") not in known:
        raise unreadable(directory, path, ValueError(f"not a {' or '.join(known)} file"))
    return document


def _ids(directory: Path, path: Path, document: dict[str, Any], key: str) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(text) for text in document[key]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise unreadable(directory, path, ValueError(f"bad {key!r}: {exc}")) from exc


def _owner(directory: Path, path: Path, suffix: str | None, by_name: dict[str, Batch]) -> Batch:
    name = path.name.removesuffix(suffix) if suffix else path.name.rsplit(".restored-", 1)[0]
    if name not in by_name:
        raise unreadable(directory, path, ValueError(f"no manifest {name}.manifest.json"))
    return by_name[name]


def _read_batch(directory: Path, path: Path) -> Batch:
    """A manifest, with each part it lists checked: present, a Parquet file, the row count."""
    document = _load(directory, path)
    name = path.name.removesuffix(".manifest.json")
    ids = _ids(directory, path, document, "executions")
    parts: dict[str, Part] = {}
    try:
        for entry in document["parts"]:
            part = Part(
                str(entry["table"]),
                directory / Path(str(entry["file"])).name,
                int(entry["rows"]),
                None if entry.get("sha256") is None else str(entry["sha256"]),
            )
            parts[part.table] = part
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise unreadable(directory, path, ValueError(f"bad 'parts': {exc}")) from exc
    expected = _PARTS_OF[document["format"]]
    if set(parts) != expected:
        raise unreadable(directory, path, ValueError(f"parts should be {sorted(expected)}"))
    for part in parts.values():
        rows = footer_rows(directory, part.path)
        if rows != part.rows:
            reason = f"{rows} rows, its manifest {path.name} says {part.rows}"
            raise unreadable(directory, part.path, ValueError(reason))
    if len(ids) != parts[executions.name].rows:
        raise unreadable(directory, path, ValueError("executions do not match its part"))
    return Batch(name, tuple(ids), parts)


def batches(directory: Path, found: Scan) -> list[Batch]:
    """Every batch, oldest first, a former version's included (as :func:`tidy` adopts them).

    A former version's batches count as settled, but for the newest: that version resumed
    only its newest batch, which may still be waiting for its delete.
    """
    adopted = []
    for name, files in sorted(found.adopt, key=lambda a: a[0]):
        ids = _former_ids(directory, files[executions.name])
        parts = {
            t: Part(t, files[t], footer_rows(directory, files[t]), None)
            for t in _TABLES
            if t in files  # a former version wrote no history part
        }
        adopted.append(Batch(name, tuple(ids), parts, settled=True))
    if adopted:
        adopted[-1].settled = False
    return sorted([*found.batches, *adopted], key=lambda b: b.name)


def tidy(directory: Path, found: Scan) -> tuple[list[Batch], int]:
    """Remove temporary files and orphan parts, write manifests for a former version's batches.

    Returns every batch (oldest first) and how many orphan parts were removed.
    """
    for temp in directory.glob(".purge-*"):
        temp.unlink(missing_ok=True)  # a file being written when a run died
    for orphan in found.orphans:
        orphan.unlink(missing_ok=True)
    if found.orphans:
        fsync_dir(directory)
    every = batches(directory, found)
    known = {b.name for b in found.batches}
    for batch in every:
        if batch.name not in known:
            write_manifest(directory, batch)
            if batch.settled:
                settle(directory, batch, len(batch.executions), ())
    return every, len(found.orphans)


def _former_ids(directory: Path, path: Path) -> list[uuid.UUID]:
    try:
        column = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        return [uuid.UUID(text) for text in column]
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise unreadable(directory, path, exc) from exc


def current_copies(batches: Iterable[Batch]) -> dict[uuid.UUID, Batch]:
    """For each archived execution, the batch holding the copy that counts.

    The newest batch listing an execution decides: its copy counts unless withdrawn there
    (restored, or released because the database kept a changed row), in which case none does.
    An older copy is an earlier state of an execution that came back and was purged again.
    """
    copies: dict[uuid.UUID, Batch] = {}
    for batch in sorted(batches, key=lambda b: b.name):
        for execution_id in batch.executions:
            if execution_id in batch.withdrawn:
                copies.pop(execution_id, None)
            else:
                copies[execution_id] = batch
    return copies
