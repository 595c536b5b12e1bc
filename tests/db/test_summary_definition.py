"""Issue 13, item 2: the summary row is defined once, and the view is that definition.

On both databases, ``SELECT * FROM v_business_agent_summary`` (the view the migrations made)
and :func:`miyabi_analytics._db.summary.summary_select` (the module the migrations compile it
from) return the same rows, column for column, floats bit for bit, on a database with analytics
rows tied on ``created_at``, executions without analytics, unfinished and never-started rows,
spans over a day and over 285 years (past an exact double of microseconds), a negative span
written by another writer, and microsecond timestamps; and ``read_summary`` (whose whole reads
make the computed columns client-side, with the Arrow twins of the same rules) equals both.
Expected values are also computed here from the records, so one mistake shared by the view and
the module would not pass either.
"""

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy import Engine, Select, insert, select, text

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.summary import UPSTREAM_COLUMNS, VIEW, summary_select
from miyabi_analytics._db.views import summary
from miyabi_analytics.frames import SUMMARY_DTYPES, to_frame

# The view's columns at head: read_summary's, then upstream's (revision 0009).
VIEW_COLUMNS = [*SUMMARY_DTYPES, *UPSTREAM_COLUMNS]
T0 = datetime(2026, 3, 1, 9, 30, 15, 123457, tzinfo=UTC)
REPO = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


def _micros(started: datetime, completed: datetime) -> int:
    delta = completed - started
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _seconds(started: datetime, completed: datetime) -> float:
    """The exact span, rounded once to the nearest double."""
    return float(Fraction(_micros(started, completed), 1_000_000))


class Seeded:
    """What was written, and what the summary must say about it."""

    def __init__(self) -> None:
        self.durations: dict[uuid.UUID, float | None] = {}
        self.latest_reach: dict[uuid.UUID, int | None] = {}


def _save(engine: Engine, seeded: Seeded, agent: ma.PersistableAgent, **fields: Any) -> uuid.UUID:
    builder = agent.builder(REPO)
    for name, value in fields.items():
        getattr(builder, name)(value)
    record = builder.build()
    agent.save_execution(engine, record)
    started, completed = record.started_at, record.completed_at
    seeded.durations[record.id] = (
        None if started is None or completed is None else _seconds(started, completed)
    )
    seeded.latest_reach[record.id] = None
    return record.id


def seed(engine: Engine) -> Seeded:
    seeded = Seeded()
    sales, crm, ive = ma.SalesAgent(), ma.CRMAgent(), ma.JonathanIveDesignAgent()
    store = ma.ExecutionStore(engine)
    finished = {"status": "completed", "started_at": T0, "quality_score": 80}

    # Analytics tied on created_at: the last written of the tie is the latest; an earlier
    # created_at written after them is not.
    tied = _save(engine, seeded, sales, **finished, completed_at=T0 + timedelta(seconds=7.000001))
    store.save_analysis_metrics_many([
        ma.MetricsEntry(tied, {"reach_estimate": 1, "roi_percent": 1.25}, T0),
        ma.MetricsEntry(tied, {"reach_estimate": 2, "growth_rate_percent": -3.5}, T0),
        ma.MetricsEntry(tied, {"reach_estimate": 3, "conversion_rate": 0.07}, T0),
    ])
    store.save_analysis_metrics_many([
        ma.MetricsEntry(tied, {"reach_estimate": 4}, T0 - timedelta(microseconds=1)),
    ])
    seeded.latest_reach[tied] = 3

    # A later created_at wins over the write order.
    later = _save(engine, seeded, crm, **finished, completed_at=T0 + timedelta(microseconds=1))
    store.save_analysis_metrics_many([
        ma.MetricsEntry(later, {"reach_estimate": 10}, T0 + timedelta(seconds=1)),
        ma.MetricsEntry(later, {"reach_estimate": 11}, T0),
    ])
    seeded.latest_reach[later] = 10

    # No analytics; spans over a day, a month, and beyond 2**53 microseconds (285 years).
    spans = (
        timedelta(days=1, microseconds=1),
        timedelta(days=3, hours=5, seconds=59, microseconds=999999),
        timedelta(days=40, microseconds=7),
    )
    for span in spans:
        _save(engine, seeded, ive, **finished, completed_at=T0 + span)
    ancient = datetime(1700, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    _save(engine, seeded, sales, status="failed", started_at=ancient, completed_at=T0)
    _save(engine, seeded, sales, status="failed", started_at=ancient - timedelta(days=1),
          completed_at=T0 + timedelta(microseconds=3), error_message="slow")

    # Unfinished: running (no completed_at) with analytics, pending (never started).
    running = _save(engine, seeded, crm, status="running", started_at=T0 + timedelta(hours=1))
    store.save_analysis_metrics_many([ma.MetricsEntry(running, {"reach_estimate": 5})])
    seeded.latest_reach[running] = 5
    _save(engine, seeded, ive)
    _save(engine, seeded, sales)

    # Another writer (plain SQL) may store a span that runs backwards.
    backwards = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(insert(executions).values(
            id=backwards, repository_id=REPO, agent_type="SalesAgent", status="failed",
            started_at=T0, completed_at=T0 - timedelta(days=2, microseconds=5),
            created_at=T0, updated_at=T0,
        ))
    seeded.durations[backwards] = _seconds(T0, T0 - timedelta(days=2, microseconds=5))
    seeded.latest_reach[backwards] = None
    return seeded


def _raw_rows(engine: Engine, sql: str) -> dict[Any, tuple[Any, ...]]:
    """The driver's own values of each row (no SQLAlchemy processing), by id."""
    with engine.connect() as conn:
        result = conn.exec_driver_sql(sql)
        names = list(result.keys())
        rows = {row[0]: tuple(row) for row in result}
    assert names == VIEW_COLUMNS
    return rows


def _compiled(engine: Engine, stmt: Select[Any]) -> str:
    return str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def _frame(engine: Engine, columns: Sequence[Any]) -> pd.DataFrame:
    """Typed rows in read_summary's order, as read_summary types them."""
    by_name = {c.name: c for c in columns}
    order = [by_name["started_at"].asc().nulls_last(), by_name["created_at"], by_name["id"]]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(*order)).all()
    return to_frame(rows, SUMMARY_DTYPES)


