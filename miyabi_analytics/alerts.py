"""Health rules for cron: is the failure rate, the quality or the number of stuck runs alarming?

``miyabi-analytics check`` runs :func:`check` and exits 1 when a rule is breached, so a crontab
line (or any monitor that reads exit codes) alerts without parsing anything. Three rules, each
judged only when its limit is given:

- ``failure-rate``: failed / finished (completed + failed) executions that started in the
  window ``[now - since, now]`` is *above* ``max_failure_rate`` (0..1);
- ``quality``: the mean ``quality_score`` of the scored executions that started in the window
  is *below* ``min_quality`` (0..100);
- ``stale``: at least one execution is stuck now, by the rules of ``reap``: it sends heartbeats
  and has been silent for ``stale_after``, or it never sent one (the upstream Rust writers never
  do) and has run for more than ``max_runtime`` (default: twice ``stale_after``, as the
  dashboard's 30m / 1h). Stuck is judged over *all* running executions, not only those that
  started in the window: a run stuck for longer than the window must keep the alert on.

A rule with nothing to judge (no finished or no scored execution in the window) is not breached
and says so. The counts and means are the package's aggregates (computed in the database).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine

from miyabi_analytics._db.engine import mask_url
from miyabi_analytics._db.migrate import current_revision, head_revision
from miyabi_analytics._durations import as_duration, format_duration
from miyabi_analytics._validate import as_aware
from miyabi_analytics.aggregates import quality_trend, success_rates
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.store import ExecutionStore

__all__ = [
    "DEFAULT_SINCE",
    "Verdict",
    "check",
    "check_failure_rate",
    "check_min_quality",
    "require_schema",
    "verdict_lines",
    "verdicts_json",
]

DEFAULT_SINCE: Final = timedelta(hours=24)
"""The window of the failure-rate and quality rules when ``since`` is not given."""
RUNTIME_PER_STALE: Final = 2
"""``max_runtime`` defaults to this many ``stale_after`` (the dashboard's 30m / 1h)."""

Rule = Literal["failure-rate", "quality", "stale"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One rule's outcome: ``value`` is ``None`` when the window had nothing to judge.

    ``value`` and ``limit`` are fractions for ``failure-rate`` (0.125 is 12.5%), scores for
    ``quality`` and counts of stuck executions for ``stale`` (limit 0); ``executions`` is how
    many executions the value stands on (finished, scored, stuck).
    """

    rule: Rule
    breached: bool
    value: float | int | None
    limit: float | int
    executions: int
    message: str

    @property
    def line(self) -> str:
        """The message with its outcome first, as ``check`` prints it."""
        return f"{'BREACHED' if self.breached else 'ok'} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``check --json``'s ``rules`` list."""
        return {
            "rule": self.rule,
            "breached": self.breached,
            "value": self.value,
            "limit": self.limit,
            "executions": self.executions,
            "message": self.message,
        }


def check_failure_rate(value: object, field: str = "max_failure_rate") -> float:
    """A failure rate limit: a number from 0 to 1 (0.1 is 10%), else ValidationError."""
    return _bounded(field, value, 1.0, "a fraction from 0 to 1, e.g. 0.1 for 10%")


def check_min_quality(value: object, field: str = "min_quality") -> float:
    """A quality limit: a score from 0 to 100, else ValidationError."""
    return _bounded(field, value, 100.0, "a quality score from 0 to 100")


def check(
    bind: Engine | Connection,
    *,
    since: timedelta | str = DEFAULT_SINCE,
    max_failure_rate: float | None = None,
    min_quality: float | None = None,
    stale_after: timedelta | str | None = None,
    max_runtime: timedelta | str | None = None,
    now: datetime | None = None,
) -> list[Verdict]:
    """Judge each rule whose limit is given, in the order failure-rate, quality, stale.

    ``now`` (default: the current time) ends the window; the stuck count always uses the
    current time, as ``reap`` would. Everything is validated before the database is read, and
    the database must exist and be migrated to head.

    Raises:
        ValidationError: naming the argument (a duration that is not positive, a rate outside
            0..1, a score outside 0..100, no rule at all), or ``url`` for a database that does
            not exist or is not migrated.
    """
    window = as_duration("since", since)
    rate = None if max_failure_rate is None else check_failure_rate(max_failure_rate)
    quality = None if min_quality is None else check_min_quality(min_quality)
    stale = None if stale_after is None else as_duration("stale_after", stale_after)
    runtime = None if max_runtime is None else as_duration("max_runtime", max_runtime)
    if stale is not None and runtime is None:
        runtime = stale * RUNTIME_PER_STALE
    if rate is None and quality is None and runtime is None:
        raise ValidationError(
            "rules", None, "give max_failure_rate, min_quality, stale_after or max_runtime"
        )
    end = datetime.now(UTC) if now is None else as_aware("now", now)
    start = end - window
    require_schema(bind)
    verdicts = []
    if rate is not None:
        verdicts.append(_failure_rate(bind, start, rate))
    if quality is not None:
        verdicts.append(_quality(bind, start, quality))
    if runtime is not None:
        verdicts.append(_stale(bind, stale, runtime))
    return verdicts


def require_schema(bind: Engine | Connection) -> None:
    """Refuse a SQLite file that does not exist (reading would create it) or an old schema."""
    url = bind.url if isinstance(bind, Engine) else bind.engine.url
    database = url.database or ""
    if (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).is_file()
    ):
        raise ValidationError("url", mask_url(url), "no such SQLite database file")
    revision, head = current_revision(bind), head_revision()
    if revision != head:
        raise ValidationError(
            "url",
            mask_url(url),
            f"the database is at revision {revision or 'none'}, not {head}; run "
            "miyabi-analytics migrate first",
        )


def verdict_lines(verdicts: list[Verdict]) -> list[str]:
    """One ``BREACHED ...`` line per breached rule, or a single ``OK ...`` line."""
    breached = [v.line for v in verdicts if v.breached]
    if breached:
        return breached
    return ["OK " + "; ".join(v.message for v in verdicts)]


def verdicts_json(verdicts: list[Verdict], since: datetime, window: timedelta) -> dict[str, Any]:
    """The object ``check --json`` prints: ``ok``, the window and one entry per rule."""
    return {
        "ok": not any(v.breached for v in verdicts),
        "since": _iso(since),
        "window": format_duration(window),
        "rules": [v.as_dict() for v in verdicts],
    }


def _failure_rate(bind: Engine | Connection, start: datetime, limit: float) -> Verdict:
    counts = success_rates(bind, by=None, since=start)
    completed = int(counts["completed"].sum())
    failed = int(counts["failed"].sum())
    finished = completed + failed
    shown_limit = f"(limit {limit:.1%})"
    if finished == 0:
        message = f"failure-rate: no finished executions since {_iso(start)} {shown_limit}"
        return Verdict(
            rule="failure-rate", breached=False, value=None, limit=limit, executions=0,
            message=message,
        )
    rate = failed / finished
    message = (
        f"failure-rate: {rate:.1%} of {_count(finished, 'finished execution')} failed since "
        f"{_iso(start)} {shown_limit}"
    )
    return Verdict(
        rule="failure-rate", breached=rate > limit, value=rate, limit=limit,
        executions=finished, message=message,
    )


def _quality(bind: Engine | Connection, start: datetime, limit: float) -> Verdict:
    scores = quality_trend(bind, by=None, freq=None, since=start)
    scored = int(scores["executions"].sum())
    shown_limit = f"(minimum {limit:.1f})"
    if scored == 0:
        message = f"quality: no scored executions since {_iso(start)} {shown_limit}"
        return Verdict(
            rule="quality", breached=False, value=None, limit=limit, executions=0,
            message=message,
        )
    mean = float(scores["mean_quality"].iloc[0])
    message = (
        f"quality: mean {mean:.1f} over {_count(scored, 'scored execution')} since "
        f"{_iso(start)} {shown_limit}"
    )
    return Verdict(
        rule="quality", breached=mean < limit, value=mean, limit=limit, executions=scored,
        message=message,
    )


def _stale(bind: Engine | Connection, stale: timedelta | None, runtime: timedelta) -> Verdict:
    stuck = ExecutionStore(bind).count_stuck(stale, max_runtime=runtime)
    rules = f"running for more than {format_duration(runtime)} without a heartbeat"
    if stale is not None:
        rules = f"no heartbeat for {format_duration(stale)}, or {rules}"
    what = "no running execution is" if stuck == 0 else _count(stuck, "running execution")
    verb = "" if stuck == 0 else " is" if stuck == 1 else " are"
    message = f"stale: {what}{verb} stuck now ({rules})"
    return Verdict(
        rule="stale", breached=stuck > 0, value=stuck, limit=0, executions=stuck,
        message=message,
    )


def _bounded(field: str, value: object, top: float, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, value, f"expected {expected}")
    number = float(value)
    if math.isnan(number) or not 0.0 <= number <= top:
        raise ValidationError(field, value, f"expected {expected}")
    return number


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _iso(moment: datetime) -> str:
    """UTC to the second, ``Z``-suffixed: short enough for a one-line alert."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

