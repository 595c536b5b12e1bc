"""Frame helpers that need no database."""

import gc

import pytest

from miyabi_analytics.frames import paused_gc


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_gc_restores_the_collector(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), paused_gc():
            raise RuntimeError("the parse failed")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
