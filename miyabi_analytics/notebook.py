"""Which database a notebook reads, shown so that nobody can mistake it (the notebooks use it).

A notebook's kernel starts in the notebook's directory (``notebooks/`` when JupyterLab, nbconvert
or papermill is run from the repository root), so the embedded default ``sqlite:///miyabi.db``
would create and read an empty ``notebooks/miyabi.db`` next to it while ``miyabi-analytics demo``
loaded ``./miyabi.db`` at the root. :func:`notebook_url` therefore looks for the demo database
where a new user made it, and :func:`open_database` prints the database as an absolute URL and,
when it holds no executions, one line that says so.

Only the notebooks look around like this; the CLI and the Python API keep the contract's
resolution (argument, ``$MIYABI_DATABASE_URL``, ``$DATABASE_URL``, ``./miyabi.db``).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Final

from sqlalchemy import URL, Engine, create_engine, exists, func, select
from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.engine import connect, mask_url, resolve_url
from miyabi_analytics._db.migrate import migrate
from miyabi_analytics._db.schema import executions

__all__ = [
    "DEMO_FILE",
    "absolute_url",
    "describe_database",
    "jupyter_command",
    "notebook_url",
    "open_database",
    "shown_url",
]

DEMO_FILE: Final = "miyabi.db"
"""The embedded database's file name: where ``miyabi-analytics demo`` loads by default."""
_ENV_VARIABLES: Final = ("MIYABI_DATABASE_URL", "DATABASE_URL")


def absolute_url(url: str | URL | None = None, *, cwd: str | os.PathLike[str] | None = None) -> URL:
    """:func:`~miyabi_analytics._db.engine.resolve_url`, with a SQLite file as an absolute path.

    A relative SQLite path is relative to ``cwd`` (default: the working directory), which is
    what SQLite would open; ``:memory:`` stays as it is.
    """
    resolved = resolve_url(url)
    database = resolved.database
    if resolved.get_backend_name() != Dialect.SQLITE or database in (None, "", ":memory:"):
        return resolved
    if database.startswith("file:"):  # a URI filename: SQLite resolves it, not us
        return resolved
    base = Path(cwd) if cwd is not None else Path.cwd()
    return resolved.set(database=str((base / Path(database).expanduser()).resolve()))


def shown_url(url: str | URL | None = None) -> str:
    """The URL to show a person: resolved, absolute for SQLite, password masked."""
    return mask_url(absolute_url(url))


def _holds_executions(path: Path) -> bool:
    """Whether the SQLite file at ``path`` has an execution; opened read-only, never created."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    probe = create_engine(URL.create(Dialect.SQLITE, database=uri, query={"uri": "true"}))
    try:
        with probe.connect() as conn:
            return bool(conn.execute(select(exists().select_from(executions))).scalar())
    except SQLAlchemyError:  # not a database, or not migrated: nothing to read there
        return False
    finally:
        probe.dispose()


def notebook_url(
    url: str | URL | None = None, *, cwd: str | os.PathLike[str] | None = None
) -> URL:
    """The database a notebook reads, SQLite paths made absolute.

    The first that applies: ``url``; ``$MIYABI_DATABASE_URL``; ``$DATABASE_URL``; else the
    ``miyabi.db`` of the working directory or of its parent (the repository root, for a
    notebook in ``notebooks/``), preferring one that holds executions; else a new
    ``miyabi.db`` in the working directory.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    if url or any(os.environ.get(name) for name in _ENV_VARIABLES):
        return absolute_url(url, cwd=base)
    candidates = [p for p in (base / DEMO_FILE, base.parent / DEMO_FILE) if p.is_file()]
    chosen = next((p for p in candidates if _holds_executions(p)), None)
    if chosen is None:
        chosen = candidates[0] if candidates else base / DEMO_FILE
    return absolute_url(URL.create(Dialect.SQLITE, database=str(chosen.resolve())))


def describe_database(engine: Engine) -> str:
    """``database: <absolute URL> (N executions)``; a second line if it holds none."""
    shown = shown_url(engine.url)
    with engine.connect() as conn:
        count = int(conn.execute(select(func.count()).select_from(executions)).scalar_one())
    if count:
        return f"database: {shown} ({count:,} executions)"
    return (
        f"database: {shown}\n"
        "This database holds no executions yet: load the demo "
        "(miyabi-analytics demo) or set MIYABI_DATABASE_URL to yours."
    )


def open_database(database_url: str | URL | None = None) -> Engine:
    """Connect to :func:`notebook_url`, migrate it (idempotent) and print what it is.

    Prints :func:`describe_database`: the absolute URL, password masked, and the number of
    executions, or one line saying the database holds none.
    """
    engine = connect(notebook_url(database_url))
    migrate(engine)
    print(describe_database(engine))
    return engine


def jupyter_command(url: str | URL | None = None) -> str:
    """``MIYABI_DATABASE_URL=<absolute URL> jupyter lab``: the notebooks on this database.

    The password, if any, is masked: the printed command is to read, and to complete by hand.
    """
    return f"MIYABI_DATABASE_URL={shlex.quote(shown_url(url))} jupyter lab"
