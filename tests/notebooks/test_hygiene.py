"""Notebooks are committed clean: no outputs, no execution counts, no widget state or timings,
and a ``parameters`` cell first whose defaults work as they are (``database_url = None``)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
TIMING_KEYS = {"execution", "ExecuteTime", "papermill", "collapsed", "scrolled", "jupyter"}


def read(path: Path, as_version: object = 4) -> Any:
    return nbformat.read(path, as_version=as_version)  # type: ignore[no-untyped-call]


def code_cells(path: Path) -> list[Any]:
    nb = read(path)
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_notebooks_are_there() -> None:
    assert {"quickstart.ipynb", "dashboard.ipynb", "analysis.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_valid_nbformat_4(path: Path) -> None:
    nb = read(path, nbformat.NO_CONVERT)
    assert nb.nbformat == 4
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path: Path) -> None:
    nb = read(path)
    assert "widgets" not in nb.metadata
    assert "papermill" not in nb.metadata
    for cell in nb.cells:
        assert not (TIMING_KEYS & set(cell.metadata)), (cell.get("id"), dict(cell.metadata))
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.get("id")
            assert cell.execution_count is None, cell.get("id")
        else:
            assert "attachments" not in cell or not cell.attachments


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_parameters_cell(path: Path) -> None:
    cells = code_cells(path)
    first = cells[0]
    assert "parameters" in first.metadata.get("tags", [])
    assert all("parameters" not in c.metadata.get("tags", []) for c in cells[1:])
    assignments = {
        node.targets[0].id: node.value
        for node in ast.parse(first.source).body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    assert "database_url" in assignments
    value = assignments["database_url"]
    assert isinstance(value, ast.Constant)
    assert value.value is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_only_the_public_api(path: Path) -> None:
    for cell in code_cells(path):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "miyabi_analytics":
                    private = [p for p in name.split(".") if p.startswith("_")]
                    assert not private, (cell.get("id"), name)
