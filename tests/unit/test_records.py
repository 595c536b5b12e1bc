import dataclasses
import math
import pickle
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

import miyabi_analytics as ma
from miyabi_analytics import ExecutionResultBuilder, ExecutionStatus, ValidationError

P, R, C, F = (
    ExecutionStatus.PENDING,
    ExecutionStatus.RUNNING,
    ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED,
)

# (stored, requested) -> allowed; every one of the 16 pairs is listed on purpose.
LIFECYCLE = {
    (P, P): True,
    (P, R): True,
    (P, C): False,
    (P, F): True,
    (R, P): False,
    (R, R): True,
    (R, C): True,
    (R, F): True,
    (C, P): False,
    (C, R): False,
    (C, C): True,
    (C, F): False,
    (F, P): False,
    (F, R): False,
    (F, C): False,
    (F, F): True,
}

REPO = uuid.UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def builder() -> ExecutionResultBuilder:
    return ExecutionResultBuilder(REPO, "MarketingAgent")


# -- lifecycle -----------------------------------------------------------------------------


def test_lifecycle_table_covers_every_pair():
    assert set(LIFECYCLE) == {(a, b) for a in ExecutionStatus for b in ExecutionStatus}


@pytest.mark.parametrize(("stored", "requested"), sorted(LIFECYCLE), ids=str)
def test_can_transition_to(stored, requested):
    expected = LIFECYCLE[(stored, requested)]
    assert stored.can_transition_to(requested) is expected
    assert stored.can_transition_to(requested.value) is expected


def test_named_transitions():
    assert P.can_transition_to(F)
    assert not C.can_transition_to(R)
    assert all(s.can_transition_to(s) for s in ExecutionStatus)


def test_status_values_are_lowercase_strings():
    assert [s.value for s in ExecutionStatus] == ["pending", "running", "completed", "failed"]
    assert ExecutionStatus.RUNNING == "running"
    assert isinstance(ExecutionStatus.COMPLETED, str)


def test_terminal_states():
    assert {s for s in ExecutionStatus if s.is_terminal} == {C, F}


@pytest.mark.parametrize("text", ["RUNNING", "Running", " running "])
def test_builder_accepts_status_in_any_case(text):
    assert builder().status(text).build().status is R


@pytest.mark.parametrize("bad", ["done", "", 1, None, "runnin"])
def test_builder_refuses_unknown_status(bad):
    with pytest.raises(ValidationError) as info:
        builder().status(bad).build()
    assert info.value.field == "status"


# -- builder ---------------------------------------------------------------------------------


def test_builder_defaults():
    first = builder().build()
    second = builder().build()
    assert isinstance(first.id, uuid.UUID)
    assert first.id.version == 4
    assert first.id != second.id
    assert first.status is ExecutionStatus.PENDING
    assert first.repository_id == REPO
    assert first.agent_type == "MarketingAgent"
    for name in (
        "user_id", "issue_number", "started_at", "completed_at", "error_message", "result",
        "quality_score", "pr_number", "created_at", "updated_at",
    ):
        assert getattr(first, name) is None, name


def test_builder_sets_every_field():
    execution_id, user = uuid.uuid4(), uuid.uuid4()
    done = T0 + timedelta(seconds=90)
    record = (
        ExecutionResultBuilder(str(REPO), "PersonaAgent")
        .id(str(execution_id))
        .user_id(user)
        .issue_number(12)
        .pr_number(34)
        .status(ExecutionStatus.COMPLETED)
        .started_at(T0)
        .completed_at(done)
        .quality_score(87)
        .result({"plan": ["a", "b"], "score": 1.5})
        .error_message("none")
        .build()
    )
    assert record.id == execution_id
    assert record.repository_id == REPO
    assert record.user_id == user
    assert (record.issue_number, record.pr_number, record.quality_score) == (12, 34, 87)
    assert record.status is C
    assert (record.started_at, record.completed_at) == (T0, done)
    assert record.duration_seconds == 90.0
    assert record.result == {"plan": ["a", "b"], "score": 1.5}
    assert record.error_message == "none"


def test_setters_return_the_builder():
    b = builder()
    assert b.status("running") is b
    assert b.start_now() is b
    assert b.complete_now() is b
    assert b.quality_score(1) is b


