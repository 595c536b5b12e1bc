"""A seeded, realistic synthetic history of the 15 agents, for the demo, notebooks and benchmarks.

Deterministic for a seed (and an ``end`` time): the same seed gives the same executions, metrics
and logs, so notebooks and tests can rely on its shape: lifecycles with a few pending and running
executions, failures drawn from a handful of recurring error messages, quality drifting over weeks
(some agents improve, one degrades lately), and business metrics that fit each agent's job.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine

from miyabi_analytics._db.tx import write
from miyabi_analytics._progress import progress_bar
from miyabi_analytics._validate import as_int
from miyabi_analytics.records import (
    AgentExecutionResult,
    LogEntry,
    MetricsEntry,
    validate_record,
)
from miyabi_analytics.store import MAX_BATCH_SIZE, ExecutionStore
from miyabi_analytics.vocabulary import AGENT_TYPES, ExecutionStatus

__all__ = [
    "DEMO_BATCH_SIZE",
    "ERROR_MESSAGES",
    "MAX_EXECUTIONS",
    "DemoLoad",
    "SyntheticHistory",
    "generate_history",
    "iter_history",
    "load_demo",
]

DEMO_BATCH_SIZE: Final = 10_000
"""Executions made and written at a time: about 25 MB with their metrics and logs."""
MAX_EXECUTIONS: Final = 1_000_000_000
"""Far more than any demo needs (days of loading at a few thousand a second): a typo beyond."""

ERROR_MESSAGES: Final = (
    ("LLM API timeout after 120s", 9.0),
    ("Rate limit exceeded (HTTP 429) from GitHub API", 6.0),
    ("Invalid JSON in model response", 5.0),
    ("Context window exceeded: input is 212k tokens", 3.0),
    ("Market data source unavailable", 2.5),
    ("Quality gate failed: score below threshold 60", 2.0),
    ("Network error: connection reset by peer", 1.5),
    ("Permission denied: repository is archived", 0.5),
)

# Agent profile: (share of runs, median minutes, failure rate, base quality, drift per week)
_PROFILES: Final[dict[str, tuple[float, float, float, float, float]]] = {
    "AIEntrepreneurAgent": (1.0, 14.0, 0.10, 78, 0.35),
    "SelfAnalysisAgent": (0.6, 4.0, 0.04, 84, 0.05),
    "PersonaAgent": (0.8, 5.0, 0.05, 81, 0.10),
    "ProductConceptAgent": (0.8, 8.0, 0.08, 77, 0.25),
    "ProductDesignAgent": (0.7, 10.0, 0.09, 75, 0.20),
    "FunnelDesignAgent": (0.6, 6.0, 0.07, 79, 0.00),
    "MarketResearchAgent": (1.4, 12.0, 0.12, 80, 0.15),
    "ContentCreationAgent": (1.6, 3.0, 0.05, 83, 0.10),
    "SNSStrategyAgent": (1.2, 3.5, 0.06, 82, -0.05),
    "MarketingAgent": (1.3, 7.0, 0.08, 79, 0.20),
    "YouTubeAgent": (0.9, 6.0, 0.11, 76, 0.30),
    "SalesAgent": (1.1, 5.0, 0.07, 80, 0.10),
    "CRMAgent": (0.9, 2.5, 0.04, 85, 0.00),
    "AnalyticsAgent": (1.2, 9.0, 0.06, 86, 0.05),
    "JonathanIveDesignAgent": (0.5, 11.0, 0.05, 90, 0.00),
}
# An agent whose quality falls off in the last three weeks, for the drop detection to find.
_DEGRADING: Final = "SNSStrategyAgent"


@dataclass
class SyntheticHistory:
    """Records, metrics and logs ready for the store's bulk methods."""

    repository_ids: list[uuid.UUID]
    user_ids: list[uuid.UUID]
    executions: list[AgentExecutionResult] = field(default_factory=list)
    metrics: list[MetricsEntry] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _metrics_for(agent: str, rng: random.Random, quality: float) -> dict[str, Any]:
    """Metrics that fit the agent's job; better runs report somewhat better numbers."""
    lift = 0.6 + quality / 125
    m: dict[str, Any] = {"model": rng.choice(["gpt-5", "claude-opus", "claude-sonnet"])}
    if agent in ("MarketResearchAgent", "AIEntrepreneurAgent", "ProductConceptAgent"):
        m["competitors_analyzed"] = rng.randint(5, 40)
        m["market_size_usd"] = int(10 ** rng.uniform(7.5, 10.5))
        m["growth_rate_percent"] = round(rng.gauss(11, 7), 2)
        m["top_competitors"] = rng.sample(["Acme", "Globex", "Initech", "Umbrella", "Hooli"], 3)
    if agent in ("SalesAgent", "MarketingAgent", "FunnelDesignAgent", "AIEntrepreneurAgent"):
        m["conversion_rate"] = round(max(0.1, rng.gauss(3.2, 1.4) * lift), 2)
        m["target_audience_size"] = int(10 ** rng.uniform(3.5, 6.5))
        m["estimated_revenue_usd"] = int(10 ** rng.uniform(4.5, 7.2) * lift)
    if agent in ("ContentCreationAgent", "SNSStrategyAgent", "YouTubeAgent", "MarketingAgent"):
        m["engagement_score"] = max(0, min(100, round(rng.gauss(62, 14) * lift)))
        m["reach_estimate"] = int(10 ** rng.uniform(3.0, 6.0) * lift)
    if agent in ("AnalyticsAgent", "CRMAgent", "SalesAgent", "AIEntrepreneurAgent"):
        m["roi_percent"] = round(rng.gauss(45, 60) * lift, 2)
    if agent in ("PersonaAgent", "SelfAnalysisAgent", "ProductDesignAgent"):
        m["target_audience_size"] = int(10 ** rng.uniform(3, 5.5))
        m["personas"] = rng.randint(2, 6)
    if agent == "JonathanIveDesignAgent":
        m["engagement_score"] = max(0, min(100, round(rng.gauss(75, 10))))
        m["screens_reviewed"] = rng.randint(3, 25)
    return m


