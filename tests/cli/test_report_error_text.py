"""Any error message renders in the report's "Top errors" table, as text, one row each.

A newline in ``error_message`` used to end the Markdown table row, which emptied the table.
The table is now HTML: each message is escaped, its line breaks kept (at most three lines and
160 characters, cut with an ellipsis), and the full text (up to 2,000 characters, any line
break as a newline) is the cell's ``title`` tooltip. Runs the real report (papermill) on
both databases.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics.cli import main

LONG = "Traceback: " + "frame " * 900  # 5,411 characters
MESSAGES = (
    "line one\nline two",
    "pipe | in | the | middle",
    "<script>alert('owned')</script>",
    "**bold** _em_ `code` [link](http://example.com) # h $x$ \\ & &amp; ~~s~~",
    LONG,
    "🔥 failed 👩‍💻 ✔︎ 日本語のエラー",
    "\n===\n- item\n> quote\n1. one",
    "</td></tr></table><h1>broken</h1>",
    "a\r\nb\rc\td\ne\nf",
    None,
)
START = datetime(2026, 5, 4, 9, tzinfo=UTC)
CELL_CHARS, CELL_LINES, TITLE_CHARS = 160, 3, 2000


def shown(message: str | None) -> str:
    """What the table cell shows (lines joined by newlines): the rule the notebook documents."""
    if message is None:
        return "(no message)"
    lines = message.splitlines() or [""]
    cut = len(lines) > CELL_LINES
    text = "\n".join(lines[:CELL_LINES])
    if len(text) > CELL_CHARS:
        text, cut = text[: CELL_CHARS - 1].rstrip(), True
    return text + ("…" if cut else "")


def tooltip(message: str | None) -> str | None:
    if message is None:
        return None
    message = "\n".join(message.splitlines())
    if len(message) > TITLE_CHARS:
        return message[: TITLE_CHARS - 1].rstrip() + "…"
    return message


class TableReader(HTMLParser):
    """The rows of the first ``<table class="miyabi-top-errors">``: cell texts and titles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # > 0 inside the table
        self.rows: list[list[tuple[str, str | None]]] = []
        self.cell: list[str] | None = None
        self.title: str | None = None
        self.in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        marked = "miyabi-top-errors" in (found.get("class") or "").split()
        if tag == "table" and marked and not self.rows and self.depth == 0:
            self.depth = 1
            return
        if self.depth == 0:
            return
        if tag == "table":
            self.depth += 1
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append([])
        elif tag == "td" and self.in_body:
            self.cell, self.title = [], found.get("title")
        elif tag == "br" and self.cell is not None:
            self.cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.depth == 0:
            return
        if tag == "table":
            self.depth -= 1
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append(("".join(self.cell), self.title))
            self.cell = None
        elif tag == "tbody":
            self.in_body = False

    def handle_data(self, data: str) -> None:
        if self.depth and self.cell is not None:
            self.cell.append(data)


def top_errors_rows(page: str) -> list[list[tuple[str, str | None]]]:
    reader = TableReader()
    reader.feed(page)
    return reader.rows


@pytest.fixture
def failures_url(db_url: URL) -> URL:
    """Each message fails a different number of times (11, 10, ... 2), so the order is fixed."""
    engine = ma.connect(db_url)
    agent = ma.SalesAgent()
    repo = "00000000-0000-4000-8000-0000000000aa"
    records = []
    for rank, message in enumerate(MESSAGES):
        for i in range(len(MESSAGES) + 1 - rank):
            builder = agent.builder(repo).status("failed").started_at(
                START + timedelta(hours=rank, minutes=i)
            )
            if message is not None:
                builder.error_message(message)
            records.append(builder.build())
    try:
        ma.ExecutionStore(engine).save_executions(records)
    finally:
        engine.dispose()
    return db_url


@pytest.mark.slow
def test_every_message_renders_in_the_top_errors_table(failures_url, tmp_path, capsys):
    out = tmp_path / "report.html"
    url = failures_url.render_as_string(hide_password=False)
    argv = ["report", "--url", url, "--since", "2026-05-01", "--until", "2026-05-29"]
    assert main([*argv, "--output", str(out)]) == 0, capsys.readouterr().err
    page = out.read_text(encoding="utf-8")

    rows = top_errors_rows(page)
    assert len(rows) == len(MESSAGES)  # ten messages, ten rows, most frequent first
    for row, message in zip(rows, MESSAGES, strict=True):
        (text, title), (failures, _), *_ = row
        assert text == shown(message), message
        assert title == tooltip(message), message
        assert failures == f"{len(MESSAGES) + 1 - MESSAGES.index(message)}"
    # in the HTML source, each shown line appears escaped (nbconvert re-serialises the output)
    for message in MESSAGES:
        for line in shown(message).split("\n"):
            assert html.escape(line, quote=False) in page, (message, line)
    assert "&lt;script&gt;alert('owned')&lt;/script&gt;" in page
    assert "<script>alert(" not in page
    assert "<h1>broken</h1>" not in page
    assert shown(LONG).endswith("…")
    assert len(shown(LONG)) == CELL_CHARS
    # the prose under the table quotes the top message on one line, escaped
    prose = page[page.index('class="miyabi-top-errors') :]
    assert re.search(r"most frequent error, “line one line two”", prose)
