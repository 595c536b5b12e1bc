import math
import uuid
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import miyabi_analytics as ma
from miyabi_analytics.metrics import validate_metrics

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
CENT = Decimal("0.01")

INT_COLUMNS = {
    "competitors_analyzed": (0, INT32_MAX),
    "market_size_usd": (0, INT64_MAX),
    "target_audience_size": (0, INT32_MAX),
    "estimated_revenue_usd": (0, INT64_MAX),
    "engagement_score": (0, 100),
    "reach_estimate": (0, INT32_MAX),
}
# numeric(precision, 2): the largest magnitude that fits.
RATE_COLUMNS = {
    "growth_rate_percent": Decimal("999.99"),
    "conversion_rate": Decimal("999.99"),
    "roi_percent": Decimal("99999.99"),
}

# -- strategies ------------------------------------------------------------------------------

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - bounds of a naive strategy
    max_value=datetime(9000, 1, 1),  # noqa: DTZ001
    timezones=offsets,
)
naive = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1))  # noqa: DTZ001
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-INT64_MAX - 1, max_value=INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=15,
)
json_document = st.one_of(
    st.dictionaries(text, json_value, max_size=5), st.lists(json_value, max_size=5)
)
optional_int32 = st.none() | st.integers(min_value=0, max_value=INT32_MAX)


def _not_valid_int(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        st.booleans(),
        st.floats(),
        st.integers(min_value=low, max_value=high).map(float),
        st.integers(min_value=low, max_value=high).map(str),
        st.decimals(allow_nan=False),
    )


# -- builder -------------------------------------------------------------------------------


@FAST
@given(
    repository_id=st.uuids(),
    execution_id=st.uuids(),
    user_id=st.none() | st.uuids(),
    agent_type=st.sampled_from(ma.AGENT_TYPES),
    status=st.sampled_from(list(ma.ExecutionStatus)),
    issue_number=optional_int32,
    pr_number=optional_int32,
    quality=st.none() | st.integers(min_value=0, max_value=100),
    started=st.none() | aware,
    duration=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    result=st.none() | json_document,
    error_message=st.none() | text,
)
def test_valid_inputs_build_and_round_trip(
    repository_id, execution_id, user_id, agent_type, status, issue_number, pr_number, quality,
    started, duration, result, error_message,
):
    completed = None if started is None else started + duration
    record = (
        ma.ExecutionResultBuilder(repository_id, agent_type)
        .id(execution_id)
        .user_id(user_id)
        .status(status.value.upper())
        .issue_number(issue_number)
        .pr_number(pr_number)
        .quality_score(quality)
        .started_at(started)
        .completed_at(completed)
        .result(result)
        .error_message(error_message)
        .build()
    )
    assert record.id == execution_id
    assert record.repository_id == repository_id
    assert record.user_id == user_id
    assert record.agent_type == agent_type
    assert record.status is status
    assert (record.issue_number, record.pr_number, record.quality_score) == (
        issue_number, pr_number, quality,
    )
    assert record.started_at == started
    assert record.completed_at == completed
    for stamp in (record.started_at, record.completed_at):
        assert stamp is None or stamp.utcoffset() == timedelta(0)
    assert record.result == result
    assert record.error_message == error_message
    # Validating a valid record again changes nothing.
    assert record.evolve() == record


def _builder() -> ma.ExecutionResultBuilder:
    return ma.ExecutionResultBuilder(uuid.UUID(int=1), "AnalyticsAgent")


@FAST
@given(value=_not_valid_int(0, 100))
def test_invalid_quality_always_validation_error(value):
    with pytest.raises(ma.ValidationError) as info:
        _builder().quality_score(value).build()
    assert info.value.field == "quality_score"


@FAST
@given(field=st.sampled_from(["issue_number", "pr_number"]), value=_not_valid_int(0, INT32_MAX))
def test_invalid_ints_always_validation_error(field, value):
    with pytest.raises(ma.ValidationError) as info:
        getattr(_builder(), field)(value).build()
    assert info.value.field == field


