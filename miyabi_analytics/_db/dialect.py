"""The two databases this package speaks, as an enum: one place that knows their names."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import URL, Connection, Engine
from sqlalchemy.engine.interfaces import Dialect as SQLDialect

__all__ = ["Dialect"]


class Dialect(StrEnum):
    """PostgreSQL (the reference) or SQLite (the embedded default).

    The values are SQLAlchemy's dialect names, so a member also works where SQLAlchemy wants
    a name (``@compiles(Element, Dialect.SQLITE)``, ``with_variant``).
    """

    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"

    @classmethod
    def of(cls, source: Engine | Connection | SQLDialect | URL) -> Dialect:
        """The dialect of an engine, a connection, a SQLAlchemy dialect or a URL.

        Anything else (MySQL, say) is refused here, before a statement is built for it.
        """
        if isinstance(source, URL):
            name = source.get_backend_name()
        elif isinstance(source, Engine | Connection):
            name = source.dialect.name
        else:
            name = source.name
        if name == "postgres":
            name = cls.POSTGRESQL.value
        try:
            return cls(name)
        except ValueError:
            raise NotImplementedError(
                f"miyabi-analytics speaks PostgreSQL and SQLite, not {name}"
            ) from None

    @property
    def is_postgresql(self) -> bool:
        """Whether this is the reference database (with COPY, RLS, LISTEN, ...)."""
        return self is Dialect.POSTGRESQL
