"""``miyabi-analytics check`` (issue 15, item 5): lines, JSON and exit codes for cron."""

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import miyabi_analytics as ma
from miyabi_analytics.cli import main

AGENT = ma.SalesAgent()
SINCE = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"


def plant(engine, completed=0, failed=0, quality=None, ago=timedelta(hours=1)):
    started = datetime.now(UTC) - ago
    records = []
    for status, count in (("completed", completed), ("failed", failed)):
        for _ in range(count):
            builder = (
                AGENT.builder(uuid.uuid4())
                .status(status)
                .started_at(started)
                .completed_at(started + timedelta(minutes=1))
            )
            if quality is not None:
                builder = builder.quality_score(quality)
            records.append(builder.build())
    ma.ExecutionStore(engine).save_executions(records, progress=False)
    ma.refresh_rollups(engine)  # a stale rollup adds a line (test_a_stale_rollup_is_said)


def url_of(db_url):
    return db_url.render_as_string(hide_password=False)


def since_of(text):
    """The window start a line names, checked to be about ``--since`` ago."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_breached_failure_rate_exits_1_with_one_line(engine, db_url, capsys):
    plant(engine, completed=35, failed=5)
    plant(engine, failed=30, ago=timedelta(hours=30))  # before the default 24h window
    began = datetime.now(UTC)
    code = main(["check", "--url", url_of(db_url), "--max-failure-rate", "0.1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == ""
    match = re.fullmatch(
        rf"BREACHED failure-rate: 12\.5% of 40 finished executions failed since {SINCE} "
        r"\(limit 10\.0%\)\n",
        out,
    )
    assert match is not None, out
    start = since_of(match.group(1))
    day = timedelta(hours=24)
    assert began - day - timedelta(seconds=2) <= start <= began - day + timedelta(minutes=1)


def test_ok_exits_0_with_one_ok_line(engine, db_url, capsys):
    plant(engine, completed=9, failed=1, quality=80)
    code = main(
        ["check", "--url", url_of(db_url), "--since", "2h", "--max-failure-rate", "0.1",
         "--min-quality", "75", "--stale-after", "30m"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert re.fullmatch(
        rf"OK failure-rate: 10\.0% of 10 finished executions failed since {SINCE} "
        r"\(limit 10\.0%\); "
        rf"quality: mean 80\.0 over 10 scored executions since {SINCE} \(minimum 75\.0\); "
        r"stale: no running execution is stuck now \(no heartbeat for 30m, or running for more "
        r"than 1h without a heartbeat\)\n",
        out,
    ), out


def test_each_breached_rule_has_its_line(engine, db_url, capsys):
    plant(engine, completed=1, failed=3, quality=40)
    stuck = AGENT.builder(uuid.uuid4()).status("running")
    AGENT.save_execution(engine, stuck.started_at(datetime.now(UTC) - timedelta(hours=5)).build())
    ma.refresh_rollups(engine)
    code = main(
        ["check", "--url", url_of(db_url), "--max-failure-rate", "0.5", "--min-quality", "50",
         "--max-runtime", "4h"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert [line.split(":")[0] for line in lines] == [
        "BREACHED failure-rate",
        "BREACHED quality",
        "BREACHED stale",
    ]
    assert lines[2] == (
        "BREACHED stale: 1 running execution is stuck now "
        "(running for more than 4h without a heartbeat)"
    )


def test_json_is_one_object(engine, db_url, capsys):
    plant(engine, completed=3, failed=1, quality=90)
    code = main(
        ["check", "--url", url_of(db_url), "--since", "6h", "--max-failure-rate", "0.2",
         "--min-quality", "95", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert out.count("\n") == 1
    document = json.loads(out)
    assert document["ok"] is False
    assert document["window"] == "6h"
    assert since_of(document["since"]) <= datetime.now(UTC) - timedelta(hours=6)
    assert [
        (r["rule"], r["breached"], r["value"], r["limit"], r["executions"])
        for r in document["rules"]
    ] == [("failure-rate", True, 0.25, 0.2, 4), ("quality", True, 90.0, 95.0, 4)]
    assert document["rules"][0]["message"].startswith("failure-rate: 25.0% of 4 finished")


def test_json_without_data_is_ok(db_url, capsys):
    code = main(["check", "--url", url_of(db_url), "--max-failure-rate", "0", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["ok"] is True
    [rule] = document["rules"]
    assert (rule["breached"], rule["value"], rule["executions"]) == (False, None, 0)
    assert rule["message"].startswith("failure-rate: no finished executions since ")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--max-failure-rate", "1.5"], "--max-failure-rate"),
        (["--max-failure-rate", "-0.1"], "--max-failure-rate"),
        (["--max-failure-rate", "nan"], "--max-failure-rate"),
        (["--max-failure-rate", "ten"], "--max-failure-rate"),
        (["--min-quality", "101"], "--min-quality"),
        (["--min-quality", "-1"], "--min-quality"),
        (["--min-quality", "50", "--since", "0h"], "--since"),
        (["--min-quality", "50", "--since", "yesterday"], "--since"),
        (["--stale-after", "30"], "--stale-after"),
        (["--max-runtime", "2w"], "--max-runtime"),
    ],
)
def test_bad_arguments_exit_2(db_url, capsys, arguments, named):
    with pytest.raises(SystemExit) as exited:
        main(["check", "--url", url_of(db_url), *arguments])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert named in err
    assert "Traceback" not in err


def test_no_rule_exits_2(db_url, capsys):
    assert main(["check", "--url", url_of(db_url)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--max-failure-rate, --min-quality, --stale-after or --max-runtime" in err


def test_unmigrated_database_exits_2(empty_url, capsys):
    engine = ma.connect(empty_url)
    with engine.begin():
        pass  # the SQLite file exists now, with no tables
    engine.dispose()
    assert main(["check", "--url", url_of(empty_url), "--min-quality", "50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("miyabi-analytics: error: url=")
    assert "run miyabi-analytics migrate first" in err
    assert err.count("\n") == 1


def test_missing_sqlite_file_exits_2_and_is_not_created(tmp_path, capsys):
    path = tmp_path / "nothing.db"
    assert main(["check", "--url", f"sqlite:///{path}", "--min-quality", "50"]) == 2
    assert "no such SQLite database file" in capsys.readouterr().err
    assert not path.exists()


def run(*arguments, env=None):
    return subprocess.run(
        [sys.executable, "-m", "miyabi_analytics", "check", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_subprocess_breach_reads_the_url_from_the_environment(engine, db_url):
    plant(engine, completed=1, failed=1)
    done = run("--max-failure-rate", "0.25", env={"MIYABI_DATABASE_URL": url_of(db_url)})
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    assert re.fullmatch(
        rf"BREACHED failure-rate: 50\.0% of 2 finished executions failed since {SINCE} "
        r"\(limit 25\.0%\)\n",
        done.stdout,
    ), done.stdout


def test_subprocess_ok_exits_0(engine, db_url):
    plant(engine, completed=2, quality=70)
    done = run("--url", url_of(db_url), "--min-quality", "70", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://watcher:s3cret-pw@127.0.0.1:1/miyabi",  # nothing listens on port 1
        "nonsense://watcher:s3cret-pw@host/db",
    ],
)
def test_subprocess_bad_url_exits_2_without_the_password(url):
    done = run("--url", url, "--max-failure-rate", "0.1")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("miyabi-analytics: error: url=")
    assert done.stderr.count("\n") == 1
    assert "s3cret-pw" not in done.stderr
    assert "Traceback" not in done.stderr


def test_subprocess_bad_rate_exits_2(tmp_path: Path):
    done = run("--url", f"sqlite:///{tmp_path}/x.db", "--max-failure-rate", "2")
    assert done.returncode == 2
    assert "--max-failure-rate" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stale_rollup_is_said_and_the_answer_is_the_same(engine, db_url, capsys):
    """Days changed since the last refresh are read from the rows: exact, and said so."""
    plant(engine, completed=3, failed=1)
    AGENT.save_execution(engine, AGENT.builder(uuid.uuid4()).status("failed").started_at(
        datetime.now(UTC) - timedelta(minutes=5)).completed_at(datetime.now(UTC)).build())
    arguments = ["check", "--url", url_of(db_url), "--max-failure-rate", "0.3"]
    assert main(arguments) == 1
    stale = capsys.readouterr().out.splitlines()
    assert stale[0].startswith("BREACHED failure-rate: 40.0% of 5 finished")
    assert stale[1].startswith("rollup refreshed ")
    assert "1 day changed since" in stale[1]
    assert main([*arguments, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["rollup"]["stale"] is True
    assert document["rollup"]["pending_days"] == 1
    ma.refresh_rollups(engine)
    assert main(arguments) == 1
    fresh = capsys.readouterr().out.splitlines()
    assert len(fresh) == 1
    assert fresh[0].split(" since ")[0] == stale[0].split(" since ")[0]
    assert main([*arguments, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert (document["rollup"]["stale"], document["rollup"]["pending_days"]) == (False, 0)
    assert datetime.fromisoformat(document["rollup"]["refreshed_at"]) <= datetime.now(UTC)
