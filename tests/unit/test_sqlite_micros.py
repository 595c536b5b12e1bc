"""SQLite's duration arithmetic: a stored timestamp as exact microseconds, years 1 to 9999."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

from miyabi_analytics._db.summary.rules import _sqlite_micros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_every_timestamp_is_its_exact_microsecond_count():
    rng = random.Random(20261204)
    span = (LAST - FIRST) // timedelta(microseconds=1)
    values = [FIRST, LAST, EPOCH, EPOCH - timedelta(microseconds=1)]
    values += [FIRST + timedelta(microseconds=rng.randrange(span)) for _ in range(20_000)]
    conn = sqlite3.connect(":memory:")
    expression = _sqlite_micros("t")
    for value in values:
        text = value.isoformat(sep=" ", timespec="microseconds")
        got = conn.execute(f"SELECT {expression} FROM (SELECT ? AS t)", (text,)).fetchone()[0]  # noqa: S608
        assert got == (value - EPOCH) // timedelta(microseconds=1), text
    conn.close()
