"""Optional extras: the one place that knows which pip extra brings which import.

The core (persistence, reading, aggregates, figures) needs none of them; notebooks, reports and
the served dashboard do. A missing one fails with one line naming the pip command, not with an
``ImportError`` from deep inside a third-party package (or, worse, half way through a report).
Entry points check their whole extra before doing anything (:func:`needs`,
:func:`require_extra`); code behind them imports with :func:`require`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import Final, Literal, ParamSpec, TypeVar

from miyabi_analytics.errors import MiyabiError

__all__ = [
    "EXTRAS",
    "MODULES",
    "Extra",
    "MissingExtraError",
    "installed",
    "needs",
    "require",
    "require_extra",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

Extra = Literal["notebook", "report", "serve", "ml", "lake"]

EXTRAS: Final[dict[Extra, str]] = {
    "notebook": "widgets in Jupyter (ipywidgets, jupyterlab)",
    "report": "report notebooks rendered to HTML (papermill, nbconvert, ipykernel)",
    "serve": "the dashboard served as a web app (voila)",
    "ml": "anomalies and quality prediction (scikit-learn)",
    "lake": "the lake on a Dask cluster (dask[distributed], deltalake)",
}

MODULES: Final[dict[Extra, tuple[str, ...]]] = {
    # plotly's FigureWidget, which the dashboard draws with, is an anywidget.
    "notebook": ("ipywidgets", "anywidget"),
    # ipykernel: the report's kernel is this interpreter's (python -m ipykernel_launcher).
    "report": ("papermill", "nbformat", "nbclient", "nbconvert", "jupyter_client", "ipykernel"),
    # [serve] brings [notebook] and [report]: the served page is the dashboard in a kernel.
    "serve": ("voila", "ipywidgets", "anywidget", "ipykernel"),
    # Empty in pyproject.toml until their issues bring the packages.
    "ml": (),
    "lake": (),
}
"""What each extra must make importable, by top-level module name (tests compare it with
pyproject.toml)."""


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


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (it is found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a hidden module, or one in sys.modules without a spec
        return False


def require_extra(extra: Extra) -> None:
    """:class:`MissingExtraError` unless every module of ``extra`` is installed.

    Nothing is imported (the report's kernel or Voila import them later, in their own process).
    """
    for module in MODULES[extra]:
        if not installed(module):
            raise MissingExtraError(extra, module)


def needs(extra: Extra) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate an entry point so that it checks ``extra`` (:func:`require_extra`) first."""

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(function)
        def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            require_extra(extra)
            return function(*args, **kwargs)

        return checked

    return decorate
