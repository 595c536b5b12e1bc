"""Progress bars for long bulk writes: tqdm.auto, on only where a person is watching."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def interactive() -> bool:
    """A terminal on stderr, or a Jupyter kernel (where tqdm.auto draws a widget)."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


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
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False) as bar:
        yield bar
