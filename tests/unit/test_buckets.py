import pytest
from sqlalchemy import select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import CompileError

import miyabi_analytics as ma
from miyabi_analytics._db.buckets import UtcBucket
from miyabi_analytics._db.views import summary

COLUMN = "v_business_agent_summary.started_at"


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("D", f"date_trunc('day', {COLUMN}, 'UTC')"),
        ("W", f"date_trunc('week', {COLUMN}, 'UTC')"),
        ("M", f"date_trunc('month', {COLUMN}, 'UTC')"),
    ],
)
def test_postgresql(freq, expected):
    assert str(UtcBucket(summary.c.started_at, freq).compile(dialect=postgresql.dialect())) == (
        expected
    )


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("D", f"(substr({COLUMN}, 1, 10) || ' 00:00:00.000000+00:00')"),
        (
            "W",
            f"(date(substr({COLUMN}, 1, 10), 'weekday 0', '-6 days') "
            "|| ' 00:00:00.000000+00:00')",
        ),
        ("M", f"((substr({COLUMN}, 1, 7) || '-01') || ' 00:00:00.000000+00:00')"),
    ],
)
def test_sqlite_reads_only_the_date_part(freq, expected):
    assert str(UtcBucket(summary.c.started_at, freq).compile(dialect=sqlite.dialect())) == (
        expected
    )


def test_group_by_repeats_the_same_text_without_parameters():
    bucket = UtcBucket(summary.c.started_at, "W")
    compiled = select(bucket.label("period")).group_by(bucket).compile(
        dialect=postgresql.dialect()
    )
    assert compiled.params == {}
    assert str(compiled).count("date_trunc('week'") == 2


def test_freq_is_part_of_the_cache_key():
    day, week, month = (
        UtcBucket(summary.c.started_at, freq)._generate_cache_key() for freq in ("D", "W", "M")
    )
    assert day != week
    assert week != month
    assert day != month
    assert UtcBucket(summary.c.started_at, "D")._generate_cache_key() == UtcBucket(
        summary.c.started_at, "D"
    )._generate_cache_key()


@pytest.mark.parametrize("freq", ["Q", "d", "", None, 1])
def test_unknown_freq(freq):
    with pytest.raises(ma.ValidationError) as info:
        UtcBucket(summary.c.started_at, freq)
    assert info.value.field == "freq"


def test_other_dialects_refused():
    with pytest.raises(CompileError, match="mysql"):
        UtcBucket(summary.c.started_at, "D").compile(dialect=mysql.dialect())
