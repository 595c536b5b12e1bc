"""The ``report_runs`` table: one row per report run, written as the run starts and ends.

A run is ``running`` from its start, then ``completed`` (with the output path) or ``failed``
(with a one-line error). ``parameters`` are what was asked for, with the database URL masked;
``since``/``until`` are the data window the report actually covered.

On PostgreSQL (revision ``0005_report_runs_scope``) a run belongs to the repository scope of
the engine that started it (``connect(url, repository_ids=[...])``; the database records it): a
scoped engine sees and updates only runs started within its scope, an unscoped one every run.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update

from miyabi_analytics._db.schema import report_runs
from miyabi_analytics._db.tx import begin
from miyabi_analytics.frames import STR, UTC_TS, to_frame

__all__ = ["REPORT_RUN_DTYPES", "ReportRunStatus", "finish_run", "read_report_runs", "start_run"]


class ReportRunStatus(StrEnum):
    """Where a report run is: ``running`` until it ends ``completed`` or ``failed``."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


REPORT_RUN_DTYPES: Final[Mapping[str, Any]] = {
    "id": STR,
    "parameters": object,
    "since": UTC_TS,
    "until": UTC_TS,
    "started_at": UTC_TS,
    "finished_at": UTC_TS,
    "status": pd.CategoricalDtype([s.value for s in ReportRunStatus]),
    "output_path": STR,
    "error": STR,
}
"""Columns and dtypes of :func:`read_report_runs` (the same for an empty result)."""


def start_run(
    bind: Engine | Connection,
    *,
    parameters: Mapping[str, Any],
    since: datetime,
    until: datetime,
) -> uuid.UUID:
    """Record a run that starts now; returns its id."""
    run_id = uuid.uuid4()
    with begin(bind, write=True) as conn:
        conn.execute(
            insert(report_runs).values(
                id=run_id,
                parameters=dict(parameters),
                since=since,
                until=until,
                started_at=datetime.now(UTC),
                status=ReportRunStatus.RUNNING.value,
            )
        )
    return run_id


def finish_run(
    bind: Engine | Connection,
    run_id: uuid.UUID,
    status: ReportRunStatus,
    *,
    output_path: str | None = None,
    error: str | None = None,
) -> None:
    """Record how a run ended (a run this engine's scope cannot see is left as it is)."""
    with begin(bind, write=True) as conn:
        conn.execute(
            update(report_runs)
            .where(report_runs.c.id == run_id)
            .values(
                finished_at=datetime.now(UTC),
                status=status.value,
                output_path=output_path,
                error=error,
            )
        )


def read_report_runs(bind: Engine | Connection) -> pd.DataFrame:
    """Every recorded report run, oldest first, as a DataFrame.

    Columns: ``id``, ``parameters`` (dicts: url with the password masked, since, until,
    repository_id, title, format, output), ``since``, ``until`` (the data window covered),
    ``started_at``, ``finished_at`` (``NaT`` while running), ``status`` (category: running,
    completed, failed), ``output_path``, ``error`` (strings, ``NaN`` where none). Dtypes are
    those of :data:`REPORT_RUN_DTYPES`, also when there are no runs. A repository-scoped
    engine gets only the runs started within its scope.
    """
    stmt = select(*(report_runs.c[name] for name in REPORT_RUN_DTYPES)).order_by(
        report_runs.c.started_at, report_runs.c.id
    )
    with begin(bind) as conn:
        rows = conn.execute(stmt).all()
    return to_frame(rows, REPORT_RUN_DTYPES)