def test_start_now_and_complete_now_are_aware_utc():
    before = datetime.now(UTC)
    record = builder().start_now().complete_now().build()
    after = datetime.now(UTC)
    assert record.started_at is not None
    assert record.completed_at is not None
    assert record.started_at.utcoffset() == timedelta(0)
    assert before <= record.started_at <= record.completed_at <= after


def test_datetimes_are_normalised_to_utc():
    tokyo = timezone(timedelta(hours=9))
    record = builder().started_at(datetime(2026, 1, 1, 9, 0, tzinfo=tokyo)).build()
    assert record.started_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert record.started_at.utcoffset() == timedelta(0)


def test_result_is_copied_from_the_input():
    payload = {"items": [1, 2], "nested": {"k": "v"}}
    record = builder().result(payload).build()
    payload["items"].append(3)
    payload["nested"]["k"] = "changed"
    assert record.result == {"items": [1, 2], "nested": {"k": "v"}}


def test_result_tuples_become_lists():
    assert builder().result({"t": (1, 2)}).build().result == {"t": [1, 2]}


# -- validation errors -----------------------------------------------------------------------

NAIVE = datetime(2026, 1, 1, 12, 0)  # noqa: DTZ001 - naive on purpose


def _error(b: ExecutionResultBuilder) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        b.build()
    assert type(info.value) is ValidationError
    return info.value


def test_unknown_agent_type():
    err = _error(ExecutionResultBuilder(REPO, "CodeGenAgent"))
    assert err.field == "agent_type"
    assert err.value == "CodeGenAgent"
    assert "agent_type" in str(err)
    assert "CodeGenAgent" in str(err)


@pytest.mark.parametrize("agent_type", ["marketingagent", "", " MarketingAgent", None, 3])
def test_agent_type_must_match_exactly(agent_type):
    assert _error(ExecutionResultBuilder(REPO, agent_type)).field == "agent_type"


@pytest.mark.parametrize("score", [101, -1, True, False, 50.0, "50", 10**20])
def test_bad_quality_score(score):
    err = _error(builder().quality_score(score))
    assert err.field == "quality_score"
    assert err.value is score
    assert "quality_score" in str(err)
    assert repr(score) in str(err)


@pytest.mark.parametrize("score", [0, 100, 55])
def test_quality_score_bounds_are_inclusive(score):
    assert builder().quality_score(score).build().quality_score == score


@pytest.mark.parametrize("field", ["issue_number", "pr_number"])
@pytest.mark.parametrize("value", [True, False, -1, 2**31, 1.0, "7"])
def test_bad_issue_and_pr_numbers(field, value):
    err = _error(getattr(builder(), field)(value))
    assert err.field == field
    assert err.value is value


@pytest.mark.parametrize("field", ["started_at", "completed_at"])
def test_naive_datetimes(field):
    err = _error(getattr(builder(), field)(NAIVE))
    assert err.field == field
    assert err.value == NAIVE
    assert field in str(err)
    assert repr(NAIVE) in str(err)


@pytest.mark.parametrize("value", ["2026-01-01T00:00:00+00:00", 0, datetime.now(UTC).date()])
def test_non_datetimes_refused(value):
    assert _error(builder().started_at(value)).field == "started_at"


def test_completed_before_started():
    err = _error(builder().started_at(T0).completed_at(T0 - timedelta(microseconds=1)))
    assert err.field == "completed_at"
    assert err.value == T0 - timedelta(microseconds=1)
    assert "completed_at" in str(err)
    assert "started_at" in str(err)


def test_completed_equal_to_started_is_fine():
    assert builder().started_at(T0).completed_at(T0).build().duration_seconds == 0.0


def test_completed_before_started_across_time_zones():
    # 10:00+09:00 is 01:00 UTC: before a 02:00 UTC start even though 10 > 2 on the clock face.
    tokyo = timezone(timedelta(hours=9))
    started = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    err = _error(builder().started_at(started).completed_at(datetime(2026, 1, 1, 10, tzinfo=tokyo)))
    assert err.field == "completed_at"


@pytest.mark.parametrize(
    "payload",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": -math.inf},
        {"a": [1, 2, {"b": math.nan}]},
        {"deep": {"deeper": {"deepest": [[float("inf")]]}}},
        [1.0, math.nan],
        {"ok": 1, "list": [0.5, -math.inf]},
    ],
)
def test_nan_and_infinity_anywhere_in_result(payload):
    err = _error(builder().result(payload))
    assert err.field.startswith("result")
    assert "nan" in str(err).lower() or "inf" in str(err).lower()


