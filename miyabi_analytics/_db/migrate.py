"""Schema migrations through alembic's command API, on a locked connection of the caller's."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, func, select

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.engine import connect
from miyabi_analytics.errors import SchemaError, ValidationError

__all__ = [
    "check_revision",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrate",
    "run_locked",
]

# Any constant works: it only has to be the same for every process migrating this database.
_PG_LOCK_KEY: Final = 0x6D69796162692D6D  # "miyabi-m"
# alembic's relative targets: [branch@][anchor]+N or -N ("head-1", "+1", "0004_heartbeat+1").
_RELATIVE: Final = re.compile(r"(?:(?P<branch>.+?)@)?(?P<anchor>\w+)?(?P<step>[+-]\d+)")


def _script_location() -> Path:
    """Migrations ship in the wheel as ``_migrations``; a checkout has them at the top level."""
    packaged = Path(str(resources.files("miyabi_analytics") / "_migrations"))
    if (packaged / "env.py").is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    cfg.set_main_option("path_separator", "os")
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(bind: Engine | Connection) -> str | None:
    """The revision the database is at, ``None`` if it was never migrated."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return MigrationContext.configure(bind).get_current_revision()


@contextmanager
def _engine_for(engine_or_url: Engine | str | URL | None) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = connect(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


def run_locked(engine: Engine, body: Callable[[Connection], None]) -> None:
    """Run ``body`` in one transaction that no other migrating process can enter at the same time.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: ``BEGIN IMMEDIATE`` (the write lock),
    with foreign keys off on this connection so batch table rebuilds keep child rows.
    """
    with engine.connect() as conn:
        sqlite = Dialect.of(conn) is Dialect.SQLITE
        if sqlite:  # PRAGMA foreign_keys is a no-op inside a transaction: set it before BEGIN
            _sqlite_pragma(conn, "PRAGMA foreign_keys = OFF")
            conn = conn.execution_options(miyabi_write=True)
        try:
            with conn.begin():
                if not sqlite:
                    conn.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                _refuse_newer_schema(conn)
                body(conn)
        finally:
            if sqlite:
                _sqlite_pragma(conn, "PRAGMA foreign_keys = ON")


def _sqlite_pragma(conn: Connection, pragma: str) -> None:
    """Run a PRAGMA on the raw connection, outside any transaction (it is in autocommit)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.execute(pragma)


def _refuse_newer_schema(conn: Connection) -> None:
    script = ScriptDirectory.from_config(_config())
    for rev in MigrationContext.configure(conn).get_current_heads():
        if not _known(script, rev):
            raise SchemaError(
                f"the database is at schema revision {rev!r}, which this miyabi-analytics does "
                f"not know (newest known: {script.get_current_head()!r}); upgrade "
                "miyabi-analytics instead of migrating"
            )


def _known(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is not None
    except (RevisionError, CommandError):
        return False


def check_revision(revision: object) -> str:
    """``revision`` if alembic can resolve it, else :class:`ValidationError`; opens no connection.

    Checked before any connection so a typo writes nothing (not even a new SQLite file). A step
    relative to the database's own revision (``+1``, ``-1``) can only be resolved against it:
    that happens inside the migration's transaction, which is rolled back if it fails.
    """
    if not isinstance(revision, str) or not revision.strip():
        raise ValidationError("revision", revision, "expected a revision id, 'head' or 'base'")
    relative = _RELATIVE.fullmatch(revision)
    target = revision
    if relative is not None:
        if relative["anchor"] is None:
            return revision
        branch = relative["branch"]
        target = f"{branch}@{relative['anchor']}" if branch else relative["anchor"]
    script = ScriptDirectory.from_config(_config())
    try:
        script.revision_map.get_revisions(target)
    except (RevisionError, CommandError) as exc:
        raise ValidationError("revision", revision, _revision_reason(script, exc)) from None
    return revision


def _revision_reason(script: ScriptDirectory, exc: Exception) -> str:
    """Alembic's own words for a bad target, with the revisions this code knows when unknown."""
    lines = str(exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if reason.startswith(("No such revision", "Can't locate revision")):
        known = [rev.revision for rev in script.walk_revisions()]
        reason = f"unknown revision (known: base, {', '.join(reversed(known))}, head)"
    return reason


def _run_command(
    engine_or_url: Engine | str | URL | None,
    revision: str,
    action: Callable[[Config, str], None],
) -> None:
    target = check_revision(revision)
    cfg = _config()
    with _engine_for(engine_or_url) as engine:

        def body(conn: Connection) -> None:
            cfg.attributes["connection"] = conn
            try:
                action(cfg, target)
            except (RevisionError, CommandError) as exc:  # e.g. "-1" below base: rolled back
                script = ScriptDirectory.from_config(cfg)
                raise ValidationError("revision", revision, _revision_reason(script, exc)) from None

        run_locked(engine, body)


def migrate(engine_or_url: Engine | str | URL | None = None, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; idempotent and safe to call from several processes.

    Raises:
        ValidationError: ``revision`` is not one alembic can resolve (nothing is written).
    """
    _run_command(engine_or_url, revision, command.upgrade)


def downgrade(engine_or_url: Engine | str | URL | None, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` removes every table).

    Raises:
        ValidationError: ``revision`` is not one alembic can resolve (nothing is written).
    """
    _run_command(engine_or_url, revision, command.downgrade)
