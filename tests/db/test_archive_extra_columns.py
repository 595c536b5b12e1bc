"""``purge --archive`` and restore keep upstream-only columns, column for column (issue 14).

An adopted Miyabi database has columns this package does not define:
``agent_executions.options`` (jsonb ``DEFAULT '{}'``) and ``business_agent_analytics.updated_at``
(timestamptz ``DEFAULT now()``, kept by an upstream trigger). Each test adds them to a fresh
database of its own, purges into an archive, restores, and compares every column of every row,
as the database returns them, with what was there before the purge.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

import miyabi_analytics as ma
from miyabi_analytics import retention
from miyabi_analytics._archive_layout import FORMAT
from miyabi_analytics.cli import main

TABLES = ("agent_executions", "business_agent_analytics", "agent_execution_logs")
OLD = datetime.now(UTC) - timedelta(days=200)
OPTIONS = [
    {"model": "claude", "temperature": 0.25, "tags": ["a", "日本"], "nested": {"deep": [1, None]}},
    {},
    None,  # SQL NULL, not the JSON document null
    {"unicode": "é\u2028", "big": 2**53},
]

UPSTREAM_PG = [
    "ALTER TABLE agent_executions ADD COLUMN options JSONB DEFAULT '{}'::jsonb",
    "ALTER TABLE business_agent_analytics ADD COLUMN updated_at TIMESTAMPTZ DEFAULT NOW()",
    "CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS TRIGGER AS $$ "
    "BEGIN NEW.updated_at = NOW(); RETURN NEW; END; $$ language 'plpgsql'",
    "CREATE TRIGGER update_business_agent_analytics_updated_at BEFORE UPDATE ON "
    "business_agent_analytics FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()",
]
UPSTREAM_SQLITE = [
    "ALTER TABLE agent_executions ADD COLUMN options TEXT DEFAULT '{}'",
    "ALTER TABLE business_agent_analytics ADD COLUMN updated_at TIMESTAMP",
]


@pytest.fixture
def upstream(empty_url) -> Engine:
    engine = ma.connect(empty_url)
    ma.migrate(engine)
    statements = UPSTREAM_PG if engine.dialect.name == "postgresql" else UPSTREAM_SQLITE
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    yield engine
    engine.dispose()


def seed(engine: Engine, n: int) -> list[uuid.UUID]:
    """``n`` old executions with metrics and logs; the upstream columns set by plain SQL."""
    agent = ma.agent_for("AnalyticsAgent")
    records = []
    for i in range(n):
        start = OLD + timedelta(seconds=i)
        builder = agent.builder(uuid.uuid4()).result({"i": i})
        records.append(
            builder.status("completed").started_at(start).completed_at(start).build()
        )
    store = ma.ExecutionStore(engine)
    store.save_executions(records)
    store.log_many(ma.LogEntry(r.id, "info", f"line {k}") for k, r in enumerate(records))
    store.save_analysis_metrics_many(
        (r.id, {"roi_percent": 1.5 * k}) for k, r in enumerate(records)
    )
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for k, record in enumerate(records):
            options = OPTIONS[k % len(OPTIONS)]
            conn.execute(
                text(
                    "UPDATE agent_executions SET options = CAST(:options AS JSONB) WHERE id = :id"
                    if pg
                    else "UPDATE agent_executions SET options = :options WHERE id = :id"
                ),
                {
                    "options": None if options is None else json.dumps(options),
                    "id": record.id if pg else str(record.id),
                },
            )
            if k == 1:
                continue  # its analytics row keeps a NULL updated_at
            stamp = OLD + timedelta(days=k, microseconds=123456 + k)
            conn.execute(
                text(
                    "UPDATE business_agent_analytics SET updated_at = :stamp "
                    "WHERE execution_id = :id"
                ),
                {"stamp": stamp if pg else stamp.strftime("%Y-%m-%d %H:%M:%S.%f"),
                 "id": record.id if pg else str(record.id)},
            )
    return [r.id for r in records]


def snapshot(engine: Engine) -> dict[str, dict[str, dict[str, Any]]]:
    """Every column of every row, as the database gives it back (no types of ours applied)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows = conn.execute(text(f"SELECT * FROM {table}")).mappings().all()  # noqa: S608
            out[table] = {str(row["id"]): dict(row) for row in rows}
    return out


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(table, row id, column, before, after) for each value that is not the same."""
    out = []
    for table in TABLES:
        assert before[table].keys() == after[table].keys(), table
        for key, row in before[table].items():
            assert row.keys() == after[table][key].keys(), table
            for column, value in row.items():
                if column == "seq":
                    continue  # our identity write order: a restored row is numbered anew
                if after[table][key][column] != value:
                    out.append((table, key, column, value, after[table][key][column]))
    return out


def test_purge_and_restore_round_trip_every_column(upstream, tmp_path):
    ids = seed(upstream, 6)
    before = snapshot(upstream)
    assert "options" in next(iter(before["agent_executions"].values()))
    assert "updated_at" in next(iter(before["business_agent_analytics"].values()))
    archive = tmp_path / "archive"

    report = retention.purge(upstream, "90d", archive_dir=archive)
    assert report.executions == 6
    assert snapshot(upstream) == {table: {} for table in TABLES}
    archived = retention.read_archive(archive)
    assert "options" in archived["agent_executions"].column_names
    assert "updated_at" in archived["business_agent_analytics"].column_names
    options = {
        row["id"]: row["options"] for row in archived["agent_executions"].to_pylist()
    }
    for k, key in enumerate(ids):
        expected = OPTIONS[k % len(OPTIONS)]
        assert (None if options[str(key)] is None else json.loads(options[str(key)])) == expected

    assert retention.restore(upstream, archive, ids) == 6
    # Every table, every row, every column, upstream-only ones too.
    assert differences(before, snapshot(upstream)) == []


def test_cli_purge_archives_the_upstream_columns(upstream, empty_url, tmp_path, capsys):
    ids = seed(upstream, 3)
    before = snapshot(upstream)
    archive = tmp_path / "archive"
    url = empty_url.render_as_string(hide_password=False)
    assert main(["purge", "--url", url, "--older-than", "90d", "--archive", str(archive)]) == 0
    assert "purged 3 executions" in capsys.readouterr().out
    parts = {p.name.split(".")[1]: p for p in archive.glob("*.parquet")}
    assert "options" in pq.read_schema(parts["agent_executions"]).names
    assert "updated_at" in pq.read_schema(parts["business_agent_analytics"]).names
    assert retention.restore(upstream, archive, ids) == 3
    assert differences(before, snapshot(upstream)) == []


def _old_archive(engine: Engine, directory: Path) -> list[uuid.UUID]:
    """An archive written before the upstream columns existed (as the current code writes it)."""
    ids = seed_plain(engine, 2)
    retention.purge(engine, "90d", archive_dir=directory)
    manifests = list(directory.glob("*.manifest.json"))
    assert manifests
    assert json.loads(manifests[0].read_text())["format"] == FORMAT
    return ids


def seed_plain(engine: Engine, n: int) -> list[uuid.UUID]:
    agent = ma.agent_for("AnalyticsAgent")
    records = [
        agent.builder(uuid.uuid4())
        .status("completed")
        .started_at(OLD)
        .completed_at(OLD)
        .build()
        for _ in range(n)
    ]
    store = ma.ExecutionStore(engine)
    store.save_executions(records)
    store.save_analysis_metrics_many((r.id, {"roi_percent": 2.0}) for r in records)
    return [r.id for r in records]


def test_old_archive_restores_into_a_table_with_more_columns(empty_url, tmp_path):
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine)
        archive = tmp_path / "archive"
        ids = _old_archive(engine, archive)
        statements = UPSTREAM_PG if engine.dialect.name == "postgresql" else UPSTREAM_SQLITE
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
        # The archive has no options column: restore leaves it to the table's default.
        assert retention.restore(engine, archive, ids) == 2
        after = snapshot(engine)
        assert len(after["agent_executions"]) == 2
        stored_options = [row["options"] for row in after["agent_executions"].values()]
        assert all(o in ({}, "{}") for o in stored_options)
        # ... and a purge of the wider table into the same directory archives it.
        retention.purge(engine, "90d", archive_dir=archive)
        archived = retention.read_archive(archive)
        assert archived["agent_executions"].column("options").to_pylist() == ["{}", "{}"]
    finally:
        engine.dispose()


# -- other column types an upstream database may have ---------------------------------------

ODD_PG = {  # column type -> a value as SQL text
    "text[]": "ARRAY['a', 'b c', NULL]",
    "uuid[]": "ARRAY['7c9e6679-7425-40de-944b-e07fc1f90ae7']::uuid[]",
    "numeric(30,12)": "123456789012345678.123456789012",
    "interval": "'1 day 02:03:04.5'",
    "date": "'2025-10-24'",
    "timestamp": "'2025-10-24 09:00:00.25'",  # without time zone, read in the session's zone
    "int4range": "'[1,5)'",
    "inet": "'10.1.2.3/8'",
}
ODD_SQLITE = {
    "TIMESTAMP": "'2026-01-02T03:04:05Z'",  # not SQLAlchemy's text form: must stay as it is
    "DATETIME": "1700000000",  # an epoch number in a datetime column
    "DATE": "'2025-10-24'",
    "NUMERIC": "'12.50'",
    "DECIMAL(30,12)": "'123456789012345678.123456789012'",
    "BLOB": "x'00ff'",
}


def test_odd_upstream_column_types_round_trip(empty_url, tmp_path):
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine)
        pg = engine.dialect.name == "postgresql"
        odd = ODD_PG if pg else ODD_SQLITE
        names = {kind: f"extra_{n}" for n, kind in enumerate(odd)}
        with engine.begin() as conn:
            if pg:  # a session zone that is not UTC: naive timestamps must not move
                zone = f"ALTER DATABASE {empty_url.database} SET timezone TO 'Asia/Tokyo'"
                conn.execute(text(zone))
            for kind, name in names.items():
                conn.execute(text(f"ALTER TABLE agent_executions ADD COLUMN {name} {kind}"))
        engine.dispose()
        ids = seed_plain(engine, 2)
        with engine.begin() as conn:
            for kind, name in names.items():
                conn.execute(text(f"UPDATE agent_executions SET {name} = {odd[kind]}"))  # noqa: S608
        before = snapshot(engine)
        archive = tmp_path / "archive"
        assert retention.purge(engine, "90d", archive_dir=archive).executions == 2
        assert retention.restore(engine, archive, ids) == 2
        assert differences(before, snapshot(engine)) == []
    finally:
        engine.dispose()


def test_archive_of_the_former_typed_columns_still_reads_and_restores(
    empty_url, tmp_path, monkeypatch
):
    """Batches written when such columns were archived typed (a numeric as a float, a SQLite
    timestamp as a timestamp) read together with the new text ones, and restore as before."""
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine)
        pg = engine.dialect.name == "postgresql"
        kind, value = ("numeric(10,2)", "12.5") if pg else ("TIMESTAMP", "'2026-01-02 03:04:05'")
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE agent_executions ADD COLUMN extra {kind}"))
        archive = tmp_path / "archive"
        first = seed_plain(engine, 2)
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE agent_executions SET extra = {value}"))  # noqa: S608
        with monkeypatch.context() as former:  # the former rule: every column typed
            former.setattr("miyabi_analytics._archive_parts._kept_as_text", lambda *a: False)
            retention.purge(engine, "90d", archive_dir=archive)
        typed = next(archive.glob("*.agent_executions.parquet"))
        assert not pq.read_schema(typed).field("extra").type.equals("string")
        second = seed_plain(engine, 1)
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE agent_executions SET extra = {value}"))  # noqa: S608
        retention.purge(engine, "90d", archive_dir=archive)

        rows = retention.read_archive(archive)["agent_executions"]
        assert rows.num_rows == 3
        assert rows.schema.field("extra").type.equals("string")
        assert retention.restore(engine, archive, [*first, *second]) == 3
        with engine.connect() as conn:
            restored = conn.execute(text("SELECT extra FROM agent_executions")).scalars().all()
        expected = {"12.50"} if pg else {"2026-01-02 03:04:05.000000", "2026-01-02 03:04:05"}
        assert {str(v) for v in restored} <= expected
        assert len(restored) == 3
    finally:
        engine.dispose()