def generate_history(
    executions: int = 20_000,
    *,
    seed: int = 42,
    end: datetime | None = None,
    days: int = 120,
    repositories: int = 6,
) -> SyntheticHistory:
    """Build ``executions`` executions spread over the ``days`` before ``end`` (default: now).

    All in memory at once (about 2.5 kB per execution with its metrics and logs): for large
    histories use :func:`iter_history`, which makes the same records batch by batch.
    """
    rng, history = _start(seed, repositories)
    for record, metrics, logs in _executions(rng, history, _count(executions), end, days):
        history.executions.append(record)
        if metrics is not None:
            history.metrics.append(metrics)
        history.logs.extend(logs)
    return history


def iter_history(
    executions: int = 20_000,
    *,
    seed: int = 42,
    end: datetime | None = None,
    days: int = 120,
    repositories: int = 6,
    batch_size: int = DEMO_BATCH_SIZE,
) -> Iterator[SyntheticHistory]:
    """The history :func:`generate_history` makes, as batches made while they are consumed.

    Each batch holds at most ``batch_size`` executions with their metrics and logs, and nothing
    of a batch is kept once the next one is asked for: memory stays that of one batch however
    many executions are asked for. The batches together are exactly ``generate_history``'s
    history for the same arguments (``end`` included: pass one to compare).

    Raises:
        ValidationError: ``executions`` or ``batch_size`` is not a usable count (raised here,
            not at the first batch).
    """
    count = _count(executions)
    size = as_int("batch_size", batch_size, low=1, high=MAX_BATCH_SIZE)
    rng, shared = _start(seed, repositories)
    return _batches(_executions(rng, shared, count, end, days), shared, size)


def _count(executions: object) -> int:
    return as_int("executions", executions, low=0, high=MAX_EXECUTIONS)


def _start(seed: int, repositories: int) -> tuple[random.Random, SyntheticHistory]:
    rng = random.Random(seed)
    return rng, SyntheticHistory(
        repository_ids=[_uuid(rng) for _ in range(repositories)],
        user_ids=[_uuid(rng) for _ in range(repositories * 2)],
    )


def _batches(
    rows: Iterator[tuple[AgentExecutionResult, MetricsEntry | None, list[LogEntry]]],
    shared: SyntheticHistory,
    size: int,
) -> Iterator[SyntheticHistory]:
    batch = SyntheticHistory(shared.repository_ids, shared.user_ids)
    for record, metrics, logs in rows:
        batch.executions.append(record)
        if metrics is not None:
            batch.metrics.append(metrics)
        batch.logs.extend(logs)
        if len(batch.executions) == size:
            yield batch
            batch = SyntheticHistory(shared.repository_ids, shared.user_ids)
    if batch.executions:
        yield batch


