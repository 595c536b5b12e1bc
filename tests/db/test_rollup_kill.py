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
from miyabi_analytics.aggregates import _rollup
from miyabi_analytics.demo import load_demo

END = datetime(2026, 9, 1, tzinfo=UTC)
REFRESH = (  # two days per transaction: many commits to die between
    "import sys, miyabi_analytics as ma; from miyabi_analytics._db.rollup.refresh import refresh;"
    " refresh(ma.connect(sys.argv[1]), chunk=2)"
)


def _answers(engine):
    return [
        ma.success_rates(engine, freq="W"),
        ma.quality_trend(engine, by="agent_category", freq="M"),
        ma.business_metrics(engine, by=None, freq=None),
        ma.error_analysis(engine),
    ]


@pytest.mark.slow
def test_a_refresh_killed_midway_leaves_exact_answers(db_url, engine, monkeypatch):
    load_demo(engine, 6000, seed=4, end=END)
    pending = ma.rollup_status(engine).pending_days
    with monkeypatch.context() as patch:
        patch.setattr(_rollup, "rollup_can_answer", lambda *a, **k: False)
        expected = _answers(engine)
    url = db_url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", REFRESH, url])
    deadline = time.monotonic() + 60
    while ma.rollup_status(engine).pending_days == pending and time.monotonic() < deadline:
        time.sleep(0.005)  # until its first transaction has committed
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = ma.rollup_status(engine).pending_days
    assert 0 < left < pending  # killed midway: some days done, some still pending
    for got, want in zip(_answers(engine), expected, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    ma.refresh_rollups(engine)  # finishes what the killed one left
    assert not ma.rollup_status(engine).stale
    for got, want in zip(_answers(engine), expected, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
