"""Shared benchmark plumbing: scratch databases, timing, peak RSS."""

from __future__ import annotations

import os
import resource
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, create_engine, make_url, text

ADMIN_URL = make_url(
    os.environ.get("MIYABI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
).set(drivername="postgresql+psycopg")


@contextmanager
def scratch_pg(name: str | None = None, keep: bool = False) -> Iterator[URL]:
    db = name or f"miyabi_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{db}"'))
    try:
        yield ADMIN_URL.set(database=db)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


def timed(
    fn: Callable[[], Any], *, repeat: int = 3, setup: Callable[[], Any] | None = None
) -> float:
    """Median wall time of ``repeat`` runs (``setup`` runs before each, untimed)."""
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
