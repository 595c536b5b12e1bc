"""Progress bars for long bulk writes: tqdm.auto, on only where a person is watching.

tqdm.auto draws a widget in a Jupyter kernel, which needs ipywidgets (the ``[notebook]`` extra);
without it the text bar is used, rather than tqdm.auto's warning and then the text bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from miyabi_analytics._extras import installed


def interactive() -> bool:
    """A terminal on stderr, or a Jupyter kernel (where tqdm.auto draws a widget).

    A kernel is a running one, not ipykernel merely imported (jupyter_client imports it to
    find its kernelspec, e.g. in a process that runs report notebooks).
    """
    if _in_kernel():
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _in_kernel() -> bool:
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    ipython = sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    return isinstance(ipython.get_ipython(), zmqshell.ZMQInteractiveShell)


class _Silent:
    def update(self, _n: int = 1) -> None:
        """Nothing to show."""


@contextmanager
def progress_bar(
    enabled: bool | None, *, total: int | None, desc: str, unit: str = "row"
) -> Iterator[Any]:
    """A tqdm bar when ``enabled`` (``None``: when interactive), else an object that ignores it."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        yield _Silent()
        return
    if installed("ipywidgets"):
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm

    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False) as bar:
        yield bar
