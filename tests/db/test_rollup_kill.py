"""kill -9 during ``refresh_rollups``: the rollup stays consistent and answers stay exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pandas as pd
import pytest

import miyabi_analytics as ma
from miyabi_analytics.aggregates import _business, _outcomes
from miyabi_analytics.demo import load_demo

END = datetime(2026, 9, 1, tzinfo=UTC)
REFRESH = "import sys, miyabi_analytics as ma; ma.refresh_rollups(ma.connect(sys.argv[1]))"


def _answers(engine):
    return [
        ma.success_rates(engine, freq="W"),
        ma.quality_trend(engine, by="agent_category", freq="M"),
        ma.business_metrics(engine, by=None, freq=None),
        ma.error_analysis(engine),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3])
def test_a_refresh_killed_midway_leaves_exact_answers(db_url, engine, monkeypatch, delay):
    load_demo(engine, 6000, seed=4, end=END)
    with monkeypatch.context() as patch:
        for module in (_outcomes, _business):
            patch.setattr(module, "rollup_can_answer", lambda *a, **k: False)
        expected = _answers(engine)
    url = db_url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", REFRESH, url])
    time.sleep(delay)
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    for got, want in zip(_answers(engine), expected, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    ma.refresh_rollups(engine)  # finishes what the killed one left
    assert not ma.rollup_status(engine).stale
    for got, want in zip(_answers(engine), expected, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
