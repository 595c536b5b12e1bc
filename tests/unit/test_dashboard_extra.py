"""The dashboard needs ipywidgets only when built: without it, one line names the extra."""

from __future__ import annotations

import sys

import pytest

import miyabi_analytics as ma
from miyabi_analytics._extras import MissingExtraError
from miyabi_analytics.widgets import DashboardFilters, DashboardModel, DashboardView


def test_a_dashboard_without_ipywidgets_names_the_notebook_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if not installed
    engine = ma.connect("sqlite://")  # opens nothing: the view fails before any query
    try:
        model = DashboardModel(engine, DashboardFilters())
        with pytest.raises(MissingExtraError, match=r"pip install 'miyabi-analytics\[notebook\]'"):
            DashboardView(model)
        assert model.queries_run == 0
    finally:
        engine.dispose()