def _same(a: Any, b: Any) -> bool:
    """Equal, and for floats the same double (no tolerance, -0.0 apart from 0.0)."""
    if isinstance(a, float) or isinstance(b, float):
        return type(a) is type(b) and (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


def test_the_names_are_one_list():
    assert [c.name for c in summary_select().selected_columns] == VIEW_COLUMNS
    assert list(summary.c.keys()) == list(SUMMARY_DTYPES)


def test_the_view_is_the_module_select(engine):
    seeded = seed(engine)
    view = _raw_rows(engine, f"SELECT * FROM {VIEW}")  # noqa: S608 (a constant name)
    module = _raw_rows(engine, _compiled(engine, summary_select()))
    assert len(view) == len(seeded.durations) == 11
    assert view.keys() == module.keys()
    for key, row in view.items():
        other = module[key]
        mismatched = [
            name
            for name, a, b in zip(VIEW_COLUMNS, row, other, strict=True)
            if not _same(a, b)
        ]
        assert not mismatched, (key, mismatched, row, other)


def test_the_rows_are_what_was_written(engine):
    seeded = seed(engine)
    columns = ["id", "duration_seconds", "agent_category", "reach_estimate"]
    sub = summary_select().subquery()
    with engine.connect() as conn:
        rows = conn.execute(select(*(sub.c[name] for name in columns))).all()
    found = {uuid.UUID(str(row.id)): row for row in rows}
    assert found.keys() == seeded.durations.keys()
    for key, row in found.items():
        expected = seeded.durations[key]
        if expected is None:
            assert row.duration_seconds is None
        else:
            assert _same(row.duration_seconds, expected), (row.duration_seconds, expected)
        assert row.reach_estimate == seeded.latest_reach[key]
    assert {row.agent_category for row in rows} == {"operations", "design"}
    # the 285-year spans really are past an exact double of microseconds
    assert max(abs(d) for d in seeded.durations.values() if d is not None) * 1e6 > 2**53


def test_read_summary_is_the_view_and_the_module(engine):
    seed(engine)
    from_view = _frame(engine, list(summary.c))
    module = summary_select().subquery()
    from_module = _frame(engine, [module.c[name] for name in SUMMARY_DTYPES])
    assert len(from_view) == 11
    assert_frame_equal(from_view, from_module, check_exact=True)
    assert_frame_equal(ma.read_summary(engine), from_view, check_exact=True)
    with engine.connect() as conn:  # and the same inside a caller's transaction (raw rows)
        assert_frame_equal(ma.read_summary(conn), from_view, check_exact=True)


@pytest.mark.parametrize("columns", [["duration_seconds"], ["agent_category", "roi_percent"]])
def test_computed_columns_alone(engine, columns):
    """The computed columns asked alone still come from the same rules."""
    seed(engine)
    expected = _frame(engine, list(summary.c))[columns]
    assert_frame_equal(ma.read_summary(engine, columns=columns), expected, check_exact=True)


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)  # pg_get_viewdef is PostgreSQL's
def test_view_text_comes_from_the_module(engine):
    """The stored view reads only what the module's select reads (no SELECT * dependency)."""
    with engine.connect() as conn:
        definition = conn.execute(text(f"SELECT pg_get_viewdef('{VIEW}')")).scalar_one()
    assert "seq" in definition  # the write order breaks ties at head
    assert "date_part" in definition  # the one duration formula, not a second one
