"""Arguments of the bulk writes: the container, then each element as it is reached.

``save_executions``, ``save_analysis_metrics_many`` and ``log_many`` take any iterable,
generators included, and write it in batches without holding it all. So the container is
checked when the call is made, and each element as the batch it belongs to is filled, before
that batch is written: a bad element refuses its whole batch (earlier batches stay stored).
Every refusal is a :class:`ValidationError` naming the argument, and for an element its index
and type (``results[3]=5: expected an AgentExecutionResult, got int``); a record or entry
with a bad field is named by that field, as a single save would, with the index in the reason
(``quality_score=101: must be between 0 and 100 (in results[3])``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NoReturn

from miyabi_analytics._validate import as_aware, as_text, as_uuid
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.metrics import validate_metrics
from miyabi_analytics.records import (
    AgentExecutionResult,
    LogEntry,
    MetricsEntry,
    validate_record,
)
from miyabi_analytics.store._shared import json_mapping
from miyabi_analytics.vocabulary import check_log_level

__all__ = ["bulk_argument", "checked_records", "log_row", "metrics_row"]


def bulk_argument(field: str, value: object, items: str) -> Iterable[Any]:
    """``value`` if it is an iterable of elements; ``items`` names what it should hold.

    A string, bytes or a mapping are iterable but never what is meant (their characters or
    keys would be taken for elements), and a lone element is not a collection of them.
    """
    if isinstance(value, str | bytes | bytearray | memoryview):
        raise ValidationError(field, value, f"expected an iterable of {items}, got a string")
    if isinstance(value, Mapping):
        raise ValidationError(
            field,
            value,
            f"expected an iterable of {items}, got a {type(value).__name__} "
            "(its keys would be taken for them: pass its values)",
        )
    if isinstance(value, AgentExecutionResult | MetricsEntry | LogEntry):
        raise ValidationError(
            field, value, f"expected an iterable of {items}, got one {type(value).__name__}"
        )
    if not isinstance(value, Iterable):
        raise ValidationError(
            field, value, f"expected an iterable of {items}, got {type(value).__name__}"
        )
    return value


def checked_records(results: object) -> Iterator[AgentExecutionResult]:
    """``save_executions``' records, each validated as it is reached (see the module doc)."""
    iterable = bulk_argument("results", results, "AgentExecutionResult records")

    def records() -> Iterator[AgentExecutionResult]:
        for index, item in enumerate(iterable):
            if not isinstance(item, AgentExecutionResult):
                _wrong_element("results", index, item, "an AgentExecutionResult")
            try:
                yield validate_record(item, copy=False)
            except ValidationError as exc:
                _refuse_element("results", index, exc)

    return records()


def metrics_row(index: int, item: object, now: datetime) -> dict[str, Any]:
    """The analytics row of ``entries[index]``: a MetricsEntry or ``(execution_id, metrics)``.

    A tuple may also carry ``created_at`` third, as :class:`MetricsEntry` does.
    """
    if isinstance(item, MetricsEntry):
        entry = item
    elif isinstance(item, tuple | list) and len(item) in (2, 3):
        entry = MetricsEntry(*item)
    else:
        _wrong_element("entries", index, item, "a MetricsEntry or an (execution_id, metrics) pair")
    try:
        valid = validate_metrics(entry.metrics)
        return {
            "id": uuid.uuid4(),
            "execution_id": as_uuid("execution_id", entry.execution_id),
            "metrics": valid.document,
            "created_at": (
                now if entry.created_at is None else as_aware("created_at", entry.created_at)
            ),
            **valid.columns,
        }
    except ValidationError as exc:
        _refuse_element("entries", index, exc)


def log_row(index: int, item: object, now: datetime) -> dict[str, Any]:
    """The log row of ``entries[index]``, a :class:`LogEntry`."""
    if not isinstance(item, LogEntry):
        _wrong_element("entries", index, item, "a LogEntry")
    try:
        return {
            "id": uuid.uuid4(),
            "execution_id": as_uuid("execution_id", item.execution_id),
            "log_level": check_log_level(item.level),
            "message": as_text("message", item.message),
            "metadata": (
                None if item.metadata is None else json_mapping("metadata", item.metadata)
            ),
            "logged_at": (
                now if item.logged_at is None else as_aware("logged_at", item.logged_at)
            ),
        }
    except ValidationError as exc:
        _refuse_element("entries", index, exc)


def _wrong_element(field: str, index: int, item: object, expected: str) -> NoReturn:
    raise ValidationError(
        f"{field}[{index}]", item, f"expected {expected}, got {type(item).__name__}"
    )


def _refuse_element(field: str, index: int, exc: ValidationError) -> NoReturn:
    """``exc`` again, saying which element it was found in.

    The field stays the record's own (``quality_score``, ``result.a``), as a single save
    names it; the element's place goes into the reason.
    """
    raise ValidationError(exc.field, exc.value, f"{exc.reason} (in {field}[{index}])") from exc
