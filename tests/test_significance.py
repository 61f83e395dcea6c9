"""The paired comparison: its formula by hand, and its calibration by simulation.

Synthetic per-task accuracies are drawn from the model the comparison assumes (a seed
effect, a task effect shared by both configurations, a configuration-by-task effect and
seed-by-task noise), with a known true difference, so the false-positive rate and the
coverage of the interval can be counted. Seeds are fixed: the tests are deterministic.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from raybench.report.significance import TASKS_ONLY, compare, holm

REPS = 1500
# With 1500 replications the standard error of an estimated 5% rate is 0.56 points: a
# rate within 5 ± 2 points is calibrated (a 3.5-sigma band), beyond it is not.
TOLERANCE = 0.02


def simulate(
    rng: np.random.Generator,
    shift: float,
    *,
    seeds: tuple[int, int] = (3, 3),
    tasks: int = 100,
    seed_sd: float = 1.5,
    task_sd: float = 8.0,
    interaction_sd: float = 2.0,
    noise_sd: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracies (%) of A (mean 60 + shift) and B (mean 60) on the same tasks."""
    tau = rng.normal(0, task_sd, tasks)  # what makes a task easy or hard, for both

    def config(mean: float, m: int) -> np.ndarray:
        gamma = rng.normal(0, interaction_sd, tasks)
        alpha = rng.normal(0, seed_sd, (m, 1))
        return mean + alpha + tau + gamma + rng.normal(0, noise_sd, (m, tasks))

    return config(60 + shift, seeds[0]), config(60.0, seeds[1])


def rates(shift: float, reps: int = REPS, seed: int = 0, **kw) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rejected = covered = naive = 0
    for _ in range(reps):
        a, b = simulate(rng, shift, **kw)
        c = compare(a, b)
        rejected += c.p_value < 0.05
        covered += c.low <= shift <= c.high
        # what ignoring the seeds would give: a paired t-test over tasks of seed means
        naive += stats.ttest_rel(a.mean(0), b.mean(0)).pvalue < 0.05
    return {"rejected": rejected / reps, "covered": covered / reps, "naive": naive / reps}


def test_false_positive_rate_is_nominal_with_seed_and_task_noise() -> None:
    """Same distribution for A and B: 5% of the comparisons are significant at 5%. A test
    that ignored the seed-to-seed variation would reject far more often."""
    found = rates(0.0)
    assert found["rejected"] == pytest.approx(0.05, abs=TOLERANCE)
    assert found["naive"] > 0.2  # the seed term is what keeps the rate at 5%


@pytest.mark.parametrize(
    "kw",
    [
        {"seeds": (5, 2), "seed_sd": 1.0},  # unbalanced
        {"seeds": (3, 3), "seed_sd": 0.0, "interaction_sd": 4.0},  # tasks dominate
        {"seeds": (1, 1), "seed_sd": 0.0},  # one seed each: the paired t-test over tasks
    ],
)
def test_false_positive_rate_in_other_regimes(kw: dict) -> None:
    found = rates(0.0, seed=1, **kw)
    assert found["rejected"] == pytest.approx(0.05, abs=TOLERANCE)


def test_interval_covers_a_known_shift_at_the_nominal_rate() -> None:
    found = rates(1.5, seed=2)
    assert found["covered"] == pytest.approx(0.95, abs=TOLERANCE)


def test_a_large_shift_is_detected_with_its_sign() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        a, b = simulate(rng, -10.0)
        c = compare(a, b)
        assert c.significant and c.high < 0


def test_formula_by_hand() -> None:
    """Two seeds each on three tasks, every term written out."""
    a = np.array([[70.0, 80.0, 90.0], [72.0, 86.0, 88.0]])
    b = np.array([[60.0, 75.0, 80.0], [66.0, 71.0, 86.0]])
    c = compare(a, b)
    seed_means_a, seed_means_b = [80.0, 82.0], [215 / 3, 223 / 3]
    assert c.seed_means_a == pytest.approx(seed_means_a)
    assert c.diff == pytest.approx(81.0 - 73.0)
    var_a = np.var(seed_means_a, ddof=1) / 2
    var_b = np.var(seed_means_b, ddof=1) / 2

    def mse(x: np.ndarray) -> float:  # residual mean square of the two-way layout, by loops
        m, t = x.shape
        total = 0.0
        for i, j in itertools.product(range(m), range(t)):
            r = x[i, j] - x[i].mean() - x[:, j].mean() + x.mean()
            total += r * r
        return total / ((m - 1) * (t - 1))

    d = a.mean(0) - b.mean(0)
    task = max(np.var(d, ddof=1) - mse(a) / 2 - mse(b) / 2, 0.0) / 3
    variance = var_a + var_b + task
    assert c.se == pytest.approx(np.sqrt(variance))
    pieces = [(var_a, 1), (var_b, 1), (task, 2)]
    df = variance**2 / sum(v**2 / k for v, k in pieces if v > 0)
    assert c.df == pytest.approx(df)
    assert c.half_width == pytest.approx(stats.t.ppf(0.975, df) * np.sqrt(variance))
    assert c.p_value == pytest.approx(2 * stats.t.sf(8.0 / np.sqrt(variance), df))


def test_one_seed_each_is_the_paired_t_test_and_says_so() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(70, 10, (1, 50)), rng.normal(68, 10, (1, 50))
    c = compare(a, b)
    assert c.method == TASKS_ONLY
    assert c.p_value == pytest.approx(stats.ttest_rel(a[0], b[0]).pvalue)


def test_unpaired_or_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not paired"):
        compare(np.zeros((2, 5)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="finite"):
        compare(np.array([[1.0, np.nan]]), np.array([[1.0, 2.0]]))


def test_holm_against_its_definition() -> None:
    """Adjusted p_(i) = max over j <= i of min(1, (k - j + 1) p_(j)), back in input order."""
    rng = np.random.default_rng(5)
    for k in (1, 2, 5, 8):
        p = list(rng.uniform(0, 0.2, k))
        order = np.argsort(p)
        expected = np.empty(k)
        for rank, i in enumerate(order):
            expected[i] = max(min(1.0, (k - j) * p[order[j]]) for j in range(rank + 1))
        assert holm(p) == pytest.approx(list(expected))
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
