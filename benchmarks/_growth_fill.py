"""Fill a migrated database with a synthetic history by SQL alone (for bench_history_growth.py).

The shape follows miyabi_analytics.demo's history: the 15 agents with the demo's run shares,
durations, failure rates and quality drift; six repositories, twelve users; 2% pending, a few
running in the last six hours, failures from the demo's weighted error messages, the rest
completed; analytics for 85% of completed runs (the demo's per-agent metrics), and 3-6 log lines
per started run. Every value is a hash of the row number ``g``, so no row is computed in Python
and a run is deterministic on both databases: PostgreSQL takes ``g`` from generate_series,
SQLite from a recursive CTE. Revision 0010's triggers fire as for any writer (PostgreSQL once per
statement, SQLite once per row). Small lookup tables (``bench_*``) carry the profiles and are
dropped after the fill.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from miyabi_analytics.demo import _PROFILES, ERROR_MESSAGES
from miyabi_analytics.vocabulary import AGENT_TYPES

M = 2147483647
CHUNK = 250_000
AGENT_SLOTS = 146  # run shares x 10
ERROR_SLOTS = 59  # error weights x 2
GROUPS = {
    "g_market": ("MarketResearchAgent", "AIEntrepreneurAgent", "ProductConceptAgent"),
    "g_sales": ("SalesAgent", "MarketingAgent", "FunnelDesignAgent", "AIEntrepreneurAgent"),
    "g_engage": ("ContentCreationAgent", "SNSStrategyAgent", "YouTubeAgent", "MarketingAgent"),
    "g_roi": ("AnalyticsAgent", "CRMAgent", "SalesAgent", "AIEntrepreneurAgent"),
    "g_persona": ("PersonaAgent", "SelfAnalysisAgent", "ProductDesignAgent"),
    "g_jony": ("JonathanIveDesignAgent",),
    "g_degrading": ("SNSStrategyAgent",),
}


def h(salt: int, v: str = "g") -> str:
    """A pseudo-random integer in [0, M) from ``v``: affine, squared, affine, squared (mod M)."""
    x1 = f"(({v}) * 1103515245 + {salt * 2654435 + 12345}) % {M}"
    x2 = f"(({x1}) * ({x1}) % {M} + {salt * 97 + 1}) * 48271 % {M}"
    return f"(({x2}) * ({x2}) % {M})"


class Sql:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, postgresql: bool) -> None:
        self.pg = postgresql

    def u(self, salt: int, v: str = "g") -> str:
        return f"(CAST({h(salt, v)} AS {'float8' if self.pg else 'REAL'}) / {M})"

    def series(self) -> tuple[str, str]:
        """(WITH clause, FROM source) yielding ``g`` from :lo to :hi."""
        if self.pg:
            return "WITH", "generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS s(g)"
        return ("WITH RECURSIVE s(g) AS (SELECT :lo UNION ALL SELECT g + 1 FROM s WHERE g < :hi),",
                "s")

    def ts(self, epoch: str) -> str:
        if self.pg:
            return f"to_timestamp({epoch})"
        return f"(strftime('%Y-%m-%d %H:%M:%f', {epoch}, 'unixepoch') || '000+00:00')"

    def hexid(self, salt: int, suffix: str, v: str = "g") -> str:
        parts = (h(salt, v), f"{h(salt + 1, v)} % 65536", f"{h(salt + 2, v)} % 4096",
                 f"{h(salt + 3, v)} % 4096", suffix)
        if self.pg:
            hx = [f"lpad(to_hex({p}), {n}, '0')" for p, n in zip(parts, (8, 4, 3, 3, 12),
                                                                strict=True)]
            return (f"CAST({hx[0]} || '-' || {hx[1]} || '-4' || {hx[2]} || '-8' || {hx[3]} "
                    f"|| '-' || {hx[4]} AS uuid)")
        return "printf('%08x-%04x-4%03x-8%03x-%012x', " + ", ".join(parts) + ")"

    def clamp(self, x: str) -> str:
        lo, hi = ("greatest", "least") if self.pg else ("max", "min")
        return f"{lo}(0, {hi}(100, CAST(round({x}) AS {'integer' if self.pg else 'INTEGER'})))"

    def integer(self, x: str) -> str:
        return f"CAST(floor({x}) AS {'bigint' if self.pg else 'INTEGER'})"

    def round2(self, x: str) -> str:
        return f"round(CAST({x} AS numeric), 2)" if self.pg else f"round({x}, 2)"

    def json(self, *pairs: tuple[str, str], strip: bool = False) -> str:
        body = ", ".join(f"'{k}', {v}" for k, v in pairs)
        if self.pg:
            made = f"jsonb_build_object({body})"
            return f"jsonb_strip_nulls({made})" if strip else made
        made = f"json_object({body})"
        return f"json_patch('{{}}', {made})" if strip else made

    def gauss(self, a: int) -> str:
        """About N(0, 1): three uniforms summed (Irwin-Hall), enough for a benchmark's spread."""
        return f"(({self.u(a)} + {self.u(a + 1)} + {self.u(a + 2)} - 1.5) * 2)"


