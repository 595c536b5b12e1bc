"""What every fast-read backend implements: one read asked for, record batches back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
from sqlalchemy import Select

__all__ = ["BatchRead", "BatchSource"]


@dataclass(frozen=True, slots=True)
class BatchRead:
    """One read: ``stmt``'s rows as batches of ``schema``.

    ``chunksize``: at most that many rows a batch, or ``None`` for the batches as the driver
    delivers them. ``rows``: a cheaper SELECT of one row per row of ``stmt``, for a backend
    that counts before it chooses how to read.
    """

    stmt: Select[Any]
    schema: pa.Schema
    chunksize: int | None
    rows: Select[Any] | None = None


class BatchSource(Protocol):
    """One way of running a SELECT and handing its rows back as Arrow record batches."""

    def batches(self, read: BatchRead) -> Iterator[pa.RecordBatch]:
        """``read``'s rows as batches of its schema: see :func:`record_batches`."""
        ...
