"""The package's version: the installed distribution's, else the one this source tree declares."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Final

__all__ = ["SOURCE_VERSION", "package_version"]

SOURCE_VERSION: Final = "0.1.0"
"""``[project] version`` of pyproject.toml, for a checkout that is not installed (a test checks)."""


def package_version() -> str:
    """The version pip installed (what ``pip show`` reports), or the source tree's when none is."""
    try:
        return version("miyabi-analytics")
    except PackageNotFoundError:
        return SOURCE_VERSION
