"""The upstream Miyabi database (Rust, sqlx) as its migrations leave it, and its writers' SQL.

Written from docs/upstream-miyabi-schema.md (issue 14 item 8): ``build_upstream`` creates the shape,
``UpstreamWriter`` runs the upstream statements verbatim (``$n`` become named binds, nothing else
changes), ``fill_upstream`` writes a realistic history through them and returns an ``Oracle``
computed in plain Python. ``upstream_url`` is a fixture: import it into a test module
(``from tests.upstream import upstream_url  # noqa: F401``; a parameter of that name then needs
``# noqa: F811``) and parametrise ``dialect`` to ``postgresql`` as PG-only tests do
(``pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)``).
``fill_upstream`` commits after every write: give it a Connection from ``engine.connect()``.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import URL, Connection, DateTime, Uuid, bindparam, create_engine, text
from sqlalchemy.dialects.postgresql import JSONB

from miyabi_analytics.vocabulary import AGENT_TYPES
from tests.conftest import create_pg_database, drop_pg_database

FLEET_TYPES = ("CoordinatorAgent", "CodeGenAgent", "ReviewAgent", "IssueAgent", "PRAgent",
               "DeploymentAgent", "RefresherAgent")
LOG_LEVELS = ("debug", "info", "warn", "error")
SQLX_MIGRATIONS = (  # the versions whose effect build_upstream reproduces
    (20251024000000, "initial_schema"), (20251024000001, "execution_logs"),
    (20251120000000, "create_tasks_table"), (20251123000000, "fix_github_id_type"),
    (20251123000001, "fix_timestamp_types"), (20251126000000, "business_agent_persistence"),
)
UNRELATED_ENUM = "org_member_role"
UNRELATED_VIEW = "v_active_repositories"

_BASE_DDL = (
    "CREATE TABLE users (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "github_id BIGINT UNIQUE NOT NULL, email VARCHAR(255) NOT NULL, name VARCHAR(255), "
    "avatar_url TEXT, access_token TEXT NOT NULL, "
    "created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW())",
    "CREATE TABLE repositories (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "user_id UUID REFERENCES users(id) ON DELETE CASCADE, "
    "github_repo_id BIGINT UNIQUE NOT NULL, owner VARCHAR(255) NOT NULL, "
    "name VARCHAR(255) NOT NULL, full_name VARCHAR(255) NOT NULL, "
    "default_branch VARCHAR(255) DEFAULT 'main', is_active BOOLEAN DEFAULT true, "
    "created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW())",
    "CREATE TABLE agent_executions (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "user_id UUID REFERENCES users(id) ON DELETE CASCADE, "
    "repository_id UUID REFERENCES repositories(id) ON DELETE CASCADE, "
    "agent_type VARCHAR(50) NOT NULL, issue_number INTEGER, status VARCHAR(20) NOT NULL, "
    "started_at TIMESTAMPTZ, completed_at TIMESTAMPTZ, error_message TEXT, result JSONB, "
    "created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW())",
    "CREATE INDEX idx_agent_executions_user_id ON agent_executions(user_id)",
    "CREATE INDEX idx_agent_executions_status ON agent_executions(status)",
    "CREATE INDEX idx_agent_executions_repository_id ON agent_executions(repository_id)",
    "CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS TRIGGER AS $$ "
    "BEGIN NEW.updated_at = NOW(); RETURN NEW; END; $$ language 'plpgsql'",
    "CREATE TRIGGER update_users_updated_at BEFORE UPDATE ON users "
    "FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()",
    "CREATE TRIGGER update_repositories_updated_at BEFORE UPDATE ON repositories "
    "FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()",
    "CREATE TRIGGER update_agent_executions_updated_at BEFORE UPDATE ON agent_executions "
    "FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()",
    # 20251024000001_execution_logs
    "ALTER TABLE agent_executions ADD COLUMN options JSONB DEFAULT '{}'::jsonb",
    "CREATE TABLE execution_logs (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "execution_id UUID REFERENCES agent_executions(id) ON DELETE CASCADE, "
    "level VARCHAR(20) NOT NULL, message TEXT NOT NULL, timestamp TIMESTAMPTZ DEFAULT NOW())",
    "CREATE TABLE workflows (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "user_id UUID REFERENCES users(id) ON DELETE CASCADE, name VARCHAR(255) NOT NULL, "
    "definition JSONB NOT NULL DEFAULT '{}'::jsonb, "
    "created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW())",
    # 20251120000000_create_tasks_table (execution_id has no FK upstream)
    "CREATE TABLE tasks (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), execution_id UUID, "
    "title TEXT NOT NULL, status VARCHAR(20) NOT NULL DEFAULT 'pending', "
    "created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW(), "
    "started_at TIMESTAMPTZ, completed_at TIMESTAMPTZ)",
)
_QUALITY_DDL = (  # added out of band upstream (doc §4.1); no CHECK: Rust never range-checks
    "ALTER TABLE agent_executions ADD COLUMN quality_score INTEGER, ADD COLUMN pr_number INTEGER",
)
_BUSINESS_DDL = (  # 20251126000000_business_agent_persistence
    "CREATE TABLE IF NOT EXISTS business_agent_analytics ("
    "id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "execution_id UUID NOT NULL REFERENCES agent_executions(id) ON DELETE CASCADE, "
    "agent_type VARCHAR(50) NOT NULL, metrics JSONB NOT NULL DEFAULT '{}'::jsonb, "
    "competitors_analyzed INTEGER, market_size_usd BIGINT, growth_rate_percent DECIMAL(5,2), "
    "conversion_rate DECIMAL(5,2), target_audience_size INTEGER, estimated_revenue_usd BIGINT, "
    "engagement_score INTEGER CHECK (engagement_score >= 0 AND engagement_score <= 100), "
    "reach_estimate INTEGER, roi_percent DECIMAL(7,2), "
    "created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW())",
    "CREATE TABLE IF NOT EXISTS agent_execution_logs ("
    "id UUID PRIMARY KEY DEFAULT gen_random_uuid(), "
    "execution_id UUID NOT NULL REFERENCES agent_executions(id) ON DELETE CASCADE, "
    "log_level VARCHAR(20) NOT NULL, message TEXT NOT NULL, metadata JSONB, "
    "logged_at TIMESTAMPTZ DEFAULT NOW())",
    "CREATE INDEX IF NOT EXISTS idx_business_agent_analytics_execution_id "
    "ON business_agent_analytics(execution_id)",
    "CREATE INDEX IF NOT EXISTS idx_business_agent_analytics_agent_type "
    "ON business_agent_analytics(agent_type)",
    "CREATE INDEX IF NOT EXISTS idx_agent_execution_logs_execution_id "
    "ON agent_execution_logs(execution_id)",
    "CREATE INDEX IF NOT EXISTS idx_agent_execution_logs_log_level "
    "ON agent_execution_logs(log_level)",
    "CREATE INDEX IF NOT EXISTS idx_agent_execution_logs_logged_at "
    "ON agent_execution_logs(logged_at DESC)",
    "CREATE TRIGGER update_business_agent_analytics_updated_at BEFORE UPDATE ON "
    "business_agent_analytics FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()",
    "COMMENT ON TABLE business_agent_analytics IS 'Business agent analytics metrics per execution'",
    "COMMENT ON TABLE agent_execution_logs IS 'Detailed execution logs for business agents'",
)
UPSTREAM_VIEW = """CREATE OR REPLACE VIEW v_business_agent_summary AS
SELECT ae.id AS execution_id, ae.repository_id, ae.user_id, ae.agent_type, ae.status,
    ae.started_at, ae.completed_at, ae.quality_score, ae.pr_number,
    baa.competitors_analyzed, baa.market_size_usd, baa.conversion_rate,
    baa.engagement_score, baa.estimated_revenue_usd,
    COUNT(ael.id) as log_count, COUNT(CASE WHEN ael.log_level = 'error' THEN 1 END) as error_count
