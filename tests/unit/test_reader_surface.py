"""Issue 13, items 4 and 7: the reader's public face; the fast-read backends, one interface."""

import inspect
from pathlib import Path

import pytest
from sqlalchemy import create_engine

import miyabi_analytics as ma
from miyabi_analytics import reader
from miyabi_analytics._db.fastread import source_for
from miyabi_analytics._db.fastread.postgres import PostgresBatches
from miyabi_analytics._db.fastread.rows import RowBatches
from miyabi_analytics._db.fastread.sqlite import SqliteFileBatches
from miyabi_analytics.filters import FilterArgs

PUBLIC = [
    "export_summary", "iter_summary", "read_logs", "read_summary", "read_summary_arrow",
    "read_transitions", "replay",
]


def test_reader_exports_only_the_readers():
    assert reader.__all__ == PUBLIC
    for name in ("read_summary_simple", "summary_columns"):
        assert not hasattr(reader, name)
        assert name not in ma.__all__
    assert callable(reader._read_summary_simple)  # test scaffolding, under a private name


@pytest.mark.parametrize(
    "name", ["read_summary", "read_summary_arrow", "iter_summary", "export_summary"]
)
def test_summary_readers_take_the_filters_once(name):
    """The six filter keywords come as **filters typed by FilterArgs, never spelled again."""
    parameters = inspect.signature(getattr(reader, name)).parameters
    assert not set(FilterArgs.__annotations__) & set(parameters)
    (variadic,) = [p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert "FilterArgs" in str(variadic.annotation)


def test_reader_modules_are_small():
    for path in Path(reader.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) < 300, path.name


def test_each_read_takes_its_backend(tmp_path):
    pg = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    sqlite_file = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    memory = create_engine("sqlite://")
    try:
        assert isinstance(source_for(pg, None), PostgresBatches)
        assert isinstance(source_for(pg, 10), PostgresBatches)
        assert isinstance(source_for(sqlite_file, None), SqliteFileBatches)
        assert isinstance(source_for(sqlite_file, 10), RowBatches)  # streamed: in order
        assert isinstance(source_for(memory, None), RowBatches)  # private to its connection
        with sqlite_file.connect() as conn:  # a caller's connection reads through itself
            assert isinstance(source_for(conn, None), RowBatches)
    finally:
        for engine in (pg, sqlite_file, memory):
            engine.dispose()
