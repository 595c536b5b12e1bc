"""Issue 12, item 10: wrong containers and elements in the bulk APIs, and export_summary paths.

Each is a ValidationError naming the argument (``results``, ``entries``, ``path``) and the
value, and for a bad element its index and type; the database is exactly as before (every row
of every table, so an update in a refused batch is not applied either), on both dialects.
Generators still work and are read batch by batch: a bad element refuses its own batch only.
"""

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

import miyabi_analytics as ma
from miyabi_analytics._db.schema import analytics, executions, logs

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def snapshot(engine: Engine) -> dict[str, list[Any]]:
    """Every row of the three tables, in a fixed order."""
    with engine.connect() as conn:
        return {
            table.name: [
                row._asdict() for row in conn.execute(select(table).order_by(table.c.id))
            ]
            for table in (executions, analytics, logs)
        }


def record(status: str = "pending", **result: Any) -> ma.AgentExecutionResult:
    builder = ma.SalesAgent().builder(uuid.uuid4()).status(status).result(result or {"n": 1})
    if status != "pending":
        builder = builder.started_at(T0)
    return builder.build()


@pytest.fixture
def stored(engine: Engine) -> ma.AgentExecutionResult:
    """One stored, running execution with metrics and a log line: the state to keep."""
    running = record("running")
    store = ma.ExecutionStore(engine)
    store.save_execution(running)
    store.save_analysis_metrics(running.id, {"roi_percent": 1.5})
    store.log(running.id, "info", "started")
    return running


# -- save_executions ----------------------------------------------------------------------------

BAD_RESULTS: dict[str, Any] = {
    "int": 5,
    "none": None,
    "string": "results",
    "bytes": b"results",
    "dict_of_records": None,  # built in the test: {id: record}
    "one_record": None,  # built in the test: a record instead of a list of them
    "object": object(),
}


@pytest.mark.parametrize("kind", list(BAD_RESULTS))
def test_save_executions_refuses_a_wrong_container(engine, stored, kind):
    update = stored.evolve(status="completed", completed_at=T0 + timedelta(minutes=1))
    value = {
        "dict_of_records": {update.id: update},
        "one_record": update,
    }.get(kind, BAD_RESULTS[kind])
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(engine).save_executions(value)
    assert info.value.field == "results"
    assert info.value.value is value
    assert "iterable" in info.value.reason
    assert snapshot(engine) == before


BAD_ELEMENTS: dict[str, Any] = {
    "int": 5,
    "none": None,
    "dict": {"id": uuid.uuid4(), "agent_type": "SalesAgent"},
    "string": "'; DROP TABLE agent_executions; --",
    "metrics_entry": ma.MetricsEntry(uuid.uuid4(), {"roi_percent": 1.0}),
}


@pytest.mark.parametrize("as_generator", [False, True], ids=["list", "generator"])
@pytest.mark.parametrize("kind", list(BAD_ELEMENTS))
def test_save_executions_names_a_bad_element_by_index_and_type(
    engine, stored, kind, as_generator
):
    bad = BAD_ELEMENTS[kind]
    update = stored.evolve(status="completed", completed_at=T0 + timedelta(minutes=1))
    items = [record(), update, record(), bad, record()]
    before = snapshot(engine)
    argument = (item for item in items) if as_generator else items
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(engine).save_executions(argument)
    assert info.value.field == "results[3]"
    assert info.value.value is bad
    assert type(bad).__name__ in info.value.reason
    assert snapshot(engine) == before  # the whole batch refused, the update too


def test_a_bad_record_in_a_batch_names_its_field_and_index(engine, stored):
    bad = dataclasses.replace(record(), quality_score=101)  # past evolve()'s validation
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(engine).save_executions([record(), bad])
    assert info.value.field == "quality_score"
    assert info.value.value == 101
    assert "(in results[1])" in info.value.reason
    assert snapshot(engine) == before


def test_a_generator_is_read_batch_by_batch_and_a_bad_element_refuses_its_batch(engine):
    good = [record() for _ in range(7)]
    pulled: list[int] = []

    def generate() -> Iterator[Any]:
        for index, item in enumerate([*good[:5], 5, *good[5:]]):
            pulled.append(index)
            yield item

    store = ma.ExecutionStore(engine)
    with pytest.raises(ma.ValidationError) as info:
        store.save_executions(generate(), batch_size=2)
    assert info.value.field == "results[5]"
    assert pulled == [0, 1, 2, 3, 4, 5]  # stopped at the bad element, the rest never read
    stored_ids = {row["id"] for row in snapshot(engine)["agent_executions"]}
    assert stored_ids == {r.id for r in good[:4]}  # two whole batches; the third refused


def test_generators_and_other_iterables_still_work(engine):
    store = ma.ExecutionStore(engine)
    first = [record() for _ in range(5)]
    assert store.save_executions((r for r in first), batch_size=2) == 5
    assert store.save_executions(tuple(record() for _ in range(2))) == 2
    assert store.save_executions({r.id: r for r in [record()]}.values()) == 1
    assert store.save_executions(iter([])) == 0
    assert len(snapshot(engine)["agent_executions"]) == 8


# -- save_analysis_metrics_many and log_many ----------------------------------------------------


@pytest.mark.parametrize("method", ["save_analysis_metrics_many", "log_many"])
@pytest.mark.parametrize(
    "value", [5, None, "entries", b"entries", {"a": 1}, object()],
    ids=["int", "none", "string", "bytes", "dict", "object"],
)
def test_entry_apis_refuse_a_wrong_container(engine, stored, method, value):
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        getattr(ma.ExecutionStore(engine), method)(value)
    assert info.value.field == "entries"
    assert info.value.value is value
    assert snapshot(engine) == before


