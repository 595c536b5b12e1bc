"""Bad input on the command line: exit 2, one line on stderr naming the value, nothing written.

Each refusal is checked for all four: the status, a single stderr line that names the bad value
(no traceback), an empty stdout, and the database and file system exactly as before (no report
file, no tables or rows, the alembic revision unchanged).
"""

import os
from pathlib import Path

import pytest
from sqlalchemy import URL, inspect

import miyabi_analytics as ma
from miyabi_analytics._db.migrate import current_revision, head_revision
from miyabi_analytics.cli import main


def text_url(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def run(argv: list[str]) -> int:
    """``main``'s status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        code = exc.code
    assert isinstance(code, int)
    return code


def assert_refused(capsys: pytest.CaptureFixture[str], status: int, *named: str) -> str:
    out, err = capsys.readouterr()
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for text in named:
        assert text in lines[0], lines[0]
    assert out == ""
    return lines[0]


def tables(url: URL) -> list[str]:
    engine = ma.connect(url)
    try:
        return sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def revision(url: URL) -> str | None:
    engine = ma.connect(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def untouched(url: URL) -> bool:
    """No file for a SQLite URL; no tables at all on PostgreSQL."""
    if url.get_backend_name() == "sqlite":
        return not Path(url.database or "").exists()
    return tables(url) == []


# -- item 6: revisions ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "downgrade"])
def test_unknown_revision_on_an_empty_database_creates_nothing(empty_url, capsys, command):
    status = run([command, "--url", text_url(empty_url), "--revision", "bogus"])
    line = assert_refused(capsys, status, "revision", "'bogus'")
    assert "0001_initial" in line  # says which revisions exist
    assert untouched(empty_url)


@pytest.mark.parametrize("command", ["migrate", "downgrade"])
@pytest.mark.parametrize("bad", ["bogus", "00", "zzzz+1", "", "nope@head"])
def test_bad_revision_leaves_a_migrated_database_at_its_revision(empty_url, capsys, command, bad):
    ma.migrate(empty_url, revision="0004_heartbeat")
    before = tables(empty_url)
    status = run([command, "--url", text_url(empty_url), "--revision", bad])
    assert_refused(capsys, status, f"revision={bad!r}")
    assert revision(empty_url) == "0004_heartbeat"
    assert tables(empty_url) == before


def test_relative_step_past_the_ends_is_refused_and_rolled_back(empty_url, capsys):
    # Resolved against the database's own revision, inside the migration's transaction.
    status = run(["migrate", "--url", text_url(empty_url), "--revision", "-1"])
    assert_refused(capsys, status, "revision='-1'")
    assert "alembic_version" not in tables(empty_url)
    assert tables(empty_url) == []

    ma.migrate(empty_url)
    status = run(["downgrade", "--url", text_url(empty_url), "--revision", "+1"])
    assert_refused(capsys, status, "revision='+1'")
    status = run(["downgrade", "--url", text_url(empty_url), "--revision", "-99"])
    assert_refused(capsys, status, "revision='-99'")
    assert revision(empty_url) == head_revision()


@pytest.mark.parametrize("call", [ma.migrate, ma.downgrade])
def test_python_api_raises_validation_error_naming_revision(empty_url, call):
    engine = ma.connect(empty_url)
    try:
        with pytest.raises(ma.ValidationError, match="bogus") as refused:
            call(engine, revision="bogus")
        assert refused.value.field == "revision"
        assert refused.value.value == "bogus"
        assert "alembic_version" not in inspect(engine).get_table_names()
        with pytest.raises(ma.ValidationError) as refused:
            call(engine, revision=None)  # type: ignore[arg-type]
        assert refused.value.field == "revision"
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_good_relative_revisions_still_work(empty_url, capsys):
    url = text_url(empty_url)
    assert run(["migrate", "--url", url, "--revision", "+2"]) == 0
    assert revision(empty_url) == "0002_report_runs"
    assert run(["migrate", "--url", url, "--revision", "0004"]) == 0  # a unique prefix
    assert run(["downgrade", "--url", url, "--revision", "-1"]) == 0
    assert revision(empty_url) == "0003_row_level_security"
    assert run(["migrate", "--url", url]) == 0
    assert revision(empty_url) == head_revision()
    assert capsys.readouterr().err == ""


# -- item 7: output paths, checked before any work ------------------------------------------------


def bad_outputs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """id -> (the --output value, a word the refusal must contain)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    directory = tmp_path / "reports"
    directory.mkdir()
    # Not /dev/null: the write renames over its path, and as root an unchecked run replaced the
    # machine's /dev/null with a report. A FIFO of our own is the same case, harmlessly.
    fifo = tmp_path / "a-fifo"
    os.mkfifo(fifo)
    return {
        "missing-dir": (str(tmp_path / "missing" / "r.html"), "does not exist"),
        "parent-is-a-file": (str(a_file / "r.html"), "not a directory"),
        "unwritable-dir": ("/proc/miyabi-report.html", "cannot create files in /proc"),
        "existing-dir": (str(directory), "is a directory"),
        "fifo": (str(fifo), "not a regular file"),
    }


CASES = ["missing-dir", "parent-is-a-file", "unwritable-dir", "existing-dir", "fifo"]


@pytest.mark.parametrize("case", CASES)
def test_report_refuses_a_bad_output_before_running_the_notebook(empty_url, tmp_path, capsys, case):
    output, reason = bad_outputs(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    status = run(["report", "--url", text_url(empty_url), "--output", output])
    assert_refused(capsys, status, f"output={output!r}", reason)
    assert untouched(empty_url)  # not even migrated: no report run was started
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("case", CASES)
def test_demo_refuses_a_bad_output_before_loading_anything(empty_url, tmp_path, capsys, case):
    output, reason = bad_outputs(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    argv = ["demo", "--url", text_url(empty_url), "--executions", "50", "--output", output]
    assert_refused(capsys, run(argv), f"output={output!r}", reason)
    assert untouched(empty_url)
    assert sorted(tmp_path.rglob("*")) == before


def test_report_checks_the_default_output_of_its_format(empty_url, tmp_path, capsys, monkeypatch):
    (tmp_path / "miyabi-report.ipynb").mkdir()
    monkeypatch.chdir(tmp_path)
    status = run(["report", "--url", text_url(empty_url), "--format", "ipynb"])
    assert_refused(capsys, status, "miyabi-report.ipynb", "is a directory")
    assert untouched(empty_url)


# -- item 13: the demo's size ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-1", "must not be negative"),
        ("0", "must be at least 1"),
        ("many", "expected a whole number"),
        ("10000000000000", "must be between"),
    ],
)
def test_demo_refuses_a_bad_execution_count(empty_url, tmp_path, capsys, value, reason):
    output = tmp_path / "r.html"
    argv = ["demo", "--url", text_url(empty_url), "--executions", value, "--output", str(output)]
    assert_refused(capsys, run(argv), value, reason)
    assert untouched(empty_url)
    assert not output.exists()


# -- argparse's own refusals are one line too ----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["migrate", "--bogus-flag"], "--bogus-flag"),
        (["report", "--format", "pdf"], "'pdf'"),
        (["serve", "--port", "70000"], "70000"),
        (["nonsense"], "'nonsense'"),
        (["downgrade"], "--revision"),
    ],
)
def test_argument_errors_are_one_line(capsys, argv, named):
    assert_refused(capsys, run(argv), named)
