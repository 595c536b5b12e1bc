"""The order rows of ``business_agent_analytics`` and ``agent_execution_logs`` were written in.

:func:`write_order` (revision ``0007_write_order``): PostgreSQL's ``seq`` identity column,
SQLite's ``rowid``. Logs read back in it within an instant, and the summary's latest analytics
row is the last written of its ``created_at`` (:mod:`miyabi_analytics._db.summary`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnClause, ColumnElement, FromClause
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import WRITE_ORDER

__all__ = ["WriteOrder", "write_order"]


class WriteOrder(ColumnClause[int]):
    """The write order of a row of ``source``: PostgreSQL's ``seq`` column, SQLite's ``rowid``.

    Both are assigned by the database as the row is inserted, greater than every row's before
    it, whoever writes (see :data:`~miyabi_analytics._db.schema.WRITE_ORDER`). Only the tables
    with an order column (and their aliases) have one. Label it where it is selected: the two
    databases name it differently.
    """

    inherit_cache = True

    def __init__(self, source: FromClause) -> None:
        super().__init__(WRITE_ORDER, BigInteger(), _selectable=source)


@compiles(WriteOrder, Dialect.SQLITE)
def _sqlite_write_order(element: WriteOrder, compiler: SQLCompiler, **kw: Any) -> str:
    # No INTEGER PRIMARY KEY aliases it, so an insert takes the largest rowid + 1; VACUUM and
    # table rebuilds copy rows in rowid order, so the order survives them.
    rowid: ColumnClause[int] = ColumnClause("rowid", BigInteger(), _selectable=element.table)
    return compiler.process(rowid, **kw)


def write_order(source: FromClause) -> ColumnElement[int]:
    """The order rows of ``source`` were inserted in (a table with an order column, or an alias)."""
    return WriteOrder(source)
