"""``duration_stats(exact=False)``: exact counts, means and maxima; percentiles within 1%."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.sketch import ALPHA

START = datetime(2025, 12, 20, tzinfo=UTC)  # the history crosses a month and a year
AGENTS = ("MarketingAgent", "SalesAgent", "CRMAgent")
SLACK = 1e-9  # float rounding of the bucket boundaries and of the interpolation


def _micros(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.05:
        return 0
    if kind < 0.1:
        return rng.choice([1, 2, 999_999, 1_000_000, 86_400_000_000])
    return int(math.exp(rng.uniform(math.log(1_000), math.log(5 * 86_400 * 10**6))))


def _load(engine, rng: random.Random, n: int) -> list[uuid.UUID]:
    repos = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(2)]
    rows = []
    for _ in range(n):
        started = START + timedelta(microseconds=rng.randrange(40 * 86_400 * 10**6))
        rows.append({
            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "repository_id": rng.choice(repos), "agent_type": rng.choice(AGENTS),
            "status": rng.choice(["completed", "failed"]), "started_at": started,
            "completed_at": started + timedelta(microseconds=_micros(rng)),
            "created_at": START, "updated_at": START,
        })
    with engine.begin() as conn:
        conn.execute(insert(executions), rows)
    return [r["id"] for r in rows]


def _close(approx: float, exact: float) -> bool:
    return abs(approx - exact) <= ALPHA * abs(exact) + SLACK


@pytest.mark.parametrize("seed", [5, 17])
def test_sketch_percentiles_are_within_one_percent_and_the_rest_exact(engine, seed):
    rng = random.Random(seed)
    ids = _load(engine, rng, 900)
    ma.refresh_rollups(engine)
    with engine.begin() as conn:  # late changes: some days pending at the check
        for chosen in rng.sample(ids, 20):
            conn.execute(update(executions).where(executions.c.id == chosen).values(
                completed_at=START + timedelta(days=45, microseconds=rng.randrange(10**9))))
    _load(engine, rng, 60)
    assert ma.rollup_status(engine).stale
    windows = [{}, {"since": START + timedelta(days=3, hours=5),
                    "until": START + timedelta(days=33)}, {"agent_types": AGENTS[0]}]
    checked = 0
    for window in windows:
        for by in (None, "agent_type", ["repository_id", "agent_category"]):
            exact = ma.duration_stats(engine, by=by, **window)
            approx = ma.duration_stats(engine, by=by, exact=False, **window)
            assert list(approx.columns) == list(exact.columns)
            assert approx.dtypes.equals(exact.dtypes)
            keys = [c for c in exact.columns if c not in (
                "executions", "mean_seconds", "p50_seconds", "p95_seconds", "max_seconds")]
            assert approx[keys].equals(exact[keys])
            for column in ("executions", "mean_seconds", "max_seconds"):
                assert approx[column].tolist() == exact[column].tolist(), (window, by, column)
            for column in ("p50_seconds", "p95_seconds"):
                pairs = zip(approx[column], exact[column], strict=True)
                assert all(_close(a, e) for a, e in pairs), (window, by, column)
            checked += 1
    assert checked == 9


def test_exact_false_with_a_user_filter_is_exact(engine):
    rng = random.Random(3)
    _load(engine, rng, 50)
    ma.refresh_rollups(engine)
    user = uuid.UUID(int=7, version=4)
    assert ma.duration_stats(engine, user_id=user, exact=False).equals(
        ma.duration_stats(engine, user_id=user))


def test_exact_must_be_a_bool(engine):
    with pytest.raises(ma.ValidationError, match="exact"):
        ma.duration_stats(engine, exact="no")


def test_the_database_buckets_as_python_does(engine):
    """The rollups' histograms (SQL) and the reader's twin (Python) agree, edges included."""
    from sqlalchemy import BigInteger, literal, select

    from miyabi_analytics._db.sketch import GAMMA, bucket_key
    from miyabi_analytics.aggregates._sketch import bucket_key_py

    values = [0, 1, 2, 3, 999_999, 10**6, 86_400 * 10**6, 3 * 10**15]
    for k in range(1, 1750, 9):
        edge = int(GAMMA ** k)
        values += [edge - 1, edge, edge + 1]
    values += [-v for v in values[1:40]]
    with engine.connect() as conn:
        got = [
            conn.execute(select(bucket_key(literal(v, BigInteger)))).scalar_one() for v in values
        ]
    assert got == [bucket_key_py(v) for v in values]


def test_an_sqlite_without_math_functions_gets_pythons_and_buckets_alike():
    """Some builds of SQLite lack ln()/ceil(): the engine registers Python's on connect."""
    import sqlite3

    from sqlalchemy import BigInteger, literal, select
    from sqlalchemy.dialects import sqlite

    from miyabi_analytics._db.engine import _ensure_math
    from miyabi_analytics._db.sketch import GAMMA, bucket_key
    from miyabi_analytics.aggregates._sketch import bucket_key_py

    class Without:
        def execute(self, sql: str) -> None:
            raise sqlite3.OperationalError("no such function: ln")

    conn = sqlite3.connect(":memory:")
    _ensure_math(conn, Without())  # registers Python's (they take precedence over built-ins)
    values = [0, 1, 7, -7, 10**6, 3 * 10**15] + [int(GAMMA ** k) for k in range(1, 1700, 13)]
    for v in values:
        sql = select(bucket_key(literal(v, BigInteger))).compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
        assert conn.execute(str(sql)).fetchone()[0] == bucket_key_py(v), v
    conn.close()
