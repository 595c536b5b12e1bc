"""The duration sketch's bound: each percentile within 1% of the exact one, relatively."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from miyabi_analytics._db.sketch import ALPHA, GAMMA
from miyabi_analytics.aggregates._exact import interpolated
from miyabi_analytics.aggregates._sketch import bucket_key_py, quantiles, representative

SLACK = 1e-12
durations = st.integers(min_value=0, max_value=3 * 10**15)


def _exact(values: list[int], percent: int) -> float:
    ordered = sorted(values)
    below, remainder = divmod(percent * (len(ordered) - 1), 100)
    lo = ordered[below]
    hi = ordered[below + 1] if remainder else lo
    return interpolated(lo, hi, len(ordered), percent, 1_000_000)


@settings(max_examples=300, deadline=None)
@given(st.lists(durations, min_size=1, max_size=300))
def test_each_percentile_is_within_alpha_of_the_exact_one(values):
    counts = Counter(bucket_key_py(v) for v in values)
    for percent, approx in zip((50, 95), quantiles(counts), strict=True):
        exact = _exact(values, percent)
        assert abs(approx - exact) <= ALPHA * exact * (1 + SLACK) + 1e-18


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=3 * 10**15))
def test_a_value_and_its_negative_are_within_alpha_of_their_representative(v):
    for value in (v, -v):
        rep = representative(bucket_key_py(value))
        assert abs(rep - value) <= ALPHA * abs(value) * (1 + SLACK)


def test_bucket_edges_at_powers_of_gamma():
    for k in range(1, 1700, 7):
        edge = GAMMA ** k
        for value in (int(edge) - 1, int(edge), int(edge) + 1):
            if value >= 1:
                rep = representative(bucket_key_py(value))
                assert abs(rep - value) <= ALPHA * value * (1 + SLACK)


def test_merging_histograms_is_adding_counts():
    a, b = [5, 10**6, 10**9, 0], [7, 10**6 + 1, 3 * 10**12]
    merged = Counter(bucket_key_py(v) for v in a) + Counter(bucket_key_py(v) for v in b)
    assert quantiles(merged) == quantiles(Counter(bucket_key_py(v) for v in a + b))


def test_an_empty_histogram_has_no_percentile():
    assert all(q != q for q in quantiles({}))