def _lookups(conn: Connection, s: Sql) -> None:
    uid = "uuid" if s.pg else "varchar(36)"
    ddl = [
        "CREATE TABLE bench_profiles (ix integer PRIMARY KEY, agent_type varchar(50), med float,"
        " fail float, base float, drift float, "
        + ", ".join(f"{g} integer" for g in GROUPS) + ")",
        "CREATE TABLE bench_agent_slots (slot integer PRIMARY KEY, ix integer)",
        "CREATE TABLE bench_errors (slot integer PRIMARY KEY, message text)",
        f"CREATE TABLE bench_repos (i integer PRIMARY KEY, id {uid})",
        f"CREATE TABLE bench_users (i integer PRIMARY KEY, id {uid})",
        "CREATE TABLE bench_steps (k integer PRIMARY KEY)",
    ]
    for statement in ddl:
        conn.execute(text(statement))
    binds = ", ".join(f":{g}" for g in GROUPS)
    slots: list[dict[str, object]] = []
    for ix, agent in enumerate(AGENT_TYPES):
        share, med, fail, base, drift = _PROFILES[agent]
        conn.execute(
            text(f"INSERT INTO bench_profiles VALUES (:ix, :a, :med, :fail, :base, :drift, {binds})"),  # noqa: S608, E501
            {"ix": ix, "a": agent, "med": med, "fail": fail, "base": base, "drift": drift,
             **{g: int(agent in members) for g, members in GROUPS.items()}},
        )
        slots += [{"slot": len(slots) + i, "ix": ix} for i in range(round(share * 10))]
    assert len(slots) == AGENT_SLOTS
    conn.execute(text("INSERT INTO bench_agent_slots VALUES (:slot, :ix)"), slots)
    errors: list[dict[str, object]] = []
    for message, weight in ERROR_MESSAGES:
        errors += [{"slot": len(errors) + i, "m": message} for i in range(round(weight * 2))]
    assert len(errors) == ERROR_SLOTS
    conn.execute(text("INSERT INTO bench_errors VALUES (:slot, :m)"), errors)
    conn.execute(text("INSERT INTO bench_repos VALUES (:i, :id)"),
                 [{"i": i, "id": str(uuid.UUID(int=1000 + i, version=4))} for i in range(6)])
    conn.execute(text("INSERT INTO bench_users VALUES (:i, :id)"),
                 [{"i": i, "id": str(uuid.UUID(int=2000 + i, version=4))} for i in range(12)])
    conn.execute(text("INSERT INTO bench_steps VALUES (:k)"), [{"k": k} for k in range(6)])


