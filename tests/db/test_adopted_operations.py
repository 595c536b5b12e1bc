"""Our readers, aggregates, reap and report on an adopted upstream database (issue 14 item 8).

The answers are held to the plain-Python oracle of what the upstream writer wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, text

import miyabi_analytics as ma
from miyabi_analytics.reports import generate_report
from tests.conftest import create_pg_database, drop_pg_database, require_postgres
from tests.upstream import Oracle, UpstreamWriter, build_upstream, fill_upstream


@dataclass
class Adopted:
    url: URL
    engine: Engine
    oracle: Oracle


@pytest.fixture(scope="module")
def adopted() -> Iterator[Adopted]:
    require_postgres()
    url = create_pg_database()
    raw = create_engine(url)
    with raw.begin() as conn:
        build_upstream(conn)
    with raw.connect() as conn:
        oracle = fill_upstream(UpstreamWriter(conn), seed=11, executions=80)
    raw.dispose()
    ma.migrate(url)
    engine = ma.connect(url)
    yield Adopted(url, engine, oracle)
    engine.dispose()
    drop_pg_database(url)


def test_summary_and_success_rates_equal_the_oracle(adopted: Adopted) -> None:
    frame = ma.read_summary(adopted.engine)
    assert len(frame) == len(adopted.oracle.agent_type)
    assert set(frame["agent_type"].astype(str)) == set(adopted.oracle.agent_type.values())
    rates = ma.success_rates(adopted.engine).set_index("agent_type")
    for agent, counts in adopted.oracle.per_agent().items():
        row = rates.loc[agent]
        assert (row["executions"], row["completed"], row["failed"]) == (
            counts["executions"], counts["completed"], counts["failed"]
        )
    fleet = frame[~frame["agent_type"].isin(ma.AGENT_TYPES)]
    assert not fleet.empty
    assert set(fleet["agent_category"].astype(str)) == {"other"}


def test_quality_and_logs_equal_the_oracle(adopted: Adopted) -> None:
    frame = ma.read_summary(adopted.engine)
    scores: dict[str, list[int]] = {}
    for agent, score in zip(frame["agent_type"].astype(str), frame["quality_score"], strict=True):
        if not pd_isna(score):
            scores.setdefault(agent, []).append(int(score))
    assert {a: sorted(s) for a, s in scores.items()} == adopted.oracle.quality_scores()
    logs = ma.read_logs(adopted.engine)
    assert len(logs) == sum(adopted.oracle.logs.values())
    assert "warn" not in set(logs["log_level"].astype(str))
    expected_warnings = adopted.oracle.levels["warn"] + adopted.oracle.levels["warning"]
    assert (logs["log_level"] == "warning").sum() == expected_warnings
    assert len(ma.read_logs(adopted.engine, levels=["warning"])) == expected_warnings


def test_json_metrics_count_as_analytics(adopted: Adopted) -> None:
    latest = adopted.oracle.latest_metrics()
    frame = ma.read_summary(adopted.engine).set_index("id")
    for key, metrics in latest.items():
        value = metrics.get("market_size_usd")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            assert frame.loc[str(key), "market_size_usd"] == value


def test_reap_by_max_runtime_spares_fresh_and_heartbeat_rules(adopted: Adopted) -> None:
    raw = create_engine(adopted.url)
    with raw.begin() as conn:
        writer = UpstreamWriter(conn)
        repository = conn.execute(text("SELECT id FROM repositories LIMIT 1")).scalar_one()
        old = writer.create_execution(
            repository, None, "CoordinatorAgent", "running",
            started_at=datetime.now(UTC) - timedelta(days=2),
        )
        fresh = writer.create_execution(repository, None, "CoordinatorAgent", "running",
                                        started_at=datetime.now(UTC))
    store = ma.ExecutionStore(adopted.engine)
    store.reap(stale_after="1m")  # upstream never sends heartbeats: not judged by them
    store.reap(max_runtime="1h")
    with raw.connect() as conn:
        status = dict(conn.execute(
            text("SELECT id, status FROM agent_executions WHERE id IN (:a, :b)"),
            {"a": old, "b": fresh},
        ).all())
        message = conn.execute(
            text("SELECT error_message FROM agent_executions WHERE id = :a"), {"a": old}
        ).scalar_one()
    raw.dispose()
    assert status == {old: "failed", fresh: "running"}
    assert "without a heartbeat" in message


def test_the_report_renders_on_an_adopted_database(adopted: Adopted, tmp_path: Path) -> None:
    output = generate_report(adopted.url, output=tmp_path / "report.html")
    html = output.read_text(encoding="utf-8")
    fleet = {a for a in adopted.oracle.agent_type.values() if a not in ma.AGENT_TYPES}
    assert fleet
    assert any(agent in html for agent in fleet)


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))
