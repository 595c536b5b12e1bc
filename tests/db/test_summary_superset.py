"""Issue 14 items 4 and 5: the summary view is a superset of upstream's, at no cost to our reads.

At head (revision 0009) ``v_business_agent_summary`` ends with upstream's ``execution_id``
(uuid), ``log_count`` and ``error_count`` (bigint), one row per execution, the counts equal to
a count made here; a SELECT of our columns never reads the logs (the plans say so on both
databases); an agent type outside the 15 has the category ``"other"`` in the view, in the
Arrow twin, in ``read_summary`` and in an aggregate grouped by category.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, Select, select, text

import miyabi_analytics as ma
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.summary import UPSTREAM_COLUMNS, VIEW
from miyabi_analytics._db.summary.arrow import agent_category
from miyabi_analytics._db.views import summary
from miyabi_analytics.frames import SUMMARY_DTYPES
from miyabi_analytics.vocabulary import CATEGORY_OF, OTHER_CATEGORY

REPO = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
LEVELS = ("error", "error", "ERROR", "critical", "warn", "info")

# read_summary's frames read "other" once the open vocabularies (issue 14 item 5, frames.py) land.
_FRAMES_READ_OTHER = OTHER_CATEGORY in getattr(SUMMARY_DTYPES["agent_category"], "categories", ())
needs_open_frames = pytest.mark.skipif(
    not _FRAMES_READ_OTHER, reason="frames.py does not read category 'other' yet (item 5)"
)


def _execution(conn: Any, agent_type: str, *, started: datetime | None = T0) -> str:
    """An execution inserted by plain SQL, as another writer would."""
    key = str(uuid.uuid4())
    conn.execute(
        text(
            "INSERT INTO agent_executions (id, repository_id, agent_type, status, started_at, "
            "completed_at, created_at, updated_at) VALUES (:id, :repo, :agent, :status, "
            ":started, :completed, :created, :created)"
        ),
        {
            "id": key,
            "repo": str(REPO),
            "agent": agent_type,
            "status": "completed" if started else "pending",
            "started": _ts(conn, started),
            "completed": _ts(conn, started and started + timedelta(1)),
            "created": _ts(conn, T0),
        },
    )
    return key


def _ts(conn: Any, value: datetime | None) -> Any:
    if value is None or Dialect.of(conn).is_postgresql:
        return value
    return value.isoformat(sep=" ", timespec="microseconds")


def seed(engine: Engine) -> tuple[dict[str, Counter[str]], dict[str, str]]:
    """Executions with logs at assorted levels and analytics fan-out; what each should count."""
    logs: dict[str, Counter[str]] = {}
    agents: dict[str, str] = {}
    with engine.begin() as conn:
        for index, agent in enumerate(
            ["SalesAgent", "CoordinatorAgent", "CodeGenAgent", "CRMAgent"]
        ):
            key = _execution(
                conn, agent, started=T0 + timedelta(hours=index) if index != 2 else None
            )
            agents[key] = agent
            logs[key] = Counter()
            for level in LEVELS[: index * 2]:
                conn.execute(
                    text(
                        "INSERT INTO agent_execution_logs (id, execution_id, log_level, message, "
                        "logged_at) VALUES (:id, :e, :level, 'm', :at)"
                    ),
                    {"id": str(uuid.uuid4()), "e": key, "level": level, "at": _ts(conn, T0)},
                )
                logs[key][level] += 1
            # two analytics rows with equal values: upstream's view would double log_count
            for _ in range(2):
                conn.execute(
                    text(
                        "INSERT INTO business_agent_analytics (id, execution_id, agent_type, "
                        "metrics, reach_estimate, created_at) VALUES (:id, :e, :agent, :m, 7, :at)"
                    ),
                    {
                        "id": str(uuid.uuid4()),
                        "e": key,
                        "agent": agent,
                        "at": _ts(conn, T0),
                        "m": json.dumps({"reach_estimate": 7}),
                    },
                )
    return logs, agents


def test_upstream_columns_come_last_with_upstream_types(engine):
    seed(engine)
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT * FROM {VIEW}"))  # noqa: S608 (a constant)
        names = list(result.keys())
        assert names == [*SUMMARY_DTYPES, *UPSTREAM_COLUMNS]
        if Dialect.of(conn).is_postgresql:
            types = dict(
                conn.execute(
                    text(
                        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = to_regclass(:v) AND attnum > 0"
                    ),
                    {"v": VIEW},
                ).all()
            )
        else:
            types = dict(
                conn.execute(
                    text(
                        f"SELECT 'execution_id', typeof(execution_id) FROM {VIEW} UNION ALL "  # noqa: S608
                        f"SELECT 'log_count', typeof(log_count) FROM {VIEW} UNION ALL "
                        f"SELECT 'error_count', typeof(error_count) FROM {VIEW}"
                    )
                ).all()
            )
    expected = (
        {"execution_id": "uuid", "log_count": "bigint", "error_count": "bigint"}
        if engine.dialect.name == "postgresql"
        else {"execution_id": "text", "log_count": "integer", "error_count": "integer"}
    )
    assert {name: types[name] for name in UPSTREAM_COLUMNS} == expected


def test_counts_are_each_executions_own(engine):
    logs, _ = seed(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT id, execution_id, log_count, error_count FROM {VIEW}")  # noqa: S608
        ).all()
    assert len(rows) == len(logs)  # one row per execution, whatever the analytics fan-out
    for key, execution_id, log_count, error_count in rows:
        assert str(execution_id) == str(key)
        expected = logs[str(key)]
        assert log_count == sum(expected.values())
        assert error_count == expected["error"]  # exactly 'error': not ERROR, not critical
    assert sum(r.log_count for r in rows) == 12
    assert sum(r.error_count for r in rows) == 6


def _plan(engine: Engine, stmt: Select[Any]) -> str:
    compiled = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if Dialect.of(conn).is_postgresql:
            rows = conn.exec_driver_sql(f"EXPLAIN (VERBOSE) {compiled}").scalars().all()
        else:
            rows = [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    return "\n".join(map(str, rows))


def _reads_logs(plan: str) -> bool:
    return any(word in plan for word in ("agent_execution_logs", "l_all", "l_err"))


@pytest.mark.parametrize(
    "stmt",
    [
        pytest.param(select(summary), id="every read_summary column"),
        pytest.param(
            select(summary.c.id, summary.c.reach_estimate).where(
                summary.c.agent_category == "other", summary.c.started_at >= T0
            ),
            id="filtered",
        ),
    ],
)
def test_our_columns_never_read_the_logs(engine, stmt):
    seed(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    assert not _reads_logs(_plan(engine, stmt))
    # ... while naming an upstream count does (the check can see a logs access)
    counted = select(summary.c.id, text("log_count")).select_from(summary)
    assert _reads_logs(_plan(engine, counted))


def test_other_category_in_the_view_and_its_arrow_twin(engine):
    _, agents = seed(engine)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(text(f"SELECT agent_type, agent_category FROM {VIEW}")).all()  # noqa: S608
        )
    assert rows == {agent: CATEGORY_OF.get(agent, OTHER_CATEGORY) for agent in agents.values()}
    twin = agent_category(pa.array(list(rows), pa.string())).to_pylist()
    assert twin == list(rows.values())


@needs_open_frames
def test_other_category_in_read_summary_and_aggregates(engine):
    _, agents = seed(engine)
    frame = ma.read_summary(engine)
    by_type = dict(zip(frame["agent_type"].astype(str), frame["agent_category"], strict=True))
    assert by_type["CoordinatorAgent"] == OTHER_CATEGORY
    assert by_type["CodeGenAgent"] == OTHER_CATEGORY
    assert by_type["SalesAgent"] == "operations"
    rates = ma.success_rates(engine, by="agent_category", freq=None)
    other = rates[rates["agent_category"] == OTHER_CATEGORY]
    assert len(other) == 1
    assert int(other["executions"].iloc[0]) == sum(
        1 for a in agents.values() if a not in CATEGORY_OF
    )