@FAST
@given(field=st.sampled_from(["started_at", "completed_at"]), value=naive)
def test_naive_datetimes_always_validation_error(field, value):
    with pytest.raises(ma.ValidationError) as info:
        getattr(_builder(), field)(value).build()
    assert info.value.field == field


@FAST
@given(
    field=st.sampled_from(["started_at", "completed_at"]),
    value=st.one_of(st.dates(), st.text(), st.integers(), st.floats(), st.times()),
)
def test_non_datetimes_always_validation_error(field, value):
    with pytest.raises(ma.ValidationError):
        getattr(_builder(), field)(value).build()


@FAST
@given(started=aware, backwards=st.timedeltas(min_value=timedelta(microseconds=1),
                                              max_value=timedelta(days=365)))
def test_completed_before_started_always_validation_error(started, backwards):
    with pytest.raises(ma.ValidationError) as info:
        _builder().started_at(started).completed_at(started - backwards).build()
    assert info.value.field == "completed_at"


anything = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(max_size=4),
        st.decimals(), st.datetimes(), st.uuids(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers(), st.none()), children,
                        max_size=3),
        st.frozensets(st.integers(), max_size=2),
    ),
    max_leaves=10,
)


@FAST
@given(
    field=st.sampled_from(
        ["user_id", "issue_number", "pr_number", "status", "started_at", "completed_at",
         "quality_score", "result", "error_message", "id"]
    ),
    value=anything,
)
def test_arbitrary_input_builds_or_raises_validation_error(field, value):
    refused: ma.ValidationError | None = None
    try:
        record = getattr(_builder(), field)(value).build()
    except ma.ValidationError as err:
        refused = err
    if refused is None:
        assert isinstance(record, ma.AgentExecutionResult)
    else:
        assert refused.field.split(".")[0].split("[")[0] == field


@FAST
@given(
    payload=json_document.flatmap(
        lambda doc: st.sampled_from([math.nan, math.inf, -math.inf]).map(
            lambda bad: {"ok": doc, "nested": [{"bad": bad}]}
        )
    )
)
def test_nan_or_infinity_anywhere_always_refused(payload):
    with pytest.raises(ma.ValidationError) as info:
        _builder().result(payload).build()
    assert info.value.field.startswith("result")


# -- metrics ---------------------------------------------------------------------------------


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(INT_COLUMNS)))
def test_int_metrics_within_range_accepted(data, name):
    low, high = INT_COLUMNS[name]
    value = data.draw(st.integers(min_value=low, max_value=high))
    valid = validate_metrics({name: value, "note": "kept"})
    assert valid.columns[name] == value
    assert type(valid.columns[name]) is int
    assert valid.document == {name: value, "note": "kept"}
    assert all(v is None for k, v in valid.columns.items() if k != name)
    assert "note" not in valid.columns


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(INT_COLUMNS)))
def test_numpy_ints_accepted_as_python_ints(data, name):
    low, high = INT_COLUMNS[name]
    value = data.draw(st.integers(min_value=low, max_value=min(high, INT64_MAX)))
    valid = validate_metrics({name: np.int64(value)})
    assert valid.columns[name] == value
    assert type(valid.columns[name]) is int


@FAST
@given(data=st.data(), name=st.sampled_from(sorted(INT_COLUMNS)))
def test_int_metrics_invalid_refused(data, name):
    low, high = INT_COLUMNS[name]
    value = data.draw(_not_valid_int(low, high))
    with pytest.raises(ma.ValidationError) as info:
        validate_metrics({name: value})
    assert info.value.field == f"metrics.{name}"
    assert f"metrics.{name}" in str(info.value)


@FAST
@given(name=st.sampled_from(sorted(INT_COLUMNS) + sorted(RATE_COLUMNS)), value=st.booleans())
def test_bools_are_not_numbers(name, value):
    with pytest.raises(ma.ValidationError) as info:
        validate_metrics({name: value})
    assert info.value.field == f"metrics.{name}"


