"""Output files checked before the work that fills them, so a bad path costs nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from miyabi_analytics.errors import ValidationError

__all__ = ["check_output_file"]


def check_output_file(field: str, value: str | os.PathLike[str]) -> Path:
    """The absolute path of a file about to be written, or :class:`ValidationError` naming it.

    Refused: an existing directory or other non-regular file (the write renames a new file over
    it, which would replace ``/dev/null``), a missing parent directory, a parent that is a file,
    and a directory this process cannot create files in. The last is probed by creating (and at
    once removing) a hidden empty file there, as the real write does: permission bits say
    nothing for root, while a read-only mount or ``/proc`` refuses even root.
    """
    text = os.fspath(value)
    try:
        path = Path(text).expanduser().resolve()
        if path.is_dir():
            raise ValidationError(field, text, "is a directory; give a file name")
        if path.exists() and not path.is_file():
            raise ValidationError(field, text, "exists and is not a regular file")
        parent = path.parent
        if not parent.exists():
            raise ValidationError(field, text, f"its directory {parent} does not exist")
        if not parent.is_dir():
            raise ValidationError(field, text, f"{parent} is not a directory")
    except ValidationError:
        raise
    except (OSError, ValueError) as exc:  # a name too long, an embedded NUL byte
        raise ValidationError(field, text, str(exc)) from None
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        reason = f"cannot create files in {parent}: {exc.strerror or exc}"
        raise ValidationError(field, text, reason) from None
    os.close(fd)
    os.unlink(probe)
    return path