def _executions(
    rng: random.Random,
    history: SyntheticHistory,
    executions: int,
    end: datetime | None,
    days: int,
) -> Iterator[tuple[AgentExecutionResult, MetricsEntry | None, list[LogEntry]]]:
    """One execution at a time, with its metrics (if any) and log lines, in the seed's order."""
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(days=days)
    weights = [_PROFILES[a][0] for a in AGENT_TYPES]
    errors, error_weights = zip(*ERROR_MESSAGES, strict=True)
    span = (end - start).total_seconds()
    for _ in range(executions):
        agent = rng.choices(AGENT_TYPES, weights)[0]
        _, median_min, fail_rate, base_q, drift = _PROFILES[agent]
        repo = rng.choice(history.repository_ids)
        started = start + timedelta(seconds=rng.random() * span)
        if started.weekday() >= 5 and rng.random() < 0.5:  # quieter weekends
            started -= timedelta(days=2)
        started = max(started, start)
        weeks_in = (started - start).days / 7
        duration = timedelta(seconds=median_min * 60 * math.exp(rng.gauss(0, 0.6)))
        roll = rng.random()
        metrics: MetricsEntry | None = None
        builder: dict[str, Any] = {
            "id": _uuid(rng),
            "repository_id": repo,
            "agent_type": agent,
            "user_id": rng.choice(history.user_ids) if rng.random() < 0.9 else None,
            "issue_number": rng.randint(1, 900),
        }
        recent = (end - started) < timedelta(hours=6)
        if roll < 0.02:
            builder.update(status=ExecutionStatus.PENDING, started_at=None)
        elif recent and roll < 0.5:
            builder.update(status=ExecutionStatus.RUNNING, started_at=started)
        elif roll < 0.02 + fail_rate:
            builder.update(
                status=ExecutionStatus.FAILED,
                started_at=started,
                completed_at=started + duration * rng.uniform(0.1, 1.0),
                error_message=rng.choices(errors, error_weights)[0],
            )
        else:
            quality = base_q + drift * weeks_in + rng.gauss(0, 6)
            if agent == _DEGRADING and end - started < timedelta(weeks=3):
                quality -= 18
            score = None if rng.random() < 0.05 else max(0, min(100, round(quality)))
            builder.update(
                status=ExecutionStatus.COMPLETED,
                started_at=started,
                completed_at=started + duration,
                quality_score=score,
                pr_number=rng.randint(1, 1500) if rng.random() < 0.4 else None,
                result={
                    "summary": f"{agent} finished issue #{builder['issue_number']}",
                    "recommendations": rng.randint(1, 8),
                },
            )
            if rng.random() < 0.85:
                metrics = MetricsEntry(
                    builder["id"],
                    _metrics_for(agent, rng, quality),
                    created_at=started + duration,
                )
        record = validate_record(AgentExecutionResult(**builder))  # as build() does
        yield record, metrics, list(_logs_for(record, rng))


def _logs_for(record: AgentExecutionResult, rng: random.Random) -> Iterator[LogEntry]:
    if record.started_at is None:
        return
    at = record.started_at
    yield LogEntry(record.id, "info", f"{record.agent_type} started", {"step": 0}, at)
    for step in range(1, rng.randint(1, 3) + 1):
        at += timedelta(seconds=rng.uniform(1, 30))
        yield LogEntry(record.id, "debug", f"step {step} done", {"step": step}, at)
    if rng.random() < 0.08:
        yield LogEntry(record.id, "warning", "retrying after a slow response", None, at)
    if record.status is ExecutionStatus.FAILED and record.completed_at is not None:
        yield LogEntry(
            record.id, "error", record.error_message or "failed", None, record.completed_at
        )
    elif record.completed_at is not None:
        yield LogEntry(
            record.id, "info", "completed", {"quality": record.quality_score}, record.completed_at
        )


@dataclass(frozen=True, slots=True)
class DemoLoad:
    """What :func:`load_demo` wrote; all zero with ``already_loaded`` when the seed's was there."""

    executions: int
    metrics: int
    logs: int
    already_loaded: bool = False


def load_demo(
    bind: Engine | Connection,
    executions: int = 20_000,
    *,
    seed: int = 42,
    end: datetime | None = None,
    batch_size: int = DEMO_BATCH_SIZE,
    progress: bool | None = None,
) -> DemoLoad:
    """Generate a history and write it batch by batch through the store's bulk paths.

    Memory stays that of one batch (:func:`iter_history`), so ``executions`` is bounded by time
    and disk only. The whole load is one transaction: a failed or interrupted load leaves
    nothing behind, and with an engine a transient failure (a lost connection, a lock) runs it
    again from the start, with the same rows. Loading the same seed twice is a no-op (the ids
    are seeded; the first one marks a loaded history), so re-running the demo never duplicates
    metrics or logs. ``progress`` shows a bar (``None``: when interactive).

    Raises:
        ValidationError: ``executions`` or ``batch_size`` is not a usable count (nothing is
            written).
    """
    end = (end or datetime.now(UTC)).astimezone(UTC)  # fixed: a rerun makes the same rows
    iter_history(executions, seed=seed, end=end, batch_size=batch_size)  # validates, makes none

    def load(conn: Connection) -> DemoLoad:
        store = ExecutionStore(conn)
        records = metrics = logs = 0
        batches = iter_history(executions, seed=seed, end=end, batch_size=batch_size)
        with progress_bar(progress, total=executions, desc="demo", unit="execution") as bar:
            for number, batch in enumerate(batches):
                if number == 0 and store.exists(batch.executions[0].id):
                    return DemoLoad(0, 0, 0, already_loaded=True)
                records += store.save_executions(batch.executions, progress=False)
                metrics += store.save_analysis_metrics_many(batch.metrics)
                logs += store.log_many(batch.logs)
                bar.update(len(batch.executions))
        return DemoLoad(records, metrics, logs)

    return write(bind, load, what="load_demo")
