"""One filter type: every aggregate takes the same keywords (or one validated SummaryFilters),
checks them the same way, once, before any query; the dashboard and the report build one object.
"""

from __future__ import annotations

import ast
import inspect
import json
import socket
import typing
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

import miyabi_analytics as ma
from miyabi_analytics import aggregates
from miyabi_analytics._dashboard import DashboardFilters
from miyabi_analytics.filters import FILTER_KEYWORDS, FilterArgs, SummaryFilters
from miyabi_analytics.report_scope import report_scope, report_window

REPO = uuid.UUID("00000000-0000-4000-8000-00000000000a")
SINCE = datetime(2026, 2, 1, tzinfo=UTC)
UNTIL = datetime(2026, 3, 1, tzinfo=UTC)

AGGREGATES: dict[str, Callable[..., Any]] = {
    "success_rates": aggregates.success_rates,
    "quality_trend": aggregates.quality_trend,
    "duration_stats": aggregates.duration_stats,
    "business_metrics": aggregates.business_metrics,
    "error_analysis": aggregates.error_analysis,
    "business_metrics_with_unstarted": lambda bind, **kw: (
        aggregates.business_metrics_with_unstarted(
            bind, by="agent_type", freq=None, unstarted=True, **kw
        )
    ),
}
PUBLIC = ("success_rates", "quality_trend", "duration_stats", "business_metrics", "error_analysis")

BAD_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"repository_id": "not-a-uuid"}, "repository_id"),
    ({"repository_id": [REPO, 42]}, "repository_id"),
    ({"user_id": "nobody"}, "user_id"),
    ({"agent_types": ["SalesAgent", 7]}, "agent_types"),
    ({"agent_types": []}, "agent_types"),
    ({"statuses": "done"}, "statuses"),
    ({"since": datetime(2026, 1, 1)}, "since"),  # noqa: DTZ001 (naive on purpose)
    ({"until": "tomorrow"}, "until"),
    ({"since": UNTIL, "until": SINCE}, "until"),
]


@pytest.fixture
def unreachable() -> Iterator[tuple[Engine, list[object]]]:
    """An engine whose URL points at a closed port, and the connection attempts made with it."""
    with socket.socket() as probe:  # a port the OS just handed out and nobody listens on now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = ma.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    attempts: list[object] = []
    event.listen(engine, "do_connect", lambda *args: attempts.append(args))
    yield engine, attempts
    engine.dispose()


# -- one signature ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*PUBLIC, "business_metrics_with_unstarted"])
def test_every_aggregate_takes_the_filter_keywords_and_a_filters_object(name: str) -> None:
    function = getattr(aggregates, name)
    hints = typing.get_type_hints(function, include_extras=True)
    keywords = [p for p in _parameters(function) if p.kind is p.VAR_KEYWORD]
    assert len(keywords) == 1
    assert typing.get_origin(hints[keywords[0].name]) is typing.Unpack
    assert typing.get_args(hints[keywords[0].name]) == (FilterArgs,)
    assert hints["filters"] == SummaryFilters | None
    assert set(FILTER_KEYWORDS) == {
        "repository_id", "user_id", "agent_types", "statuses", "since", "until"
    }
    assert not FILTER_KEYWORDS & {p.name for p in _parameters(function)}  # none spelled out


def _parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    return list(inspect.signature(function).parameters.values())


# -- one validation, before any query ------------------------------------------------------------


@pytest.mark.parametrize(("bad", "field"), BAD_FILTERS, ids=lambda v: str(v))
@pytest.mark.parametrize("name", list(AGGREGATES))
def test_a_bad_filter_is_refused_like_summary_filters_before_connecting(
    unreachable: tuple[Engine, list[object]], name: str, bad: dict[str, Any], field: str
) -> None:
    engine, attempts = unreachable
    with pytest.raises(ma.ValidationError) as expected:
        SummaryFilters.build(**bad)
    with pytest.raises(ma.ValidationError) as caught:
        AGGREGATES[name](engine, **bad)
    assert caught.value.field == field
    assert (caught.value.field, caught.value.value, caught.value.reason) == (
        expected.value.field,
        expected.value.value,
        expected.value.reason,
    )
    assert field in str(caught.value)
    assert attempts == []


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_valid_filters_do_reach_the_database(
    unreachable: tuple[Engine, list[object]], name: str
) -> None:
    """The fixture's engine does try to connect once the filters pass (so the test above sees
    validation come first, not a broken engine)."""
    engine, attempts = unreachable
    with pytest.raises(Exception) as caught:  # noqa: PT011 (any driver error will do)
        AGGREGATES[name](engine, repository_id=REPO, since=SINCE, until=UNTIL)
    assert not isinstance(caught.value, ma.ValidationError)
    assert attempts != []


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_keywords_and_a_filters_object_together_are_refused(
    unreachable: tuple[Engine, list[object]], name: str
) -> None:
    engine, attempts = unreachable
    built = SummaryFilters.build(since=SINCE)
    for keywords in ({"until": UNTIL}, {"agent_types": None}, {"since": SINCE, "user_id": None}):
        with pytest.raises(ma.ValidationError) as caught:
            AGGREGATES[name](engine, filters=built, **keywords)
        assert caught.value.field == "filters"
        assert caught.value.value == sorted(keywords)
        assert "not both" in str(caught.value)
    with pytest.raises(ma.ValidationError, match="filters") as wrong:
        AGGREGATES[name](engine, filters={"since": SINCE})
    assert wrong.value.field == "filters"
    with pytest.raises(TypeError, match="repository_ids"):
        AGGREGATES[name](engine, repository_ids=[REPO])
    assert attempts == []


