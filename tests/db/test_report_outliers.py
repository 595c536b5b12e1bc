"""The report's outliers on a planted history: slowest_executions and most_retried, exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

import miyabi_analytics as ma
from miyabi_analytics.aggregates import most_retried, slowest_executions
from miyabi_analytics.filters import SummaryFilters

T0 = datetime(2026, 3, 2, tzinfo=UTC)
REPO_A = uuid.UUID("0a2c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
REPO_B = uuid.UUID("0b2c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
WINDOW = {"since": T0, "until": T0 + timedelta(days=1)}
UTC_US = pd.DatetimeTZDtype(unit="us", tz="UTC")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(repo: uuid.UUID, agent: str, start: float, end: float | None = None, *,
        status: str = "completed", issue: int | None = None) -> ma.AgentExecutionResult:
    builder = ma.ExecutionResultBuilder(repo, agent).status(status).started_at(s(start))
    if end is not None:
        builder = builder.completed_at(s(end))
    if issue is not None:
        builder = builder.issue_number(issue)
    return builder.build()


def plant(engine: Engine, *records: ma.AgentExecutionResult) -> None:
    ma.ExecutionStore(engine).save_executions(list(records))


def test_slowest_are_the_longest_finished_runs_of_the_window(engine: Engine) -> None:
    e1 = run(REPO_A, "SalesAgent", 0, 100, issue=1)
    e2 = run(REPO_A, "MarketingAgent", 10, 310, status="failed", issue=2)
    e3 = run(REPO_B, "SalesAgent", 20, 20.000001)
    e6 = run(REPO_A, "CRMAgent", 50, 150)  # as long as e1, started later
    plant(
        engine, e1, e2, e3, e6,
        run(REPO_A, "SalesAgent", 30, status="running"),  # not finished: not ranked
        run(REPO_A, "SalesAgent", -86_400, -80_000),  # before the window, longest of all
    )
    frame = slowest_executions(engine, **WINDOW)
    assert frame["execution_id"].tolist() == [str(e.id) for e in (e2, e1, e6, e3)]
    assert frame["duration_seconds"].tolist() == [300.0, 100.0, 100.0, 0.000001]
    assert frame["status"].tolist() == ["failed", "completed", "completed", "completed"]
    assert frame["issue_number"].tolist() == [2, 1, pd.NA, pd.NA]
    assert frame["started_at"].iloc[0].to_pydatetime() == s(10)
    assert frame["completed_at"].iloc[0].to_pydatetime() == s(310)
    assert frame["repository_id"].iloc[3] == str(REPO_B)
    dtypes = frame.dtypes.astype(str).to_dict()
    assert dtypes["duration_seconds"] == "float64"
    assert dtypes["issue_number"] == "Int64"
    assert frame["started_at"].dtype == UTC_US
    assert isinstance(frame["agent_type"].dtype, pd.CategoricalDtype)

    top = slowest_executions(engine, limit=2, filters=SummaryFilters.build(**WINDOW))
    assert top["execution_id"].tolist() == [str(e2.id), str(e1.id)]
    assert slowest_executions(engine, repository_id=REPO_B, **WINDOW)["execution_id"].tolist() == [
        str(e3.id)
    ]
    whole = slowest_executions(engine, limit=1)  # no window: every finished run
    assert whole["duration_seconds"].tolist() == [6400.0]
    empty = slowest_executions(engine, agent_types="YouTubeAgent")
    assert empty.empty
    assert empty.dtypes.to_dict() == frame.dtypes.to_dict()


def test_most_retried_counts_the_same_work_run_again(engine: Engine) -> None:
    plant(
        engine,
        run(REPO_A, "SalesAgent", 100, 101, status="failed", issue=7),
        run(REPO_A, "SalesAgent", 200, 201, status="failed", issue=7),
        run(REPO_A, "SalesAgent", 300, 301, issue=7),
        run(REPO_A, "SalesAgent", 150, 151, issue=8),
        run(REPO_A, "SalesAgent", 250, 251, issue=8),
        run(REPO_A, "SalesAgent", -1000, -999, issue=8),  # before the window
        run(REPO_A, "MarketingAgent", 120, status="running", issue=7),
        run(REPO_A, "MarketingAgent", 130, status="running", issue=7),
        run(REPO_B, "SalesAgent", 140, 141, issue=7),  # once in that repository
        run(REPO_A, "SalesAgent", 160, 161),  # no issue: never a retry
        run(REPO_A, "SalesAgent", 170, 171),
        run(REPO_A, "SalesAgent", 180, 181),
    )
    frame = most_retried(engine, **WINDOW)
    rows = [
        (str(r.agent_type), r.repository_id, r.issue_number, r.executions, r.completed,
         r.failed, r.first_started.to_pydatetime(), r.last_started.to_pydatetime())
        for r in frame.itertuples()
    ]
    a = str(REPO_A)
    assert rows == [
        ("SalesAgent", a, 7, 3, 1, 2, s(100), s(300)),
        ("SalesAgent", a, 8, 2, 2, 0, s(150), s(250)),  # ties at 2 runs: latest start first
        ("MarketingAgent", a, 7, 2, 0, 0, s(120), s(130)),
    ]
    assert list(frame.columns) == [
        "agent_type", "repository_id", "issue_number", "executions", "completed", "failed",
        "first_started", "last_started",
    ]
    for name in ("issue_number", "executions", "completed", "failed"):
        assert frame[name].dtype == "int64", name
    assert frame["last_started"].dtype == UTC_US

    assert most_retried(engine, limit=1, **WINDOW)["issue_number"].tolist() == [7]
    everything = most_retried(engine)  # no window: the earlier run of issue 8 counts
    assert everything["executions"].tolist() == [3, 3, 2]
    assert everything["issue_number"].tolist() == [7, 8, 7]
    none = most_retried(engine, repository_id=REPO_B, **WINDOW)
    assert none.empty
    assert none.dtypes.to_dict() == frame.dtypes.to_dict()


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "3"])
@pytest.mark.parametrize("function", [slowest_executions, most_retried])
def test_a_bad_limit_is_refused(engine: Engine, function: Any, limit: object) -> None:
    with pytest.raises(ma.ValidationError) as caught:
        function(engine, limit=limit)
    assert caught.value.field == "limit"
