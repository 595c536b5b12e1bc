"""``miyabi-analytics report``: the HTML and ipynb outputs, filters, failures and ``report_runs``.

Each report runs the real notebook in a kernel (papermill), so these tests take a few seconds
each (marked ``slow``); the demo history is loaded with a fixed end so windows and findings are
deterministic.
"""

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from sqlalchemy import URL, inspect, make_url

import miyabi_analytics as ma
from miyabi_analytics import reports
from miyabi_analytics.cli import main
from miyabi_analytics.demo import load_demo
from miyabi_analytics.report_runs import REPORT_RUN_DTYPES, ReportRunStatus, finish_run, start_run

END = datetime(2026, 6, 1, tzinfo=UTC)  # the demo history's end: a Monday
SINCE, UNTIL = "2026-05-04", "2026-06-01"  # its last four weeks
PLOTLY_BANNER = re.compile(r"\* plotly\.js v\d+\.\d+\.\d+")
EXTERNAL_TAG = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.IGNORECASE
)
INPUT_AREA = re.compile(r"class=\"[^\"]*\bjp-(?:InputArea|InputPrompt|CodeMirrorEditor)\b")
SECTIONS = (
    "Headline",
    "Quality",
    "Success rates",
    "Durations",
    "Business metrics",
    "Top errors",
    "Quality drops",
)


