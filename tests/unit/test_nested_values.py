"""Issue 12, item 11: the JSON check behind ``result``, ``metrics`` and log ``metadata``.

Cycles and deep nesting are ValidationErrors naming the path (never RecursionError); the
cheap re-check the store runs before writing agrees with the full one; a built record whose
``result`` is changed in place is validated again instead of being trusted by identity.
"""

import math
import uuid
from typing import Any

import pytest

import miyabi_analytics as ma
from miyabi_analytics._validate import JSON_MAX_DEPTH, as_json, is_plain_json
from miyabi_analytics.records import validate_record


def nested(levels: int) -> dict[str, Any]:
    """``levels`` dicts inside each other: ``{"n": {"n": ... {}}}``."""
    top: dict[str, Any] = {}
    inner = top
    for _ in range(levels - 1):
        inner["n"] = {}
        inner = inner["n"]
    return top


def self_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


def self_list() -> list[Any]:
    value: list[Any] = [1]
    value.append({"back": value})
    return value


def mutual() -> dict[str, Any]:
    a: dict[str, Any] = {}
    b: dict[str, Any] = {"a": a}
    a["b"] = [b]
    return {"top": a}


@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize(
    ("make", "path"),
    [(self_dict, "doc.self"), (self_list, "doc[1].back"), (mutual, "doc.top.b[0].a")],
    ids=["dict_in_itself", "list_in_itself", "two_dicts_in_each_other"],
)
def test_a_cycle_is_a_validation_error_naming_where_it_closes(make, path, copy):
    with pytest.raises(ma.ValidationError) as info:
        as_json("doc", make(), copy=copy)
    assert info.value.field == path
    assert "cycle" in info.value.reason
    assert len(str(info.value)) < 200  # printable: no giant repr of the document


def test_a_shared_but_acyclic_value_is_fine():
    shared = {"k": [1, 2]}
    document = {"a": shared, "b": [shared, shared]}
    copied = as_json("doc", document)
    assert copied == document
    assert copied["a"] is not shared
    assert as_json("doc", document, copy=False) is document


@pytest.mark.parametrize("copy", [True, False])
def test_the_depth_limit_is_exact_and_deep_documents_never_recurse_out(copy):
    deepest_allowed = nested(JSON_MAX_DEPTH + 1)  # containers at depths 0..JSON_MAX_DEPTH
    assert as_json("doc", deepest_allowed, copy=copy) == deepest_allowed
    assert is_plain_json(deepest_allowed)
    for levels in (JSON_MAX_DEPTH + 2, 100_000):
        too_deep = nested(levels)
        assert not is_plain_json(too_deep)
        with pytest.raises(ma.ValidationError, match="nested deeper"):
            as_json("doc", too_deep, copy=copy)


PLAIN: list[Any] = [
    None, True, 0, -(2**63), 2**63 - 1, 1.5, "", "text", "市場 🚀", [], {}, [1, [2, {"a": None}]],
    {"k": {"l": ["x", 2.0, False]}},
]
NOT_PLAIN: list[Any] = [
    2**63, -(2**63) - 1, 10**40, math.nan, math.inf, -math.inf, "nul\x00", "\ud800",
    {1: "int key"}, {"a": (1, 2)}, {"a": {1, 2}}, [b"bytes"], {"a": [object()]}, self_dict(),
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_documents_pass_both_checks_unchanged(value):
    assert is_plain_json(value)
    assert as_json("doc", value, copy=False) is value
    assert as_json("doc", value) == value


@pytest.mark.parametrize("value", NOT_PLAIN, ids=lambda v: type(v).__name__)
def test_the_cheap_check_never_passes_what_the_full_one_changes_or_refuses(value):
    assert not is_plain_json(value)
    assert not is_plain_json({"wrapped": [value]})


def test_numbers_beyond_64_bits_are_refused_with_the_path():
    with pytest.raises(ma.ValidationError) as info:
        as_json("result", {"a": [{"b": 10**40}]})
    assert info.value.field == "result.a[0].b"
    assert info.value.value == 10**40
    assert "64-bit" in info.value.reason


def built() -> ma.AgentExecutionResult:
    return ma.SalesAgent().builder(uuid.uuid4()).result({"nested": {"x": 1}}).build()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.result["nested"].__setitem__("x", 10**40), "result.nested.x"),
        (lambda r: r.result["nested"].__setitem__("x", math.nan), "result.nested.x"),
        (lambda r: r.result["nested"].__setitem__("me", r.result), "result.nested.me"),
        (lambda r: r.result["nested"].__setitem__(7, "int key"), "result.nested"),
        (lambda r: r.result.__setitem__("deep", nested(10_000)), "result.deep.n"),
    ],
    ids=["big_int", "nan", "cycle", "int_key", "deep"],
)
def test_a_built_record_changed_in_place_is_validated_again(change, field):
    record = built()
    assert validate_record(record, copy=False) is record  # trusted by identity while intact
    change(record)
    with pytest.raises(ma.ValidationError) as info:
        validate_record(record, copy=False)
    assert info.value.field.startswith(field)
    with pytest.raises(ma.ValidationError):
        record.evolve(status="running")


def test_a_built_record_changed_in_place_to_other_plain_values_is_kept():
    record = built()
    record.result["nested"]["x"] = [1, 2]
    assert validate_record(record, copy=False) is record
    record.result["nested"]["x"] = (1, 2)  # a tuple: stored as a list, so normalised
    normalised = validate_record(record, copy=False)
    assert normalised is not record
    assert normalised.result == {"nested": {"x": [1, 2]}}
    assert type(normalised.result["nested"]["x"]) is list
