"""Confidence-interval arithmetic: Student-t quantiles and mean ± CI, against printed tables and scipy."""

from __future__ import annotations

import math

import pytest

from ssl_bench.results.stats import mean_ci, student_t_cdf, student_t_quantile

# Two-sided 95% critical values t_{0.975, dof} as printed in standard tables.
T975 = {
    1: 12.7062,
    2: 4.3027,
    3: 3.1824,
    4: 2.7764,
    5: 2.5706,
    9: 2.2622,
    10: 2.2281,
    29: 2.0452,
    120: 1.9799,
}


@pytest.mark.parametrize(("dof", "expected"), sorted(T975.items()))
def test_quantile_matches_printed_table(dof, expected):
    assert student_t_quantile(0.975, dof) == pytest.approx(expected, abs=6e-5)


def test_quantile_matches_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 4, 7, 15, 30, 100, 1000, 0.5, 2.5):
        for p in (0.5, 0.6, 0.9, 0.975, 0.995, 0.025, 0.001):
            assert student_t_quantile(p, dof) == pytest.approx(stats.t.ppf(p, dof), rel=1e-9, abs=1e-12)
            assert student_t_cdf(stats.t.ppf(p, dof), dof) == pytest.approx(p, abs=1e-12)


def test_large_dof_approaches_normal():
    assert student_t_quantile(0.975, 1e6) == pytest.approx(1.959964, abs=1e-5)


def test_mean_ci_by_hand():
    # values 1, 2, 3: mean 2, s = 1, half width = t_{0.975,2} · 1 / √3 = 4.302653 / 1.732051
    s = mean_ci([1.0, 2.0, 3.0])
    assert (s.mean, s.n, s.std) == (2.0, 3, 1.0)
    assert s.half_width == pytest.approx(4.3026527 / math.sqrt(3), rel=1e-7)
    assert (s.low, s.high) == pytest.approx((2 - 2.4841377, 2 + 2.4841377), rel=1e-7)


def test_two_seeds_by_hand():
    # 56.0 and 57.0: s = 0.7071068, half width = 12.7062047 · 0.7071068 / √2 = 6.3531024
    s = mean_ci([56.0, 57.0])
    assert s.mean == 56.5
    assert s.half_width == pytest.approx(6.3531024, rel=1e-7)


def test_one_seed_gives_no_interval_and_none_gives_nan():
    one = mean_ci([53.3])
    assert (one.mean, one.n, one.std, one.half_width, one.low) == (53.3, 1, None, None, None)
    none = mean_ci([])
    assert none.n == 0 and math.isnan(none.mean) and none.half_width is None


def test_identical_values_give_zero_width_and_other_confidence_levels_order():
    assert mean_ci([5.0, 5.0, 5.0]).half_width == 0.0
    values = [1.0, 4.0, 2.0, 8.0]
    assert mean_ci(values, 0.9).half_width < mean_ci(values).half_width < mean_ci(values, 0.99).half_width


def test_nan_and_bad_confidence_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.0)
