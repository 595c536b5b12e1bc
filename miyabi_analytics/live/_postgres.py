"""Watching on PostgreSQL: LISTEN on a dedicated connection, and an exact catch-up after a loss.

The triggers of revision 0010 ``pg_notify`` each transition after commit, with its row id and
``txid`` (the writing transaction); a bulk INSERT once, with its ``txid`` and id range, whose
rows the watcher then reads from the table. A notification sent while no connection listens is
gone, so after a lost connection the watcher reads the table, and it must read exactly the
transitions it has not yielded. It keeps a *horizon*: ``pg_snapshot_xmin`` of a snapshot taken
on its listening connection, the oldest transaction still open then. Every transaction with a
smaller ``txid`` had ended before that snapshot; if it committed after the LISTEN, its
notification reached this connection. So any transition not yet seen belongs to a transaction
still open at the horizon's snapshot (or begun later), and has ``txid >= horizon``. The catch-
up, after LISTENing again, is ``WHERE txid >= horizon ORDER BY txid, id`` minus the ids already
yielded with such a ``txid`` (kept in ``seen``, pruned as the horizon advances). A transition
committed between the new LISTEN and the catch-up's snapshot is both read and notified: ``seen``
drops the second.

The watcher starts the same way: a first snapshot, before LISTEN, gives the horizon and the
transitions already committed above it (``seen``), so "after the call" means after that
snapshot. The horizon is re-read about every second on the listening connection, and adopted one
reading later: the notification of a transaction that ended just before a snapshot can reach the
client a moment after it (the committing backend signals listeners after it stops being
running), and one second is far more than that moment.

The connection is psycopg 3's own, opened with the libpq parameters of one of the engine's
connections (its URL, ``connect_args`` and password), never a pooled one, and the engine's
repository scope is set on it for the session: row-level security then filters the catch-up,
and the notifications (which bypass it) are filtered in Python by the same scope.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Generator, Iterable, Sequence
from typing import Any, Final

import psycopg
import sqlalchemy as sa
from psycopg import sql
from sqlalchemy import BigInteger, Engine, Text, func

from miyabi_analytics._db.rules.history import CHANNEL
from miyabi_analytics._db.schema import TXID, transitions
from miyabi_analytics._db.scope import SCOPE_SETTING, parse_scope
from miyabi_analytics._db.tx import begin
from miyabi_analytics.live._event import TransitionEvent
from miyabi_analytics.live._rows import EventFilter, event_columns, to_event

__all__ = ["APPLICATION_NAME", "PostgresSource"]

_log = logging.getLogger(__name__)

APPLICATION_NAME: Final = "miyabi-watch"
REFRESH_SECONDS: Final = 1.0
BACKOFF_FIRST: Final = 0.05
BACKOFF_MAX: Final = 5.0

_txid_column = sa.literal_column(TXID, BigInteger())
"""The PostgreSQL-only column, not in the model (``schema.TXID``)."""
_txid = _txid_column.label(TXID)
_xmin = sa.cast(
    sa.cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger()
)
_HORIZON: Final = sa.select(_xmin)
# One statement, so one snapshot: its horizon and what it already sees above it.
_h = sa.select(_xmin.label("h")).subquery("h")
_START: Final = sa.select(_h.c.h, transitions.c.id, _txid_column).select_from(
    _h.outerjoin(transitions, _txid_column >= _h.c.h)
)
_SESSION: Final = sa.select(
    func.current_setting(SCOPE_SETTING, True, type_=sa.String()),
    func.current_setting("search_path", type_=sa.String()),
)


class PostgresSource:
    """One watcher's listening connection and its catch-up state (see the module docstring)."""

    def __init__(self, engine: Engine, wanted: EventFilter) -> None:
        self._dialect = engine.dialect
        self._conninfo, self._settings, scope = _engine_session(engine)
        self._wanted = wanted.scoped(scope)
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._seen: dict[int, int] = {}
        conn = self._open()
        try:
            row = None
            for row in self._fetch(conn, _START):
                if row[1] is not None:
                    self._seen[int(row[1])] = int(row[2])
            assert row is not None
            self._horizon = self._candidate = int(row[0])
            self._listen(conn)
            self._backlog = self._catch_up(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._refreshed = time.monotonic()

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def events(self, timeout: float | None) -> Generator[TransitionEvent, None, None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            ready, self._backlog = self._backlog, []
            for event in ready:
                yield event
                deadline = None if timeout is None else time.monotonic() + timeout
            wait = REFRESH_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait < 0:
                    return
            try:
                self._backlog = self._receive(wait)
                if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
                    self._refresh()
            except psycopg.OperationalError:
                if not self._reconnect(deadline):
                    if not self._closed:
                        yield from self._backlog  # received before the loss: still owed
                    return

    # ---------------------------------------------------------------- internals

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            with conn.cursor() as cursor:
                for name, value in self._settings:
                    cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        except BaseException:
            conn.close()
            raise
        return conn

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))

    def _fetch(self, conn: psycopg.Connection[Any], stmt: sa.Select[Any]) -> list[Any]:
        compiled = stmt.compile(dialect=self._dialect)
        with conn.cursor() as cursor:
            cursor.execute(str(compiled), compiled.params)
            return cursor.fetchall()

    def _receive(self, wait: float) -> list[TransitionEvent]:
        """The matching events of the notifications that arrive within ``wait`` seconds."""
        assert self._conn is not None
        out = []
        for note in list(self._conn.notifies(timeout=max(wait, 0.0), stop_after=1)):
            if note.channel != CHANNEL:
                continue
            payload = json.loads(note.payload)
            if "transition" not in payload:  # a bulk INSERT, announced once: read its rows
                out += self._bulk(int(payload["txid"]), payload["first"], payload["last"])
                continue
            columns = (
                payload["transition"], payload["id"], payload["repository_id"],
                payload["agent_type"], payload["from"], payload["to"], payload["at"],
            )
            out += self._fresh([(int(payload["txid"]), columns)])
        return out

    def _bulk(self, txid: int, first: int, last: int) -> list[TransitionEvent]:
        """The rows of one bulk INSERT (committed: its notification came) not yet seen."""
        assert self._conn is not None
        stmt = (
            event_columns()
            .where(transitions.c.id.between(int(first), int(last)), _txid_column == txid)
            .order_by(transitions.c.id)
        )
        return self._fresh((txid, columns) for columns in self._fetch(self._conn, stmt))

    def _fresh(self, rows: Iterable[tuple[int, Sequence[Any]]]) -> list[TransitionEvent]:
        """The wanted events of ``rows`` ((txid, event columns)) not yet seen; all now seen."""
        out = []
        for txid, columns in rows:
            tid = int(columns[0])
            if tid in self._seen:
                continue
            self._seen[tid] = txid
            event = to_event(columns)
            if self._wanted(event):
                out.append(event)
        return out

    def _refresh(self) -> None:
        """Adopt the horizon read last time, read the next one, forget what is below it."""
        assert self._conn is not None
        self._horizon = self._candidate
        self._candidate = int(self._fetch(self._conn, _HORIZON)[0][0])
        self._seen = {k: v for k, v in self._seen.items() if v >= self._horizon}
        self._refreshed = time.monotonic()

    def _catch_up(self, conn: psycopg.Connection[Any]) -> list[TransitionEvent]:
        """Transitions at or above the horizon not yet seen, in commit order as far as known."""
        stmt = (
            event_columns()
            .add_columns(_txid)
            .where(_txid_column >= self._horizon)
            .order_by(_txid_column, transitions.c.id)
        )
        return self._fresh((int(row[-1]), row[:-1]) for row in self._fetch(conn, stmt))

    def _reconnect(self, deadline: float | None) -> bool:
        """Listen again and catch up; ``False`` when closed or ``deadline`` passed first."""
        old, self._conn = self._conn, None
        if old is not None:
            old.close()
        delay = BACKOFF_FIRST
        while not self._closed:
            try:
                conn = self._open()
            except psycopg.OperationalError:
                conn = None
            if conn is not None:
                try:
                    self._listen(conn)
                    self._backlog += self._catch_up(conn)  # after what was received
                    self._candidate = int(self._fetch(conn, _HORIZON)[0][0])
                    self._refreshed = time.monotonic()
                    self._conn = conn
                    return True
                except psycopg.OperationalError:
                    conn.close()
            _log.info("watch: connection lost, retrying in %.2f s", delay)
            pause = delay * random.uniform(0.5, 1.0)  # jitter, not a secret
            if deadline is not None and time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            delay = min(delay * 2, BACKOFF_MAX)
        return False


def _engine_session(
    engine: Engine,
) -> tuple[str, list[tuple[str, str]], frozenset[uuid.UUID] | None]:
    """The libpq parameters (password included), session settings and scope of ``engine``."""
    from psycopg.conninfo import make_conninfo

    with begin(engine) as conn:
        info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
        parameters: dict[str, str] = info.get_parameters()  # never the password
        password = info.password
        scope, search_path = conn.execute(_SESSION).one()
    if password:
        parameters["password"] = password
    parameters.setdefault("application_name", APPLICATION_NAME)  # to find it in pg_stat_activity
    settings = [("TimeZone", "UTC"), ("search_path", str(search_path))]
    if scope:
        settings.append((SCOPE_SETTING, str(scope)))
    return make_conninfo("", **parameters), settings, parse_scope(scope or None)
