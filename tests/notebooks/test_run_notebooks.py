"""Every notebook runs top to bottom through papermill, on a demo history and on a database
without rows, on both dialects, and shows the database URL, masked and only masked."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from sqlalchemy import URL, text
from sqlalchemy.exc import OperationalError

import miyabi_analytics as ma
from miyabi_analytics.demo import load_demo

papermill = pytest.importorskip("papermill")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
FAKE_PASSWORD = "not-a-real-pw-7f3a"
pytestmark = pytest.mark.slow


def with_password(url: URL) -> tuple[URL, str | None]:
    """The URL to hand the notebook and the password that must never show in its outputs.

    A server URL with a password keeps it; without one, a fake password is added where the
    server ignores it (trust authentication), so there is something to leak.
    """
    if url.password:
        return url, str(url.password)
    if url.get_backend_name() != "postgresql":
        return url, None
    candidate = url.set(password=FAKE_PASSWORD)
    engine = ma.connect(candidate)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError:
        return url, None
    finally:
        engine.dispose()
    return candidate, FAKE_PASSWORD


def execute(path: Path, tmp_path: Path, parameters: dict[str, Any]) -> Any:
    out = tmp_path / f"executed-{path.name}"
    papermill.execute_notebook(
        str(path),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
        execution_timeout=600,
    )
    return nbformat.read(out, as_version=4)  # type: ignore[no-untyped-call]


def outputs_text(nb: Any) -> str:
    """Everything the cells showed, every mimetype, as one string."""
    texts: list[str] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(
                v if isinstance(v, str) else json.dumps(v) for v in output.get("data", {}).values()
            )
            texts.extend([output.get("evalue", ""), *output.get("traceback", [])])
    return "\n".join(texts)


def check(nb: Any, url: URL, password: str | None) -> None:
    errors = [
        (cell.get("id"), output.get("ename"), output.get("evalue"))
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert errors == []
    shown = outputs_text(nb)
    engine = ma.connect(url)  # opens no connection: only for the URL as the notebook sees it
    masked = ma.mask_url(engine.url)
    engine.dispose()
    unescaped = re.sub(r"\\(.)", r"\1", shown)  # markdown output escapes _ and *
    assert masked in shown or masked in unescaped  # each notebook shows its database, masked
    if password is not None:
        assert password not in shown
        assert "***" in masked


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_demo_history(path: Path, db_url: URL, tmp_path: Path) -> None:
    engine = ma.connect(db_url)
    load_demo(engine, 2000, seed=1)
    engine.dispose()
    url, password = with_password(db_url)
    nb = execute(path, tmp_path, {"database_url": url.render_as_string(hide_password=False)})
    check(nb, url, password)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_an_empty_database(path: Path, db_url: URL, tmp_path: Path) -> None:
    url, password = with_password(db_url)  # migrated, no rows
    nb = execute(path, tmp_path, {"database_url": url.render_as_string(hide_password=False)})
    check(nb, url, password)


def test_default_parameters_resolve_the_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "from-env.db"))
    monkeypatch.setenv("MIYABI_DATABASE_URL", url.render_as_string(hide_password=False))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    nb = execute(NOTEBOOKS[0].parent / "quickstart.ipynb", tmp_path, {})
    check(nb, url, None)
    assert f"database: {ma.mask_url(url)}" in outputs_text(nb)
    assert (tmp_path / "from-env.db").exists()
    assert not (tmp_path / "miyabi.db").exists()