def _half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@FAST
@given(
    name=st.sampled_from(sorted(RATE_COLUMNS)),
    value=st.decimals(min_value=-200_000, max_value=200_000, places=3),
)
def test_rates_rounded_half_up_and_bounded(name, value):
    rounded = _half_up(value)
    if abs(rounded) <= RATE_COLUMNS[name]:
        valid = validate_metrics({name: float(value)})
        assert valid.columns[name] == float(rounded)
        assert type(valid.columns[name]) is float
        assert valid.document[name] == float(value)  # the document keeps what was given
    else:
        with pytest.raises(ma.ValidationError) as info:
            validate_metrics({name: float(value)})
        assert info.value.field == f"metrics.{name}"


@FAST
@given(name=st.sampled_from(sorted(RATE_COLUMNS)), value=st.integers(-10**6, 10**6))
def test_integer_rates_accepted_when_they_fit(name, value):
    if abs(value) <= RATE_COLUMNS[name]:
        assert validate_metrics({name: value}).columns[name] == float(value)
    else:
        with pytest.raises(ma.ValidationError):
            validate_metrics({name: value})


@FAST
@given(name=st.sampled_from(sorted(RATE_COLUMNS)),
       value=st.sampled_from([math.nan, math.inf, -math.inf]) | st.text() | st.just([]))
def test_rates_non_finite_or_non_numbers_refused(name, value):
    with pytest.raises(ma.ValidationError) as info:
        validate_metrics({name: value})
    assert info.value.field == f"metrics.{name}"


@pytest.mark.parametrize(
    ("name", "given_value", "expected"),
    [
        ("growth_rate_percent", 0.125, 0.13),
        ("growth_rate_percent", -0.125, -0.13),
        ("growth_rate_percent", 1.005, 1.01),
        ("growth_rate_percent", 2.675, 2.68),
        ("growth_rate_percent", 0.004, 0.0),
        ("conversion_rate", 999.994, 999.99),
        ("conversion_rate", -999.994, -999.99),
        ("roi_percent", 99999.994, 99999.99),
        ("roi_percent", -12.345, -12.35),
    ],
)
def test_rate_rounding_examples(name, given_value, expected):
    assert validate_metrics({name: given_value}).columns[name] == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("growth_rate_percent", 999.995),
        ("conversion_rate", -999.995),
        ("conversion_rate", 1000),
        ("roi_percent", 99999.995),
        ("roi_percent", -100000),
        # beyond the decimal context's 28 digits (found by the fuzz test: InvalidOperation)
        ("growth_rate_percent", 1e26),
        ("conversion_rate", -1.7976931348623157e308),
        ("roi_percent", 10**40),
    ],
)
def test_rate_overflow_after_rounding(name, value):
    with pytest.raises(ma.ValidationError) as info:
        validate_metrics({name: value})
    assert info.value.field == f"metrics.{name}"
    assert repr(value) in str(info.value)


@FAST
@given(extra=st.dictionaries(text.filter(lambda k: k not in INT_COLUMNS and k not in RATE_COLUMNS),
                             json_value, max_size=5))
def test_unknown_keys_kept_in_document_only(extra):
    valid = validate_metrics(extra)
    assert valid.document == extra
    assert set(valid.columns) == set(INT_COLUMNS) | set(RATE_COLUMNS)
    assert all(v is None for v in valid.columns.values())


@FAST
@given(bad=st.sampled_from([math.nan, math.inf, -math.inf]), key=text)
def test_non_finite_extra_values_refused(bad, key):
    with pytest.raises(ma.ValidationError) as info:
        validate_metrics({"engagement_score": 5, "extra": {key: [bad]}})
    assert info.value.field.startswith("metrics")


@pytest.mark.parametrize("value", [None, [], "metrics", 3, [("a", 1)]])
def test_metrics_must_be_a_mapping(value):
    with pytest.raises(ma.ValidationError) as info:
        validate_metrics(value)
    assert info.value.field == "metrics"


@pytest.mark.parametrize("side", ["low", "high"])
def test_every_column_at_its_bound(side):
    full: dict[str, Any] = {
        name: (low if side == "low" else high) for name, (low, high) in INT_COLUMNS.items()
    }
    full.update(
        {name: float(-bound if side == "low" else bound) for name, bound in RATE_COLUMNS.items()}
    )
    valid = validate_metrics(full)
    assert valid.columns == full
    assert valid.document == full
