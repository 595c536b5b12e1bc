"""SQLite's exact percentile neighbours: an aggregate that sorts each group once."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert

import miyabi_analytics as ma
from miyabi_analytics._db.neighbours import parse, positions
from miyabi_analytics._db.schema import executions


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=40),
       st.sampled_from([0, 1, 50, 95, 99, 100]))
def test_positions_bracket_the_interpolation_point(values, percent):
    lo, hi = positions(percent, len(values))
    exact = percent * (len(values) - 1) / 100
    assert 0 <= lo <= hi < len(values)
    assert lo <= exact <= hi
    assert hi - lo <= 1
    assert (lo == hi) == (percent * (len(values) - 1) % 100 == 0)


def test_parse_keeps_integers_past_two_to_the_53():
    big = 2**62 + 1
    assert parse(f"1 {big} -3 4", (50, 95)) == {"lo50": 1, "hi50": big, "lo95": -3, "hi95": 4}
    assert parse(None, (50,)) == {"lo50": None, "hi50": None}


def test_an_engine_not_made_by_connect_gets_the_aggregate_when_asked(tmp_path):
    """The aggregate is registered on the connection at each call: any SQLite engine works."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    ma.migrate(url)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    rng = random.Random(3)
    micros = [rng.randrange(10**12) for _ in range(101)]
    rows = [{
        "id": uuid.uuid4(), "repository_id": uuid.uuid4(), "agent_type": "CRMAgent",
        "status": "completed", "started_at": start,
        "completed_at": start + timedelta(microseconds=m),
        "created_at": start, "updated_at": start,
    } for m in micros]
    plain = create_engine(url)
    try:
        with plain.begin() as conn:
            conn.execute(insert(executions), rows)
        got = ma.duration_stats(plain).iloc[0]
    finally:
        plain.dispose()
    ordered = sorted(micros)
    assert got["executions"] == 101
    assert got["p50_seconds"] == ordered[50] / 1e6
    assert got["p95_seconds"] == ordered[95] / 1e6
    assert got["max_seconds"] == ordered[-1] / 1e6
