"""Where the shipped notebooks are, and the URL their kernels get: shared by report and serve."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy import URL

from miyabi_analytics._db.dialect import Dialect

__all__ = ["kernel_url", "notebook_path"]


def notebook_path(name: str = "report.ipynb") -> Path:
    """A shipped notebook: the wheel's ``_notebooks`` copy, else the checkout's ``notebooks/``."""
    packaged = Path(str(resources.files("miyabi_analytics") / "_notebooks" / name))
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[1] / "notebooks" / name


def kernel_url(url: URL) -> str:
    """The URL for the kernel: password included, a relative SQLite path made absolute.

    It goes to the kernel through its environment only, never to a log or a command line.
    """
    if url.get_backend_name() == Dialect.SQLITE and url.database not in (None, "", ":memory:"):
        url = url.set(database=str(Path(url.database or "").resolve()))
    return url.render_as_string(hide_password=False)
