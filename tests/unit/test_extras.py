"""Light core, optional extras: the core works alone, and a missing extra says so in one line.

The core-only runs happen in a subprocess whose import system finds nothing but the standard
library, the package and what the core dependencies of pyproject.toml install (their
dependencies followed through the installed metadata): exactly what ``pip install
miyabi-analytics`` brings, whatever else this test environment has.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from miyabi_analytics import _extras

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SELF = "miyabi-analytics"

# The core, chosen in issue 13: nothing that needs Jupyter. A new core dependency is a decision
# (and a few MB, or hundreds, for every user): change this list on purpose, with its size.
CORE = {
    "sqlalchemy",
    "psycopg",
    "alembic",
    "pandas",
    "numpy",  # comes with pandas; declared because the package imports it
    "pyarrow",
    "plotly",
    "tqdm",  # 0.7 MB: bulk-write progress bars
    "orjson",  # 0.4 MB: JSON columns decoded in the reader
    "adbc-driver-postgresql",  # with adbc-driver-manager, 26 MB: the PostgreSQL fast read
    "adbc-driver-sqlite",  # 4 MB: the SQLite fast read
}
NEVER_CORE = {"ipywidgets", "anywidget", "jupyterlab", "papermill", "nbconvert", "ipykernel"}
NEVER_CORE |= {"voila", "jupyter-server", "notebook", "ipython"}


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _extra_closure(extra: str) -> set[str]:
    """The distributions an extra lists, its ``miyabi-analytics[...]`` references followed."""
    names: set[str] = set()
    for text in PROJECT["optional-dependencies"][extra]:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == SELF:
            for inner in requirement.extras:
                names |= _extra_closure(inner)
        else:
            names.add(canonicalize_name(requirement.name))
    return names


def _installed_closure(requirements: list[str]) -> set[str]:
    """The distributions pip would install for ``requirements``, from installed metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        extras = {"", *requirement.extras}
        try:
            requires = md.requires(requirement.name) or []
        except md.PackageNotFoundError:  # listed, not installed here: nothing more to follow
            continue
        for text in requires:
            inner = Requirement(text)
            if inner.marker is None or any(inner.marker.evaluate({"extra": e}) for e in extras):
                todo.append(inner)
    return seen


def _not_core_modules() -> list[str]:
    """Top-level modules installed here by distributions the core install would not bring."""
    core = _installed_closure(PROJECT["dependencies"]) | {SELF}
    return sorted(
        module
        for module, owners in md.packages_distributions().items()
        if not any(canonicalize_name(owner) in core for owner in owners)
    )


def test_the_core_only_import_system_hides_the_extras():
    hidden = set(_not_core_modules())
    assert {"ipywidgets", "papermill", "voila", "ipykernel", "nbconvert", "IPython"} <= hidden
    assert not {"pandas", "sqlalchemy", "plotly", "pyarrow", "miyabi_analytics"} & hidden


# Prepended to every core-only script: HIDDEN (a JSON list) comes in argv[1].
CORE_ONLY = textwrap.dedent(
    """
    import json, sys
    HIDDEN = frozenset(json.loads(sys.argv[1]))

    class CoreOnly:
        # Finds nothing outside the core install: as if the extras were not installed.
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, CoreOnly())
    """
)


