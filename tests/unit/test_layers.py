"""The package's shape, enforced: layers, a leaf persistence layer, no cycles, small modules.

The layers are declared once, in pyproject.toml's ``[tool.importlinter]``, and checked by
import-linter (imports inside functions count). The rest is checked here on grimp's import graph,
which import-linter builds on.
"""

from __future__ import annotations

import graphlib
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "miyabi_analytics"
MAX_LINES = 400


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("miyabi_analytics", cache_dir=None)


def test_import_linter_contracts_are_kept() -> None:
    # In a child process: import-linter configures logging as a command-line tool does, which
    # would silence the loggers of every later test in this process.
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Contracts: 1 kept, 0 broken." in run.stdout


def test_the_persistence_layer_imports_only_itself_vocabulary_and_errors(
    graph: grimp.ImportGraph,
) -> None:
    allowed = ("miyabi_analytics._db", "miyabi_analytics.vocabulary", "miyabi_analytics.errors")
    bad = {
        (module, imported)
        for module in graph.modules
        if module.startswith("miyabi_analytics._db")
        for imported in graph.find_modules_directly_imported_by(module)
        if imported.startswith("miyabi_analytics") and not imported.startswith(allowed)
    }
    assert bad == set()


def test_the_vocabulary_is_a_leaf(graph: grimp.ImportGraph) -> None:
    imported = graph.find_modules_directly_imported_by("miyabi_analytics.vocabulary")
    assert {m for m in imported if m.startswith("miyabi_analytics")} <= {"miyabi_analytics.errors"}
    assert graph.find_modules_directly_imported_by("miyabi_analytics.errors") == set()


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    # An import of a package's own __init__ from inside it is how a package re-exports, not a
    # dependency between layers; the top-level package re-exports everything lazily.
    edges = {
        module: {
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            if imported != "miyabi_analytics" and not module.startswith(imported + ".")
        }
        for module in graph.modules
        if module != "miyabi_analytics"
    }
    graphlib.TopologicalSorter(edges).prepare()  # raises CycleError naming the cycle


def test_no_module_is_over_the_limit() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}
    assert len(sizes) > 50  # the walk found the package
