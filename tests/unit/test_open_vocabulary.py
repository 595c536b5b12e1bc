"""Open vocabularies when reading (issue 14 item 5), without a database.

Other writers sharing the tables store agent types outside the 15 and the log level ``warn``:
reading keeps them (never a silent NaN), filters accept them, figures draw them; writes through
this package still validate against the 15.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import miyabi_analytics as ma
from miyabi_analytics import figures
from miyabi_analytics.figures._kit import AGENT_COLORS, CATEGORY_COLORS, _colors, _order
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import (
    LOG_DTYPES,
    SUMMARY_DTYPES,
    UTC_TS,
    arrow_schema,
    convert_piece,
    empty_frame,
    from_arrow,
    join_pieces,
    to_frame,
)
from miyabi_analytics.vocabulary import (
    AGENT_CATEGORIES,
    AGENT_TYPES,
    CATEGORY_OF,
    LOG_LEVELS,
    OTHER_CATEGORY,
    READ_CATEGORIES,
    agent_category,
    agent_type_order,
    check_agent_type,
    check_log_level,
    check_read_agent_type,
    check_read_log_level,
    log_level_spellings,
    read_log_level,
)

FOREIGN = ("CoordinatorAgent", "CodeGenAgent", "ReviewAgent")
SPEC = {name: SUMMARY_DTYPES[name] for name in ("id", "agent_type", "agent_category", "status")}


# ------------------------------------------------------------------ the vocabulary


@pytest.mark.parametrize("name", FOREIGN)
def test_a_type_outside_the_15_reads_as_other(name: str) -> None:
    assert agent_category(name) == OTHER_CATEGORY == "other"
    assert ma.agent_category(name) == "other"


def test_the_15_keep_their_categories() -> None:
    assert {t: agent_category(t) for t in AGENT_TYPES} == dict(CATEGORY_OF)
    assert {t: ma.agent_for(t).category for t in AGENT_TYPES} == dict(CATEGORY_OF)
    assert list(READ_CATEGORIES) == [*AGENT_CATEGORIES, "other"]


@pytest.mark.parametrize("bad", [None, 7, b"CoordinatorAgent", ["SalesAgent"]])
def test_agent_category_of_a_non_string_is_refused(bad: object) -> None:
    with pytest.raises(ma.ValidationError) as info:
        agent_category(bad)  # type: ignore[arg-type]
    assert (info.value.field, info.value.value) == ("agent_type", bad)


@pytest.mark.parametrize("name", FOREIGN)
def test_writes_still_validate_against_the_15(name: str) -> None:
    with pytest.raises(ma.ValidationError) as info:
        check_agent_type(name)
    assert info.value.field == "agent_type"
    with pytest.raises(ma.ValidationError):
        ma.agent_for(name)
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionResultBuilder(uuid.uuid4(), name).build()
    assert (info.value.field, info.value.value) == ("agent_type", name)
    with pytest.raises(ma.ValidationError) as info:
        check_log_level("warn")  # the upstream spelling is read, never written by us
    assert info.value.field == "level"


def test_agent_type_order_is_the_design_then_by_name() -> None:
    names = ["ReviewAgent", "JonathanIveDesignAgent", "CodeGenAgent", "AIEntrepreneurAgent"]
    assert sorted(names, key=agent_type_order) == [
        "AIEntrepreneurAgent", "JonathanIveDesignAgent", "CodeGenAgent", "ReviewAgent"
    ]


def test_read_agent_types_are_any_non_empty_string() -> None:
    assert check_read_agent_type("CoordinatorAgent") == "CoordinatorAgent"
    assert check_read_agent_type("Agent 😀" * 20) == "Agent 😀" * 20  # longer than any row
    for bad in ("", "   ", None, 3, ("SalesAgent",), "Coord\x00", "\ud800Agent"):
        with pytest.raises(ma.ValidationError) as info:
            check_read_agent_type(bad, "agent_types")
        assert (info.value.field, info.value.value) == ("agent_types", bad)


def test_log_levels_read_with_their_aliases() -> None:
    assert check_read_log_level("warn") == check_read_log_level(" WARNING ") == "warning"
    assert log_level_spellings("warning") == ("warning", "warn")
    assert log_level_spellings("error") == ("error",)
    assert read_log_level("warn") == "warning"
    assert read_log_level("notice") == "notice"
    for bad in ("notice", "", None, 3):
        with pytest.raises(ma.ValidationError) as info:
            check_read_log_level(bad)
        assert (info.value.field, info.value.value) == ("levels", bad)


# ------------------------------------------------------------------ the filters


def test_summary_filters_accept_other_agent_types() -> None:
    filters = SummaryFilters.build(agent_types=["CoordinatorAgent", "SalesAgent"])
    assert filters.agent_types == ("CoordinatorAgent", "SalesAgent")
    assert SummaryFilters.build(agent_types="ReviewAgent").agent_types == ("ReviewAgent",)
    for bad in ([None], ["SalesAgent", 7], [""], 7):
        with pytest.raises(ma.ValidationError) as info:
            SummaryFilters.build(agent_types=bad)
        assert info.value.field == "agent_types", bad


# ------------------------------------------------------------------ the frames


ROWS = [
    ("a", "SalesAgent", "operations", "completed"),
    ("b", "ReviewAgent", None, "running"),  # the view of a revision knowing only the 15
    ("c", "CodeGenAgent", "other", "failed"),
    ("d", "AIEntrepreneurAgent", "strategy", "pending"),
]


def _arrow(rows: list[tuple[Any, ...]], spec: dict[str, Any]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in spec]
    return pa.table(
        [pa.array(list(c), pa.string()) for c in columns], schema=arrow_schema(spec)
    )


def test_rows_keep_other_types_with_category_other() -> None:
    for frame in (to_frame(ROWS, SPEC), from_arrow(_arrow(ROWS, SPEC), SPEC)):
        assert frame["agent_type"].tolist() == [r[1] for r in ROWS]
        assert frame["agent_category"].tolist() == ["operations", "other", "other", "strategy"]
        assert list(frame["agent_type"].cat.categories) == [
            *AGENT_TYPES, "CodeGenAgent", "ReviewAgent"
        ]
        assert frame["agent_category"].dtype == SUMMARY_DTYPES["agent_category"]
        assert frame["status"].dtype == SUMMARY_DTYPES["status"]


def test_frames_without_foreign_values_keep_the_spec_dtypes() -> None:
    ours = [r for r in ROWS if r[1] in CATEGORY_OF]
    for frame in (
        to_frame(ours, SPEC), from_arrow(_arrow(ours, SPEC), SPEC), empty_frame(SPEC),
        from_arrow(_arrow([], SPEC), SPEC),
    ):
        assert frame.dtypes.to_dict() == SPEC
    # the category column has one dtype, with or without "other" rows, empty or not
    assert (
        empty_frame(SPEC)["agent_category"].dtype
        == to_frame(ROWS, SPEC)["agent_category"].dtype
        == pd.CategoricalDtype(list(READ_CATEGORIES))
    )


def test_log_levels_warn_reads_as_warning_and_unknown_is_kept() -> None:
    spec = {"log_level": LOG_DTYPES["log_level"]}
    rows = [("warn",), ("warning",), ("notice",), ("info",), ("WARN",)]
    for frame in (to_frame(rows, spec), from_arrow(_arrow(rows, spec), spec)):
        assert frame["log_level"].tolist() == ["warning", "warning", "notice", "info", "WARN"]
        assert list(frame["log_level"].cat.categories) == [*LOG_LEVELS, "WARN", "notice"]
    assert to_frame([("error",)], spec).dtypes.to_dict() == spec


def test_pieces_with_different_foreign_values_join_into_one_column() -> None:
    dtype = SUMMARY_DTYPES["agent_type"]
    pieces = [
        convert_piece(pa.array(["SalesAgent", "ReviewAgent", None]), dtype, "agent_type"),
        convert_piece(pa.chunked_array([["CodeGenAgent", "CRMAgent"]]), dtype, "agent_type"),
        convert_piece(pa.array(["YouTubeAgent"]), dtype, "agent_type"),
    ]
    joined = join_pieces(pieces, dtype)
    values = ["SalesAgent", "ReviewAgent", None, "CodeGenAgent", "CRMAgent", "YouTubeAgent"]
    assert [None if pd.isna(v) else v for v in joined] == values
    assert list(joined.categories) == [*AGENT_TYPES, "CodeGenAgent", "ReviewAgent"]
    order = np.array([5, 3, 1, 0, 2, 4])
    reordered = join_pieces(pieces, dtype, order)
    assert [None if pd.isna(v) else v for v in reordered] == [values[i] for i in order]
    assert join_pieces([], dtype).dtype == dtype


def test_more_foreign_types_than_an_int8_code_holds() -> None:
    dtype = SUMMARY_DTYPES["agent_type"]
    many = [f"Agent{i:03d}" for i in range(300)]
    pieces = [
        convert_piece(pa.array(many[:150]), dtype, "agent_type"),
        convert_piece(pa.array(["SalesAgent", *many[150:]]), dtype, "agent_type"),
    ]
    joined = join_pieces(pieces, dtype)
    assert list(joined) == [*many[:150], "SalesAgent", *many[150:]]
    assert list(joined.categories) == [*AGENT_TYPES, *many]
    assert to_frame([(m,) for m in many], {"agent_type": dtype})["agent_type"].tolist() == many


# ------------------------------------------------------------------ the figures


def _frame(spec: dict[str, Any], rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = to_frame(rows, spec)
    counts = [n for n in ("executions", "completed", "failed") if n in spec]
    return frame.astype(dict.fromkeys(counts, "int64"))


def _drawn(figure: Any) -> set[str]:
    out: set[str] = set()
    for trace in figure.data:
        out.add(str(trace.name))
        for axis in ("x", "y"):
            values = getattr(trace, axis, None)
            out.update(str(v) for v in ([] if values is None else values) if isinstance(v, str))
    return out


T1, T2 = pd.Timestamp("2026-03-02", tz="UTC"), pd.Timestamp("2026-03-09", tz="UTC")
AGENT, CATEGORY = SUMMARY_DTYPES["agent_type"], SUMMARY_DTYPES["agent_category"]


@pytest.mark.parametrize(("by", "label"), [("agent_type", "CoordinatorAgent"),
                                          ("agent_category", "other")])
def test_every_figure_draws_a_type_outside_the_15(by: str, label: str) -> None:
    known = "SalesAgent" if by == "agent_type" else "operations"
    dtype = AGENT if by == "agent_type" else CATEGORY
    rates = _frame(
        {"period": UTC_TS, by: dtype, "executions": "Int64", "completed": "Int64",
         "failed": "Int64", "success_rate": "float64"},
        [(T1, known, 2, 1, 1, 0.5), (T1, label, 3, 2, 1, 2 / 3), (T2, label, 1, 0, 1, 0.0)],
    )
    quality = _frame(
        {"period": UTC_TS, by: dtype, "executions": "Int64", "mean_quality": "float64"},
        [(T1, label, 2, 80.0), (T2, label, 1, 60.0), (T1, known, 1, 50.0)],
    )
    durations = _frame(
        {by: dtype, "executions": "Int64", "p50_seconds": "float64", "p95_seconds": "float64",
         "max_seconds": "float64"},
        [(label, 3, 10.0, 20.0, 30.0), (known, 1, 5.0, 5.0, 5.0)],
    )
    business = _frame(
        {"period": UTC_TS, by: dtype, "sum_estimated_revenue_usd": "Int64",
         "sum_market_size_usd": "Int64"},
        [(T1, label, 1000, 5000), (T2, known, 10, None)],
    )
    summary = to_frame(
        [(label if by == "agent_type" else "CodeGenAgent", "running"),
         ("SalesAgent", "completed")],
        {"agent_type": AGENT, "status": SUMMARY_DTYPES["status"]},
    )
    summary["agent_category"] = pd.Categorical(
        [agent_category(t) for t in summary["agent_type"]], dtype=CATEGORY
    )
    drawn = [
        figures.success_rate_figure(rates, by=by),
        figures.success_heatmap_figure(rates, by=by),
        figures.failures_figure(rates, by=by),
        figures.quality_trend_figure(quality, by=by),
        figures.duration_figure(durations, by=by),
        figures.business_figure(business, by=by),
        figures.status_figure(summary, by=by),
    ]
    for figure in drawn:
        assert label in _drawn(figure), figure.layout.title.text


def test_colours_and_order_of_foreign_groups() -> None:
    order = _order("agent_category", np.array(["other", "design", "strategy"], dtype=object))
    assert order == ["strategy", "design", "other"]
    colors = _colors("agent_category", order)
    assert colors["other"] not in CATEGORY_COLORS.values()
    order = _order("agent_type", np.array(["ReviewAgent", "SalesAgent", "CodeGenAgent"], object))
    assert order == ["SalesAgent", "CodeGenAgent", "ReviewAgent"]
    colors = _colors("agent_type", order)
    assert colors["SalesAgent"] == AGENT_COLORS["SalesAgent"]
    assert colors["CodeGenAgent"] != colors["ReviewAgent"]
    assert not {colors["CodeGenAgent"], colors["ReviewAgent"]} & set(AGENT_COLORS.values())
