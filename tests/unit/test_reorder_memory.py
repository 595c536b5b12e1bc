"""The whole read's reorder frees each unsorted column as its sorted copy is made.

Regression: when the reorder moved into a function of its own, the caller kept the unsorted
table alive through the call, so every column existed twice at the peak (+30 MB on a 300k-row
read, measured). The Arrow memory the reorder allocates is counted by a proxy pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from miyabi_analytics._db.fastread import UUID_BYTES
from miyabi_analytics.frames import SUMMARY_DTYPES, arrow_schema
from miyabi_analytics.reader import _whole

ROOT = Path(__file__).resolve().parents[2]
ROWS = 200_000
NUMBERS = ("issue_number", "quality_score", "pr_number", "competitors_analyzed",
           "market_size_usd", "target_audience_size", "estimated_revenue_usd", "reach_estimate")


def _batches() -> tuple[list[pa.RecordBatch], pa.Schema, dict[str, object]]:
    """Unsorted rows in a few batches; nothing else holds them."""
    rng = np.random.default_rng(1)
    spec = {name: SUMMARY_DTYPES[name] for name in ("started_at", "created_at", *NUMBERS)}
    schema = arrow_schema(spec).append(pa.field("id", UUID_BYTES))
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    batches = []
    for part in np.array_split(np.arange(ROWS), 4):
        # Computed by Arrow, so the columns live in its (the measured) memory pool.
        micros = pc.add(pa.array(rng.permutation(part) * 1_000), start)
        times = micros.view(pa.timestamp("us", tz="UTC"))
        arrays = [times, pc.add(micros, 0).view(times.type)]
        arrays += [pc.add(pa.array(rng.integers(0, 1000, len(part))), 0) for _ in NUMBERS]
        arrays.append(pa.array([rng.bytes(16) for _ in part], UUID_BYTES))  # only sorted by
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return batches, schema, spec


def _measure() -> None:
    """Run in a child process: the proxy pool must outlive every buffer it allocated."""
    proxy = pa.proxy_memory_pool(pa.default_memory_pool())
    pa.set_memory_pool(proxy)
    batches, schema, spec = _batches()
    size = sum(batch.nbytes for batch in batches)
    table, made = _whole._reordered(
        batches, schema, {k: v for k, v in spec.items() if k != "created_at"}, {}, {},
        latest=False, convert=False,
    )
    assert batches == []  # consumed
    assert made == {}
    assert table.num_rows == ROWS
    started = table.column("started_at").to_numpy()
    assert (np.diff(started.astype("int64")) > 0).all()  # sorted
    print(proxy.max_memory() / size)
    sys.stdout.flush()
    os._exit(0)  # no teardown: the pools go with the process


def test_the_unsorted_table_is_not_kept_while_columns_are_reordered() -> None:
    code = "from tests.unit.test_reorder_memory import _measure; _measure()"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    # The input plus a few columns in flight, not a second whole table (the defect: about 2x).
    assert float(run.stdout) < 1.5
