"""Whether two configurations really differ: comparisons over test tasks and seeds.

Every run of a setting is tested on the same fixed test tasks, so two configurations A (m
seeds) and B (n seeds) give accuracies ``a[i, t]`` and ``b[j, t]`` on the same T tasks:

    a[i, t] = mu_A + alpha_i + tau_t + gamma_A[t] + eps[i, t]

with a seed effect ``alpha``, a task effect ``tau`` shared by both (it cancels in the
difference), a configuration-by-task effect ``gamma`` (some tasks suit A better; the tasks
are a sample, so it is a source of error, shared by every seed) and a seed-by-task residual
``eps``. Two methods estimate ``D = mean(a) - mean(b)`` and its variance by moments:

**Seed-paired** (``PAIRED``), when A and B ran the same seeds and seed ``s`` gave both the
same initial network, training draws and test tasks (common random numbers, checked by
:mod:`raybench.pairing`'s fingerprints): the seed effects are then largely shared and
cancel in the per-seed differences ``D_s = mean_t (a[s, t] - b[s, t])``.
``Var(D) = var(D_s)/S + (var_t(dbar_t) - MSE/S)^+ / T``: the spread of the ``D_s`` (seed
effect of the difference and residual), plus the configuration-by-task term that the seeds
share, ``dbar_t`` the per-task mean difference and ``MSE`` the residual mean square of the
S x T layout of differences. Degrees of freedom S - 1 and T - 1.

**Independent seeds** (``INDEPENDENT``), otherwise (other seed sets, unequal numbers, a
store without the pairing record): ``var(A_i)/m + var(B_j)/n`` from the seed means, plus
``(var_t(d_t) - MSE_A/m - MSE_B/n)^+ / T`` for the task term. Valid whatever the seeds
share, but conservative when they share much: the shared part is counted twice.

Both give a Student-t interval and p-value with Satterthwaite's degrees of freedom, capped
as :func:`variance_and_df` says. With
one seed on both sides the seed variation cannot be estimated and the comparison is the
paired t-test over tasks (``TASKS_ONLY``). The calibration is checked by simulation in the
tests; the arithmetic runs over any leading axes, so a simulation is one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

LEVEL = 0.95
ALPHA = 1 - LEVEL

PAIRED = "seed-paired (common random numbers), Satterthwaite t"
INDEPENDENT = "independent seeds (two-way mixed model), Satterthwaite t"
TASKS_ONLY = "paired t-test over tasks (one seed each: seed variation not estimable)"
ONE_SIDED_SEEDS = "seed variance of the one-seed side taken equal to the other side's"


@dataclass(frozen=True)
class Comparison:
    """A minus B, in accuracy points: estimate, 95% interval, p-value and how (``method``,
    and ``why`` that method)."""

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
    paired: bool = False
    why: str = ""
    # Per-seed variances behind the seed term (paired: var(D_s); independent: var(A_i),
    # var(B_j)): with S seeds on each side the seed term is their sum over S. Power uses it.
    seed_variances: tuple[float, ...] = ()

    @property
    def low(self) -> float:
        return self.diff - self.half_width

    @property
    def high(self) -> float:
        return self.diff + self.half_width

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


@dataclass(frozen=True)
class Moments:
    """The pieces of Var(D), over any leading axes: ``seed_pieces`` are (variance term,
    degrees of freedom) pairs, the task term has ``tasks - 1`` degrees of freedom."""

    diff: np.ndarray
    seed_pieces: list[tuple[np.ndarray, int]]
    task_term: np.ndarray
    tasks: int
    seed_variances: list[np.ndarray]


def residual_mean_square(x: np.ndarray) -> np.ndarray:
    """Residual mean square of seeds x tasks layouts (the last two axes) without
    replication; zero where there is one seed."""
    m, t = x.shape[-2:]
    if m < 2 or t < 2:
        return np.zeros(x.shape[:-2])
    resid = x - x.mean(-1, keepdims=True) - x.mean(-2, keepdims=True)
    resid += x.mean((-2, -1), keepdims=True)
    return (resid**2).sum((-2, -1)) / ((m - 1) * (t - 1))


def _task_term(d: np.ndarray, noise: np.ndarray, t: int) -> np.ndarray:
    return np.maximum(d.var(-1, ddof=1) - noise, 0.0) / t


def paired_moments(a: np.ndarray, b: np.ndarray) -> Moments:
    """Seed-paired: ``a`` and ``b`` are (..., S, T), row s of each the same seed."""
    s, t = a.shape[-2:]
    dst = a - b
    per_seed = dst.mean(-1)
    unit = per_seed.var(-1, ddof=1)
    task = _task_term(dst.mean(-2), residual_mean_square(dst) / s, t)
    return Moments(per_seed.mean(-1), [(unit / s, s - 1)], task, t, [unit])


def independent_moments(a: np.ndarray, b: np.ndarray) -> Moments:
    """Independent seeds: ``a`` is (..., m, T), ``b`` (..., n, T)."""
    (m, t), n = a.shape[-2:], b.shape[-2]
    seeds_a, seeds_b = a.mean(-1), b.mean(-1)
    diff = seeds_a.mean(-1) - seeds_b.mean(-1)
    noise = residual_mean_square(a) / m + residual_mean_square(b) / n
    task = _task_term(a.mean(-2) - b.mean(-2), noise, t)
    if m > 1 and n > 1:
        var_a, var_b = seeds_a.var(-1, ddof=1), seeds_b.var(-1, ddof=1)
        return Moments(diff, [(var_a / m, m - 1), (var_b / n, n - 1)], task, t, [var_a, var_b])
    if m == 1 and n == 1:
        return Moments(diff, [], task, t, [])
    # one estimate serves both sides: one term, not two independent ones
    var, k = (seeds_a.var(-1, ddof=1), m) if m > 1 else (seeds_b.var(-1, ddof=1), n)
    return Moments(diff, [(var * (1 / m + 1 / n), k - 1)], task, t, [var, var])


def satterthwaite(pieces: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The summed variance and Satterthwaite's degrees of freedom of independent terms,
    each a scaled chi-square with its own degrees of freedom."""
    variance = sum(v for v, _ in pieces)
    denominator = sum(np.where(v > 0, v**2 / k, 0.0) for v, k in pieces)
    fallback = pieces[-1][1]  # no variation at all: the last term's degrees of freedom
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, variance**2 / denominator, float(fallback))
    return np.asarray(variance, float), np.asarray(df, float)


