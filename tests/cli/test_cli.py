import subprocess
import sys

import pytest
from sqlalchemy import inspect

import miyabi_analytics as ma
from miyabi_analytics._db.migrate import head_revision
from miyabi_analytics.cli import main


def test_migrate_then_downgrade_to_base(empty_url, capsys):
    url = empty_url.render_as_string(hide_password=False)
    assert main(["migrate", "--url", url]) == 0
    assert f"is at revision {head_revision()}" in capsys.readouterr().out
    engine = ma.connect(url)
    try:
        assert "agent_executions" in inspect(engine).get_table_names()
        assert main(["downgrade", "--url", url, "--revision", "base"]) == 0
        assert "agent_executions" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_demo_loads_every_agent_and_prints_a_table(empty_url, capsys, tmp_path):
    url = empty_url.render_as_string(hide_password=False)
    report = tmp_path / "demo-report.html"
    argv = ["demo", "--url", url, "--executions", "600", "--seed", "7", "--output", str(report)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for agent in ma.AGENT_TYPES:
        assert agent in out
    engine = ma.connect(url)
    try:
        frame = ma.read_summary(engine)
        assert len(frame) == 600
        assert set(frame["status"].unique()) >= {"completed", "failed"}
        assert frame["agent_type"].nunique() == 15
        assert frame["competitors_analyzed"].notna().any()
        assert len(ma.read_logs(engine)) > 600
        # the same seed again adds nothing
        logs_before = len(ma.read_logs(engine))
        assert report.is_file()
        assert str(report) in out
        assert main(argv) == 0
        assert len(ma.read_summary(engine)) == 600
        assert len(ma.read_logs(engine)) == logs_before
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--executions", "-1"],
        ["demo", "--executions", "many"],
        ["downgrade"],
        ["nonsense"],
        [],
    ],
)
def test_bad_arguments_exit_2_without_traceback(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error" in err


def test_bad_url_is_one_masked_line_exit_2(capsys):
    assert main(["migrate", "--url", "mysql://someone:hunter2@db/x"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "***" in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_database_is_one_line_without_password(capsys):
    assert main(["migrate", "--url", "postgresql://someone:hunter2@127.0.0.1:1/x"]) == 1
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_python_dash_m_runs_the_same_cli(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "miyabi_analytics", "migrate", "--url", f"sqlite:///{tmp_path}/m.db"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert head_revision() in done.stdout
