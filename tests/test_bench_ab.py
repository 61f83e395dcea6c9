"""`raybench bench --ab`: two configurations of a solver, interleaved in one process.

Times are never asserted (machine speed is not a test); the step function is replaced by
one that records the order and returns set times where the arithmetic of the ratio is
what is checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_checks import one_line_error, run_main

from raybench.data import OmniglotImages
from raybench.errors import RaybenchError
from raybench.measurements import ab
from raybench.measurements.ab import ab_compare, changed_settings
from raybench.solvers import make_config

TINY = {"hidden": 8}


def configs(solver: str, **changed: object):
    a = make_config(solver, "smoke", TINY)
    return a, make_config(solver, "smoke", {**TINY, **changed})


def test_rounds_alternate_and_the_ratio_is_the_median_of_rounds(
    omniglot: OmniglotImages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A and B step in alternating order (AB, BA, ...) after warming up, and B/A is the
    median of the rounds' ratios: with B taking 5, 6, 7, ... ms and A always 10, the
    rounds' ratios are 0.5, 0.6, ... and their median is B's median over 10."""
    calls: list[str] = []
    b_times = iter(range(5, 100))

    def fake_step(self) -> float:
        side = "A" if self.config.curve_tasks == 1 else "B"
        calls.append(side)
        return 10.0 if side == "A" else float(next(b_times))

    monkeypatch.setattr(ab._Side, "step", fake_step)
    a, b = configs("fomaml", curve_tasks=None)
    result = ab_compare(a, b, omniglot, rounds=4, warmup=1)
    assert calls == ["A", "B", *("A", "B", "B", "A", "A", "B", "B", "A")]  # warm-up, rounds
    # warm-up took 5; the timed B steps were 6, 7, 8, 9
    assert result.ms_a == 10.0 and result.ms_b == pytest.approx(7.5)
    assert result.ratio == pytest.approx(0.75)
    assert (result.ratio_low, result.ratio_high) == pytest.approx((0.6, 0.9))
    assert result.rounds == 4 and result.changed == "curve_tasks=None"
    assert result.gflop_a and result.gflop_a > 0 and result.matmul_gflops > 0
    assert 0 < result.fraction("a") < 1


def test_the_meta_gradients_are_compared_at_the_common_start(omniglot: OmniglotImages) -> None:
    """A change that is only about speed (the curves' extra passes) leaves the
    meta-gradient as it was; a change of the algorithm (the inner learning rate) does
    not, and the difference says so."""
    same = ab_compare(*configs("maml", curve_tasks=None), omniglot, rounds=1, warmup=0)
    assert same.grad_difference <= 1e-6
    other = ab_compare(*configs("maml", inner_lr=0.2), omniglot, rounds=1, warmup=0)
    assert other.grad_difference > 1e-3
    assert other.ms_a > 0 and other.ms_b > 0 and other.ratio > 0


def test_settings_that_change_the_batch_are_refused() -> None:
    with pytest.raises(RaybenchError, match="meta_batch"):
        ab_compare(*configs("maml", meta_batch=3), None, rounds=1)
    a = make_config("imaml", "smoke", TINY)
    b = make_config("imaml", "smoke", {**TINY, "imaml.lam": 1.0, "inner_lr": 0.2})
    assert changed_settings(a, b) == "inner_lr=0.2 imaml.lam=1.0"
    assert changed_settings(a, a) == "nothing"


def test_ab_through_the_command_line(tmp_path: Path) -> None:
    proc = run_main(
        "bench", "--solvers", "fomaml", "--preset", "smoke", "--set", "hidden=8",
        "--ab", "curve_tasks=none", "--timed-steps", "2", "--warmup", "0",
        cwd=tmp_path, env={"COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "fomaml" in text and "curve_tasks=None" in text and "B / A" in text
    assert "matmul" in text and "1 thread(s)" in text
    refused = run_main(
        "bench", "--solvers", "maml", "--preset", "smoke", "--ab", "ways=20", cwd=tmp_path
    )
    one_line_error(refused, "ways", "same batch")
