"""``import miyabi_analytics`` imports its names on first use (PEP 562); type checkers see them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import miyabi_analytics as ma
from miyabi_analytics import errors, widgets

INIT = Path(ma.__file__)


def _in_fresh_interpreter(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_importing_the_package_imports_no_heavy_library():
    heavy = ("pandas", "sqlalchemy", "alembic", "numpy", "pyarrow", "plotly", "psycopg")
    code = f"import sys, miyabi_analytics; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    assert _in_fresh_interpreter(code) == "[]"


def test_a_name_imports_what_it_needs_on_first_use():
    code = (
        "import sys, miyabi_analytics as ma; ma.connect; "
        "print('sqlalchemy' in sys.modules, 'pandas' in sys.modules, 'plotly' in sys.modules)"
    )
    assert _in_fresh_interpreter(code) == "True False False"


def _type_checking_imports() -> set[tuple[str, str]]:
    tree = ast.parse(INIT.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        and not isinstance(node.test, ast.UnaryOp)
    )
    pairs = set()
    for node in block.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert alias.asname == alias.name  # re-exported as itself
                pairs.add((f"{node.module}.{alias.name}" if node.module == "miyabi_analytics"
                           else node.module, alias.name))
    return pairs


def test_type_checkers_see_exactly_the_lazy_names():
    lazy = {(module, name) for module, names in ma._EXPORTS.items() for name in names}
    submodules = {("miyabi_analytics.agents", "agents")}
    assert _type_checking_imports() == lazy | submodules


def test_only_the_errors_are_imported_at_once():
    eager = set(ma.__all__) - set(ma._WHERE) - {"agents"}
    assert eager <= set(errors.__all__)
    assert all(getattr(ma, name) is getattr(errors, name) for name in eager)
    assert set(ma._WHERE) <= set(ma.__all__)


def test_lazy_names_are_the_real_objects():
    from miyabi_analytics import reader

    assert ma.read_summary is reader.read_summary
    assert ma.agents is sys.modules["miyabi_analytics.agents"]
    assert isinstance(ma.__version__, str)


def test_the_dashboard_checks_its_extra_then_is_the_widgets_one():
    # The check is the entry point's own (widgets.dashboard), so both names have it.
    assert ma.dashboard is widgets.dashboard
    assert callable(widgets.dashboard.__wrapped__)  # type: ignore[attr-defined]
    assert widgets.dashboard.__wrapped__ is not widgets.dashboard  # type: ignore[attr-defined]
    assert "interactive dashboard" in (widgets.dashboard.__doc__ or "")


def test_public_submodules_are_attributes_too():
    assert ma.formatting is sys.modules["miyabi_analytics.formatting"]
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = ma.no_such_name  # type: ignore[attr-defined]


def test_private_names_are_never_imported_on_lookup():
    # getattr(ma, "__main__") must not run the command line (miyabi_analytics/__main__.py).
    code = (
        "import sys, miyabi_analytics as ma; "
        "print(getattr(ma, '__main__', None), 'miyabi_analytics.__main__' in sys.modules)"
    )
    assert _in_fresh_interpreter(code) == "None False"


def test_dir_lists_the_public_names():
    assert set(ma.__all__) <= set(dir(ma))
