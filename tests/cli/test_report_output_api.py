"""generate_report, called from Python, refuses what the CLI refuses: before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import miyabi_analytics as ma
from miyabi_analytics import reports


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("kind", ["fifo", "directory", "missing-parent"])
def test_generate_report_refuses_a_bad_output_before_connecting(
    tmp_path: Path, kind: str
) -> None:
    output = {
        "fifo": lambda: _fifo(tmp_path),
        "directory": lambda: tmp_path,
        "missing-parent": lambda: tmp_path / "nowhere" / "r.html",
    }[kind]()
    database = tmp_path / "untouched.db"
    with pytest.raises(ma.ValidationError) as info:
        reports.generate_report(f"sqlite:///{database}", output=output)
    assert info.value.field == "output"
    assert not database.exists()  # refused before the database was even opened
    if kind == "fifo":
        assert output.is_fifo()  # not replaced by a regular file