FROM agent_executions ae
LEFT JOIN business_agent_analytics baa ON ae.id = baa.execution_id
LEFT JOIN agent_execution_logs ael ON ae.id = ael.execution_id
GROUP BY ae.id, ae.repository_id, ae.user_id, ae.agent_type, ae.status, ae.started_at,
    ae.completed_at, ae.quality_score, ae.pr_number, baa.competitors_analyzed,
    baa.market_size_usd, baa.conversion_rate, baa.engagement_score, baa.estimated_revenue_usd"""
_TAIL_DDL = (
    "COMMENT ON VIEW v_business_agent_summary IS "
    "'Summary view combining execution data with analytics metrics'",
    f"CREATE TYPE {UNRELATED_ENUM} AS ENUM ('owner', 'admin', 'member')",
    "CREATE VIEW v_active_repositories AS SELECT id, full_name FROM repositories WHERE is_active",
    "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, "
    "installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, "
    "checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
)


def upstream_view_sql(*, quality_columns: bool = True) -> str:
    """The upstream view; without the quality columns (never created upstream) it omits them."""
    if quality_columns:
        return UPSTREAM_VIEW
    return UPSTREAM_VIEW.replace(" ae.quality_score, ae.pr_number,", "")


def build_upstream(conn: Connection, *, quality_columns: bool = True) -> None:
    """Create the shape the upstream sqlx migrations leave (through 20251126000000).

    ``quality_columns=False``: no ``quality_score``/``pr_number`` (no upstream DDL creates them);
    the view then lacks them too, and the writers' statements naming them fail, as upstream.
    """
    ddl = _BASE_DDL + (_QUALITY_DDL if quality_columns else ()) + _BUSINESS_DDL
    for sql in ddl:
        conn.exec_driver_sql(sql)
    conn.exec_driver_sql(upstream_view_sql(quality_columns=quality_columns))
    for sql in _TAIL_DDL:
        conn.exec_driver_sql(sql)
    insert = text(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) "
        "VALUES (:version, :description, true, :checksum, :took)"
    )
    for version, name in SQLX_MIGRATIONS:
        description = name.replace("_", " ")  # sqlx stores the file name's words
        checksum = hashlib.sha384(f"{version}_{name}.sql".encode()).digest()
        conn.execute(insert, {"version": version, "description": description,
                              "checksum": checksum, "took": 1_000_000 + version % 97})


_TYPES: dict[str, Any] = {
    "id": Uuid(), "execution_id": Uuid(), "repository_id": Uuid(), "user_id": Uuid(),
    "started_at": DateTime(timezone=True), "completed_at": DateTime(timezone=True),
    "result": JSONB(none_as_null=True), "metrics": JSONB(none_as_null=True),
    "metadata": JSONB(none_as_null=True),  # sqlx binds None as SQL NULL, not JSON null
}


def _stmt(sql: str, values: Mapping[str, Any]) -> Any:
    return text(sql).bindparams(*(bindparam(k, type_=_TYPES[k]) for k in values if k in _TYPES))


_ANALYTIC_COLS = ("competitors_analyzed", "market_size_usd", "growth_rate_percent",
                  "conversion_rate", "target_audience_size", "estimated_revenue_usd",
                  "engagement_score", "reach_estimate", "roi_percent")


class UpstreamWriter:
    """The upstream writers' statements on one Connection (PostgreSQL; no commit of its own)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _run(self, sql: str, values: dict[str, Any]) -> Any:
        return self.conn.execute(_stmt(sql, values), values)

    # -- plain rows the Rust code expects to exist (not upstream statements) --
    def insert_user(self, github_id: int, email: str) -> Any:
        values = {"github_id": github_id, "email": email, "token": f"gho_{github_id}"}
        return self._run("INSERT INTO users (github_id, email, access_token) "
                         "VALUES (:github_id, :email, :token) RETURNING id", values).scalar_one()

    def insert_repository(self, user_id: uuid.UUID, github_repo_id: int, name: str) -> Any:
        values = {"user_id": user_id, "rid": github_repo_id, "name": name,
                  "full": f"miyabi/{name}"}
        return self._run(
            "INSERT INTO repositories (user_id, github_repo_id, owner, name, full_name) "
            "VALUES (:user_id, :rid, 'miyabi', :name, :full) RETURNING id", values,
        ).scalar_one()

    # -- persistence.rs (PersistableAgent) --
    def create_execution(self, repository_id: uuid.UUID | None, issue_number: int | None,
                         agent_type: str, status: str, started_at: datetime | None = None,
                         completed_at: datetime | None = None, error_message: str | None = None,
                         result: Any = None, quality_score: int | None = None,
                         pr_number: int | None = None) -> Any:
        values = {"repository_id": repository_id, "issue_number": issue_number,
                  "agent_type": agent_type, "status": status, "started_at": started_at,
                  "completed_at": completed_at, "error_message": error_message,
                  "result": result, "quality_score": quality_score, "pr_number": pr_number}
        return self._run(
            "INSERT INTO agent_executions (repository_id, issue_number, agent_type, status, "
            "started_at, completed_at, error_message, result, quality_score, pr_number) VALUES "
            "(:repository_id, :issue_number, :agent_type, :status, :started_at, :completed_at, "
            ":error_message, :result, :quality_score, :pr_number) RETURNING id", values,
        ).scalar_one()

    def update_execution(self, id: uuid.UUID, status: str, completed_at: datetime | None = None,
                         error_message: str | None = None, result: Any = None,
                         quality_score: int | None = None, pr_number: int | None = None) -> int:
        values = {"id": id, "status": status, "completed_at": completed_at,
                  "error_message": error_message, "result": result,
                  "quality_score": quality_score, "pr_number": pr_number}
        return int(self._run(
            "UPDATE agent_executions SET status = :status, completed_at = :completed_at, "
            "error_message = :error_message, result = :result, quality_score = :quality_score, "
            "pr_number = :pr_number, updated_at = NOW() WHERE id = :id", values).rowcount)

    def save_analysis_metrics(self, id: uuid.UUID, metrics: dict[str, Any]) -> int:
        values = {"id": id, "metrics": metrics}
        return int(self._run(
            "UPDATE agent_executions SET result = jsonb_set(COALESCE(result, '{}'::jsonb), "
            "'{analysis_metrics}', :metrics\\:\\:jsonb) WHERE id = :id", values).rowcount)

    def load_history(self, agent_type: str, repository_id: uuid.UUID | None,
                     limit: int) -> list[Any]:
        values = {"agent_type": agent_type, "repository_id": repository_id, "limit": limit}
        return list(self._run(
            "SELECT id, repository_id, issue_number, agent_type, status, started_at, "
            "completed_at, error_message, result, quality_score, pr_number FROM agent_executions "
            "WHERE agent_type = :agent_type AND repository_id = :repository_id "
            "ORDER BY created_at DESC LIMIT :limit", values).mappings().all())

    def get_latest_execution(self, agent_type: str, repository_id: uuid.UUID | None) -> Any:
        rows = self.load_history(agent_type, repository_id, 1)
        return rows[0] if rows else None

    # -- business_agent_service.rs (RETURNING's column list is elided in the doc: ours is full) --
    def insert_pending(self, user_id: uuid.UUID | None, repository_id: uuid.UUID | None,
                       agent_type: str, issue_number: int | None) -> Any:
        values = {"user_id": user_id, "repository_id": repository_id,
                  "agent_type": agent_type, "issue_number": issue_number}
        return self._run(
            "INSERT INTO agent_executions (user_id, repository_id, agent_type, issue_number, "
            "status) VALUES (:user_id, :repository_id, :agent_type, :issue_number, 'pending') "
            "RETURNING id, user_id, repository_id, agent_type, issue_number, status, started_at, "
            "completed_at, error_message, result, quality_score, pr_number, created_at, updated_at",
            values).mappings().one()

    def start(self, id: uuid.UUID) -> Any:
        return self._run(
            "UPDATE agent_executions SET status = 'running', started_at = NOW(), "
            "updated_at = NOW() WHERE id = :id RETURNING id, status, started_at, updated_at",
            {"id": id},
        ).mappings().one_or_none()

    def complete(self, id: uuid.UUID, status: str, result: Any = None,
                 error_message: str | None = None, quality_score: int | None = None,
                 pr_number: int | None = None) -> Any:
        values = {"id": id, "status": status, "result": result, "error_message": error_message,
                  "quality_score": quality_score, "pr_number": pr_number}
        return self._run(
            "UPDATE agent_executions SET status = :status, completed_at = NOW(), "
            "result = :result, error_message = :error_message, quality_score = :quality_score, "
            "pr_number = :pr_number, updated_at = NOW() WHERE id = :id "
            "RETURNING id, status, completed_at, quality_score, updated_at",
            values).mappings().one_or_none()

    def insert_analytics(self, execution_id: uuid.UUID, agent_type: str,
                         metrics: dict[str, Any], **typed: Any) -> Any:
        values = {"execution_id": execution_id, "agent_type": agent_type, "metrics": metrics}
        values.update({k: typed.get(k) for k in _ANALYTIC_COLS})
        return self._run(
            "INSERT INTO business_agent_analytics (execution_id, agent_type, metrics, "
            "competitors_analyzed, market_size_usd, growth_rate_percent, conversion_rate, "
            "target_audience_size, estimated_revenue_usd, engagement_score, reach_estimate, "
            "roi_percent) VALUES (:execution_id, :agent_type, :metrics, :competitors_analyzed, "
            ":market_size_usd, :growth_rate_percent, :conversion_rate, :target_audience_size, "
            ":estimated_revenue_usd, :engagement_score, :reach_estimate, :roi_percent) "
            "RETURNING *", values).mappings().one()

    def insert_log(self, execution_id: uuid.UUID, level: str, message: str,
                   metadata: dict[str, Any] | None = None) -> None:
        values = {"execution_id": execution_id, "level": level, "message": message,
                  "metadata": metadata}
        self._run("INSERT INTO agent_execution_logs (execution_id, log_level, message, metadata) "
                  "VALUES (:execution_id, :level, :message, :metadata)", values)

    def query_view(self) -> list[Any]:
        """The upstream view's typical query (one row per execution and analytics tuple)."""
        return list(self.conn.execute(text(
            "SELECT execution_id, log_count, error_count, agent_type, status, quality_score, "
            "competitors_analyzed, engagement_score FROM v_business_agent_summary "
            "ORDER BY execution_id")).mappings().all())


