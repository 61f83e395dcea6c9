"""Whether two configurations really differ: a paired comparison over test tasks and seeds.

Every run of a setting is tested on the same fixed test tasks, so two configurations A (m
seeds) and B (n seeds) give accuracies ``a[i, t]`` and ``b[j, t]`` on the same T tasks. The
model behind the comparison is a two-way layout per configuration,

    a[i, t] = mu_A + alpha_i + tau_t + gamma_A[t] + eps[i, t]

with a seed effect ``alpha`` (training randomness, independent between A and B), a task
effect ``tau`` shared by both (it cancels in the difference: the pairing), a
configuration-by-task effect ``gamma`` (some tasks suit A better) and a seed-by-task
residual ``eps``. The estimate is ``D = mean(a) - mean(b)``, whose variance is
``s_alphaA^2/m + s_alphaB^2/n + s_gamma^2/T + s_epsA^2/(m T) + s_epsB^2/(n T)``, estimated by
moments:

- ``var(A_i)/m + var(B_j)/n`` from the seed means ``A_i = mean_t a[i, t]`` (their spread
  holds the seed effect and the residual averaged over tasks);
- ``(var_t(d_t) - MSE_A/m - MSE_B/n)^+ / T`` for the task term, ``d_t`` the per-task
  difference of seed means and ``MSE`` the residual mean square of each two-way layout
  (``(m-1)(T-1)`` degrees of freedom), which removes the residual counted above.

The interval and p-value are Student-t with Satterthwaite's degrees of freedom. With few
seeds the seed terms dominate and the degrees of freedom are small (about ``m + n - 2``),
so the interval widens as it must; with one seed on both sides the seed variation cannot
be estimated and the comparison is the paired t-test over tasks, which says so in its
``method``. The calibration of this procedure is checked by simulation in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 1 - LEVEL

METHOD = "two-way mixed model (seeds x tasks, paired over tasks), Satterthwaite t"
TASKS_ONLY = "paired t-test over tasks (one seed each: seed variation not estimable)"
ONE_SIDED_SEEDS = "seed variance of the one-seed side taken equal to the other side's"


@dataclass(frozen=True)
class Comparison:
    """A minus B, in accuracy points: estimate, 95% interval, p-value and how."""

    diff: float
    half_width: float
    p_value: float
    df: float
    se: float
    seeds_a: int
    seeds_b: int
    tasks: int
    method: str
    seed_means_a: tuple[float, ...] = ()
    seed_means_b: tuple[float, ...] = ()
    variance: dict[str, float] = field(default_factory=dict)  # Var(D): seed and task terms

    @property
    def low(self) -> float:
        return self.diff - self.half_width

    @property
    def high(self) -> float:
        return self.diff + self.half_width

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def _residual_mean_square(x: np.ndarray) -> float | None:
    """Residual mean square of a seeds x tasks layout without replication."""
    m, t = x.shape
    if m < 2 or t < 2:
        return None
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    return float((resid**2).sum() / ((m - 1) * (t - 1)))


def compare(a: np.ndarray | Sequence, b: np.ndarray | Sequence) -> Comparison:
    """Compare configuration A (``a``: seeds x tasks) with B (``b``: seeds x tasks) on the
    same tasks, columns in the same task order. See the module docstring."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A has {a.shape[1]} tasks and B {b.shape[1]}: not paired")
    if a.shape[1] < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("need at least 2 tasks and finite accuracies")
    (m, t), n = a.shape, b.shape[0]
    seeds_a, seeds_b = a.mean(1), b.mean(1)
    diff = float(seeds_a.mean() - seeds_b.mean())
    d = a.mean(0) - b.mean(0)
    var_a = float(seeds_a.var(ddof=1)) if m > 1 else None
    var_b = float(seeds_b.var(ddof=1)) if n > 1 else None
    # The seed terms of Var(D), each with the degrees of freedom of its estimate.
    if var_a is not None and var_b is not None:
        method = METHOD
        seed_pieces = [(var_a / m, m - 1), (var_b / n, n - 1)]
    elif var_a is None and var_b is None:
        method, seed_pieces = TASKS_ONLY, []
    else:  # one estimate serves both sides: one term, not two independent ones
        method = f"{METHOD}; {ONE_SIDED_SEEDS}"
        var, k = (var_a, m) if var_a is not None else (var_b, n)
        seed_pieces = [(var * (1 / m + 1 / n), k - 1)]
    mse_a, mse_b = _residual_mean_square(a) or 0.0, _residual_mean_square(b) or 0.0
    task_term = max(float(d.var(ddof=1)) - mse_a / m - mse_b / n, 0.0) / t
    seed_term = sum(v for v, _ in seed_pieces)
    variance = seed_term + task_term
    # Satterthwaite: each term a scaled chi-square with its own degrees of freedom.
    pieces = [*seed_pieces, (task_term, t - 1)]
    denominator = sum(v**2 / k for v, k in pieces if v > 0)
    df = variance**2 / denominator if denominator > 0 else float(t - 1)
    se = math.sqrt(variance)
    if se > 0:
        half = float(stats.t.ppf(1 - ALPHA / 2, df) * se)
        p = float(2 * stats.t.sf(abs(diff) / se, df))
    else:  # no variation at all: any difference is exact
        half, p = 0.0, (1.0 if diff == 0 else 0.0)
    return Comparison(
        diff=diff,
        half_width=half,
        p_value=min(1.0, p),
        df=float(df),
        se=se,
        seeds_a=m,
        seeds_b=n,
        tasks=t,
        method=method,
        seed_means_a=tuple(float(x) for x in seeds_a),
        seed_means_b=tuple(float(x) for x in seeds_b),
        variance={"seeds": seed_term, "tasks": task_term},
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (strong control of the
    family-wise error rate): the i-th smallest is multiplied by ``k - i`` and the results
    made monotone; each is capped at 1."""
    k = len(p_values)
    order = sorted(range(k), key=lambda i: p_values[i])
    adjusted = [0.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
