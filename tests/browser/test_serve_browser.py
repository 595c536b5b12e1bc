"""``miyabi-analytics serve``: the Voila dashboard in a real browser, reacting to a filter."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import miyabi_analytics as ma
from miyabi_analytics.demo import load_demo

pytestmark = pytest.mark.slow

LEGEND_OF_FIRST_CHART = """() => [...document.querySelector('.js-plotly-plot')
    .querySelectorAll('.legendtext')].map(t => t.textContent)"""
ONLY_DESIGN_AGENT = """() => {
    const names = [...document.querySelector('.js-plotly-plot')
        .querySelectorAll('.legendtext')].map(t => t.textContent);
    return names.length > 0 && names.every(n => n === 'JonathanIveDesignAgent');
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with status {server.returncode}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.25)
    pytest.fail(f"nothing listened on 127.0.0.1:{port} after {timeout:.0f}s")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server and what it started: its whole process group, by its pid."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def other_address() -> str | None:
    """A non-loopback address of this host, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
        except OSError:
            return None
        address = str(sock.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    engine = ma.connect(url)
    try:
        ma.migrate(engine)
        load_demo(engine, 2000, seed=5)
    finally:
        engine.dispose()
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "miyabi_analytics", "serve", "--url", url, "--port", str(port)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches the kernels too
        )
        try:
            wait_for_port(port, server, timeout=60)
            yield port
        finally:
            stop(server)
    log_text = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log_text, log_text


def test_serve_binds_loopback_and_a_filter_updates_a_chart(chromium, served, artifacts, watch):
    port = served
    elsewhere = other_address()
    if elsewhere is not None:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((elsewhere, port)) != 0, "the server listens beyond loopback"

    page = chromium.new_page(viewport={"width": 1300, "height": 1000})
    origin = f"http://127.0.0.1:{port}"
    problems = watch(page, allowed=(origin, "blob:", "data:"))
    try:
        page.goto(origin + "/", wait_until="commit", timeout=120_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=180_000)
        page.wait_for_function(f"() => ({LEGEND_OF_FIRST_CHART})().length > 1", timeout=30_000)
        before = page.evaluate(LEGEND_OF_FIRST_CHART)
        assert "JonathanIveDesignAgent" in before
        assert "SNSStrategyAgent" in before

        page.locator("select:has(option[value='design'])").select_option("design")
        page.wait_for_function(ONLY_DESIGN_AGENT, timeout=30_000)
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
    finally:
        page.close()
    # Nothing is asked of a CDN any more (issue 12: Font Awesome came from one), nothing fails.
    assert problems.errors == []
    assert problems.blocked == []