@pytest.mark.parametrize("name", ["success_rates", "quality_trend", "business_metrics"])
def test_by_and_freq_are_still_checked_first(
    unreachable: tuple[Engine, list[object]], name: str
) -> None:
    engine, attempts = unreachable
    with pytest.raises(ma.ValidationError) as by:
        AGGREGATES[name](engine, by="colour", statuses="done")
    assert by.value.field == "by"
    with pytest.raises(ma.ValidationError) as freq:
        AGGREGATES[name](engine, freq="Y", filters=SummaryFilters())
    assert freq.value.field == "freq"
    assert attempts == []


def test_summary_filters_of_returns_the_object_given_unchanged() -> None:
    built = SummaryFilters.build(repository_id=str(REPO), statuses=["FAILED"])
    assert SummaryFilters.of(built) is built
    assert SummaryFilters.of(repository_id=str(REPO), statuses=["FAILED"]) == built
    assert SummaryFilters.of() == SummaryFilters()


# -- the dashboard: one SummaryFilters per filter state -----------------------------------------


def test_dashboard_filters_give_what_the_keywords_would() -> None:
    state = DashboardFilters.build(
        since="2026-02-01",
        until=UNTIL,
        repository_ids=[str(REPO), REPO],
        categories=["operations", "marketing"],
        agent_types=["CRMAgent", "YouTubeAgent"],
        statuses=["FAILED", "completed"],
    )
    assert state.summary_filters() == SummaryFilters.build(
        repository_id=[REPO],
        agent_types=["YouTubeAgent", "CRMAgent"],
        statuses=["completed", "failed"],
        since=SINCE,
        until=UNTIL,
    )
    assert DashboardFilters().summary_filters() == SummaryFilters()
    before = state.previous_period()
    assert before is not None
    assert before.summary_filters().until == SINCE
    assert before.summary_filters().since == SINCE - (UNTIL - SINCE)


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"agent_types": ["SalesAgent", 7]}, "agent_types"),
        ({"statuses": "done"}, "statuses"),
        ({"since": datetime(2026, 1, 1)}, "since"),  # noqa: DTZ001 (naive on purpose)
        ({"since": UNTIL, "until": SINCE}, "until"),
        ({"agent_types": 7}, "agent_types"),
    ],
    ids=str,
)
def test_dashboard_refuses_what_summary_filters_refuses_with_the_same_reason(
    bad: dict[str, Any], field: str
) -> None:
    with pytest.raises(ma.ValidationError) as expected:
        SummaryFilters.build(**bad)
    with pytest.raises(ma.ValidationError) as caught:
        DashboardFilters.build(**bad)
    assert (caught.value.field, caught.value.value, caught.value.reason) == (
        expected.value.field,
        expected.value.value,
        expected.value.reason,
    )
    assert caught.value.field == field


def test_dashboard_names_its_own_repository_argument() -> None:
    with pytest.raises(ma.ValidationError) as expected:
        SummaryFilters.build(repository_id=["nope"])
    with pytest.raises(ma.ValidationError) as caught:
        DashboardFilters.build(repository_ids=["nope"])
    assert caught.value.field == "repository_ids"
    assert (caught.value.value, caught.value.reason) == (
        expected.value.value,
        expected.value.reason,
    )


# -- the report: one scope, its filters passed to every aggregate -------------------------------


def test_report_scope_is_the_window_and_the_repository_as_filters() -> None:
    scope = report_scope("2026-02-01", "2026-03-01", str(REPO))
    assert (scope.start, scope.end) == report_window("2026-02-01", "2026-03-01")
    assert scope.repository_id == REPO
    assert scope.window == SummaryFilters.build(repository_id=REPO, since=SINCE, until=UNTIL)
    assert scope.before == SummaryFilters.build(
        repository_id=REPO, since=SINCE - timedelta(days=28), until=SINCE
    )
    assert scope.history == SummaryFilters.build(repository_id=REPO, until=UNTIL)
    everywhere = report_scope(until=UNTIL)
    assert everywhere.window == SummaryFilters.build(
        since=UNTIL - timedelta(days=28), until=UNTIL
    )
    assert everywhere.repository_id is None


def test_report_scope_refuses_like_the_report() -> None:
    with pytest.raises(ma.ValidationError) as repo:
        report_scope("2026-02-01", "2026-03-01", "nope")
    assert repo.value.field == "repository_id"
    with pytest.raises(ma.ValidationError) as window:
        report_scope("2026-03-01", "2026-02-01")
    assert window.value.field == "until"


def _report_cells() -> list[tuple[str, str]]:
    path = Path(__file__).parents[2] / "notebooks" / "report.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [
        (cell.get("id", ""), "".join(cell["source"]))
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ]


def test_the_report_notebook_gives_every_aggregate_a_validated_filters_object() -> None:
    seen = 0
    for cell_id, source in _report_cells():
        for node in ast.walk(ast.parse(source)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in PUBLIC
            ):
                continue
            seen += 1
            named = {k.arg for k in node.keywords if k.arg is not None}
            spread = [ast.unparse(k.value) for k in node.keywords if k.arg is None]
            assert not named & FILTER_KEYWORDS, (cell_id, ast.unparse(node))
            # **window / **before hold only filters=scope.<...>; totals(filters) forwards them
            assert set(spread) <= {"window", "before", "filters"}, (cell_id, ast.unparse(node))
            assert len(spread) + ("filters" in named) == 1, (cell_id, ast.unparse(node))
    assert seen >= 10
    setup = dict(_report_cells())["setup"]
    assert 'window = {"filters": covers.window}' in setup
    assert 'before = {"filters": covers.before}' in setup
