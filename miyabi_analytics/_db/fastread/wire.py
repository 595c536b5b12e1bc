"""How values travel from a driver: SELECT columns shaped for Arrow, uuids from bytes to text.

On PostgreSQL numerics are cast to double in SQL, and uuids either cast to text or (for a
caller that formats them itself, :data:`~miyabi_analytics._db.fastread.rows.UUID_BYTES`) sent as
their 16 bytes, which :func:`uuid_text` formats: measured the fastest way from the server into
pandas (BASELINES.md). On SQLite the raw stored values come through without SQLAlchemy's
per-value processing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa
from sqlalchemy import Float, String, Text, cast, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.fastread.rows import UUID_BYTES
from miyabi_analytics._db.types import UtcDateTime, UuidText

__all__ = ["select_for_arrow", "uuid_text"]


def select_for_arrow(
    dialect: Dialect, columns: Mapping[str, ColumnElement[Any]], arrow_types: Mapping[str, Any]
) -> list[ColumnElement[Any]]:
    """Output columns shaped so the driver hands back Arrow-friendly values cheaply.

    On PostgreSQL a uuid asked as :data:`UUID_BYTES` is sent as it is stored: formatting
    3M uuids as text costs the server more (0.8 s on a 1M-row read) than the client's
    vectorised :func:`uuid_text`.
    """
    out: list[ColumnElement[Any]] = []
    for name, column in columns.items():
        kind = arrow_types[name]
        if dialect.is_postgresql:
            if kind == UUID_BYTES:
                expr: ColumnElement[Any] = column
            elif isinstance(column.type, UuidText) or (
                pa.types.is_string(kind) and not isinstance(column.type, String)
            ):
                expr = cast(column, Text)
            elif pa.types.is_floating(kind):
                expr = cast(column, Float(53))
            else:
                expr = column
        elif isinstance(column.type, UuidText | UtcDateTime) or pa.types.is_string(kind):
            expr = type_coerce(column, String)  # raw text, no per-value result processing
        else:
            expr = type_coerce(column, column.type.__class__())
        out.append(expr.label(name))
    return out



# Each byte's two hex digits as one uint16 (in memory order), so a lookup writes both at once.
_HEX: Final = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), np.uint16)
# The canonical form's groups: (first hex digit, last + 1) -> where they go in the 36 chars.
_GROUPS: Final = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))
_UUID_BLOCK: Final = 16_384  # rows per block: 512 KB of scratch


def uuid_text(array: pa.Array) -> pa.Array:
    """16-byte uuids as canonical lowercase text (``8-4-4-4-12``), nulls kept.

    Vectorised with numpy (a lookup table per byte): about 30 ms per million uuids, where
    ``str(uuid.UUID(bytes))`` per value takes over a second. It works a block of rows at a
    time, so its scratch space is small and reused: fresh memory is costly (page faults).
    """
    count = len(array)
    if array.offset:
        array = pa.concat_arrays([array])  # its own buffers, starting at 0
    data = array.buffers()[1]
    raw = np.frombuffer(data, np.uint8, count=count * 16).reshape(count, 16)
    text = np.empty((count, 36), np.uint8)
    text[:, [at - 1 for _, _, at in _GROUPS[1:]]] = ord("-")
    digits = np.empty((min(count, _UUID_BLOCK), 16), np.uint16)
    for start in range(0, count, _UUID_BLOCK):
        block = raw[start : start + _UUID_BLOCK]
        rows = len(block)
        chars = np.take(_HEX, block, out=digits[:rows]).view(np.uint8)
        for first, end, at in _GROUPS:
            text[start : start + rows, at : at + end - first] = chars[:, first:end]
    offsets = np.arange(0, 36 * (count + 1), 36, dtype=np.int32)
    validity = array.is_valid().buffers()[1] if array.null_count else None
    return pa.StringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(text), validity, array.null_count
    )
