"""Issue 12, items 18, 21 and 22 in a real browser: ``miyabi-analytics serve`` and the report
on a machine without internet, the served page's first chart within 5 s, what the page reads.

One demo database of the default size (``miyabi-analytics demo``, which also writes the report)
serves the whole module. Every request to anything but 127.0.0.1 is aborted and recorded.
"""

from __future__ import annotations

import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miyabi_analytics._serve import READY

pytestmark = pytest.mark.slow

FIRST_CHART_SECONDS = 5.0
LOCAL = "http://127.0.0.1:"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``miyabi-analytics demo`` of the default size: its database URL and its report."""
    from miyabi_analytics.cli import main

    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'miyabi.db'}"
    report = folder / "miyabi-report.html"
    assert main(["demo", "--url", url, "--output", str(report)]) == 0
    return url, report


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(demo: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served on a free port, once its preheated kernel waits for a page."""
    url, _ = demo
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "miyabi_analytics", "serve", "--url", url, "--port", str(port)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its kernels below
        )
        try:
            deadline = time.monotonic() + 240
            while READY not in log_path.read_text(errors="replace"):
                if server.poll() is not None:
                    pytest.fail(f"serve exited ({server.returncode}): {log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"serve never got ready: {log_path.read_text()}")
                time.sleep(0.2)
            yield f"{LOCAL}{port}/"
        finally:
            # What it logged while serving: jupyter_server's own shutdown on SIGTERM can race
            # its kernel culling (HTTP 404 "Kernel does not exist"), which is not serving.
            served_log = log_path.read_text(errors="replace")
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
    assert "Traceback" not in served_log, served_log


class Offline:
    """Aborts and records every request that would leave 127.0.0.1."""

    def __init__(self, page: Any) -> None:
        self.attempted: list[str] = []
        page.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith((LOCAL, "data:", "blob:")):
            route.continue_()
        else:
            self.attempted.append(url)
            route.abort()


def test_served_dashboard_first_chart_within_5_s_nothing_from_outside(
    chromium: Any, served: str, artifacts: Path
) -> None:
    page = chromium.new_page(viewport={"width": 1300, "height": 1000})
    offline = Offline(page)
    try:
        began = time.monotonic()
        page.goto(served, wait_until="commit", timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", state="visible", timeout=60_000)
        first_chart = time.monotonic() - began
        (artifacts / "serve-first-chart-seconds.txt").write_text(f"{first_chart:.2f}\n")

        # the chart fills its tab: drawn as wide as its container, not plotly's 700 px
        page.wait_for_function(
            """() => { const p = document.querySelector('.js-plotly-plot');
                return p._fullLayout && Math.abs(p._fullLayout.width - p.clientWidth) <= 4
                    && p.clientWidth > 1000; }""",
            timeout=10_000,
        )
        text = page.inner_text("body")
        assert "JupyterLab" not in text  # the notebook readers' note is not on the served page
        assert "database: sqlite:///" in text
        # the Refresh button's icon is drawn with the fonts served from here
        icon = page.evaluate(
            """() => { const i = document.querySelector('button i.fa');
                const before = getComputedStyle(i, '::before');
                return [before.content, before.fontFamily]; }"""
        )
        assert icon[0] not in ("none", "normal", '""')
        assert "Font Awesome" in icon[1]
        loaded = "document.fonts.load('900 16px \"Font Awesome 5 Free\"').then(f => f.length)"
        assert page.evaluate(loaded) >= 1  # the font file came from this server
        page.screenshot(path=str(artifacts / "serve-offline.png"), full_page=True)
    finally:
        page.close()
    assert offline.attempted == []
    assert first_chart <= FIRST_CHART_SECONDS, f"first chart after {first_chart:.1f} s"


def test_served_success_labels_are_readable_and_headings_follow_the_filters(
    chromium: Any, served: str
) -> None:
    """Runs after the first page took the preheated kernel: this one may start its own."""
    page = chromium.new_page(viewport={"width": 1300, "height": 1000})
    offline = Offline(page)
    try:
        page.goto(served, wait_until="commit", timeout=120_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", state="visible", timeout=180_000)
        page.get_by_text("Success", exact=True).first.click()
        page.wait_for_selector(".js-plotly-plot .bartext", timeout=60_000)
        sizes = page.eval_on_selector_all(
            ".js-plotly-plot .bartext",
            "texts => texts.map(t => parseFloat(getComputedStyle(t).fontSize))",
        )
        assert len(sizes) >= 10
        assert min(sizes) >= 11, sizes

        page.locator("select:has(option[value='design'])").select_option("design")
        page.wait_for_function(
            "() => document.body.innerText.includes('(1 of 4 selected)')", timeout=30_000
        )
        assert "none selected" not in page.inner_text("body")
    finally:
        page.close()
    assert offline.attempted == []


def test_report_over_http_asks_for_nothing_outside(
    chromium: Any, demo: tuple[str, Path], artifacts: Path
) -> None:
    _, report = demo
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(report.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    offline = Offline(page)
    try:
        page.goto(f"{LOCAL}{httpd.server_address[1]}/{report.name}", timeout=60_000)
        page.wait_for_function(
            """() => { const plots = [...document.querySelectorAll('.plotly-graph-div')];
                return plots.length > 0 && plots.every(p => p.querySelector('.main-svg')); }""",
            timeout=60_000,
        )
        page.screenshot(path=str(artifacts / "report-offline.png"), full_page=True)
    finally:
        page.close()
        httpd.shutdown()
        httpd.server_close()
    assert offline.attempted == []
