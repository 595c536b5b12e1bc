"""Many rows at once: executions, metrics and logs in batches, one transaction per batch.

New executions go in by binary COPY on PostgreSQL and a raw executemany on SQLite
(``_db/bulk.py``); stored ones are looked up, checked against the lifecycle and updated. The
arguments are checked by ``bulk_args`` as batches are filled, so any iterable works, a
generator too, and memory stays that of one batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from datetime import datetime
from itertools import islice
from typing import Any, Final

from sqlalchemy import Connection, Engine, Table, bindparam, update
from sqlalchemy.exc import IntegrityError

from miyabi_analytics._db.bulk import encoder, existing_rows, insert_rows, update_rows
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.retry import RetryPolicy, sqlstate
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.tx import write
from miyabi_analytics._progress import progress_bar
from miyabi_analytics._validate import as_int
from miyabi_analytics.records import AgentExecutionResult, LogEntry, MetricsEntry
from miyabi_analytics.store import _shared
from miyabi_analytics.store.bulk_args import bulk_argument, checked_records, log_row, metrics_row
from miyabi_analytics.store.children import insert_children
from miyabi_analytics.store.executions import check_step
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "log_many",
    "save_analysis_metrics_many",
    "save_executions",
]

DEFAULT_BATCH_SIZE: Final = 50_000  # fewer round trips and commits; 50k records are ~50 MB
MAX_BATCH_SIZE: Final = 1_000_000
# A batch that lost the race for a new id to a concurrent writer is run again this many times.
_CONFLICT_RETRIES: Final = 2

_STATUS_TEXT: Final = {status: status.value for status in ExecutionStatus}  # .value is slow
_TUPLE_ORDER: Final = (
    "id", "repository_id", "user_id", "agent_type", "issue_number", "status", "started_at",
    "completed_at", "error_message", "result", "quality_score", "pr_number", "created_at",
    "updated_at", "last_heartbeat_at",
)
assert tuple(c.name for c in executions.columns) == _TUPLE_ORDER
# Records carry no heartbeat: an update keeps the stored one (a new row starts with none).
_UPDATABLE: Final = [
    n for n in _TUPLE_ORDER if n not in ("id", "created_at", "last_heartbeat_at")
]


def _execution_tuple(r: AgentExecutionResult, now: datetime) -> tuple[Any, ...]:
    """A record as a row in ``agent_executions`` column order."""
    return (
        r.id, r.repository_id, r.user_id, r.agent_type, r.issue_number, _STATUS_TEXT[r.status],
        r.started_at, r.completed_at, r.error_message, r.result, r.quality_score, r.pr_number,
        now, now, None,
    )


_STEP: Final = (
    update(executions)
    .where(executions.c.id == bindparam("key"))
    .values(status=bindparam("step"))
)


def _steps_between(
    execution_id: uuid.UUID, stored: str, path: Sequence[ExecutionStatus]
) -> list[dict[str, Any]]:
    """The statuses a stored row passes on the way to the last of ``path`` (checked in order).

    The database refuses a move the lifecycle forbids (pending -> completed), so an id whose
    batch goes pending -> running -> completed over a stored ``pending`` row takes the
    ``running`` step first, with its stamps, as if saved one by one. Only the status is set:
    the full row follows.
    """
    if not path or ExecutionStatus(stored).can_transition_to(path[-1]):
        return []
    steps, at = [], ExecutionStatus(stored)
    for status in path[:-1]:
        if status is not at:
            steps.append({"key": execution_id, "step": status.value})
            at = status
    return steps


def save_executions(
    bind: Engine | Connection,
    results: Iterable[AgentExecutionResult],
    *,
    batch_size: int,
    progress: bool | None,
    retry: RetryPolicy,
) -> int:
    """``ExecutionStore.save_executions``: batch by batch, each batch all or nothing."""
    size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
    total_hint = len(results) if isinstance(results, Sized) else None
    total = 0
    batch: list[AgentExecutionResult] = []
    records = checked_records(results)  # refuses a wrong container now, elements in turn
    with progress_bar(progress, total=total_hint, desc="executions") as bar:
        for record in records:
            batch.append(record)
            if len(batch) == size:
                total += _save_batch(bind, batch, retry)
                bar.update(len(batch))
                batch = []
        if batch:
            total += _save_batch(bind, batch, retry)
            bar.update(len(batch))
    return total


def _save_batch(
    bind: Engine | Connection, batch: Sequence[AgentExecutionResult], retry: RetryPolicy
) -> int:
    # Keyed by the uuid's int: UUID.__hash__ is Python code, a measurable cost per row here.
    merged: dict[int, AgentExecutionResult] = {}
    firsts: dict[int, AgentExecutionResult] = {}  # of ids repeated in the batch
    paths: dict[int, list[ExecutionStatus]] = {}  # their statuses, in order
    for record in batch:
        key = record.id.int
        previous = merged.get(key)
        if previous is not None:
            check_step(record, previous.status, previous.agent_type)
            firsts.setdefault(key, previous)
            paths.setdefault(key, [previous.status]).append(record.status)
        merged[key] = record

    def save(conn: Connection) -> int:
        now = _shared.now()
        encode = encoder(executions, Dialect.of(conn))
        if Dialect.of(conn).is_postgresql and _insert_if_all_new(
            conn, merged.values(), now, encode
        ):
            return len(batch)
        found = existing_rows(
            conn, executions, [r.id for r in merged.values()], ["status", "agent_type"]
        )
        stored = {stored_id.int: row for stored_id, row in found.items()}
        inserts, updates = [], []
        steps: list[dict[str, Any]] = []
        for key, record in merged.items():
            current = stored.get(key) if stored else None
            if current is None:
                inserts.append(_execution_tuple(record, now))
                continue
            # The stored row moves to the batch's first record of the id, then on in order.
            check_step(firsts.get(key, record), current.status, current.agent_type)
            updates.append(_execution_tuple(record, now))
            steps.extend(_steps_between(record.id, current.status, paths.get(key, [])))
        if inserts:
            insert_rows(conn, executions, map(encode, inserts))
        if steps:
            conn.execute(_STEP, steps)
        if updates:
            update_rows(conn, executions, [encode(row) for row in updates], _UPDATABLE)
        return len(batch)

    # refusals: row-level security -> ValidationError (see save_execution), and so is an id
    # stored outside the scope: its row is hidden, so it looks new here. A duplicate id the
    # scope can see is a concurrent writer's: the batch runs again and finds it stored.
    return write(
        bind,
        save,
        what="save_executions batch",
        policy=retry,
        conflicts=_CONFLICT_RETRIES,
        errors=lambda: _shared.refusals(
            bind,
            ((r.id, r.repository_id) for r in merged.values()),
            "results",
            f"batch of {len(batch)}",
            # the step each stored row takes first: to its id's first record of the batch
            moves=((r.id, r.status.value) for r in (firsts.get(k, m) for k, m in merged.items())),
            written=lambda name: (getattr(r, name, None) for r in merged.values()),
        ),
    )


def _insert_if_all_new(
    conn: Connection,
    records: Iterable[AgentExecutionResult],
    now: datetime,
    encode: Callable[[Sequence[Any]], tuple[Any, ...]],
) -> bool:
    """COPY the batch straight in, in a savepoint: the common case of only new ids.

    If any id is already stored the primary key refuses the COPY (nothing of it stays) and
    the caller takes the guarded path, which looks the ids up and checks each step. When the
    COPY succeeds no id existed, so no lifecycle step needed checking.
    """
    try:
        with conn.begin_nested():
            rows = (encode(_execution_tuple(r, now)) for r in records)
            insert_rows(conn, executions, rows)
    except IntegrityError as exc:
        if sqlstate(exc.orig) == "23505":
            return False
        raise
    return True


def save_analysis_metrics_many(
    bind: Engine | Connection,
    entries: Iterable[MetricsEntry | tuple[uuid.UUID | str, Mapping[str, Any]]],
    *,
    batch_size: int,
    retry: RetryPolicy,
) -> int:
    """``ExecutionStore.save_analysis_metrics_many``: each row stamped as its batch fills."""
    size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
    items = bulk_argument("entries", entries, "MetricsEntry or (execution_id, metrics)")
    rows = (metrics_row(index, item, _shared.now()) for index, item in enumerate(items))
    return _insert_batches(bind, analytics, rows, size, with_agent_type=True, retry=retry)


def log_many(
    bind: Engine | Connection,
    entries: Iterable[LogEntry],
    *,
    batch_size: int,
    retry: RetryPolicy,
) -> int:
    """``ExecutionStore.log_many``: one timestamp for every line that brings none."""
    size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
    items = bulk_argument("entries", entries, "LogEntry records")
    now = _shared.now()
    rows = (log_row(index, item, now) for index, item in enumerate(items))
    return _insert_batches(bind, logs, rows, size, with_agent_type=False, retry=retry)


def _insert_batches(
    bind: Engine | Connection,
    table: Table,
    rows: Iterable[dict[str, Any]],
    size: int,
    *,
    with_agent_type: bool,
    retry: RetryPolicy,
) -> int:
    """Insert ``rows`` ``size`` at a time; each row is made as its batch fills (lazily)."""
    total = 0
    pending = iter(rows)
    while batch := list(islice(pending, size)):
        total += insert_children(bind, table, batch, with_agent_type=with_agent_type, retry=retry)
    return total
