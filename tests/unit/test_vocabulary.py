"""The vocabulary is the one definition: every other spelling of its words must agree with it."""

from __future__ import annotations

import typing

from sqlalchemy import BigInteger, Integer, Numeric

from miyabi_analytics import agents, frames, metrics, records
from miyabi_analytics._db.schema import analytics
from miyabi_analytics._db.views import summary
from miyabi_analytics.vocabulary import (
    AGENT_CATEGORIES,
    AGENT_TYPES,
    CATEGORY_OF,
    INT32_MAX,
    LOG_LEVELS,
    METRIC_COLUMNS,
    TYPED_METRICS,
    ExecutionStatus,
    IntColumn,
    RateColumn,
)


def test_the_public_names_are_the_vocabulary_itself() -> None:
    assert agents.AGENT_TYPES is AGENT_TYPES
    assert agents.AGENT_CATEGORIES is AGENT_CATEGORIES
    assert records.ExecutionStatus is ExecutionStatus
    assert metrics.LOG_LEVELS is LOG_LEVELS
    assert metrics.METRIC_COLUMNS is METRIC_COLUMNS


def test_fifteen_agents_each_in_one_known_category() -> None:
    assert len(AGENT_TYPES) == len(set(AGENT_TYPES)) == 15
    assert set(CATEGORY_OF) == set(AGENT_TYPES)
    assert set(CATEGORY_OF.values()) == set(AGENT_CATEGORIES)
    assert {cls.agent_type for cls in agents.PersistableAgent.__subclasses__()} == set(AGENT_TYPES)


def test_typed_metrics_agree_with_the_record_the_table_and_the_view() -> None:
    assert tuple(typing.get_type_hints(records.BusinessMetrics)) == TYPED_METRICS
    assert [c.name for c in summary.columns][-len(TYPED_METRICS):] == list(TYPED_METRICS)
    for name, rule in METRIC_COLUMNS.items():
        column_type = analytics.c[name].type
        if isinstance(rule, IntColumn):
            wide = rule.high > INT32_MAX
            assert isinstance(column_type, BigInteger if wide else Integer), name
        else:
            assert isinstance(rule, RateColumn)
            assert isinstance(column_type, Numeric), name
            assert (column_type.precision, column_type.scale) == (rule.precision, 2), name


def test_dtypes_list_the_vocabulary_in_its_order() -> None:
    assert list(frames.SUMMARY_DTYPES["agent_type"].categories) == list(AGENT_TYPES)
    assert list(frames.SUMMARY_DTYPES["agent_category"].categories) == [*AGENT_CATEGORIES, "other"]
    assert list(frames.SUMMARY_DTYPES["status"].categories) == [s.value for s in ExecutionStatus]
    assert list(frames.LOG_DTYPES["log_level"].categories) == list(LOG_LEVELS)


def test_the_lifecycle() -> None:
    pending, running, completed, failed = ExecutionStatus
    assert pending.allowed_predecessors() == (pending,)
    assert running.allowed_predecessors() == (pending, running)
    assert completed.allowed_predecessors() == (running, completed)
    assert failed.allowed_predecessors() == (pending, running, failed)
    assert [s.is_terminal for s in ExecutionStatus] == [False, False, True, True]
