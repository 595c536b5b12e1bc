"""The Parquet parts of a purge archive: which columns, their Arrow types, writing and reading.

The columns are the table's columns *as the database has them* (reflected at the start of a
run), not a list kept here: a column that a later migration adds (or that an upstream Miyabi
database has and this package does not know, such as ``agent_executions.options``) is archived
and restored too. Columns this package knows keep their types from
:mod:`miyabi_analytics._db.schema` (uuids and timestamps behave the same on both databases that
way); the others take the reflected type where its values survive the trip to Arrow and back
(uuid, JSON, boolean, integers, floats, bytes, text; timestamps on PostgreSQL). Any other
column is *kept as text*: its text as the database has it (PostgreSQL: cast to ``text``,
which the type's own input function reads back; SQLite: the stored value, whatever its
declared type), restored untyped, so the database parses it as it parsed it once. That keeps
an array, an interval, a ``numeric(30,12)`` or a SQLite timestamp in a form SQLAlchemy would
not parse, exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Select,
    String,
    Table,
    Text,
    Uuid,
    cast,
    inspect,
    select,
)
from sqlalchemy.engine import Dialect as SQLDialect
from sqlalchemy.types import NullType

from miyabi_analytics._db.expressions import write_order
from miyabi_analytics._db.schema import TXID, WRITE_ORDER, analytics, executions, logs, transitions
from miyabi_analytics._db.types import UtcDateTime, UuidText, json_loads, strict_json_dumps
from miyabi_analytics.errors import ValidationError

BASE_TABLES: Final = (analytics, logs, transitions, executions)
"""Children first, executions last (the order a batch writes its parts in)."""
HISTORY: Final = transitions.name
"""The part an archive written before the transition history (format 1) does not have."""

_Encode = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class ArchivedTable:
    """One table as a run archives it: the database's columns with their Arrow codecs."""

    table: Table
    schema: pa.Schema
    encoders: tuple[_Encode, ...]
    generated: frozenset[str]
    """Columns the database fills in itself (identity, computed, a transition's ``txid``):
    restore leaves them to it. A transition's identity ``id`` is not among them: restore puts
    the history back with its ids (the sequence is past them), as a watcher saw them."""
    reads: tuple[ColumnElement[Any], ...] = ()
    """What a run selects, in column order (a column kept as text: its text)."""
    legacy: Mapping[str, _Encode] = field(default_factory=dict)
    """Columns kept as text: how a value an older archive kept typed is written back."""

    def select(self) -> Select[Any]:
        """The archived columns of the table, in column order, as a run reads them."""
        return select(*self.reads) if self.reads else select(self.table)

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def key(self) -> Column[Any]:
        """The execution id column (``id`` of executions, ``execution_id`` of the children)."""
        return self.table.c.id if self.name == executions.name else self.table.c.execution_id


def reflect_tables(conn: Connection) -> dict[str, ArchivedTable]:
    """The archived tables with the columns the database has now, by table name."""
    inspector = inspect(conn)
    dialect = conn.dialect
    found: dict[str, ArchivedTable] = {}
    for base in BASE_TABLES:
        columns: list[Column[Any]] = []
        codecs: list[tuple[str, pa.DataType, _Encode]] = []
        generated: set[str] = set()
        legacy: dict[str, _Encode] = {}
        for info in inspector.get_columns(base.name):
            name = info["name"]
            known = name in base.c
            kind = base.c[name].type if known else info["type"]
            if not known and _kept_as_text(kind, dialect):
                columns.append(Column(name, NullType()))
                codecs.append((name, pa.string(), _text))
                legacy[name] = _legacy(kind, dialect)
            else:
                columns.append(Column(name, kind, primary_key=name == "id"))
                codecs.append((name, *_codec(kind, known)))
            if info.get("identity") or info.get("computed"):
                generated.add(name)
        if base is transitions:
            generated.discard("id")
            generated.add(TXID)  # PostgreSQL: the restoring transaction's, as for any write
        table = Table(base.name, MetaData(), *columns)
        postgresql = dialect.name == "postgresql"
        reads = tuple(
            cast(c, Text).label(c.name) if c.name in legacy and postgresql else c
            for c in table.columns
        )
        found[base.name] = ArchivedTable(
            table=table,
            schema=pa.schema([(name, kind) for name, kind, _ in codecs]),
            encoders=tuple(encode for _, _, encode in codecs),
            generated=frozenset(generated),
            reads=reads,
            legacy=legacy,
        )
    return found


def _kept_as_text(kind: Any, dialect: SQLDialect) -> bool:
    """Whether a column this package does not know is archived as its text (module docstring)."""
    if isinstance(kind, UuidText | Uuid | JSON | Boolean | Integer | Float | LargeBinary | String):
        return False  # Float before Numeric: a Float is a Numeric
    if "JSON" in type(kind).__name__.upper():
        return False
    if isinstance(kind, DateTime):
        # PostgreSQL returns a datetime as stored; SQLite's is text SQLAlchemy may not parse.
        return dialect.name != "postgresql"
    return True  # numeric (exact, any precision), date, time, interval, arrays, ranges, ...


