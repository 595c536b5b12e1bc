"""Optional extras: the one place that knows which pip extra brings which import.

The core (persistence, reading, aggregates, figures) needs none of them; notebooks, reports and
the served dashboard do. A missing one fails with one line naming the pip command, not with an
``ImportError`` from deep inside a third-party package.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final, Literal

from miyabi_analytics.errors import MiyabiError

__all__ = ["EXTRAS", "Extra", "MissingExtraError", "require"]

Extra = Literal["notebook", "report", "serve", "ml", "lake"]

EXTRAS: Final[dict[Extra, str]] = {
    "notebook": "widgets in Jupyter (ipywidgets, jupyterlab)",
    "report": "report notebooks rendered to HTML (papermill, nbconvert, ipykernel)",
    "serve": "the dashboard served as a web app (voila)",
    "ml": "anomalies and quality prediction (scikit-learn)",
    "lake": "the lake on a Dask cluster (dask[distributed], deltalake)",
}


class MissingExtraError(MiyabiError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, extra: Extra, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{EXTRAS[extra].split(' (')[0]} needs the [{extra}] extra ({module} is not "
            f"installed): pip install 'miyabi-analytics[{extra}]'"
        )


def require(extra: Extra, module: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` naming the ``extra`` to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name is not None and exc.name.partition(".")[0] == top:
            raise MissingExtraError(extra, top) from None
        raise
