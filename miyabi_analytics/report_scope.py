"""What a report covers: its window, the period before it, and their filters, validated once.

:func:`report_scope` checks the report's parameters (the window and the repository) and turns
them into the :class:`~miyabi_analytics.filters.SummaryFilters` that the report notebook passes
to every aggregate (``filters=``): the notebook validates nothing again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Final

from miyabi_analytics._validate import PREVIOUS_PERIOD_EARLIEST, as_time_bound, as_uuid, as_window
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters

__all__ = ["DEFAULT_DAYS", "ReportScope", "report_scope", "report_window"]

DEFAULT_DAYS: Final = 28
"""Days a report covers when not told otherwise: the last 28, today (UTC) included."""


def report_window(
    since: object = None, until: object = None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """The data window ``[since, until)`` of a report, in UTC.

    ``until`` defaults to the start of tomorrow (UTC), so today is included; ``since`` to
    :data:`DEFAULT_DAYS` days before ``until``. Bounds are aware datetimes, dates or ISO
    strings (a date means UTC midnight). The window is checked as every reader's, and the
    previous period of equal length, which the report compares with, must start on or after
    1970-01-01 (see :func:`~miyabi_analytics._validate.as_window`).
    """
    if until is None:
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        until = datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)
    if since is None:
        last = as_time_bound("until", until)
        if last - PREVIOUS_PERIOD_EARLIEST < 2 * timedelta(days=DEFAULT_DAYS):
            raise ValidationError(
                "until", until, f"too early for a {DEFAULT_DAYS}-day report and its previous "
                f"period (they would start before {PREVIOUS_PERIOD_EARLIEST:%Y-%m-%d})"
            )
        since = last - timedelta(days=DEFAULT_DAYS)
    start, end = as_window(since, until, previous_period=True)
    assert start is not None  # both were given
    assert end is not None
    return start, end


@dataclass(frozen=True, slots=True)
class ReportScope:
    """What a report covers, validated once; the notebook gives each query one of its filters.

    ``window`` is ``[start, end)`` of the repository (``None``: all), ``before`` the period of
    equal length just before it, ``history`` everything before ``end`` (errors first seen).
    """

    start: datetime
    end: datetime
    repository_id: uuid.UUID | None
    window: SummaryFilters
    before: SummaryFilters
    history: SummaryFilters


def report_scope(
    since: object = None,
    until: object = None,
    repository_id: object = None,
    *,
    now: datetime | None = None,
) -> ReportScope:
    """The :func:`report_window` and the repository (one UUID or ``None``), as filters."""
    repo = None if repository_id is None else as_uuid("repository_id", repository_id)
    start, end = report_window(since, until, now=now)
    scope = SummaryFilters(repository_ids=None if repo is None else (repo,))
    return ReportScope(
        start=start,
        end=end,
        repository_id=repo,
        window=replace(scope, since=start, until=end),
        before=replace(scope, since=start - (end - start), until=start),
        history=replace(scope, until=end),
    )
