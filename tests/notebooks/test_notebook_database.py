"""Issue 12, item 19: a notebook run from the repository root reads the demo database, and says
which one (an absolute path) and when it holds no executions.

The kernel of ``jupyter nbconvert --execute notebooks/analysis.ipynb`` (or papermill, or
JupyterLab opened at the root) starts in ``notebooks/``; these tests run the notebook the same
way, in a copy of that layout, with neither ``MIYABI_DATABASE_URL`` nor ``DATABASE_URL`` set.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics.demo import load_demo
from miyabi_analytics.notebook import jupyter_command, notebook_url, open_database, shown_url

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EMPTY_LINE = "This database holds no executions"


@pytest.fixture(autouse=True)
def no_url_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIYABI_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


def demo_database(path: Path, executions: int = 300) -> Path:
    engine = ma.connect(URL.create("sqlite", database=str(path)))
    try:
        ma.migrate(engine)
        load_demo(engine, executions, seed=4)
    finally:
        engine.dispose()
    return path


def repository(tmp_path: Path, *, with_demo: bool) -> Path:
    """``<tmp>/repo/notebooks/analysis.ipynb``, and ``<tmp>/repo/miyabi.db`` if ``with_demo``."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(NOTEBOOKS / "analysis.ipynb", root / "notebooks")
    if with_demo:
        demo_database(root / "miyabi.db")
    return root


def run_from_root(notebook: Path) -> str:
    """Execute as nbconvert --execute does (kernel in the notebook's folder); the outputs' text."""
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": notebook.parent}}
    )
    client.execute()
    texts: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", (output.ename, output.evalue)
            texts.append(output.get("text", ""))
            texts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(texts)


@pytest.mark.slow
def test_analysis_from_the_repository_root_reads_the_demo_database(tmp_path: Path) -> None:
    root = repository(tmp_path, with_demo=True)
    shown = run_from_root(root / "notebooks" / "analysis.ipynb")
    database = (root / "miyabi.db").resolve()
    assert f"database: sqlite:///{database} (300 executions)" in shown
    assert EMPTY_LINE not in shown
    assert re.search(r"(?<![\d,])0 completed executions", shown) is None  # not "270 completed"
    assert not (root / "notebooks" / "miyabi.db").exists()  # no empty database made beside it


@pytest.mark.slow
def test_analysis_on_no_database_says_so_in_one_line(tmp_path: Path) -> None:
    root = repository(tmp_path, with_demo=False)
    shown = run_from_root(root / "notebooks" / "analysis.ipynb")
    database = (root / "notebooks" / "miyabi.db").resolve()
    assert f"database: sqlite:///{database}\n" in shown  # absolute, never sqlite:///miyabi.db
    lines = [line for line in shown.splitlines() if EMPTY_LINE in line]
    assert len(lines) == 1
    assert "miyabi-analytics demo" in lines[0]
    assert "MIYABI_DATABASE_URL" in lines[0]


# ------------------------------------------------------------------ where notebooks look


def test_the_demo_database_in_the_parent_directory_is_found(tmp_path: Path) -> None:
    demo = demo_database(tmp_path / "miyabi.db")
    (tmp_path / "notebooks").mkdir()
    url = notebook_url(cwd=tmp_path / "notebooks")
    assert url.database == str(demo.resolve())
    assert not (tmp_path / "notebooks" / "miyabi.db").exists()


def test_an_empty_database_beside_the_notebook_does_not_hide_the_demo(tmp_path: Path) -> None:
    """What an earlier run from the root left behind: an empty notebooks/miyabi.db."""
    demo = demo_database(tmp_path / "miyabi.db")
    (tmp_path / "notebooks").mkdir()
    empty = ma.connect(URL.create("sqlite", database=str(tmp_path / "notebooks" / "miyabi.db")))
    ma.migrate(empty)
    empty.dispose()
    assert notebook_url(cwd=tmp_path / "notebooks").database == str(demo.resolve())


def test_a_database_in_the_working_directory_comes_first(tmp_path: Path) -> None:
    demo_database(tmp_path / "miyabi.db")
    (tmp_path / "notebooks").mkdir()
    demo_database(tmp_path / "notebooks" / "miyabi.db", executions=20)
    url = notebook_url(cwd=tmp_path / "notebooks")
    assert url.database == str((tmp_path / "notebooks" / "miyabi.db").resolve())


def test_none_found_means_a_new_file_here_shown_absolute(tmp_path: Path) -> None:
    url = notebook_url(cwd=tmp_path)
    assert url.database == str((tmp_path / "miyabi.db").resolve())
    assert not (tmp_path / "miyabi.db").exists()  # looking creates nothing


def test_the_environment_wins_and_is_shown_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo_database(tmp_path / "miyabi.db")
    monkeypatch.setenv("MIYABI_DATABASE_URL", "sqlite:///other.db")
    url = notebook_url(cwd=tmp_path)
    assert url.database == str((tmp_path / "other.db").resolve())
    assert notebook_url("sqlite:///given.db", cwd=tmp_path).database == str(
        (tmp_path / "given.db").resolve()
    )


def test_open_database_prints_the_absolute_url_and_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = open_database()
    engine.dispose()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"database: sqlite:///{(tmp_path / 'miyabi.db').resolve()}"
    assert out[1].startswith(EMPTY_LINE)
    assert len(out) == 2


def test_server_urls_are_shown_masked(tmp_path: Path) -> None:
    shown = shown_url("postgresql://miyabi:s3cret@db.example:5432/miyabi")
    assert shown == "postgresql+psycopg://miyabi:***@db.example:5432/miyabi"
    command = jupyter_command("postgresql://miyabi:s3cret@db.example/miyabi")
    assert "s3cret" not in command
    assert command.endswith(" jupyter lab")


def test_the_demo_prints_the_command_that_opens_its_notebooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import miyabi_analytics.cli as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_write_report", lambda url, **options: 0)  # the report: elsewhere
    assert cli.main(["demo", "--executions", "50"]) == 0
    out = capsys.readouterr().out  # results on stdout; stderr is for errors and progress
    database = (tmp_path / "miyabi.db").resolve()
    assert f"into sqlite:///{database} in " in out
    assert f"MIYABI_DATABASE_URL=sqlite:///{database} jupyter lab" in out

