"""On success the command prints its results on stdout and nothing else, anywhere.

And the test suite does not print CLI output past pytest's capture: a transcript printed with
``capsys.disabled()`` ended up in every pytest log.
"""

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics._db.migrate import head_revision
from miyabi_analytics.cli import main

ROOT = Path(__file__).resolve().parents[2]


def text_url(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def test_migrate_and_downgrade_print_only_their_result(empty_url, capsys):
    url = text_url(empty_url)
    assert main(["migrate", "--url", url]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.strip().endswith(f"is at revision {head_revision()}")
    assert main(["downgrade", "--url", url, "--revision", "base"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.strip().endswith("is at revision base")


def test_demo_prints_results_only_on_stdout(empty_url, tmp_path, capsys):
    url = text_url(empty_url)
    report = tmp_path / "demo.html"
    argv = ["demo", "--url", url, "--executions", "400", "--seed", "3", "--output", str(report)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("loaded 400 executions, ")
    assert "AIEntrepreneurAgent" in out
    assert lines[-1] == str(report)
    assert report.is_file()

    assert main(argv) == 0  # the same seed again: said once, on stdout
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == f"the demo history of seed 3 is already in {ma.mask_url(url)}"
    engine = ma.connect(url)
    try:
        assert len(ma.read_summary(engine, columns=["id"])) == 400
    finally:
        engine.dispose()


def test_cli_tests_print_nothing_past_pytest_capture(tmp_path):
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--basetemp", str(tmp_path / "inner"), "-k", "cli",
            "tests/db/test_heartbeat.py", "tests/db/test_retention.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" in done.stdout
    for leaked in ("miyabi-analytics", "reaped", "purged", "would purge"):
        assert leaked not in done.stdout + done.stderr, done.stdout
