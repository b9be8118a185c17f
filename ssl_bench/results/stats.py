"""Confidence intervals over seeds: pure functions, no I/O, no scipy.

A table cell is the mean of n per-seed numbers with a two-sided Student-t interval on n − 1 degrees of
freedom, ``mean ± t_{(1+c)/2, n−1} · s / √n`` with ``s`` the sample standard deviation (ddof = 1). One seed
gives no interval (``half_width is None``), never a zero-width one.

The t quantile is computed here (regularised incomplete beta by continued fraction, then bisection) so the
suite does not depend on scipy for one number; ``tests/results/test_stats.py`` checks it against
``scipy.stats.t`` where scipy is installed, and against printed table values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean of ``n`` values with a symmetric confidence interval.

    Attributes:
        mean: arithmetic mean (NaN when n = 0).
        n: number of values.
        std: sample standard deviation (ddof = 1); None when n < 2.
        half_width: half the interval's width; None when n < 2 (no interval can be given).
        confidence: the interval's coverage (0.95 by default).
    """

    mean: float
    n: int
    std: float | None
    half_width: float | None
    confidence: float = CONFIDENCE

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes §6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for a, b > 0 and 0 ≤ x ≤ 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast for x < (a+1)/(a+b+2); beyond, use I_x(a,b) = 1 − I_{1−x}(b,a).
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, dof: float) -> float:
    """P(T ≤ t) for Student's t with ``dof`` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {dof}")
    tail = 0.5 * regularized_beta(dof / 2.0, 0.5, dof / (dof + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, dof: float) -> float:
    """The t with P(T ≤ t) = p (``scipy.stats.t.ppf(p, dof)``), to about 1e-12 relative accuracy."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, dof) < p:  # the cdf is monotone: bracket, then bisect
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """Mean and two-sided Student-t confidence interval of ``values`` (one value per seed).

    Args:
        values: the per-seed numbers; NaN is not allowed (a failed seed is left out by the caller, and
            counted as failed, not averaged in).
        confidence: coverage of the interval, in (0, 1).

    Returns:
        A :class:`Summary`; ``half_width`` and ``std`` are None for fewer than two values, and ``mean``
        is NaN for none.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    xs = [float(v) for v in values]
    if any(math.isnan(v) for v in xs):
        raise ValueError("values contain NaN; leave failed seeds out instead")
    n = len(xs)
    if n == 0:
        return Summary(float("nan"), 0, None, None, confidence)
    mean = math.fsum(xs) / n
    if n == 1:
        return Summary(mean, 1, None, None, confidence)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in xs) / (n - 1))
    half = student_t_quantile(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return Summary(mean, n, std, half, confidence)