def test_nan_error_names_the_path():
    err = _error(builder().result({"a": [1, {"b": math.nan}]}))
    assert err.field == "result.a[1].b"


@pytest.mark.parametrize(
    "payload",
    [{1: "one"}, {"ok": {2.5: "x"}}, {"l": [{None: 1}]}, {(1, 2): "t"}, {True: 1}],
)
def test_non_string_keys_in_result(payload):
    assert _error(builder().result(payload)).field.startswith("result")


@pytest.mark.parametrize("payload", ["text", 3, {"s": {1, 2}}, {"o": object()}, {"b": b"x"}])
def test_non_json_result(payload):
    assert _error(builder().result(payload)).field.startswith("result")


def test_bools_and_nulls_inside_json_are_json():
    payload = {"flag": True, "off": False, "none": None, "n": 1, "f": 0.25, "s": "x"}
    assert builder().result(payload).build().result == payload


@pytest.mark.parametrize("field", ["repository_id", "user_id", "id"])
def test_bad_uuids(field):
    b = builder().user_id(uuid.uuid4())
    if field == "repository_id":
        b = ExecutionResultBuilder("not-a-uuid", "MarketingAgent")
    else:
        getattr(b, field)("not-a-uuid")
    err = _error(b)
    assert err.field == field
    assert err.value == "not-a-uuid"


def test_nul_character_in_error_message_refused():
    assert _error(builder().error_message("a\x00b")).field == "error_message"


def test_validation_error_is_a_value_error_and_miyabi_error():
    err = _error(builder().quality_score(101))
    assert isinstance(err, ValueError)
    assert isinstance(err, ma.MiyabiError)


# -- errors pickle -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ValidationError("quality_score", 101, "must be between 0 and 100"),
        ma.InvalidStatusTransition(uuid.UUID(int=5), "completed", "running"),
        ma.NotFound("execution", uuid.UUID(int=7)),
        ma.SchemaError("too new"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_pickle_round_trip(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    for attribute in ("field", "value", "reason", "execution_id", "current", "requested",
                      "what", "key"):
        if hasattr(error, attribute):
            assert getattr(copy, attribute) == getattr(error, attribute), attribute


def test_invalid_status_transition_fields():
    err = ma.InvalidStatusTransition(uuid.UUID(int=5), "completed", "running")
    assert isinstance(err, ValidationError)
    assert err.field == "status"
    assert err.value == "running"
    assert "completed" in str(err)
    assert "running" in str(err)


def test_not_found_is_a_lookup_error():
    err = ma.NotFound("execution", uuid.UUID(int=7))
    assert isinstance(err, LookupError)
    assert str(uuid.UUID(int=7)) in str(err)


def test_long_values_are_shortened_in_the_message():
    err = ValidationError("result", "x" * 10_000, "too long")
    assert len(str(err)) < 300
    assert str(err).startswith("result=")


# -- immutability and evolve ---------------------------------------------------------------


def test_record_is_frozen():
    record = builder().build()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = ExecutionStatus.RUNNING  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        record.extra = 1  # type: ignore[attr-defined]
    assert record.status is P


def test_record_equality_by_value():
    execution_id = uuid.uuid4()
    a = builder().id(execution_id).quality_score(3).build()
    b = builder().id(execution_id).quality_score(3).build()
    assert a == b
    assert a != b.evolve(quality_score=4)


def test_evolve_returns_a_validated_copy():
    record = builder().build()
    running = record.evolve(status="RUNNING", started_at=T0)
    assert running is not record
    assert running.status is R
    assert running.started_at == T0
    assert running.id == record.id
    assert record.status is P
    assert record.started_at is None


@pytest.mark.parametrize(
    "changes",
    [
        {"quality_score": 101},
        {"started_at": NAIVE},
        {"agent_type": "Nobody"},
        {"result": {"x": math.nan}},
        {"started_at": T0, "completed_at": T0 - timedelta(seconds=1)},
        {"status": "finished"},
    ],
)
def test_evolve_validates(changes):
    record = builder().build()
    with pytest.raises(ValidationError):
        record.evolve(**changes)


def test_evolve_unknown_field_is_a_type_error():
    with pytest.raises(TypeError):
        builder().build().evolve(colour="red")
