"""Issue 12, item 11: a record's ``result`` changed in place after ``build()`` is validated at
save time on every save path, and metrics and log metadata get the same JSON rules.

Each bad document is a ValidationError naming ``result`` (or ``metrics``/``metadata``) and the
path, never a RecursionError or a silently stored 10**40; the database is exactly as before,
the stored row of an update included, on both dialects. The integer bound is the signed 64-bit
range, which reads back exactly through every reader on both databases.
"""

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

import miyabi_analytics as ma
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics.reader import _read_summary_simple

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def snapshot(engine: Engine) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        return {
            table.name: [
                row._asdict() for row in conn.execute(select(table).order_by(table.c.id))
            ]
            for table in (executions, analytics, logs)
        }


def deep(levels: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    inner = top
    for _ in range(levels - 1):
        inner["n"] = {}
        inner = inner["n"]
    return top


def _cycle(doc: dict[str, Any]) -> None:
    doc["nested"]["loop"] = doc


def _list_cycle(doc: dict[str, Any]) -> None:
    doc["nested"]["items"] = [1]
    doc["nested"]["items"].append(doc["nested"]["items"])


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # what is done to the built record's result -> the start of the field the error names
    "int_10_40": (lambda d: d["nested"].__setitem__("x", 10**40), "result.nested.x"),
    "int_2_63": (lambda d: d["nested"].__setitem__("x", 2**63), "result.nested.x"),
    "int_below_64_bits": (lambda d: d["nested"].__setitem__("x", -(2**63) - 1), "result.nested.x"),
    "nan": (lambda d: d["nested"].__setitem__("x", math.nan), "result.nested.x"),
    "infinity": (lambda d: d["nested"].__setitem__("x", [math.inf]), "result.nested.x"),
    "cycle": (_cycle, "result.nested.loop"),  # a cycle is named where it closes
    "list_cycle": (_list_cycle, "result.nested.items[1]"),
    "deep_100000": (lambda d: d.__setitem__("deep", deep(100_000)), "result.deep.n"),
    "deep_one_too_many": (lambda d: d.__setitem__("deep", deep(65)), "result.deep.n"),
    "int_key": (lambda d: d["nested"].__setitem__(5, "x"), "result.nested"),
    "nul": (lambda d: d["nested"].__setitem__("x", "a\x00b"), "result.nested.x"),
    "lone_surrogate": (lambda d: d["nested"].__setitem__("x", "\ud800"), "result.nested.x"),
    "set": (lambda d: d["nested"].__setitem__("x", {1, 2}), "result.nested.x"),
}


def built(record_id: uuid.UUID | None = None, status: str = "pending") -> ma.AgentExecutionResult:
    builder = ma.SalesAgent().builder(uuid.uuid4()).status(status)
    if record_id is not None:
        builder = builder.id(record_id)
    if status != "pending":
        builder = builder.started_at(T0)
    return builder.result({"nested": {"x": 1}, "keep": [1, 2]}).build()


@pytest.fixture
def stored(engine: Engine) -> ma.AgentExecutionResult:
    record = built()
    store = ma.ExecutionStore(engine)
    store.save_execution(record)
    store.save_analysis_metrics(record.id, {"roi_percent": 4.0, "notes": {"a": 1}})
    store.log(record.id, "info", "saved", {"step": 1})
    return record


def save_one(engine: Engine, record: ma.AgentExecutionResult) -> None:
    ma.ExecutionStore(engine).save_execution(record)


def save_with_agent(engine: Engine, record: ma.AgentExecutionResult) -> None:
    ma.SalesAgent().save_execution(engine, record)


def save_bulk_new(engine: Engine, record: ma.AgentExecutionResult) -> None:
    # only new ids in the batch: the straight COPY path on PostgreSQL
    ma.ExecutionStore(engine).save_executions([built(), record, built()])


def save_bulk_generator(engine: Engine, record: ma.AgentExecutionResult) -> None:
    ma.ExecutionStore(engine).save_executions((r for r in [built(), built(), record]), batch_size=2)


SAVES = {
    "save_execution": save_one,
    "agent_save_execution": save_with_agent,
    "save_executions_copy": save_bulk_new,
    "save_executions_generator": save_bulk_generator,
}


@pytest.mark.parametrize("save", list(SAVES))
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_new_record_changed_after_build_is_refused(engine, stored, save, mutation):
    change, field = MUTATIONS[mutation]
    record = built()
    change(record.result)
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        SAVES[save](engine, record)
    assert info.value.field.startswith(field)
    assert "cycle" in info.value.reason or "cycle" not in mutation
    assert len(str(info.value)) < 1000
    after = snapshot(engine)
    if save == "save_executions_generator":  # the first batch of two was stored
        assert len(after["agent_executions"]) == len(before["agent_executions"]) + 2
        after["agent_executions"] = [
            row for row in after["agent_executions"]
            if row["id"] in {r["id"] for r in before["agent_executions"]}
        ]
    assert after == before


UPDATES = {
    "save_execution": lambda engine, record: ma.ExecutionStore(engine).save_execution(record),
    # an id already stored in the batch: the guarded lookup-and-update path
    "save_executions": lambda engine, record: ma.ExecutionStore(engine).save_executions(
        [built(), record]
    ),
}


