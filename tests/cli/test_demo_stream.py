"""``demo --executions N`` streams: the history is made and written batch by batch.

Memory is that of one batch whatever N is, the batches are exactly the all-at-once history, and
the load is one transaction (a failure half-way leaves nothing) that a second run does not repeat.
"""

import gc
import tracemalloc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions, logs
from miyabi_analytics.demo import generate_history, iter_history, load_demo
from miyabi_analytics.store import ExecutionStore

END = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_batches_are_the_all_at_once_history():
    whole = generate_history(1_300, seed=5, end=END)
    batches = list(iter_history(1_300, seed=5, end=END, batch_size=500))
    assert [len(b.executions) for b in batches] == [500, 500, 300]
    assert [r for b in batches for r in b.executions] == whole.executions
    assert [m for b in batches for m in b.metrics] == whole.metrics
    assert [entry for b in batches for entry in b.logs] == whole.logs
    assert all(b.repository_ids == whole.repository_ids for b in batches)
    assert list(iter_history(0, seed=5, end=END)) == []


def test_batches_are_made_as_they_are_consumed():
    batches = iter_history(2_000, seed=1, end=END, batch_size=400)
    assert isinstance(batches, Iterator)
    first = next(batches)
    seen = weakref.ref(first.executions[0])
    assert len(first.executions) == 400
    del first
    next(batches)
    gc.collect()
    assert seen() is None  # nothing of a batch is kept once the next one is made


def peak_bytes(executions: int, batch_size: int) -> int:
    tracemalloc.start()
    try:
        for batch in iter_history(executions, seed=2, end=END, batch_size=batch_size):
            del batch
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_that_of_one_batch():
    # ~2.5 kB per execution held: all-at-once, 10x the executions would be ~10x the peak.
    # (Sizes are modest because tracemalloc makes the generator ~8x slower.)
    small = peak_bytes(1_000, batch_size=250)
    large = peak_bytes(10_000, batch_size=250)
    assert large < 1.5 * small, (small, large)
    assert large < 3_000_000


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_counts_are_refused_at_the_call(bad):
    with pytest.raises(ma.ValidationError) as refused:
        iter_history(bad)
    assert refused.value.field == "executions"
    with pytest.raises(ma.ValidationError) as refused:
        iter_history(10, batch_size=0)
    assert refused.value.field == "batch_size"


def count(engine, table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_load_in_batches_writes_everything_once(engine):
    expected = generate_history(1_200, seed=9, end=END)
    loaded = load_demo(engine, 1_200, seed=9, end=END, batch_size=500)
    assert (loaded.executions, loaded.metrics, loaded.logs) == (
        len(expected.executions),
        len(expected.metrics),
        len(expected.logs),
    )
    assert not loaded.already_loaded
    assert count(engine, executions) == 1_200
    assert count(engine, logs) == len(expected.logs)
    assert len(ma.read_summary(engine).dropna(subset=["market_size_usd"])) > 0

    again = load_demo(engine, 1_200, seed=9, end=END, batch_size=300)
    assert again.already_loaded
    assert count(engine, executions) == 1_200
    assert count(engine, logs) == len(expected.logs)


def test_a_load_failing_half_way_leaves_nothing(engine, monkeypatch):
    calls = {"n": 0}
    real = ExecutionStore.log_many

    def failing(self, entries, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C in the second batch
        return real(self, entries, **kw)

    monkeypatch.setattr(ExecutionStore, "log_many", failing)
    with pytest.raises(KeyboardInterrupt):
        load_demo(engine, 900, seed=4, end=END, batch_size=400)
    assert calls["n"] == 2
    assert count(engine, executions) == 0
    assert count(engine, logs) == 0

    monkeypatch.setattr(ExecutionStore, "log_many", real)
    assert load_demo(engine, 900, seed=4, end=END, batch_size=400).executions == 900


def test_load_refuses_a_bad_count_before_writing(engine):
    with pytest.raises(ma.ValidationError, match="executions"):
        load_demo(engine, -5)
    assert count(engine, executions) == 0