def test_one_entry_instead_of_a_list_is_refused(engine, stored):
    before = snapshot(engine)
    store = ma.ExecutionStore(engine)
    entry = ma.MetricsEntry(stored.id, {"roi_percent": 3.0})
    with pytest.raises(ma.ValidationError, match="one MetricsEntry") as info:
        store.save_analysis_metrics_many(entry)
    assert info.value.field == "entries"
    line = ma.LogEntry(stored.id, "info", "x")
    with pytest.raises(ma.ValidationError, match="one LogEntry"):
        store.log_many(line)
    assert snapshot(engine) == before


BAD_METRICS_ENTRIES: dict[str, Any] = {
    "int": 5,
    "none": None,
    "dict": {"execution_id": "x", "metrics": {}},
    "two_characters": "ab",  # once taken for (execution_id, metrics)
    "one_tuple": ("only-an-id",),
    "four_tuple": (1, 2, 3, 4),
    "log_entry": ma.LogEntry(uuid.uuid4(), "info", "x"),
}


@pytest.mark.parametrize("as_generator", [False, True], ids=["list", "generator"])
@pytest.mark.parametrize("kind", list(BAD_METRICS_ENTRIES))
def test_metrics_many_names_a_bad_element(engine, stored, kind, as_generator):
    bad = BAD_METRICS_ENTRIES[kind]
    items = [
        ma.MetricsEntry(stored.id, {"roi_percent": 2.0}),
        (stored.id, {"engagement_score": 5}),
        bad,
    ]
    before = snapshot(engine)
    argument = iter(items) if as_generator else items
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(engine).save_analysis_metrics_many(argument)
    assert info.value.field == "entries[2]"
    assert info.value.value is bad
    assert type(bad).__name__ in info.value.reason
    assert snapshot(engine) == before


BAD_LOG_ENTRIES: dict[str, Any] = {
    "int": 5,
    "none": None,
    "dict": {"execution_id": "x", "level": "info", "message": "m"},
    "tuple": (uuid.uuid4(), "info", "m"),
    "string": "info",
    "metrics_entry": ma.MetricsEntry(uuid.uuid4(), {}),
}


@pytest.mark.parametrize("kind", list(BAD_LOG_ENTRIES))
def test_log_many_names_a_bad_element(engine, stored, kind):
    bad = BAD_LOG_ENTRIES[kind]
    before = snapshot(engine)
    with pytest.raises(ma.ValidationError) as info:
        ma.ExecutionStore(engine).log_many([ma.LogEntry(stored.id, "info", "ok"), bad])
    assert info.value.field == "entries[1]"
    assert info.value.value is bad
    assert type(bad).__name__ in info.value.reason
    assert snapshot(engine) == before


def test_a_bad_field_in_an_entry_names_the_field_and_the_index(engine, stored):
    before = snapshot(engine)
    store = ma.ExecutionStore(engine)
    with pytest.raises(ma.ValidationError) as info:
        store.save_analysis_metrics_many(
            [(stored.id, {"roi_percent": 1.0}), (stored.id, {"engagement_score": 101})]
        )
    assert info.value.field == "metrics.engagement_score"
    assert "(in entries[1])" in info.value.reason
    with pytest.raises(ma.ValidationError) as info:
        store.log_many([ma.LogEntry(stored.id, "info", "ok"), ma.LogEntry(stored.id, "loud", "x")])
    assert info.value.field == "level"
    assert "(in entries[1])" in info.value.reason
    assert snapshot(engine) == before


def test_entry_generators_still_work(engine, stored):
    store = ma.ExecutionStore(engine)
    metrics = (
        (stored.id, {"roi_percent": float(n)}, T0 + timedelta(seconds=n)) for n in range(3)
    )
    assert store.save_analysis_metrics_many(metrics, batch_size=2) == 3
    lines = (ma.LogEntry(stored.id, "INFO", f"line {n}") for n in range(3))
    assert store.log_many(lines, batch_size=2) == 3
    after = snapshot(engine)
    assert len(after["business_agent_analytics"]) == 4
    assert len(after["agent_execution_logs"]) == 4


# -- export_summary -----------------------------------------------------------------------------


def export_targets(tmp: Path) -> dict[str, Any]:
    (tmp / "a_file").write_text("not a directory")
    return {
        "existing_directory": tmp,
        "existing_directory_as_text": str(tmp) + "/",
        "missing_parent": tmp / "missing" / "summary.parquet",
        "parent_is_a_file": tmp / "a_file" / "summary.parquet",
        "int": 5,
        "none": None,
        "bytes": b"summary.parquet",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "existing_directory", "existing_directory_as_text", "missing_parent",
        "parent_is_a_file", "int", "none", "bytes",
    ],
)
def test_export_summary_refuses_a_path_it_cannot_write(engine, stored, tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    target = export_targets(out)[kind]
    listing = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(ma.ValidationError) as info:
        ma.export_summary(engine, target)
    assert info.value.field == "path"
    assert info.value.value in (target, str(target))
    assert sorted(p.name for p in out.rglob("*")) == listing


def test_export_summary_still_writes_a_file(engine, stored, tmp_path):
    import pyarrow.parquet as pq

    target = tmp_path / "summary.parquet"
    assert ma.export_summary(engine, target) == 1
    assert pq.read_table(target).num_rows == 1
    assert ma.export_summary(engine, str(target)) == 1  # over the old file, as text
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".parquet") == [target.name]
