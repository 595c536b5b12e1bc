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

from miyabi_analytics._db import adopt
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.engine import connect
from miyabi_analytics._db.summary import Shape, Tie, view_ddl
from miyabi_analytics.errors import SchemaError, ValidationError

__all__ = [
    "check_revision",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrate",
    "run_locked",
]

UPSTREAM: Final = "upstream"
"""The downgrade target that gives an adopted database its upstream Miyabi shape back."""

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
    action: Callable[[Config, str, Connection], list[str]],
) -> list[str]:
    target = check_revision(revision)
    cfg = _config()
    lines: list[str] = []
    with _engine_for(engine_or_url) as engine:

        def body(conn: Connection) -> None:
            cfg.attributes["connection"] = conn
            try:
                lines.extend(action(cfg, target, conn))
            except (RevisionError, CommandError) as exc:  # e.g. "-1" below base: rolled back
                script = ScriptDirectory.from_config(cfg)
                raise ValidationError("revision", revision, _revision_reason(script, exc)) from None

        run_locked(engine, body)
    return lines


def _adopted_view_sql(conn: Connection) -> str:
    """Revision 0001's view, which adoption creates in place of upstream's."""
    return view_ddl(conn.dialect, tie=Tie.ID, shape=Shape.ORIGINAL)


def _pending(cfg: Config, start: str | None, target: str) -> list[str]:
    """One line per revision an upgrade from ``start`` to ``target`` would apply, oldest first."""
    script = ScriptDirectory.from_config(cfg)
    revisions = script.iterate_revisions(target, start or "base")
    return [f"apply revision {rev.revision}: {rev.doc}" for rev in reversed(list(revisions))]


def _upgrade(cfg: Config, target: str, conn: Connection, *, dry_run: bool) -> list[str]:
    """Adopt an upstream database first if that is what this is, then upgrade; the lines."""
    lines: list[str] = []
    kind = adopt.classify(conn)
    start = current_revision(conn)
    if kind is adopt.Kind.UPSTREAM:
        steps = adopt.adoption_steps(conn, _adopted_view_sql(conn))
        lines += [step.line for step in steps]
        lines.append(f"record the database as at revision {adopt.ADOPTED_REVISION}")
        if not dry_run:
            for step in steps:
                step.run(conn)
            command.stamp(cfg, adopt.ADOPTED_REVISION)
        start = adopt.ADOPTED_REVISION
    lines += _pending(cfg, start, target)
    revalidate = kind is adopt.Kind.OURS and adopt.is_adopted(conn)
    if dry_run:
        return lines + ([step.line for step in adopt.validation_steps(conn)] if revalidate else [])
    command.upgrade(cfg, target)
    if revalidate:  # the rules adoption left NOT VALID, once the rows allow them
        for step in adopt.validation_steps(conn):
            step.run(conn)
            lines.append(step.line)
    return lines


def migrate(
    engine_or_url: Engine | str | URL | None = None,
    revision: str = "head",
    *,
    dry_run: bool = False,
) -> list[str]:
    """Upgrade the schema to ``revision``; idempotent and safe to call from several processes.

    A database the upstream Miyabi migrations created (their tables, no alembic version) is
    adopted in place first (:mod:`miyabi_analytics._db.adopt`): what is ours is added, theirs
    is kept, no stored row is rewritten. Rules the stored rows break are left ``NOT VALID``
    and validated by a later call once the data allows.

    Returns one line per change made, or with ``dry_run`` that would be made (nothing is
    written then, not even a new SQLite file).

    Raises:
        ValidationError: ``revision`` is not one alembic can resolve (nothing is written).
        SchemaError: the database is neither empty, ours nor upstream's (nothing is written).
    """
    if dry_run:
        return _dry_run(engine_or_url, revision)

    def action(cfg: Config, target: str, conn: Connection) -> list[str]:
        return _upgrade(cfg, target, conn, dry_run=False)

    return _run_command(engine_or_url, revision, action)


def _dry_run(engine_or_url: Engine | str | URL | None, revision: str) -> list[str]:
    target = check_revision(revision)
    cfg = _config()
    with _engine_for(engine_or_url) as engine:
        if _missing_sqlite_file(engine):
            create = f"create the SQLite database {engine.url.database}"
            return [create, *_pending(cfg, None, target)]
        with engine.connect() as conn, conn.begin() as tx:
            try:
                _refuse_newer_schema(conn)
                return _upgrade(cfg, target, conn, dry_run=True)
            except (RevisionError, CommandError) as exc:
                script = ScriptDirectory.from_config(cfg)
                raise ValidationError("revision", revision, _revision_reason(script, exc)) from None
            finally:
                tx.rollback()


def _missing_sqlite_file(engine: Engine) -> bool:
    database = engine.url.database
    if Dialect.of(engine) is not Dialect.SQLITE or not database or database == ":memory:":
        return False
    return not Path(database).exists()


def downgrade(engine_or_url: Engine | str | URL | None, revision: str) -> list[str]:
    """Downgrade the schema to ``revision`` (``base`` removes every table).

    ``"upstream"`` gives a database adopted from upstream Miyabi its upstream shape back, with
    every row; ``base`` is refused there, as it would drop upstream's tables.

    Raises:
        ValidationError: ``revision`` is not one alembic can resolve, or ``upstream`` on a
            database that was not adopted (nothing is written).
    """
    if revision == UPSTREAM:
        return _give_back(engine_or_url)

    def action(cfg: Config, target: str, conn: Connection) -> list[str]:
        command.downgrade(cfg, target)
        return []

    return _run_command(engine_or_url, revision, action)


def _give_back(engine_or_url: Engine | str | URL | None) -> list[str]:
    cfg = _config()
    lines: list[str] = []
    with _engine_for(engine_or_url) as engine:

        def body(conn: Connection) -> None:
            if not adopt.is_adopted(conn):
                raise ValidationError(
                    "revision", UPSTREAM, "this database was not adopted from upstream Miyabi"
                )
            cfg.attributes["connection"] = conn
            lines.extend(adopt.drop_added_constraints(conn))
            command.downgrade(cfg, adopt.ADOPTED_REVISION)
            lines.extend(adopt.undo_adoption(conn))

        run_locked(engine, body)
    return lines