def variance_and_df(
    seed_pieces: Sequence[tuple[np.ndarray, int]], task_term: np.ndarray, tasks: int
) -> tuple[np.ndarray, np.ndarray]:
    """Var(D) and its degrees of freedom: Satterthwaite's, capped at the seed terms' own
    degrees of freedom times ``Var(D) / seed terms``. With few seeds a seed term small by
    chance both shrinks the variance and, uncapped, raises the degrees of freedom towards
    the task term's (T - 1): the plain value rejects 6.5-7.5% of true nulls at 5% with 3
    paired seeds in the tests' simulations, the capped one 4-5.5% in every regime."""
    variance, df = satterthwaite([*seed_pieces, (task_term, tasks - 1)])
    if seed_pieces:
        seed_term, seed_df = satterthwaite(seed_pieces)
        with np.errstate(divide="ignore", invalid="ignore"):
            cap = np.where(seed_term > 0, seed_df * variance / seed_term, np.inf)
        df = np.minimum(df, cap)
    return variance, df


def inference(m: Moments) -> tuple[np.ndarray, ...]:
    """(standard error, degrees of freedom, 95% half-width, two-sided p) of ``m``."""
    variance, df = variance_and_df(m.seed_pieces, m.task_term, m.tasks)
    se = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(se > 0, np.abs(m.diff) / np.where(se > 0, se, 1.0), 0.0)
    half = stats.t.ppf(1 - ALPHA / 2, df) * se
    p = np.where(se > 0, 2 * stats.t.sf(ratio, df), np.where(m.diff == 0, 1.0, 0.0))
    return se, df, half, np.minimum(p, 1.0)


def compare(
    a: np.ndarray | Sequence, b: np.ndarray | Sequence, *, paired: bool = False, why: str = ""
) -> Comparison:
    """Compare configuration A (``a``: seeds x tasks) with B (``b``: seeds x tasks) on the
    same tasks, columns in the same task order. With ``paired``, row s of both is the same
    seed (the caller has checked: ``why`` says how) and the seed-paired method is used;
    else the independent one. See the module docstring."""
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A has {a.shape[1]} tasks and B {b.shape[1]}: not paired")
    if a.shape[1] < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("need at least 2 tasks and finite accuracies")
    (m, t), n = a.shape, b.shape[0]
    if paired and (m != n or m < 2):
        raise ValueError(f"seed pairing needs the same seeds on both sides, 2 or more: {m}, {n}")
    if paired:
        moments, method = paired_moments(a, b), PAIRED
    else:
        moments = independent_moments(a, b)
        method = (
            TASKS_ONLY if m == n == 1 else INDEPENDENT if min(m, n) > 1
            else f"{INDEPENDENT}; {ONE_SIDED_SEEDS}"
        )  # fmt: skip
    se, df, half, p = (float(x) for x in inference(moments))
    seed_term = float(sum(v for v, _ in moments.seed_pieces))
    return Comparison(
        diff=float(moments.diff),
        half_width=half,
        p_value=p,
        df=df,
        se=se,
        seeds_a=m,
        seeds_b=n,
        tasks=t,
        method=method,
        seed_means_a=tuple(float(x) for x in a.mean(1)),
        seed_means_b=tuple(float(x) for x in b.mean(1)),
        variance={"seeds": seed_term, "tasks": float(moments.task_term)},
        paired=paired,
        why=why,
        seed_variances=tuple(float(v) for v in moments.seed_variances),
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
