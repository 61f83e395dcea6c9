"""What a comparison could have seen: detectable differences and seeds needed.

"Not significant" means little without the difference the comparison would have detected.
For a two-sided Student-t test at 5% whose estimate has standard error ``se`` with ``df``
degrees of freedom, the power against a true difference ``delta`` is that of a noncentral
t with noncentrality ``delta / se``; the detectable difference is the ``delta`` where it
reaches 80%. Projected to S seeds on each side, the seed term of a comparison's variance
shrinks as 1/S while its task term (fixed test tasks) does not, so there is a floor no
number of seeds goes below.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from raybench.report.significance import ALPHA, Comparison, variance_and_df

POWER = 0.8
MAX_SEEDS = 1000


def power_at(delta: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """Probability that the two-sided t-test rejects when the true difference is
    ``delta``."""
    if se <= 0:
        return 1.0 if delta != 0 else alpha
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = abs(delta) / se
    found = stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
    if not np.isfinite(found):  # far in the tail, where scipy's noncentral t gives up
        found = stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift)
    return float(min(max(found, 0.0), 1.0))


def detectable_difference(
    se: float, df: float, power: float = POWER, alpha: float = ALPHA
) -> float:
    """The smallest true difference (in the units of ``se``) detected with ``power``."""
    if se <= 0:
        return 0.0
    high = se * (stats.t.ppf(1 - alpha / 2, df) + stats.norm.ppf(power) + 1)
    while power_at(high, se, df, alpha) < power:
        high *= 2
    return float(optimize.brentq(lambda d: power_at(d, se, df, alpha) - power, 0.0, high))


def detectable(comparison: Comparison, power: float = POWER) -> float:
    """The difference ``comparison`` would have detected with ``power`` at 5%."""
    return detectable_difference(comparison.se, comparison.df, power)


def projected(comparison: Comparison, seeds: int) -> tuple[float, float] | None:
    """(standard error, degrees of freedom) of the same comparison with ``seeds`` seeds on
    each side, from its observed variances; None where the seed variation was not
    estimable (one seed each)."""
    if not comparison.seed_variances or seeds < 2:
        return None
    pieces = [(np.float64(v / seeds), seeds - 1) for v in comparison.seed_variances]
    task = np.float64(comparison.variance.get("tasks", 0.0))
    variance, df = variance_and_df(pieces, task, comparison.tasks)
    return math.sqrt(float(variance)), float(df)


def seeds_needed(
    comparison: Comparison, difference: float, power: float = POWER, limit: int = MAX_SEEDS
) -> int | None:
    """The fewest seeds on each side with which the comparison's method would detect a
    true ``difference`` with ``power``, from its observed variances; None when no number
    up to ``limit`` would (the task term's floor) or the seed variation is unknown."""
    if projected(comparison, 2) is None:
        return None

    def enough(seeds: int) -> bool:
        se, df = projected(comparison, seeds)  # type: ignore[misc]
        return power_at(difference, se, df) >= power

    if not enough(limit):
        return None
    low, high = 1, limit  # enough(high) holds; find the first seeds count that is enough
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high