@dataclass
class Oracle:
    """What fill_upstream wrote, recomputed in plain Python (final state per execution)."""

    agent_type: dict[uuid.UUID, str] = field(default_factory=dict)
    status: dict[uuid.UUID, str] = field(default_factory=dict)
    quality: dict[uuid.UUID, int | None] = field(default_factory=dict)
    repository: dict[uuid.UUID, uuid.UUID | None] = field(default_factory=dict)
    started: dict[uuid.UUID, bool] = field(default_factory=dict)
    logs: Counter[uuid.UUID] = field(default_factory=Counter)
    errors: Counter[uuid.UUID] = field(default_factory=Counter)
    levels: Counter[str] = field(default_factory=Counter)
    analytics_rows: Counter[uuid.UUID] = field(default_factory=Counter)
    result: dict[uuid.UUID, Any] = field(default_factory=dict)
    json_tick: dict[uuid.UUID, int] = field(default_factory=dict)  # last UPDATE (bumps updated_at)
    analytics_tick: dict[uuid.UUID, int] = field(default_factory=dict)
    analytics_metrics: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)

    def per_agent(self) -> dict[str, dict[str, int]]:
        """Per agent type: executions, completed, failed."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
            ("executions", "completed", "failed"), 0))
        for key, agent in self.agent_type.items():
            out[agent]["executions"] += 1
            if self.status[key] in ("completed", "failed"):
                out[agent][self.status[key]] += 1
        return dict(out)

    def quality_scores(self) -> dict[str, list[int]]:
        """Per agent type, the stored quality scores (sorted)."""
        out: dict[str, list[int]] = defaultdict(list)
        for key, score in self.quality.items():
            if score is not None:
                out[self.agent_type[key]].append(score)
        return {agent: sorted(scores) for agent, scores in out.items()}

    def json_metrics(self, key: uuid.UUID) -> dict[str, Any] | None:
        found = (self.result.get(key) or {}).get("analysis_metrics")
        return found if isinstance(found, dict) else None

    def latest_metrics(self) -> dict[uuid.UUID, dict[str, Any]]:
        """Per execution, the metrics written last: JSON (time = updated_at) or analytics row."""
        out: dict[uuid.UUID, dict[str, Any]] = {}
        for key in self.agent_type:
            json, row = self.json_metrics(key), self.analytics_metrics.get(key)
            if json is not None and (row is None or self.json_tick[key] > self.analytics_tick[key]):
                out[key] = json
            elif row is not None:
                out[key] = row
        return out


def _metrics(rng: random.Random, *, dirty: bool) -> dict[str, Any]:
    found: dict[str, Any] = {
        "competitors_analyzed": rng.randint(0, 40), "market_size_usd": rng.randint(10**5, 10**9),
        "engagement_score": 150 if dirty and rng.random() < 0.2 else rng.randint(0, 100),
        "conversion_rate": round(rng.uniform(0, 30), 2),
    }
    if rng.random() < 0.5:
        found["top_competitors"] = ["acme", "globex"][: rng.randint(0, 2)]
    return found


def fill_upstream(writer: UpstreamWriter, *, seed: int, executions: int,
                  dirty: bool = False) -> Oracle:
    """Write a realistic upstream history through the writer's methods, committing after each
    write (so NOW() and updated_at order the writes); pass a Connection not inside ``begin()``.

    ``dirty``: also data our constraints reject (status ``cancelled``, quality 150, NULL repo).
    """
    rng, oracle, tick = random.Random(seed), Oracle(), 0
    conn = writer.conn

    def wrote(key: uuid.UUID | None = None, *, bump: bool = False) -> None:
        nonlocal tick
        conn.commit()
        tick += 1
        if bump and key is not None:
            oracle.json_tick[key] = tick

    users = [writer.insert_user(seed * 1000 + i, f"u{i}@example.com") for i in range(2)]
    repos = [writer.insert_repository(users[i % 2], seed * 1000 + i, f"repo{i}") for i in range(3)]
    wrote()
    agents = AGENT_TYPES + FLEET_TYPES
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for n in range(executions):
        agent, repo = rng.choice(agents), rng.choice(repos)
        row_repo: uuid.UUID | None = repo
        start = t0 + timedelta(minutes=17 * n)
        final = rng.choice(("completed", "completed", "failed", "running", "pending"))
        score = rng.randint(40, 100) if final == "completed" else None
        if dirty and final == "completed" and rng.random() < 0.15:
            score = 150
        result: Any = {"summary": f"run {n}"} if final in ("completed", "failed") else None
        flow = rng.choice(("direct", "lifecycle", "service"))
        if flow == "direct":  # persistence.rs create_execution in its final state
            began = start if rng.random() < 0.7 else None
            ended = start + timedelta(seconds=rng.randint(5, 900)) if result else None
            key = writer.create_execution(repo, n, agent, final, began, ended,
                                          "boom" if final == "failed" else None, result,
                                          score, rng.randint(1, 500) if score else None)
            oracle.started[key] = began is not None
            wrote()
        elif flow == "lifecycle":  # pending, update_execution(s): started_at never written
            key = writer.create_execution(repo, n, agent, "pending")
            oracle.started[key] = False
            wrote()
            moves = [] if final == "pending" else ["running", final]
            if final != "running" and moves and rng.random() < 0.3:
                moves = [final]  # pending -> completed/failed directly (upstream allows it)
            for status in dict.fromkeys(moves):
                done = status in ("completed", "failed")
                writer.update_execution(key, status, start + timedelta(minutes=3) if done else None,
                                        "boom" if status == "failed" else None,
                                        result if done else None, score if done else None)
                wrote(key, bump=True)
        else:  # business_agent_service: pending, start (started_at NOW()), complete
            row_repo = None if dirty and rng.random() < 0.15 else repo
            key = writer.insert_pending(rng.choice([None, *users]), row_repo, agent, n)["id"]
            oracle.started[key] = False
            wrote()
            if final != "pending" and (final == "running" or rng.random() < 0.8):
                writer.start(key)
                oracle.started[key] = True
                wrote(key, bump=True)
            if dirty and final == "failed" and rng.random() < 0.3:
                final, score = "cancelled", None
            if final not in ("pending", "running"):
                writer.complete(key, final, result, "boom" if final == "failed" else None, score)
                wrote(key, bump=True)
        oracle.agent_type[key], oracle.status[key], oracle.repository[key] = agent, final, row_repo
        oracle.quality[key] = score if final in ("completed", "failed", "cancelled") else None
        oracle.result[key] = result if final not in ("pending", "running") else None
        for _ in range(rng.randint(0, 4)):
            level = rng.choice(LOG_LEVELS)
            meta = {"n": n} if rng.random() < 0.5 else None
            writer.insert_log(key, level, f"{agent} {level}", meta)
            oracle.logs[key] += 1
            oracle.errors[key] += level == "error"
            oracle.levels[level] += 1
            wrote()
        plan = rng.choice(("none", "json", "rows", "json+rows", "rows+json"))
        for step in plan.split("+") if plan != "none" else ():
            metrics = _metrics(rng, dirty=dirty)
            if step == "json":
                writer.save_analysis_metrics(key, metrics)
                current = oracle.result[key] if isinstance(oracle.result[key], dict) else {}
                oracle.result[key] = {**current, "analysis_metrics": metrics}
                wrote(key, bump=True)
                continue
            for _ in range(rng.choice((1, 1, 2))):  # sometimes two rows: upstream's fan-out
                typed = {k: metrics[k] for k in _ANALYTIC_COLS if k in metrics}
                if typed["engagement_score"] > 100:
                    typed["engagement_score"] = None  # their CHECK would refuse it
                writer.insert_analytics(key, agent, metrics, **typed)
                oracle.analytics_rows[key] += 1
                wrote()
                oracle.analytics_tick[key], oracle.analytics_metrics[key] = tick, metrics
    if dirty:  # one of each for sure: a free-string status, a score out of range, no repository
        _dirty_rows(writer, oracle, repos[0])
        conn.commit()
    return oracle


def _dirty_rows(writer: UpstreamWriter, oracle: Oracle, repo: uuid.UUID) -> None:
    cancelled = writer.insert_pending(None, repo, "CodeGenAgent", 900)["id"]
    writer.complete(cancelled, "cancelled", {"summary": "stopped"}, "cancelled by user")
    high = writer.create_execution(repo, 901, "SalesAgent", "completed",
                                   result={"summary": "over"}, quality_score=150)
    orphan = writer.insert_pending(None, None, "MarketResearchAgent", 902)["id"]
    for key, agent, status, score, row_repo, result in (
        (cancelled, "CodeGenAgent", "cancelled", None, repo, {"summary": "stopped"}),
        (high, "SalesAgent", "completed", 150, repo, {"summary": "over"}),
        (orphan, "MarketResearchAgent", "pending", None, None, None),
    ):
        oracle.agent_type[key], oracle.status[key], oracle.quality[key] = agent, status, score
        oracle.repository[key], oracle.result[key], oracle.started[key] = row_repo, result, False


@pytest.fixture
def upstream_url(dialect: str) -> Iterator[URL]:
    """A fresh PostgreSQL database in the upstream shape (build_upstream), dropped after."""
    assert dialect == "postgresql", "the upstream shape is PostgreSQL only"
    url = create_pg_database()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            build_upstream(conn)
    finally:
        engine.dispose()
    yield url
    drop_pg_database(url)
