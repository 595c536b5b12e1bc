"""The package's shape, enforced: layers, a leaf persistence layer, no cycles, small modules.

The layers are declared once, in pyproject.toml's ``[tool.importlinter]``, and checked by
import-linter (imports inside functions count). The rest is checked here on grimp's import graph,
which import-linter builds on.
"""

from __future__ import annotations

import graphlib
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "miyabi_analytics"
MAX_LINES = 400


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("miyabi_analytics", cache_dir=None)


def test_import_linter_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


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