def text_url(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@pytest.fixture
def demo_url(db_url: URL) -> URL:
    engine = ma.connect(db_url)
    try:
        load_demo(engine, 1500, seed=1, end=END)
    finally:
        engine.dispose()
    return db_url


def report_runs(url: URL) -> pd.DataFrame:
    engine = ma.connect(url)
    try:
        return ma.read_report_runs(engine)
    finally:
        engine.dispose()


def write_notebook(path: Path, *sources: str, ids: tuple[str, ...] = ()) -> Path:
    """A notebook with the report's parameters cell, then ``sources`` as code cells."""
    parameters = new_code_cell(
        "database_url = None\nsince = None\nuntil = None\nrepository_id = None\ntitle = 't'"
    )
    parameters.metadata["tags"] = ["parameters"]
    parameters.id = "parameters"
    cells = [parameters]
    for index, source in enumerate(sources):
        cell = new_code_cell(source)
        cell.id = ids[index] if index < len(ids) else f"cell-{index}"
        cells.append(cell)
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(nb, path)
    return path


def use_notebook(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(reports, "notebook_path", lambda name="report.ipynb": path)


# -- a full report ------------------------------------------------------------------------------


@pytest.mark.slow
def test_html_report_is_self_contained_and_recorded(demo_url, tmp_path, capsys):
    out = tmp_path / "weekly.html"
    argv = ["report", "--url", text_url(demo_url), "--since", SINCE, "--until", UNTIL]
    assert main([*argv, "--output", str(out), "--title", "Weekly <agents> report"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "Traceback" not in captured.err

    html = out.read_text(encoding="utf-8")
    assert "<title>Weekly &lt;agents&gt; report</title>" in html
    assert "<h1" in html
    assert "Weekly &lt;agents&gt; report" in html
    # plotly.js inlined exactly once, every chart drawn by it, nothing fetched from elsewhere
    assert len(PLOTLY_BANNER.findall(html)) == 1
    assert re.findall(r"<script\b[^>]*\bsrc=", html) == []
    assert EXTERNAL_TAG.findall(html) == []
    figures = html.count('class="plotly-graph-div"')
    assert figures == 6
    assert html.count("Plotly.newPlot(") == figures
    # code hidden; no errors, warnings or tracebacks among the outputs
    assert INPUT_AREA.findall(html) == []
    assert "import miyabi_analytics" not in html
    assert "ma.connect(" not in html
    assert "data-mime-type=\"application/vnd.jupyter.stderr\"" not in html
    assert "Traceback" not in html
    assert "This cell is left out of the HTML report" not in html
    for section in SECTIONS:
        assert re.search(rf"<h2[^>]*>{section}\b", html), section
    # changes of percentages are in percentage points: the success rate's and the mean ROI's
    roi_row = re.search(r"<tr>\s*<td>Mean ROI</td>.*?</tr>", html, re.S)
    assert roi_row is not None
    assert re.search(r"[+-]\d+\.\d pp\s*</td>\s*</tr>$", roi_row.group(0)), roi_row.group(0)
    # prose written from the numbers; the demo's degrading agent is flagged
    assert "improved most" in html
    drops = html[html.index(">Quality drops") :]
    assert "SNSStrategyAgent" in drops
    assert "flagged" in drops

    [run] = report_runs(demo_url).itertuples(index=False)
    assert run.status == "completed"
    assert run.output_path == str(out)
    assert pd.isna(run.error)
    assert run.since == pd.Timestamp(SINCE, tz="UTC")
    assert run.until == pd.Timestamp(UNTIL, tz="UTC")
    assert run.started_at <= run.finished_at
    assert run.parameters["title"] == "Weekly <agents> report"
    assert run.parameters["format"] == "html"
    assert run.parameters["url"] == ma.mask_url(demo_url)


def _markdown_outputs(nb) -> str:
    return "\n".join(
        output["data"]["text/markdown"]
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "text/markdown" in output.get("data", {})
    )


@pytest.mark.slow
def test_ipynb_report_filters_by_window_and_repository(demo_url, tmp_path, capsys):
    engine = ma.connect(demo_url)
    try:
        repo = ma.read_summary(engine, columns=["repository_id"])["repository_id"].iloc[0]
        since, until = datetime(2026, 5, 11, tzinfo=UTC), datetime(2026, 5, 25, tzinfo=UTC)
        expected = len(ma.read_summary(engine, repository_id=repo, since=since, until=until))
        everything = len(ma.read_summary(engine, since=since, until=until))
    finally:
        engine.dispose()
    assert 0 < expected < everything

    out = tmp_path / "report.ipynb"
    argv = ["report", "--url", text_url(demo_url), "--format", "ipynb", "--output", str(out)]
    window = ["--since", "2026-05-11", "--until", "2026-05-25T00:00:00+00:00"]
    assert main([*argv, *window, "--repository", repo]) == 0
    assert capsys.readouterr().out.strip() == str(out)

    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert repo in injected[0].source
    assert "2026-05-11T00:00:00+00:00" in injected[0].source
    assert "database_url = None" in injected[0].source
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", cell.id
            assert output.get("name") != "stderr", (cell.id, output.get("text"))
    markdown = _markdown_outputs(nb)
    assert f"| Executions | {expected:,} |" in markdown
    assert "2026-05-11 00:00 to 2026-05-24 23:59 UTC" in markdown
    assert "(14 days)" in markdown

    [run] = report_runs(demo_url).itertuples(index=False)
    assert run.status == "completed"
    assert run.since == pd.Timestamp("2026-05-11", tz="UTC")
    assert run.until == pd.Timestamp("2026-05-25", tz="UTC")
    assert run.parameters["repository_id"] == repo
    assert run.parameters["since"] == "2026-05-11"
    assert run.parameters["format"] == "ipynb"


@pytest.mark.slow
def test_report_on_a_new_empty_database(tmp_path, capsys, monkeypatch):
    """The default window, the default output name, and a database migrated on the way."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert main(["report", "--url", url]) == 0
    out = tmp_path / "miyabi-report.html"
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    assert "No execution failed in this period" in html
    assert html.count('class="plotly-graph-div"') == 6
    assert "data-mime-type=\"application/vnd.jupyter.stderr\"" not in html
    [run] = report_runs(make_url(url)).itertuples(index=False)
    assert run.until - run.since == pd.Timedelta(days=reports.DEFAULT_DAYS)
    assert run.until == pd.Timestamp(datetime.now(UTC).date() + timedelta(days=1), tz="UTC")


# -- bad input and failures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--repository", "not-a-uuid"], "repository_id"),
        (["--since", "last tuesday"], "since"),
        (["--since", "2026-05-10", "--until", "2026-05-01"], "until"),
        (["--output", "/nonexistent-dir/r.html"], "output"),
        (["--title", " "], "title"),
    ],
)
def test_bad_parameters_exit_2_with_one_line(extra, named, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["report", "--url", url, *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("miyabi-analytics: error: ")
    assert named in err
    assert "Traceback" not in err
    assert not (tmp_path / "db.sqlite").exists()  # refused before connecting


def test_unknown_format_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["report", "--format", "pdf"])
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_failing_cell_exit_1_names_the_cell_and_leaves_no_file(
    db_url, tmp_path, capsys, monkeypatch
):
    use_notebook(
        monkeypatch,
        write_notebook(
            tmp_path / "broken.ipynb",
            "x = 1",
            "print('about to fail')\n1 / 0",
            ids=("fine", "explode"),
        ),
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "report.html"
    assert main(["report", "--url", text_url(db_url), "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [
        "miyabi-analytics: report failed: cell 3 (explode): ZeroDivisionError: division by zero"
    ]
    assert list(out_dir.iterdir()) == []  # no report, no temporary file

    [run] = report_runs(db_url).itertuples(index=False)
    assert run.status == "failed"
    assert "explode" in run.error
    assert "ZeroDivisionError" in run.error
    assert pd.isna(run.output_path)
    assert run.finished_at >= run.started_at


@pytest.mark.slow
def test_failed_run_keeps_the_previous_report(tmp_path, capsys, monkeypatch):
    use_notebook(monkeypatch, write_notebook(tmp_path / "broken.ipynb", "raise KeyError('gone')"))
    out = tmp_path / "report.html"
    out.write_text("last week's report", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["report", "--url", url, "--output", str(out)]) == 1
    assert "cell 2 (cell-0): KeyError: 'gone'" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "last week's report"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["broken.ipynb", "db.sqlite", "report.html"]


@pytest.mark.slow
def test_kernel_that_cannot_start_is_one_line_and_recorded(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    out = tmp_path / "report.html"
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the kernel's interpreter
    assert main(["report", "--url", url, "--output", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("miyabi-analytics: report failed: the notebook's kernel failed")
    assert not out.exists()
    [run] = report_runs(make_url(url)).itertuples(index=False)
    assert run.status == "failed"
    assert "kernel" in run.error


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)  # SQLite has no password
def test_password_reaches_neither_outputs_nor_report_runs(db_url, tmp_path, capsys, monkeypatch):
    url = db_url.set(password="hunter2")  # the test server trusts local connections
    probe = write_notebook(
        tmp_path / "probe.ipynb",
        "import os\nimport miyabi_analytics as ma\n"
        "engine = ma.connect(database_url)\nprint(ma.mask_url(engine.url))\n"
        "print(len(ma.read_summary(engine)))",
    )
    use_notebook(monkeypatch, probe)
    out = tmp_path / "probe-out.ipynb"
    assert main(["report", "--url", text_url(url), "--format", "ipynb", "--output", str(out)]) == 0
    written = out.read_text(encoding="utf-8")
    assert "hunter2" not in written
    assert "postgres:***@" in written  # the kernel connected with the URL, shown masked

    failing = write_notebook(
        tmp_path / "leak.ipynb", "import os\nraise RuntimeError(os.environ['MIYABI_DATABASE_URL'])"
    )
    use_notebook(monkeypatch, failing)
    assert main(["report", "--url", text_url(url), "--output", str(tmp_path / "x.html")]) == 1
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "***" in err
    runs = report_runs(url)
    assert list(runs["status"]) == ["completed", "failed"]
    for parameters, error in zip(runs["parameters"], runs["error"], strict=True):
        assert "hunter2" not in str(parameters)
        assert "hunter2" not in str(error)
        assert parameters["url"] == ma.mask_url(url)


# -- report_runs and its migration ---------------------------------------------------------------


def test_read_report_runs_has_stable_dtypes(engine):
    empty = ma.read_report_runs(engine)
    assert list(empty.columns) == list(REPORT_RUN_DTYPES)
    assert empty.empty
    now = datetime.now(UTC)
    run_id = start_run(engine, parameters={"title": "t"}, since=now - timedelta(days=7), until=now)
    running = ma.read_report_runs(engine)
    assert running.dtypes.equals(empty.dtypes)
    assert running["status"].tolist() == ["running"]
    assert pd.isna(running["finished_at"].iloc[0])
    finish_run(engine, run_id, ReportRunStatus.FAILED, error="boom")
    done = ma.read_report_runs(engine)
    assert done.dtypes.equals(empty.dtypes)
    assert done["id"].tolist() == [str(run_id)]
    assert done["error"].tolist() == ["boom"]
    assert done["parameters"].tolist() == [{"title": "t"}]
    assert str(done["since"].dtype) == "datetime64[us, UTC]"
    assert list(done["status"].cat.categories) == ["running", "completed", "failed"]


def test_migration_0002_up_and_down(empty_url):
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine, "0001_initial")
        assert "report_runs" not in inspect(engine).get_table_names()
        ma.migrate(engine, "0002_report_runs")
        inspector = inspect(engine)
        assert "report_runs" in inspector.get_table_names()
        columns = [c["name"] for c in inspector.get_columns("report_runs")]
        assert columns == list(REPORT_RUN_DTYPES)
        assert {ix["name"] for ix in inspector.get_indexes("report_runs")} == {
            "ix_report_runs_started_at"
        }
        now = datetime.now(UTC)
        start_run(engine, parameters={}, since=now, until=now + timedelta(days=1))
        assert len(ma.read_report_runs(engine)) == 1

        ma.downgrade(engine, "0001_initial")
        tables = inspect(engine).get_table_names()
        assert "report_runs" not in tables
        assert "agent_executions" in tables
        ma.migrate(engine)
        assert ma.read_report_runs(engine).empty
    finally:
        engine.dispose()