def _plan(s: Sql) -> str:
    """CTEs ``p`` (agent, start) and ``q`` (status, end, quality) over ``g`` in [:lo, :hi]."""
    with_clause, source = s.series()
    u = s.u
    q_raw = (f"(p.base + p.drift * (p.t0 - :start) / 604800.0 + 6 * {s.gauss(9)}"
             f" - CASE WHEN p.g_degrading = 1 AND :end - p.t0 < 1814400 THEN 18 ELSE 0 END)")
    status = ("CASE WHEN p.roll < 0.02 THEN 'pending'"
              " WHEN :end - p.t0 < 21600 AND p.roll < 0.5 THEN 'running'"
              " WHEN p.roll < 0.02 + p.fail THEN 'failed' ELSE 'completed' END")
    dur = f"(p.med * 60 * exp(0.6 * {s.gauss(4)}))"
    return f"""{with_clause} p AS (
  SELECT s.g, pr.*, :end - {u(2)} * :span AS t0, {u(3)} AS roll
  FROM {source}
  JOIN bench_agent_slots sl ON sl.slot = {h(1, 's.g')} % {AGENT_SLOTS}
  JOIN bench_profiles pr ON pr.ix = sl.ix
), q AS (
  SELECT p.*, {status} AS status, {dur} AS dur, {q_raw} AS q_raw,
    {s.hexid(40, 'p.g', 'p.g')} AS id
  FROM p
), r AS (
  SELECT q.*, CASE q.status WHEN 'completed' THEN q.t0 + q.dur
    WHEN 'failed' THEN q.t0 + q.dur * (0.1 + 0.9 * {u(7)}) END AS t1,
    0.6 + q.q_raw / 125 AS lift
  FROM q
)"""  # noqa: S608 (constants and binds only)


def _executions_sql(s: Sql) -> str:
    done = "r.status = 'completed'"
    result = s.json(("summary", "r.agent_type || ' finished issue #' || "
                     f"CAST(1 + {h(12, 'r.g')} % 900 AS varchar)"),
                    ("recommendations", f"1 + {h(16, 'r.g')} % 8"))
    return f"""{_plan(s)}
INSERT INTO agent_executions (id, repository_id, user_id, agent_type, issue_number, status,
  started_at, completed_at, error_message, result, quality_score, pr_number, created_at,
  updated_at)
SELECT r.id, rp.id, CASE WHEN {s.u(13, 'r.g')} < 0.9 THEN us.id END,
  r.agent_type, 1 + {h(12, 'r.g')} % 900, r.status,
  CASE WHEN r.status <> 'pending' THEN {s.ts('r.t0')} END,
  CASE WHEN r.t1 IS NOT NULL THEN {s.ts('r.t1')} END,
  CASE WHEN r.status = 'failed' THEN er.message END,
  CASE WHEN {done} THEN {result} END,
  CASE WHEN {done} AND {h(10, 'r.g')} % 20 <> 0 THEN {s.clamp('r.q_raw')} END,
  CASE WHEN {done} AND {h(11, 'r.g')} % 5 < 2 THEN 1 + {h(14, 'r.g')} % 1500 END,
  {s.ts('r.t0')}, {s.ts('coalesce(r.t1, r.t0)')}
FROM r
JOIN bench_repos rp ON rp.i = {h(15, 'r.g')} % 6
JOIN bench_users us ON us.i = {h(17, 'r.g')} % 12
JOIN bench_errors er ON er.slot = {h(8, 'r.g')} % {ERROR_SLOTS}"""  # noqa: S608 (constants and binds only)


