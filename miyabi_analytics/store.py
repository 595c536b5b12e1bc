"""ExecutionStore: every write and lookup of executions, metrics and logs, one transaction each."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, Row, Table, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from miyabi_analytics._bulk_args import bulk_argument, checked_records, log_row, metrics_row
from miyabi_analytics._db import liveness
from miyabi_analytics._db.bulk import encoder, existing_rows, insert_rows, update_rows
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.retry import (
    DEFAULT_RETRY,
    Failure,
    RetryPolicy,
    classify,
    run_with_retries,
)
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.scope import is_row_security_violation, scope_errors
from miyabi_analytics._db.statements import upsert_execution
from miyabi_analytics._db.tx import begin
from miyabi_analytics._durations import as_duration, format_duration
from miyabi_analytics._progress import progress_bar
from miyabi_analytics._validate import INT32_MAX, as_aware, as_int, as_json, as_text, as_uuid
from miyabi_analytics.errors import (
    InvalidStatusTransition,
    MiyabiError,
    NotFound,
    ValidationError,
)
from miyabi_analytics.metrics import validate_metrics
from miyabi_analytics.records import (
    AgentExecutionResult,
    LogEntry,
    MetricsEntry,
    validate_record,
)
from miyabi_analytics.vocabulary import ExecutionStatus, check_agent_type, check_log_level

__all__ = ["ExecutionStore"]

DEFAULT_BATCH_SIZE = 50_000  # fewer round trips and commits; 50k records are ~50 MB
MAX_BATCH_SIZE = 1_000_000
T = TypeVar("T")
P = ParamSpec("P")


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _storable(field: str, value: object, *, data_errors: bool = True) -> Iterator[None]:
    """A value the serializer (with ``data_errors``: or the database) refuses: ValidationError.

    A backstop: records are checked again right before writing (their ``result`` documents
    too, see ``validate_record``), so only what that check cannot see gets here; the strict
    JSON serializer, a column type or the database refuses it, and the transaction around it
    is rolled back, so nothing is kept. A bulk batch reports the
    database's DataError this way too, as it cannot name the row; a single save leaves it as
    it is, with the row in its message.
    """
    refused = (ValueError, DataError) if data_errors else (ValueError,)
    try:
        yield
    except MiyabiError:
        raise  # already says what is wrong (a ValidationError is a ValueError too)
    except refused as exc:
        raise ValidationError(field, value, f"a value cannot be stored: {exc}") from exc
    except StatementError as exc:  # a bind processor's ValueError, wrapped by SQLAlchemy
        if isinstance(exc, DBAPIError) or not isinstance(exc.orig, ValueError):
            raise
        raise ValidationError(field, value, f"a value cannot be stored: {exc.orig}") from exc


def _row_of(record: AgentExecutionResult, now: datetime) -> dict[str, Any]:
    # No last_heartbeat_at: the upsert sets only these keys, so an update keeps the stored one.
    return {
        "id": record.id,
        "repository_id": record.repository_id,
        "user_id": record.user_id,
        "agent_type": record.agent_type,
        "issue_number": record.issue_number,
        "status": record.status.value,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "error_message": record.error_message,
        "result": record.result,
        "quality_score": record.quality_score,
        "pr_number": record.pr_number,
        "created_at": now,
        "updated_at": now,
    }


_STATUS_TEXT: Final = {status: status.value for status in ExecutionStatus}  # .value is slow


def _execution_tuple(r: AgentExecutionResult, now: datetime) -> tuple[Any, ...]:
    """A record as a row in ``agent_executions`` column order."""
    return (
        r.id, r.repository_id, r.user_id, r.agent_type, r.issue_number, _STATUS_TEXT[r.status],
        r.started_at, r.completed_at, r.error_message, r.result, r.quality_score, r.pr_number,
        now, now, None,
    )


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


def _retried(
    what: str,
) -> Callable[
    [Callable[Concatenate[ExecutionStore, P], T]], Callable[Concatenate[ExecutionStore, P], T]
]:
    """Run a store method (one transaction) again on transient errors; see ``_db/retry.py``."""

    def decorate(
        method: Callable[Concatenate[ExecutionStore, P], T],
    ) -> Callable[Concatenate[ExecutionStore, P], T]:
        @functools.wraps(method)
        def run(self: ExecutionStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return self._run(lambda _: method(self, *args, **kwargs), what)

        return run

    return decorate


def _record_of(row: Row[Any]) -> AgentExecutionResult:
    data = row._asdict()
    data.pop("last_heartbeat_at", None)  # a column of the table, not a field of the record
    data["status"] = ExecutionStatus(data["status"])
    return AgentExecutionResult(**data)


class ExecutionStore:
    """The persistence core the agents delegate to.

    It holds the engine (or a connection, to join the caller's transaction) and nothing else:
    no tables are created here (see :func:`migrate`) and no state is cached between calls.

    With an engine, each write transaction is run again with backoff when it fails for a passing
    reason (a lost connection, a serialization failure or deadlock, SQLite "database is locked"),
    as ``retry`` says; never for bad input or a violated constraint. On a connection it runs
    once: the caller's transaction is lost with the error, so only the caller can retry it.
    """

    def __init__(
        self, bind: Engine | Connection, *, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        if not isinstance(bind, Engine | Connection):
            raise ValidationError("bind", bind, "expected a SQLAlchemy Engine or Connection")
        if not isinstance(retry, RetryPolicy):
            raise ValidationError("retry", retry, "expected a RetryPolicy")
        if retry.attempts < 1:
            raise ValidationError("retry", retry, "at least one attempt is needed")
        self._bind = bind
        self._retry = retry

    def _run(self, operation: Callable[[int], T], what: str) -> T:
        """``operation(attempt)``, retried on transient errors when the transaction is ours."""
        if isinstance(self._bind, Engine):
            return run_with_retries(operation, self._retry, what=what)
        return operation(1)

    def __repr__(self) -> str:
        engine = self._bind if isinstance(self._bind, Engine) else self._bind.engine
        return f"ExecutionStore({engine.url!r})"  # URL repr masks the password

    # -- executions -------------------------------------------------------------------------

    @_retried("save_execution")
    def save_execution(self, result: AgentExecutionResult) -> uuid.UUID:
        """Insert the execution, or update the stored one with the same id.

        An update replaces every column with the record's values (``None`` clears), keeps
        ``created_at`` and sets ``updated_at``. A backwards status move raises
        :class:`InvalidStatusTransition` and leaves the stored row exactly as it was.
        """
        record = validate_record(result, copy=False)
        row = _row_of(record, _now())
        # scope_errors: a repository-scoped engine's row-level security refusing the row
        # becomes a ValidationError naming the repository, not a raw database error.
        with (
            scope_errors(self._bind, [(record.id, record.repository_id)]),
            _storable("result", record.result, data_errors=False),
            begin(self._bind, write=True) as conn,
        ):
            stmt = upsert_execution(conn.dialect.name, row)
            saved = conn.execute(stmt).scalar_one_or_none()
            if saved is None:
                self._raise_refused(conn, record)
        return record.id

    @staticmethod
    def _raise_refused(conn: Connection, record: AgentExecutionResult) -> None:
        stored = conn.execute(
            select(executions.c.status, executions.c.agent_type).where(
                executions.c.id == record.id
            )
        ).one()
        if stored.agent_type != record.agent_type:
            raise ValidationError(
                "agent_type",
                record.agent_type,
                f"execution {record.id} belongs to {stored.agent_type}",
            )
        raise InvalidStatusTransition(record.id, stored.status, record.status.value)

    def save_executions(
        self,
        results: Iterable[AgentExecutionResult],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> int:
        """Save many executions with the rules of :meth:`save_execution`; returns the count.

        Each batch is one transaction: a bad record or a backwards move refuses its whole batch
        (earlier batches stay stored). Stored ids of a batch are looked up (and locked on
        PostgreSQL), checked against the lifecycle and updated; new ids go in by binary COPY on
        PostgreSQL and a raw executemany on SQLite. An id repeated inside a batch is applied in
        order, as if saved one by one. ``progress`` shows a bar (``None``: when interactive).

        ``results`` may be any iterable (a generator too: it is read batch by batch). A string,
        a mapping or a lone record is refused at once; an element that is not a valid record
        as its batch is filled (``results[i]`` named with its type or bad field), so nothing
        of that batch is written. Each record's ``result`` is checked again right before it is
        written, so a document changed in place after validation is refused the same way.
        """
        size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
        total_hint = len(results) if isinstance(results, Sized) else None
        total = 0
        batch: list[AgentExecutionResult] = []
        records = checked_records(results)  # refuses a wrong container now, elements in turn
        with progress_bar(progress, total=total_hint, desc="executions") as bar:
            for record in records:
                batch.append(record)
                if len(batch) == size:
                    total += self._retrying(self._save_batch, batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                total += self._retrying(self._save_batch, batch)
                bar.update(len(batch))
        return total

    def _retrying(self, write: Callable[[Sequence[T]], int], batch: Sequence[T]) -> int:
        """Run a batch write again if a concurrent writer inserted one of its ids first."""
        for attempt in range(3):
            try:
                return write(batch)
            except IntegrityError as exc:
                if attempt == 2 or classify(exc) is not Failure.CONFLICT:
                    raise
        raise AssertionError("unreachable")

    @_retried("save_executions batch")
    def _save_batch(self, batch: Sequence[AgentExecutionResult]) -> int:
        now = _now()
        # Keyed by the uuid's int: UUID.__hash__ is Python code, a measurable cost per row here.
        merged: dict[int, AgentExecutionResult] = {}
        firsts: dict[int, AgentExecutionResult] = {}  # of ids repeated in the batch
        for record in batch:
            key = record.id.int
            previous = merged.get(key)
            if previous is not None:
                self._check_step(record, previous.status, previous.agent_type)
                firsts.setdefault(key, previous)
            merged[key] = record
        # scope_errors: row-level security refusals -> ValidationError (see save_execution),
        # and so is an id stored outside the scope: its row is hidden, so it looks new here.
        with (
            scope_errors(self._bind, ((r.id, r.repository_id) for r in merged.values())),
            _storable("results", f"batch of {len(batch)}"),
            begin(self._bind, write=True) as conn,
        ):
            encode = encoder(executions, conn.dialect.name)
            if Dialect.of(conn).is_postgresql and self._insert_if_all_new(
                conn, merged.values(), now, encode
            ):
                return len(batch)
            found = existing_rows(
                conn, executions, [r.id for r in merged.values()], ["status", "agent_type"]
            )
            stored = {stored_id.int: row for stored_id, row in found.items()}
            inserts, updates = [], []
            for key, record in merged.items():
                current = stored.get(key) if stored else None
                if current is None:
                    inserts.append(_execution_tuple(record, now))
                    continue
                # The stored row moves to the batch's first record of the id, then on in order.
                first = firsts.get(key, record)
                self._check_step(first, current.status, current.agent_type)
                updates.append(_execution_tuple(record, now))
            if inserts:
                insert_rows(conn, executions, map(encode, inserts))
            if updates:
                update_rows(conn, executions, [encode(row) for row in updates], _UPDATABLE)
        return len(batch)

    @staticmethod
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
            if getattr(exc.orig, "sqlstate", None) == "23505":
                return False
            raise
        return True

    @staticmethod
    def _check_step(record: AgentExecutionResult, status: str, agent_type: str) -> None:
        if agent_type != record.agent_type:
            raise ValidationError(
                "agent_type", record.agent_type, f"execution {record.id} belongs to {agent_type}"
            )
        if not ExecutionStatus(status).can_transition_to(record.status):
            raise InvalidStatusTransition(record.id, status, record.status.value)

    def get_execution(self, execution_id: uuid.UUID | str) -> AgentExecutionResult:
        """One stored execution; :class:`NotFound` if there is none with that id."""
        key = as_uuid("execution_id", execution_id)
        with begin(self._bind) as conn:
            row = conn.execute(select(executions).where(executions.c.id == key)).one_or_none()
        if row is None:
            raise NotFound("execution", key)
        return _record_of(row)

    def load_history(
        self, agent_type: str, repository_id: uuid.UUID | str, *, limit: int = 10
    ) -> list[AgentExecutionResult]:
        """Executions of one agent in one repository, newest first.

        Order: ``started_at`` descending with never-started rows first, then ``created_at``
        descending, then ``id``; the same on both databases.
        """
        stmt = (
            select(executions)
            .where(
                executions.c.agent_type == check_agent_type(agent_type),
                executions.c.repository_id == as_uuid("repository_id", repository_id),
            )
            .order_by(
                executions.c.started_at.desc().nulls_first(),
                executions.c.created_at.desc(),
                executions.c.id,
            )
            .limit(as_int("limit", limit, low=0, high=INT32_MAX))
        )
        with begin(self._bind) as conn:
            return [_record_of(row) for row in conn.execute(stmt)]

    # -- heartbeats and stuck executions -------------------------------------------------------

    @_retried("heartbeat")
    def heartbeat(
        self, execution_id: uuid.UUID | str, *, agent_type: str | None = None
    ) -> datetime:
        """Record that a running execution is alive; returns the time stamped.

        :class:`NotFound` for an unknown id; :class:`ValidationError` naming the status when the
        execution is not running (only running executions take a heartbeat), or naming the agent
        when ``agent_type`` is given and the execution is another agent's. Saving the record
        later keeps the heartbeat; ``updated_at`` is left alone (it is the time of the last save).
        """
        key = as_uuid("execution_id", execution_id)
        if agent_type is not None:
            check_agent_type(agent_type)
        now = _now()
        with begin(self._bind, write=True) as conn:
            if conn.execute(liveness.heartbeat(key, agent_type, now)).rowcount == 1:
                return now
            stored = conn.execute(
                select(executions.c.status, executions.c.agent_type).where(
                    executions.c.id == key
                )
            ).one_or_none()
        if stored is None:
            raise NotFound("execution", key)
        if agent_type is not None and stored.agent_type != agent_type:
            raise ValidationError(
                "agent_type", agent_type, f"execution {key} belongs to {stored.agent_type}"
            )
        raise ValidationError(
            "status",
            stored.status,
            f"execution {key} is {stored.status!r}; only running executions take a heartbeat",
        )

    @_retried("reap")
    def reap(self, stale_after: timedelta | str) -> int:
        """Fail the running executions silent for longer than ``stale_after``; returns how many.

        Silent: the later of ``started_at`` and ``last_heartbeat_at`` (``created_at`` if neither
        is set) is older than ``now - stale_after``. Each gets ``status="failed"``,
        ``completed_at`` and ``updated_at`` now, and ``error_message`` ``"reaped: no heartbeat
        for <duration>"`` (e.g. ``30m``), in one transaction under the lifecycle guard: an
        execution that completes meanwhile stays completed.
        """
        stale = as_duration("stale_after", stale_after)
        now = _now()
        message = f"reaped: no heartbeat for {format_duration(stale)}"
        with begin(self._bind, write=True) as conn:
            return int(conn.execute(liveness.reap(now - stale, now, message)).rowcount)

    def count_stuck(self, stale_after: timedelta | str) -> int:
        """How many running executions :meth:`reap` would fail now (nothing is changed)."""
        stale = as_duration("stale_after", stale_after)
        with begin(self._bind) as conn:
            count: int = conn.execute(liveness.count_stuck(_now() - stale)).scalar_one()
        return count

    # -- metrics and logs ---------------------------------------------------------------------

    def save_analysis_metrics(
        self,
        execution_id: uuid.UUID | str,
        metrics: Mapping[str, Any],
        *,
        agent_type: str | None = None,
    ) -> uuid.UUID:
        """Store a metrics document and its typed columns; returns the analytics row id.

        ``agent_type``, when given, must be the execution's own agent (agents pass theirs).
        """
        key = as_uuid("execution_id", execution_id)
        valid = validate_metrics(metrics)
        if agent_type is not None:
            check_agent_type(agent_type)
        row_id = uuid.uuid4()
        created_at = _now()

        def attempt(number: int) -> None:
            with begin(self._bind, write=True) as conn:
                if number > 1 and _stored(conn, analytics, row_id):
                    return  # the failed attempt did commit: its acknowledgement was lost
                stored_type = conn.execute(
                    select(executions.c.agent_type).where(executions.c.id == key)
                ).scalar_one_or_none()
                if stored_type is None:
                    raise NotFound("execution", key)
                if agent_type is not None and agent_type != stored_type:
                    raise ValidationError(
                        "agent_type", agent_type, f"execution {key} belongs to {stored_type}"
                    )
                conn.execute(
                    analytics.insert().values(
                        id=row_id,
                        execution_id=key,
                        agent_type=stored_type,
                        metrics=valid.document,
                        created_at=created_at,
                        **valid.columns,
                    )
                )

        self._run(attempt, "save_analysis_metrics")
        return row_id

    def log(
        self,
        execution_id: uuid.UUID | str,
        level: str,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        logged_at: datetime | None = None,
    ) -> uuid.UUID:
        """Append a log line; ``level`` in any case is stored lowercase. Returns the log id."""
        key = as_uuid("execution_id", execution_id)
        log_id = uuid.uuid4()
        row = {
            "id": log_id,
            "execution_id": key,
            "log_level": check_log_level(level),
            "message": as_text("message", message),
            "metadata": None if metadata is None else _json_mapping("metadata", metadata),
            "logged_at": _now() if logged_at is None else as_aware("logged_at", logged_at),
        }
        try:
            self._insert_one(logs, row)
        except IntegrityError:
            if not self.exists(key):
                raise NotFound("execution", key) from None
            raise
        except DBAPIError as exc:
            # Row-level security: the execution is outside a scoped engine's repositories,
            # which for that engine is the same as not stored.
            if not is_row_security_violation(exc):
                raise
            raise NotFound("execution", key) from None
        return log_id

    def save_analysis_metrics_many(
        self,
        entries: Iterable[MetricsEntry | tuple[uuid.UUID | str, Mapping[str, Any]]],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> int:
        """Store many metrics documents, each batch in one transaction; returns the count.

        Validation is that of :meth:`save_analysis_metrics`; an unknown execution id raises
        :class:`NotFound` and stores nothing of its batch. ``entries`` is any iterable of
        :class:`MetricsEntry` or ``(execution_id, metrics[, created_at])`` tuples, read batch
        by batch; a bad element (``entries[i]``) refuses its batch, as in
        :meth:`save_executions`.
        """
        size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
        items = bulk_argument("entries", entries, "MetricsEntry or (execution_id, metrics)")
        rows: list[dict[str, Any]] = []
        total = 0
        for index, item in enumerate(items):
            rows.append(metrics_row(index, item, _now()))
            if len(rows) == size:
                total += self._insert_children(analytics, rows, with_agent_type=True)
                rows = []
        if rows:
            total += self._insert_children(analytics, rows, with_agent_type=True)
        return total

    def log_many(
        self, entries: Iterable[LogEntry], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> int:
        """Append many log lines, each batch in one transaction; returns the count.

        ``entries`` is any iterable of :class:`LogEntry`, read batch by batch; a bad element
        (``entries[i]``) refuses its batch, as in :meth:`save_executions`.
        """
        size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
        items = bulk_argument("entries", entries, "LogEntry records")
        rows: list[dict[str, Any]] = []
        total = 0
        now = _now()
        for index, item in enumerate(items):
            rows.append(log_row(index, item, now))
            if len(rows) == size:
                total += self._insert_children(logs, rows, with_agent_type=False)
                rows = []
        if rows:
            total += self._insert_children(logs, rows, with_agent_type=False)
        return total

    def _insert_children(
        self, table: Table, rows: list[dict[str, Any]], *, with_agent_type: bool
    ) -> int:
        """Insert rows that point at executions, after checking every execution exists."""
        wanted = list({row["execution_id"] for row in rows})

        def attempt(number: int) -> None:
            with begin(self._bind, write=True) as conn:
                if number > 1 and _stored(conn, table, rows[0]["id"]):
                    return  # the failed attempt did commit (a batch is all or nothing)
                found = existing_rows(conn, executions, wanted, ["agent_type"])
                missing = set(wanted) - found.keys()
                if missing:
                    raise NotFound("execution", min(missing))
                if with_agent_type:
                    for row in rows:
                        row["agent_type"] = found[row["execution_id"]].agent_type
                names = [c.name for c in table.columns]
                encode = encoder(table, conn.dialect.name)
                insert_rows(conn, table, (encode([row[n] for n in names]) for row in rows))

        self._run(attempt, f"{table.name} batch")
        return len(rows)

    def _insert_one(self, table: Table, row: Mapping[str, Any]) -> None:
        """Insert one row with a fixed id, exactly once even if a retry follows a lost commit."""

        def attempt(number: int) -> None:
            with begin(self._bind, write=True) as conn:
                if number > 1 and _stored(conn, table, row["id"]):
                    return
                conn.execute(table.insert().values(**row))

        self._run(attempt, f"{table.name} insert")

    def exists(self, execution_id: uuid.UUID | str) -> bool:
        """Whether an execution with this id is stored."""
        key = as_uuid("execution_id", execution_id)
        with begin(self._bind) as conn:
            found = conn.execute(select(executions.c.id).where(executions.c.id == key))
            return found.first() is not None


def _stored(conn: Connection, table: Table, row_id: uuid.UUID) -> bool:
    return conn.execute(select(table.c.id).where(table.c.id == row_id)).first() is not None


def _json_mapping(field: str, value: object) -> Any:
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, "expected a mapping")
    return as_json(field, value)
