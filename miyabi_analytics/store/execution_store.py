"""ExecutionStore: the one public face of the store's modules, holding a bind and a policy."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from miyabi_analytics._db.retry import DEFAULT_RETRY, RetryPolicy
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.records import AgentExecutionResult, LogEntry, MetricsEntry
from miyabi_analytics.store import bulk, children, executions, liveness
from miyabi_analytics.store.bulk import DEFAULT_BATCH_SIZE

__all__ = ["ExecutionStore"]


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

    def __repr__(self) -> str:
        engine = self._bind if isinstance(self._bind, Engine) else self._bind.engine
        return f"ExecutionStore({engine.url!r})"  # URL repr masks the password

    # -- executions -------------------------------------------------------------------------

    def save_execution(self, result: AgentExecutionResult) -> uuid.UUID:
        """Insert the execution, or update the stored one with the same id.

        An update replaces every column with the record's values (``None`` clears), keeps
        ``created_at`` and sets ``updated_at``; but a row entering ``running`` without
        ``started_at``, or ``completed``/``failed`` without ``completed_at``, gets it stamped by
        the database (its rules, :mod:`miyabi_analytics._db.rules`). A backwards status move
        raises :class:`InvalidStatusTransition` and leaves the stored row exactly as it was.
        A ``repository_id``/``user_id`` that a foreign key of the database refuses (an adopted
        upstream database references ``repositories``/``users``) raises :class:`NotFound`
        naming the column and the value; nothing is written.
        """
        return executions.save_execution(self._bind, result, retry=self._retry)

    def save_executions(
        self,
        results: Iterable[AgentExecutionResult],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
    ) -> int:
        """Save many executions with the rules of :meth:`save_execution`; returns the count.

        Each batch is one transaction: a bad record, a backwards move or a foreign key's
        refusal (:class:`NotFound`, as in :meth:`save_execution`) refuses its whole batch
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
        return bulk.save_executions(
            self._bind, results, batch_size=batch_size, progress=progress, retry=self._retry
        )

    def get_execution(self, execution_id: uuid.UUID | str) -> AgentExecutionResult:
        """One stored execution; :class:`NotFound` if there is none with that id."""
        return executions.get_execution(self._bind, execution_id)

    def load_history(
        self, agent_type: str, repository_id: uuid.UUID | str, *, limit: int = 10
    ) -> list[AgentExecutionResult]:
        """Executions of one agent in one repository, newest first.

        Order: ``started_at`` descending with never-started rows first, then ``created_at``
        descending, then ``id``; the same on both databases.
        """
        return executions.load_history(self._bind, agent_type, repository_id, limit=limit)

    def exists(self, execution_id: uuid.UUID | str) -> bool:
        """Whether an execution with this id is stored."""
        return executions.exists(self._bind, execution_id)

    # -- heartbeats and stuck executions -------------------------------------------------------

    def heartbeat(
        self, execution_id: uuid.UUID | str, *, agent_type: str | None = None
    ) -> datetime:
        """Record that a running execution is alive; returns the time stamped.

        :class:`NotFound` for an unknown id; :class:`ValidationError` naming the status when the
        execution is not running (only running executions take a heartbeat), or naming the agent
        when ``agent_type`` is given and the execution is another agent's. Saving the record
        later keeps the heartbeat; ``updated_at`` is left alone (it is the time of the last save).
        """
        return liveness.heartbeat(
            self._bind, execution_id, agent_type=agent_type, retry=self._retry
        )

    def reap(
        self,
        stale_after: timedelta | str | None = None,
        *,
        max_runtime: timedelta | str | None = None,
    ) -> int:
        """Fail the running executions that are stuck; returns how many.

        Two rules, each applied when its limit is given (at least one must be):

        - ``stale_after``: an execution that has sent heartbeats is stuck when the later of
          ``started_at`` and ``last_heartbeat_at`` is older than ``now - stale_after``;
          ``error_message`` ``"reaped: no heartbeat for <duration>"`` (e.g. ``30m``).
        - ``max_runtime``: one that never sent a heartbeat (``last_heartbeat_at`` NULL, as the
          upstream Rust writers leave it) is stuck when it started (``created_at`` if it has no
          ``started_at``) before ``now - max_runtime``; ``error_message`` ``"reaped: running
          for more than <duration> without a heartbeat"``. Silence alone never fails it.

        Each gets ``status="failed"``, ``completed_at`` and ``updated_at`` now, in one UPDATE
        under the lifecycle guard: an execution that completes meanwhile stays completed.

        Raises:
            ValidationError: naming ``stale_after`` or ``max_runtime`` for a duration that is
                not positive (at most 100 years), or ``stale_after`` when neither is given.
        """
        return liveness.reap(
            self._bind, stale_after, max_runtime=max_runtime, retry=self._retry
        )

    def count_stuck(
        self,
        stale_after: timedelta | str | None = None,
        *,
        max_runtime: timedelta | str | None = None,
    ) -> int:
        """How many running executions :meth:`reap` would fail now (nothing is changed)."""
        return liveness.count_stuck(self._bind, stale_after, max_runtime=max_runtime)

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
        return children.save_analysis_metrics(
            self._bind, execution_id, metrics, agent_type=agent_type, retry=self._retry
        )

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
        return children.log(
            self._bind,
            execution_id,
            level,
            message,
            metadata,
            logged_at=logged_at,
            retry=self._retry,
        )

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
        return bulk.save_analysis_metrics_many(
            self._bind, entries, batch_size=batch_size, retry=self._retry
        )

    def log_many(
        self, entries: Iterable[LogEntry], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> int:
        """Append many log lines, each batch in one transaction; returns the count.

        ``entries`` is any iterable of :class:`LogEntry`, read batch by batch; a bad element
        (``entries[i]``) refuses its batch, as in :meth:`save_executions`.
        """
        return bulk.log_many(self._bind, entries, batch_size=batch_size, retry=self._retry)
