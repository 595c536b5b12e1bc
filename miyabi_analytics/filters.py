"""The filters shared by ``read_summary`` and every aggregate, validated once, applied as SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypedDict, TypeVar, Unpack

from sqlalchemy import ColumnElement, Select

from miyabi_analytics._validate import as_uuid, as_window
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.vocabulary import ExecutionStatus, check_read_agent_type

__all__ = [
    "FILTER_KEYWORDS",
    "FilterArgs",
    "IdArg",
    "StatusesArg",
    "SummaryFilters",
    "TimeArg",
    "TypesArg",
]

S = TypeVar("S", bound=Select[Any])

IdArg = uuid.UUID | str | Iterable[uuid.UUID | str] | None
TypesArg = str | Iterable[str] | None
StatusesArg = ExecutionStatus | str | Iterable[ExecutionStatus | str] | None
TimeArg = datetime | str | None


class FilterArgs(TypedDict, total=False):
    """The filter keywords of ``read_summary`` and every aggregate, spelled once.

    Public functions take them as ``**filter_args: Unpack[FilterArgs]``, next to a keyword
    ``filters: SummaryFilters | None = None`` for callers holding validated filters, and turn
    either into one :class:`SummaryFilters` (:meth:`SummaryFilters.of`); everything below
    passes that object.
    """

    repository_id: IdArg
    user_id: IdArg
    agent_types: TypesArg
    statuses: StatusesArg
    since: TimeArg
    until: TimeArg


FILTER_KEYWORDS: Final = frozenset(FilterArgs.__optional_keys__)
"""The names of the filter keywords (those of :class:`FilterArgs`)."""


def _many(field: str, value: object) -> list[object]:
    """A single value or an iterable of them (a lone string is one value, not its characters)."""
    if isinstance(value, str | uuid.UUID | ExecutionStatus):
        return [value]
    if isinstance(value, Iterable):
        items = list(value)
        if not items:
            raise ValidationError(field, value, "empty: pass None to mean 'all'")
        return items
    return [value]


@dataclass(frozen=True, slots=True)
class SummaryFilters:
    """Validated filters; ``since`` is inclusive, ``until`` exclusive, both on ``started_at``."""

    repository_ids: tuple[uuid.UUID, ...] | None = None
    user_ids: tuple[uuid.UUID, ...] | None = None
    agent_types: tuple[str, ...] | None = None
    statuses: tuple[ExecutionStatus, ...] | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def build(
        cls,
        *,
        repository_id: object = None,
        user_id: object = None,
        agent_types: object = None,
        statuses: object = None,
        since: object = None,
        until: object = None,
    ) -> SummaryFilters:
        """Validate user-facing filter arguments (ids may be one or many).

        ``since``/``until`` are checked by :func:`~miyabi_analytics._validate.as_window`, as
        in every reader and the report: ``since`` must be before ``until``. ``agent_types``
        is open, as reading is: any non-empty name, the 15 or another writer's
        (``CoordinatorAgent``); a name no row has matches nothing.
        """
        start, end = as_window(since, until)
        return cls(
            repository_ids=None if repository_id is None else tuple(
                as_uuid("repository_id", v) for v in _many("repository_id", repository_id)
            ),
            user_ids=None if user_id is None else tuple(
                as_uuid("user_id", v) for v in _many("user_id", user_id)
            ),
            agent_types=None if agent_types is None else tuple(
                check_read_agent_type(v, "agent_types")
                for v in _many("agent_types", agent_types)
            ),
            statuses=None if statuses is None else tuple(
                ExecutionStatus.parse(v, "statuses") for v in _many("statuses", statuses)
            ),
            since=start,
            until=end,
        )

    @classmethod
    def of(
        cls, filters: SummaryFilters | None = None, **args: Unpack[FilterArgs]
    ) -> SummaryFilters:
        """``filters`` as given (already validated), else the keyword filters validated.

        The one entry of every public reader and aggregate: ``fn(bind, filters=f)`` passes a
        :class:`SummaryFilters` built once (by :meth:`build`, a dashboard, a report) to any
        number of calls, which then validate nothing again; ``fn(bind, since=..., ...)``
        validates the keywords here. Both at once is refused (:class:`ValidationError` on
        ``filters``, even for keywords given as ``None``: which would win is not obvious), and
        a keyword that is not a filter is a :class:`TypeError`, as for any unknown keyword.
        """
        unknown = set(args) - FILTER_KEYWORDS
        if unknown:
            raise TypeError(
                f"unexpected filter keyword(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(sorted(FILTER_KEYWORDS))} or filters=SummaryFilters(...)"
            )
        if filters is not None:
            if not isinstance(filters, SummaryFilters):
                raise ValidationError(
                    "filters", filters, "expected a SummaryFilters (see SummaryFilters.build)"
                )
            if args:
                raise ValidationError("filters", sorted(args), "pass filters or keywords, not both")
            return filters
        return cls.build(**args)

    def clauses(self, columns: Any) -> list[ColumnElement[bool]]:
        """WHERE clauses against a selectable's ``.c`` having the summary's column names."""
        out: list[ColumnElement[bool]] = []
        if self.repository_ids is not None:
            out.append(columns.repository_id.in_(self.repository_ids))
        if self.user_ids is not None:
            out.append(columns.user_id.in_(self.user_ids))
        if self.agent_types is not None:
            out.append(columns.agent_type.in_(self.agent_types))
        if self.statuses is not None:
            out.append(columns.status.in_([s.value for s in self.statuses]))
        if self.since is not None:
            out.append(columns.started_at >= self.since)
        if self.until is not None:
            out.append(columns.started_at < self.until)
        return out

    def apply(self, stmt: S, columns: Any) -> S:
        """``stmt`` with every clause added."""
        clauses = self.clauses(columns)
        return stmt.where(*clauses) if clauses else stmt