@pytest.mark.parametrize("save", list(UPDATES))
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_an_update_changed_after_build_leaves_the_stored_row(engine, stored, save, mutation):
    change, field = MUTATIONS[mutation]
    update = built(stored.id, status="running")
    change(update.result)
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        UPDATES[save](engine, update)
    assert info.value.field.startswith(field)
    assert "cycle" in info.value.reason or "cycle" not in mutation
    assert snapshot(engine) == before
    assert ma.ExecutionStore(engine).get_execution(stored.id).status == "pending"


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_evolve_refuses_a_result_changed_in_place(engine, stored, mutation):
    change, field = MUTATIONS[mutation]
    loaded = ma.ExecutionStore(engine).get_execution(stored.id)
    change(loaded.result)
    with pytest.raises(ma.ValidationError) as info:
        loaded.evolve(status="running", started_at=T0)
    assert info.value.field.startswith(field)


def test_the_64_bit_bound_reads_back_exactly_everywhere(engine, tmp_path):
    record = built()
    record.result["nested"]["x"] = [2**63 - 1, -(2**63), 2**53 + 1]  # plain: still accepted
    ma.ExecutionStore(engine).save_executions([record])
    expected = {"nested": {"x": [2**63 - 1, -(2**63), 2**53 + 1]}, "keep": [1, 2]}
    assert ma.ExecutionStore(engine).get_execution(record.id).result == expected
    assert ma.read_summary(engine)["result"].tolist() == [expected]
    assert _read_summary_simple(engine)["result"].tolist() == [expected]
    for chunk in ma.iter_summary(engine):
        assert chunk["result"].tolist() == [expected]
    values = ma.read_summary(engine)["result"].iloc[0]["nested"]["x"]
    assert [type(v) for v in values] == [int, int, int]


# -- metrics and log metadata -------------------------------------------------------------------

BAD_DOCUMENTS: dict[str, tuple[Callable[[], Any], str, str]] = {
    # a document under the key "doc" -> the field named, after the argument's name; the reason
    "int_10_40": (lambda: {"x": 10**40}, ".doc.x", "64-bit"),
    "nan": (lambda: [math.nan], ".doc[0]", "NaN"),
    "cycle": (lambda: _self_dict(), ".doc.me", "cycle"),
    "deep_100000": (lambda: deep(100_000), ".doc.n", "nested deeper"),
    "int_key": (lambda: {3: "x"}, ".doc", "keys must be strings"),
}


def _self_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["me"] = value
    return value


def store(engine: Engine) -> ma.ExecutionStore:
    return ma.ExecutionStore(engine)


WRITES: dict[str, tuple[str, Callable[[Engine, uuid.UUID, Any], Any]]] = {
    "save_analysis_metrics": (
        "metrics",
        lambda e, i, doc: store(e).save_analysis_metrics(i, {"roi_percent": 1.0, "doc": doc}),
    ),
    "save_analysis_metrics_many": (
        "metrics",
        lambda e, i, doc: store(e).save_analysis_metrics_many(
            [(i, {"roi_percent": 1.0}), ma.MetricsEntry(i, {"doc": doc})]
        ),
    ),
    "agent_save_analysis_metrics": (
        "metrics", lambda e, i, doc: ma.SalesAgent().save_analysis_metrics(e, i, {"doc": doc})
    ),
    "log": ("metadata", lambda e, i, doc: store(e).log(i, "info", "m", {"doc": doc})),
    "agent_log": (
        "metadata", lambda e, i, doc: ma.SalesAgent().log(e, i, "info", "m", {"doc": doc})
    ),
    "log_many": (
        "metadata",
        lambda e, i, doc: store(e).log_many(
            [ma.LogEntry(i, "info", "ok"), ma.LogEntry(i, "info", "m", {"doc": doc})]
        ),
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("document", list(BAD_DOCUMENTS))
def test_metrics_and_metadata_get_the_same_json_rules(engine, stored, write, document):
    make, suffix, reason = BAD_DOCUMENTS[document]
    argument, call = WRITES[write]
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        call(engine, stored.id, make())
    assert info.value.field.startswith(argument + suffix)
    assert reason in info.value.reason
    assert len(str(info.value)) < 1000
    assert snapshot(engine) == before


def test_a_metrics_mapping_changed_after_the_call_changes_nothing_stored(engine, stored):
    metrics: dict[str, Any] = {"roi_percent": 2.0, "notes": {"a": 1}}
    store = ma.ExecutionStore(engine)
    row_id = store.save_analysis_metrics(stored.id, metrics)
    metrics["notes"]["a"] = 10**40
    metadata: dict[str, Any] = {"k": [1]}
    store.log(stored.id, "info", "m", metadata)
    metadata["k"].append(math.nan)
    rows = snapshot(engine)
    saved = next(r for r in rows["business_agent_analytics"] if r["id"] == row_id)
    assert saved["metrics"] == {"roi_percent": 2.0, "notes": {"a": 1}}
    assert {"k": [1]} in [r["metadata"] for r in rows["agent_execution_logs"]]
    assert saved["created_at"] > T0 - timedelta(days=1)
