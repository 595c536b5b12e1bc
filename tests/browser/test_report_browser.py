"""The HTML report in a real browser, from file://, with every network request blocked."""

from pathlib import Path

import pytest

from miyabi_analytics.cli import main

pytestmark = pytest.mark.slow

HAS_DATA = "g.trace, .hm image, .heatmaplayer image"  # bars, lines, markers, heatmap cells
ALL_DRAWN = """n => {
    const plots = [...document.querySelectorAll('.plotly-graph-div')];
    return plots.length === n && plots.every(p => p.querySelector('.main-svg'));
}"""


@pytest.fixture
def demo_report(tmp_path: Path) -> Path:
    """``miyabi-analytics demo`` with 2000 executions, which ends by writing the report."""
    out = tmp_path / "miyabi-report.html"
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    argv = ["demo", "--url", url, "--executions", "2000", "--seed", "3", "--output", str(out)]
    assert main(argv) == 0
    return out


def test_report_renders_every_chart_offline(chromium, demo_report, artifacts, watch):
    html = demo_report.read_text(encoding="utf-8")
    figures = html.count('class="plotly-graph-div"')
    assert figures == 6

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    problems = watch(page, allowed=("file://",))
    try:
        page.goto(demo_report.as_uri(), wait_until="load", timeout=60_000)
        page.wait_for_function(ALL_DRAWN, arg=figures, timeout=60_000)
        drawn = page.eval_on_selector_all(
            ".js-plotly-plot", "plots => plots.filter(p => p.querySelector('.main-svg')).length"
        )
        assert drawn == figures
        with_data = page.eval_on_selector_all(
            ".js-plotly-plot",
            "(plots, sel) => plots.filter(p => p.querySelector(sel)).length",
            HAS_DATA,
        )
        assert with_data == figures
        assert page.locator("h1").first.inner_text().startswith("Miyabi agents report")
        assert page.locator("pre, .jp-InputArea").count() == 0  # no code shown
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    finally:
        page.close()
    assert problems.errors == []
    assert problems.blocked == []  # nothing even tried to leave the file
