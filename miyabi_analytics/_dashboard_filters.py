"""The dashboard's filter state: validated, canonical, hashable (it keys the model's cache)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Final

from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.vocabulary import (
    AGENT_CATEGORIES,
    AGENT_TYPES,
    ExecutionStatus,
    agent_category,
    agent_type_order,
)

__all__ = ["STATUSES", "DashboardFilters"]

STATUSES: Final = tuple(s.value for s in ExecutionStatus)


def _selected(values: object) -> list[object] | None:
    """A selection's values (one, or an iterable); nothing selected (None, empty) is all."""
    if values is None:
        return None
    if isinstance(values, str) or not isinstance(values, Iterable):
        return [values]
    return list(values) or None


def _canonical(values: Iterable[str] | None, order: Callable[[str], Any]) -> tuple[str, ...] | None:
    """Validated values deduplicated in a canonical order, so equal selections hash equal."""
    return None if values is None else tuple(sorted(set(values), key=order))


def _check_category(value: object) -> str:
    if isinstance(value, str) and value in AGENT_CATEGORIES:
        return value
    raise ValidationError("categories", value, f"expected one of {', '.join(AGENT_CATEGORIES)}")


@dataclass(frozen=True, slots=True)
class DashboardFilters:
    """One filter state; hashable, it keys the model's cache.

    ``since`` (inclusive) and ``until`` (exclusive) bound ``started_at``, ``None`` leaves that side
    open. The selections are tuples in a canonical order; ``None`` means all. Agents shown are
    those in ``agent_types`` that belong to one of ``categories``. Build with :meth:`build`;
    :meth:`summary_filters` is what every query of the dashboard is given.
    """

    since: datetime | None = None
    until: datetime | None = None
    repository_ids: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    agent_types: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None

    @classmethod
    def build(
        cls,
        *,
        since: object = None,
        until: object = None,
        repository_ids: Iterable[object] | None = None,
        categories: Iterable[object] | None = None,
        agent_types: Iterable[object] | None = None,
        statuses: Iterable[object] | None = None,
    ) -> DashboardFilters:
        """Validated filters; dates mean UTC midnight, an empty selection means all.

        The query filters are checked by :meth:`SummaryFilters.build`, as every reader's and
        aggregate's are; only ``categories`` (the dashboard's own) is checked here.
        """
        try:
            checked = SummaryFilters.build(
                repository_id=_selected(repository_ids),
                agent_types=_selected(agent_types),
                statuses=_selected(statuses),
                since=since,
                until=until,
            )
        except ValidationError as exc:  # named as the dashboard's argument
            if exc.field != "repository_id":
                raise
            raise ValidationError("repository_ids", exc.value, exc.reason) from None
        chosen = _selected(categories)
        filters = cls(
            since=checked.since,
            until=checked.until,
            repository_ids=_canonical(
                None if checked.repository_ids is None else map(str, checked.repository_ids),
                str,
            ),
            categories=_canonical(
                None if chosen is None else map(_check_category, chosen),
                AGENT_CATEGORIES.index,
            ),
            # Open, as every filter: the 15 in the design's order, then other writers' types.
            agent_types=_canonical(checked.agent_types, agent_type_order),
            statuses=_canonical(
                None if checked.statuses is None else (s.value for s in checked.statuses),
                STATUSES.index,
            ),
        )
        if filters.agent_selection() == ():
            raise ValidationError(
                "agent_types", agent_types, "none of them is in the selected categories"
            )
        return filters

    def changed(self, **changes: object) -> DashboardFilters:
        """These filters with some fields changed, validated again."""
        current: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        return DashboardFilters.build(**{**current, **changes})

    def agent_selection(self) -> tuple[str, ...] | None:
        """The agent types to query: ``agent_types`` within ``categories``; ``None``: all."""
        if self.categories is None:
            return self.agent_types
        chosen = self.agent_types or AGENT_TYPES
        return tuple(a for a in chosen if agent_category(a) in self.categories)

    def summary_filters(self) -> SummaryFilters:
        """The filters of every query for this state (``filters=``), from validated fields."""
        return SummaryFilters(
            repository_ids=(
                None if self.repository_ids is None else tuple(map(uuid.UUID, self.repository_ids))
            ),
            agent_types=self.agent_selection(),
            statuses=None if self.statuses is None else tuple(map(ExecutionStatus, self.statuses)),
            since=self.since,
            until=self.until,
        )

    def previous_period(self) -> DashboardFilters | None:
        """The same filters over the period of equal length just before; ``None`` if open."""
        if self.since is None or self.until is None:
            return None
        return replace(self, since=self.since - (self.until - self.since), until=self.since)

    def is_short(self) -> bool:
        """At most two months: daily buckets for trends, weekly for the rest."""
        return (
            self.since is not None
            and self.until is not None
            and self.until - self.since <= timedelta(days=62)
        )