def _analytics_sql(s: Sql) -> str:
    u = s.u
    def when(flag: str, expr: str, flag2: str = "", expr2: str = "") -> str:
        other = f" WHEN r.{flag2} = 1 THEN {expr2}" if flag2 else ""
        return f"CASE WHEN r.{flag} = 1 THEN {expr}{other} END"

    lift = "r.lift"
    cols = {
        "competitors_analyzed": when("g_market", f"5 + {h(20, 'r.g')} % 36"),
        "market_size_usd": when("g_market", s.integer(f"power(10, 7.5 + 3 * {u(21)})")),
        "growth_rate_percent": when("g_market", s.round2(f"11 + 7 * {s.gauss(22)}")),
        "conversion_rate": when(
            "g_sales", s.round2(f"abs(3.2 + 1.4 * {s.gauss(25)}) * {lift} + 0.1")),
        "target_audience_size": when(
            "g_sales", s.integer(f"power(10, 3.5 + 3 * {u(28)})"),
            "g_persona", s.integer(f"power(10, 3 + 2.5 * {u(28)})")),
        "estimated_revenue_usd": when(
            "g_sales", s.integer(f"power(10, 4.5 + 2.7 * {u(29)}) * {lift}")),
        "engagement_score": when(
            "g_engage", s.clamp(f"(62 + 14 * {s.gauss(30)}) * {lift}"),
            "g_jony", s.clamp(f"75 + 10 * {s.gauss(30)}")),
        "reach_estimate": when("g_engage", s.integer(f"power(10, 3 + 3 * {u(33)}) * {lift}")),
        "roi_percent": when("g_roi", s.round2(f"(45 + 60 * {s.gauss(34)}) * {lift}")),
    }
    models = "CASE " + " ".join(f"WHEN {h(37, 'a.g')} % 3 = {i} THEN '{m}'" for i, m in
                                enumerate(("gpt-5", "claude-opus", "claude-sonnet"))) + " END"
    metrics = s.json(("model", models), *((k, f"a.{k}") for k in cols), strip=True)
    names = ", ".join(cols)
    return f"""{_plan(s)}, a AS (
  SELECT r.g, r.id, r.agent_type, r.t1, {", ".join(f"{v} AS {k}" for k, v in cols.items())}
  FROM r WHERE r.status = 'completed' AND {h(19, 'r.g')} % 100 < 85
)
INSERT INTO business_agent_analytics (id, execution_id, agent_type, metrics, {names}, created_at)
SELECT {s.hexid(50, 'a.g', 'a.g')}, a.id, a.agent_type, {metrics},
  {", ".join(f"a.{k}" for k in cols)}, {s.ts('a.t1')}
FROM a"""  # noqa: S608 (constants and binds only)


def _logs_sql(s: Sql) -> str:
    step = "CAST(st.k AS varchar)" if s.pg else "st.k"
    v = "(r.g * 8 + st.k)"
    meta = (f"CASE WHEN st.k < 4 THEN {s.json(('step', 'st.k'))}"
            f" WHEN st.k = 5 AND r.status = 'completed' THEN "
            f"{s.json(('quality', s.clamp('r.q_raw')))} END")
    return f"""{_plan(s)}
INSERT INTO agent_execution_logs (id, execution_id, log_level, message, metadata, logged_at)
SELECT {s.hexid(60, v, v)}, r.id,
  CASE WHEN st.k = 0 THEN 'info' WHEN st.k < 4 THEN 'debug' WHEN st.k = 4 THEN 'warning'
       WHEN r.status = 'failed' THEN 'error' ELSE 'info' END,
  CASE WHEN st.k = 0 THEN r.agent_type || ' started' WHEN st.k < 4 THEN 'step ' || {step} || ' done'
       WHEN st.k = 4 THEN 'retrying after a slow response'
       WHEN r.status = 'failed' THEN er.message ELSE 'completed' END,
  {meta},
  {s.ts('CASE WHEN st.k = 5 THEN r.t1 ELSE r.t0 + 15 * st.k END')}
FROM r
JOIN bench_steps st ON st.k = 0 OR (st.k < 4 AND st.k <= 1 + {h(26, 'r.g')} % 3)
  OR (st.k = 4 AND {h(27, 'r.g')} % 100 < 8) OR (st.k = 5 AND r.t1 IS NOT NULL)
JOIN bench_errors er ON er.slot = {h(8, 'r.g')} % {ERROR_SLOTS}
WHERE r.status <> 'pending'"""  # noqa: S608 (constants and binds only)


def fill(engine: Engine, executions: int, *, end: datetime, days: float,
         logs: bool = True) -> None:
    """Insert ``executions`` executions (+ analytics, logs) over ``days`` days before ``end``."""
    s = Sql(engine.dialect.name == "postgresql")
    end_epoch = end.timestamp()
    span = days * 86400
    statements = [_executions_sql(s), _analytics_sql(s)] + ([_logs_sql(s)] if logs else [])
    with engine.begin() as conn:
        _lookups(conn, s)
    for lo in range(1, executions + 1, CHUNK):
        hi = min(lo + CHUNK - 1, executions)
        params = {"lo": lo, "hi": hi, "end": end_epoch, "span": span, "start": end_epoch - span}
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params)
    with engine.begin() as conn:
        for table in ("profiles", "agent_slots", "errors", "repos", "users", "steps"):
            conn.execute(text(f"DROP TABLE bench_{table}"))
