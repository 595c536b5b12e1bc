"""``--version`` and ``__version__`` agree with pyproject.toml; every option says what it does."""

import argparse
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import miyabi_analytics as ma
from miyabi_analytics import _version
from miyabi_analytics.cli import _parser, main

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared_version() -> str:
    with PYPROJECT.open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def test_dunder_version_is_the_declared_one():
    assert ma.__version__ == declared_version()
    assert declared_version() == _version.SOURCE_VERSION


def test_installed_metadata_agrees_with_pyproject():
    try:
        installed = metadata.version("miyabi-analytics")
    except metadata.PackageNotFoundError:
        installed = None
    assert installed in (None, declared_version())  # a stale install would show up here


def test_version_falls_back_to_the_source_tree_when_not_installed(monkeypatch):
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_version, "version", missing)
    assert _version.package_version() == _version.SOURCE_VERSION == declared_version()


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out == f"miyabi-analytics {declared_version()}\n"
    assert err == ""


def test_version_flag_of_the_module_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "miyabi_analytics", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"miyabi-analytics {declared_version()}"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def test_every_subcommand_and_option_has_help():
    parser = _parser()
    commands = subcommands(parser)
    assert {"migrate", "downgrade", "demo", "report"} <= set(commands)
    listed = {
        choice.dest: choice.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }
    missing = [name for name in commands if not listed.get(name)]
    for name, sub in {"": parser, **commands}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_demo_help_describes_executions_and_seed(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "executions to generate" in out
    assert "random seed" in out