def _text(value: Any) -> Any:
    """A kept-as-text value: PostgreSQL's text, or SQLite's stored value as text."""
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def _legacy(kind: Any, dialect: SQLDialect) -> _Encode:
    """Writes back a typed value of an archive written before the column was kept as text.

    Such a value goes in as the column's own type would have written it (SQLite: SQLAlchemy's
    timestamp text), so an old archive restores as it did before.
    """
    try:
        process = kind.dialect_impl(dialect).bind_processor(dialect)
    except (AttributeError, NotImplementedError):
        return None
    if process is None:
        return None
    return lambda value: value if isinstance(value, str) else process(value)


def _codec(kind: Any, known: bool) -> tuple[pa.DataType, _Encode]:
    """The Arrow type of a column and how a Python value becomes one (None: as it is)."""
    if isinstance(kind, UuidText | Uuid):
        return pa.string(), str
    if isinstance(kind, UtcDateTime | DateTime):
        return pa.timestamp("us", tz="UTC"), None
    if isinstance(kind, Boolean):
        return pa.bool_(), None
    if isinstance(kind, BigInteger) or (isinstance(kind, Integer) and not known):
        return pa.int64(), None  # a column we do not know may hold any 64-bit integer
    if isinstance(kind, Integer):
        return pa.int32(), None
    if isinstance(kind, Numeric | Float):
        return pa.float64(), float
    if isinstance(kind, JSON) or "JSON" in type(kind).__name__.upper():
        return pa.string(), strict_json_dumps  # JSON documents as their JSON text
    if isinstance(kind, LargeBinary):
        return pa.binary(), bytes
    return pa.string(), str  # text and varchar; anything else as its text


def to_arrow(archived: ArchivedTable, rows: Sequence[Sequence[Any]]) -> pa.Table:
    """Rows (in the table's column order) as an Arrow table of the archive's schema."""
    arrays = []
    for position, encode in enumerate(archived.encoders):
        values = [row[position] for row in rows]
        if encode is not None:
            values = [None if v is None else encode(v) for v in values]
        arrays.append(pa.array(values, type=archived.schema.field(position).type))
    return pa.Table.from_arrays(arrays, schema=archived.schema)


def stream_part(
    conn: Connection, archived: ArchivedTable, keys: Any, temp: Path, chunk: int
) -> int:
    """Write the rows of the executions ``keys`` selects to ``temp``; returns the row count.

    Rows are streamed in chunks, so an execution with very many log lines costs no more memory
    than a chunk. The caller renames the file into place once it is on disk.
    """
    table = archived.table
    # Analytics and logs in the order they were written: restore inserts them in file order,
    # and the database's new write order then ranks rows of one instant as before the purge.
    # Transitions by id: the order they were recorded in (and restore keeps the ids).
    ordered_by_id = archived.name in (executions.name, transitions.name)
    order = table.c.id if ordered_by_id else write_order(table)
    stmt = (
        archived.select()
        .where(archived.key.in_(keys))
        .order_by(order)
        .execution_options(stream_results=True, yield_per=chunk)
    )
    count = 0
    result = conn.execute(stmt)
    with pq.ParquetWriter(temp, archived.schema, compression="zstd") as writer:
        for rows in result.partitions():
            writer.write_table(to_arrow(archived, rows))
            count += len(rows)
    return count


def sha256(path: Path) -> str:
    """The file's SHA-256, hex (stored in the manifest, checked whenever a part is read)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush the file's content to disk."""
    with path.open("rb") as written:
        os.fsync(written.fileno())


def footer_rows(directory: Path, path: Path) -> int:
    """The row count in the file's Parquet footer; a file that has none is refused."""
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise unreadable(directory, path, exc) from exc


def read_part(
    directory: Path, path: Path, digest: str | None, key: str, ids: Iterable[uuid.UUID]
) -> pa.Table:
    """The part's rows of the given executions, after checking the file's checksum."""
    try:
        if digest is not None and sha256(path) != digest:
            raise ValueError("its content does not match the checksum in its manifest")
        table = pq.read_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise unreadable(directory, path, exc) from exc
    wanted = pa.array([str(i) for i in ids], type=pa.string())
    return table.filter(pc.is_in(table.column(key), value_set=wanted))


def unreadable(directory: Path, path: Path, exc: BaseException) -> ValidationError:
    """The refusal for a damaged archive file: one line naming the file; nothing was changed."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return ValidationError(
        "archive_dir",
        str(directory),
        f"cannot read {path}: {lines[0]}; nothing was purged or restored",
    )


def from_arrow(archived: ArchivedTable, part: pa.Table) -> list[dict[str, Any]]:
    """Archived rows as values to insert into the table as it is now (for ``restore``).

    Every column that both the archive and the table have comes back, except those the
    database generates (an identity column numbers the restored row anew, as any new row).
    """
    names = [
        c.name
        for c in archived.table.columns
        if c.name in part.column_names and c.name not in archived.generated
    ]
    decoders = {
        name: archived.legacy.get(name) or _decoder(archived.table.c[name].type)
        for name in names
    }
    if WRITE_ORDER in archived.generated and WRITE_ORDER in part.column_names:
        # PostgreSQL's archived write order: parts of earlier runs were written in id order.
        part = part.sort_by(WRITE_ORDER)
    rows: list[dict[str, Any]] = part.select(names).to_pylist()
    for row in rows:
        for name, decode in decoders.items():
            if decode is not None and row[name] is not None:
                row[name] = decode(row[name])
    return rows


def _decoder(kind: Any) -> _Encode:
    if isinstance(kind, UuidText | Uuid):
        return uuid.UUID
    if isinstance(kind, JSON) or "JSON" in type(kind).__name__.upper():
        return json_loads
    return None
