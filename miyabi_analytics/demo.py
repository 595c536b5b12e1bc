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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine

from miyabi_analytics.agents import AGENT_TYPES
from miyabi_analytics.records import (
    AgentExecutionResult,
    ExecutionStatus,
    LogEntry,
    MetricsEntry,
    validate_record,
)
from miyabi_analytics.store import ExecutionStore

__all__ = ["ERROR_MESSAGES", "SyntheticHistory", "generate_history", "load_demo"]

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
    """Build ``executions`` executions spread over the ``days`` before ``end`` (default: now)."""
    rng = random.Random(seed)
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(days=days)
    history = SyntheticHistory(
        repository_ids=[_uuid(rng) for _ in range(repositories)],
        user_ids=[_uuid(rng) for _ in range(repositories * 2)],
    )
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
                history.metrics.append(
                    MetricsEntry(
                        builder["id"],
                        _metrics_for(agent, rng, quality),
                        created_at=started + duration,
                    )
                )
        record = validate_record(AgentExecutionResult(**builder))  # as build() does
        history.executions.append(record)
        history.logs.extend(_logs_for(record, rng))
    return history


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


def load_demo(
    bind: Engine | Connection,
    executions: int = 20_000,
    *,
    seed: int = 42,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> SyntheticHistory:
    """Generate a history and write it through the store's bulk paths.

    Loading the same seed twice is a no-op (the ids are seeded), so re-running the demo never
    duplicates metrics or logs.
    """
    history = generate_history(executions, seed=seed, end=end)
    store = ExecutionStore(bind)
    if history.executions and store.exists(history.executions[0].id):
        if progress:
            progress(f"the demo history for seed {seed} is already loaded; not loading it again")
        return history
    store.save_executions(history.executions)
    if progress:
        progress(f"saved {len(history.executions):,} executions")
    store.save_analysis_metrics_many(history.metrics)
    store.log_many(history.logs)
    if progress:
        progress(f"saved {len(history.metrics):,} metrics and {len(history.logs):,} log lines")
    return history
