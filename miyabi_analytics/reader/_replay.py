"""One execution's timeline: :func:`replay`, its transitions and its logs merged in time order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import Connection, Engine, select

from miyabi_analytics._db.expressions import write_order
from miyabi_analytics._db.schema import executions, logs
from miyabi_analytics._db.tx import snapshot
from miyabi_analytics._validate import as_uuid
from miyabi_analytics.errors import NotFound
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import LEVEL_DTYPE, LOG_DTYPES, STATUS_DTYPE, STR, UTC_TS, to_frame
from miyabi_analytics.reader._transitions import transitions_frame, transitions_select
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["KIND_DTYPE", "REPLAY_DTYPES", "replay"]

KIND_DTYPE: Final = pd.CategoricalDtype(["execution", "transition", "log"])
"""``kind`` of a timeline row: a span derived from the execution row, a transition, a log line."""

_TERMINAL: Final = frozenset(s.value for s in ExecutionStatus if s.is_terminal)
_RUNNING: Final = ExecutionStatus.RUNNING.value

REPLAY_DTYPES: Final[dict[str, Any]] = {
    "at": UTC_TS,
    "kind": KIND_DTYPE,
    "status": STATUS_DTYPE,
    "from_status": STATUS_DTYPE,
    "to_status": STATUS_DTYPE,
    "end": UTC_TS,
    "duration": "timedelta64[us]",
    "level": LEVEL_DTYPE,
    "message": STR,
    "quality_score": "Int64",
    "error_message": STR,
    "transition_id": "Int64",
    "log_id": STR,
}
"""``replay``'s columns and dtypes, in order."""


@dataclass(slots=True)
class _Row:
    at: pd.Timestamp
    kind: str
    rank: int  # at one instant: the states first, then the logs, each in written order
    seq: int
    status: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    end: pd.Timestamp | None = None
    level: str | None = None
    message: str | None = None
    quality_score: int | None = None
    error_message: str | None = None
    transition_id: int | None = None
    log_id: str | None = None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts of plain values (timestamps as ``pd.Timestamp``)."""
    return [
        {str(k): v for k, v in row.items()} for row in frame.astype(object).to_dict("records")
    ]


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _states(moves: pd.DataFrame, started_at: datetime | None) -> list[_Row]:
    """The state rows: each transition, and the running span the execution row alone shows."""
    rows = [
        _Row(
            at=m["at"],
            kind="transition",
            rank=0,
            seq=i,
            from_status=_text(m["from_status"]),
            to_status=str(m["to_status"]),
            quality_score=None if pd.isna(m["quality_score"]) else int(m["quality_score"]),
            error_message=_text(m["error_message"]),
            transition_id=int(m["id"]),
        )
        for i, m in enumerate(_records(moves))
    ]
    entered = {r.to_status for r in rows}
    finished = [r.at for r in rows if r.to_status in _TERMINAL]
    start = None if started_at is None else pd.Timestamp(started_at)
    # A history inserted as already finished records only its end; its started_at is the
    # running span it had. Shown as a row of its own kind, never as a recorded transition.
    if start is not None and _RUNNING not in entered and all(start <= t for t in finished):
        rows.append(_Row(at=start, kind="execution", rank=0, seq=-1, to_status=_RUNNING))
    rows.sort(key=lambda r: (r.at, r.seq))
    for row, after in zip(rows, [*rows[1:], None], strict=True):
        row.status = row.to_status
        if after is not None:
            row.end = after.at
        elif row.to_status in _TERMINAL:
            row.end = row.at  # the execution ended here: no time is spent in a final state
    return rows


def _logs(lines: pd.DataFrame, states: list[_Row]) -> list[_Row]:
    """The log rows, each with the status the execution was in when it was written."""
    out = []
    for i, line in enumerate(_records(lines)):
        at = line["logged_at"]
        current = [s.to_status for s in states if s.at <= at]
        out.append(_Row(
            at=at,
            kind="log",
            rank=1,
            seq=i,
            status=current[-1] if current else None,
            level=_text(line["log_level"]),
            message=_text(line["message"]),
            log_id=str(line["id"]),
        ))
    return out


def timeline(
    moves: pd.DataFrame, lines: pd.DataFrame, *, started_at: datetime | None
) -> pd.DataFrame:
    """The replay frame of one execution's transitions (``read_transitions``) and logs."""
    states = _states(moves, started_at)
    rows = sorted([*states, *_logs(lines, states)], key=lambda r: (r.at, r.rank, r.seq))
    spec = {name: dtype for name, dtype in REPLAY_DTYPES.items() if name != "duration"}
    frame = to_frame([tuple(getattr(r, name) for name in spec) for r in rows], spec)
    duration = (frame["end"] - frame["at"]).astype("timedelta64[us]")
    frame.insert(list(REPLAY_DTYPES).index("duration"), "duration", duration)
    return frame


def replay(bind: Engine | Connection, execution_id: uuid.UUID | str) -> pd.DataFrame:
    """One execution's timeline: its transitions and its logs merged in time order.

    One row per recorded transition (``kind="transition"``) and per log line (``"log"``),
    ordered by ``at``; at one instant transitions come before logs (a line written as the
    execution changed state belongs to the new state), each in the order written.
    ``status`` is the state the execution is in from that row on (for a log line, the state
    entered by the latest transition at or before it; missing before the first).

    A transition row's ``end`` is when the execution left the entered state (the next state
    row's ``at``) and ``duration = end - at``, the time spent in it. A final state
    (completed, failed) has ``end == at`` and a zero duration; a state still current
    (pending or running, nothing after it) has ``end`` and ``duration`` missing (``NaT``):
    the replay reads no clock, so the same history replays the same. Log rows have no
    ``end`` or ``duration``.

    An execution inserted already finished (a bulk history, the demo) has one recorded
    transition (missing -> completed at ``completed_at``); when such an execution has a
    ``started_at`` and no recorded transition into running, one row of ``kind="execution"``
    shows the running span the execution row itself gives: ``to_status`` running at
    ``started_at``, up to the next state row. It is derived, not recorded: filter on
    ``kind == "transition"`` for the recorded history alone.

    Columns: ``at``, ``kind``, ``status``, ``from_status``, ``to_status``, ``end``
    (``datetime64[us, UTC]``), ``duration`` (``timedelta64[us]``), ``level``, ``message`` (of
    a log line), ``quality_score`` (``Int64``), ``error_message`` (the execution's at that
    transition), ``transition_id`` (``Int64``), ``log_id``. Statuses and levels are
    categoricals open to values other writers store, as in :func:`read_transitions`.

    Raises:
        NotFound: no execution has that id (or the engine's scope does not show it: a scoped
            engine sees only its repositories).
        ValidationError: ``execution_id`` is not a UUID.
    """
    key = as_uuid("execution_id", execution_id)
    with snapshot(bind) as conn:
        found = conn.execute(
            select(executions.c.started_at).where(executions.c.id == key)
        ).one_or_none()
        if found is None:
            raise NotFound("execution", key)
        moves = transitions_frame(conn.execute(transitions_select(SummaryFilters(), [key])).all())
        log_stmt = (
            select(*(logs.c[name] for name in LOG_DTYPES))
            .where(logs.c.execution_id == key)
            .order_by(logs.c.logged_at, write_order(logs))
        )
        lines = to_frame(conn.execute(log_stmt).all(), LOG_DTYPES)
    return timeline(moves, lines, started_at=found.started_at)