def _run_core_only(script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    hidden = json.dumps(_not_core_modules())
    return subprocess.run(
        [sys.executable, "-c", CORE_ONLY + textwrap.dedent(script), hidden, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


# ----------------------------------------------------------------------------- pyproject


def test_core_dependencies_are_exactly_the_chosen_ones():
    assert _names(PROJECT["dependencies"]) == CORE


def test_no_jupyter_package_reaches_the_core_even_indirectly():
    assert _installed_closure(PROJECT["dependencies"]) & NEVER_CORE == set()


def test_extras_bring_what_the_issue_names():
    assert _extra_closure("notebook") >= {"ipywidgets", "jupyterlab"}
    assert _extra_closure("report") >= {"papermill", "nbconvert", "ipykernel"}
    assert _extra_closure("serve") >= {"voila"}
    assert _extra_closure("all") == (
        _extra_closure("notebook") | _extra_closure("report") | _extra_closure("serve")
    )
    assert _extra_closure("test") >= _extra_closure("all") | {"pytest", "mypy", "ruff"}
    assert "anywidget" not in _names(PROJECT["dependencies"])


def test_every_extra_the_code_names_exists_in_pyproject():
    extras = set(PROJECT["optional-dependencies"])
    assert set(_extras.EXTRAS) == set(_extras.MODULES)
    assert set(_extras.MODULES) <= extras
    assert extras - set(_extras.MODULES) == {"all", "test"}


@pytest.mark.parametrize("extra", sorted(_extras.MODULES))
def test_each_checked_module_is_installed_by_its_extra(extra):
    owners = md.packages_distributions()
    closure = _installed_closure(sorted(_extra_closure(extra)))
    for module in _extras.MODULES[extra]:
        assert {canonicalize_name(d) for d in owners[module]} & closure, module


# ----------------------------------------------------------------------------- _extras


def test_require_extra_names_the_pip_command_in_one_line(monkeypatch):
    monkeypatch.setitem(_extras.MODULES, "ml", ("miyabi_no_such_module",))
    with pytest.raises(_extras.MissingExtraError) as caught:
        _extras.require_extra("ml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith("pip install 'miyabi-analytics[ml]'")
    assert "miyabi_no_such_module is not installed" in message
    assert isinstance(caught.value, ImportError)


def test_needs_checks_before_the_call(monkeypatch):
    calls: list[int] = []

    @_extras.needs("lake")
    def entry(n: int) -> int:
        calls.append(n)
        return n

    assert entry(1) == 1  # nothing to check: the extra lists no module yet
    monkeypatch.setitem(_extras.MODULES, "lake", ("miyabi_no_such_module",))
    with pytest.raises(_extras.MissingExtraError, match=r"\[lake\]"):
        entry(2)
    assert calls == [1]
    assert entry.__wrapped__.__name__ == "entry"  # type: ignore[attr-defined]


def test_require_imports_or_names_the_extra():
    assert _extras.require("report", "json").dumps([]) == "[]"
    with pytest.raises(_extras.MissingExtraError, match=r"pip install 'miyabi-analytics\[serve\]'"):
        _extras.require("serve", "miyabi_no_such_module.sub")


# ----------------------------------------------------------------------------- core only


CORE_USE = """
import sys
from pathlib import Path

import miyabi_analytics as ma
from miyabi_analytics import figures, reports
from miyabi_analytics.demo import load_demo

url = f"sqlite:///{Path('core.db').resolve()}"
engine = ma.connect(url)
ma.migrate(engine)
load_demo(engine, 200, seed=3)
out = {
    "summary_rows": len(ma.read_summary(engine)),
    "logs": len(ma.read_logs(engine)) > 0,
    "success_rates": len(ma.success_rates(engine)),
    "quality_trend": len(ma.quality_trend(engine)),
    "business_metrics": len(ma.business_metrics(engine)),
    "errors": len(ma.error_analysis(engine)),
    "duration_figure": len(figures.duration_figure(ma.duration_stats(engine)).data),
    "quality_figure": len(figures.quality_trend_figure(ma.quality_trend(engine)).data),
}
for name, call in [
    ("dashboard", lambda: ma.dashboard(engine)),
    ("report", lambda: reports.generate_report(url, output="r.html")),
    ("serve", lambda: reports.serve_dashboard(url, port=1)),
]:
    try:
        call()
        out[name] = None
    except ma.MiyabiError as exc:
        out[name] = [type(exc).__name__, str(exc)]
out["report_runs"] = len(ma.read_report_runs(engine))
from miyabi_analytics._progress import progress_bar
with progress_bar(True, total=1, desc="bar") as bar:
    bar.update(1)
out["bar"] = type(bar).__module__
out["loaded"] = sorted(
    m for m in ("ipywidgets", "anywidget", "papermill", "voila", "ipykernel", "IPython")
    if m in sys.modules
)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def core_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    done = _run_core_only(CORE_USE, tmp_path_factory.mktemp("core"))
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_core_reads_aggregates_and_draws_without_any_extra(core_run):
    assert core_run["summary_rows"] == 200
    assert core_run["logs"] is True
    for name in ("success_rates", "quality_trend", "business_metrics", "errors"):
        assert core_run[name] > 0, name
    assert core_run["duration_figure"] > 0
    assert core_run["quality_figure"] > 0
    assert core_run["loaded"] == []


@pytest.mark.parametrize(
    ("entry", "extra"), [("dashboard", "notebook"), ("report", "report"), ("serve", "serve")]
)
def test_entry_points_name_their_extra_in_one_line(core_run, entry, extra):
    kind, message = core_run[entry]
    assert kind == "MissingExtraError"
    assert "\n" not in message
    assert message.endswith(f"pip install 'miyabi-analytics[{extra}]'")


def test_a_report_without_its_extra_records_no_run(core_run):
    assert core_run["report_runs"] == 0


def test_progress_bars_are_text_without_ipywidgets(core_run):
    assert core_run["bar"] == "tqdm.std"


def test_ipykernel_imported_is_not_a_kernel_running():
    # jupyter_client imports ipykernel to find its kernelspec: bars stay off in such a process.
    code = (
        "import ipykernel.zmqshell; from miyabi_analytics._progress import interactive; "
        "print(interactive())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


CLI = """
from miyabi_analytics.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["report", "--output", "r.html"], "report"),
        (["serve", "--port", "1"], "serve"),
        (["demo", "--executions", "10"], "report"),
    ],
)
def test_cli_refuses_in_one_line_without_the_extra(tmp_path, argv, extra):
    done = _run_core_only(CLI, tmp_path, *argv, "--url", f"sqlite:///{tmp_path / 'cli.db'}")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("miyabi-analytics: error: ")
    assert done.stderr.rstrip("\n").endswith(f"pip install 'miyabi-analytics[{extra}]'")
    assert not (tmp_path / "cli.db").exists()  # refused before the database was touched
    assert not (tmp_path / "r.html").exists()
