"""Every solver's smoke run gives the numbers it gave when ``tests/golden/smoke-runs.json``
was recorded: the training code computes what it computed, on any CPU.

This is the evidence behind a training-code fingerprint declared equivalent to an older one
(:data:`raybench.code_version.EQUIVALENT`): a change that only moves declarations changes
the fingerprint, never these numbers. Two records, each a smoke run (seed 0, one thread):

- **float32**, as every run trains: compared bitwise, and only on the kernels that recorded
  it (:func:`raybench.runtime.kernel_set`: CPU model and flags, ATen's vectorised kernels,
  oneDNN's and MKL's instruction sets, torch). Other kernels round float32 differently in
  the last bit, and four meta-steps amplify that past any tolerance worth having: the
  penalty method's meta-gradient norm moves 4% on a CPU with AVX-512, and the fine-tuning
  baselines' pre-batch-norm biases, whose gradient is zero but for rounding, take Adam
  steps in random directions.
- **float64**, from the recorded initial network (``smoke-init-seed0.npz``), compared on
  every kernel set. Its inputs are then the same bits everywhere (the stored network,
  8-bit pixels, integer task draws), so two kernel sets differ only by float64 rounding.
  The comparison asks for float32's precision, ``2**-24`` relative: of float64's 53 bits
  it leaves 29 (5e8) for a run to amplify rounding. The most a smoke run amplified it,
  over five kernel sets of one CPU (ATen AVX2, the recording's; ATen default, alone and
  with oneDNN at SSE4.1 and MKL at SSE4.2; MKL at AVX in its compatible mode) and every
  solver, was 2.6e5 (18 bits: iMAML's conjugate-gradient residual on an indefinite system,
  2.9e-11 relative); every other value agreed to 4e-13. A prediction
  flips only where its two logits tie to 1e-11, so accuracies agree exactly, and a
  changed prediction (half a point or more) fails. The parameters themselves are compared
  only bitwise: the pre-batch-norm biases are rounding noise amplified by Adam (6e-7
  relative between kernel sets) and move no output, which carries the network.

The initial network is float32 drawn by ``reset_parameters``, which other kernels round
differently by up to one unit in the last place of each tensor's range; it is compared to
the stored one within that.

Record again (only when training is meant to change, with a note why)::

    RAYBENCH_DATA=../shared/data/omniglot python tests/test_golden_runs.py --write

Compare from the command line, for example under other kernels (exit 1 on a difference)::

    ATEN_CPU_CAPABILITY=default python tests/test_golden_runs.py --check float64
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_checks import kernel_env

from raybench.solvers import SOLVERS

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "smoke-runs.json"
INITIAL_NETWORK = HERE / "golden" / "smoke-init-seed0.npz"
TIMING = {"train_time_s", "ms_per_step"}  # measured, never the same twice
BITWISE_ONLY = {"params_sha1"}  # parameters: rounding noise of no effect in some (see above)
REL = 2.0**-24  # float32's precision asked of a float64 run (see the module's docstring)
ABS = 1e-12  # a value that is zero but for rounding: u64 x operands up to 1e3
DTYPES = ("float32", "float64")


def kernels() -> str:
    from raybench.runtime import kernel_set

    return kernel_set()


def stored_network() -> dict[str, np.ndarray]:
    with np.load(INITIAL_NETWORK, allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}


def ulps_of_range_apart(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two float32 arrays are in units in the last place of their range (the
    largest magnitude): ``uniform_(-r, r)`` computes ``-r + 2r * u``, which another kernel
    rounds (fused or not) differently by at most that much, whatever the value's own size."""
    spacing = float(np.spacing(np.float32(np.abs(a).max(initial=0.0))))
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0)) / spacing


@contextlib.contextmanager
def from_stored_network() -> Iterator[None]:
    """Every network drawn in this block is the stored one (in the asked dtype): the float64
    record's inputs are then the same bits on every kernel set."""
    from raybench.models import FunctionalModel

    draw = FunctionalModel.init_params
    stored = stored_network()

    def init_params(self, seed, device, dtype):  # type: ignore[no-untyped-def]
        drawn = draw(self, seed, device, dtype)
        if seed != 0 or sorted(drawn) != sorted(stored):
            raise AssertionError("the stored network is of seed 0 and the smoke network")
        return {k: stored_tensor(stored[k], drawn[k]) for k in drawn}

    FunctionalModel.init_params = init_params  # type: ignore[method-assign]
    try:
        yield
    finally:
        FunctionalModel.init_params = draw  # type: ignore[method-assign]


def stored_tensor(values: np.ndarray, like: Any) -> Any:
    import torch

    return torch.from_numpy(values.copy()).to(device=like.device, dtype=like.dtype)


def smoke_numbers(solver: str, dtype: str = "float32") -> dict[str, Any]:
    """What a solver's smoke run (seed 0, one thread, inline) stores, without timings; the
    final parameters as a hash. In float64 the run starts from the stored network."""
    import torch

    from raybench.data import load_omniglot
    from raybench.solvers import make_config
    from raybench.train import train

    torch.set_num_threads(1)
    config = make_config(solver, "smoke", {"seed": 0, "dtype": dtype})
    with from_stored_network() if dtype == "float64" else contextlib.nullcontext():
        result = train(config, load_omniglot())
    params = hashlib.sha1()
    for name, tensor in sorted((result.params or {}).items()):
        params.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return {
        "run_id": result.config.run_id,
        "status": result.status,
        "error": result.error,
        "family": result.family,
        "steps_done": result.steps_done,
        "n_params": result.n_params,
        "final_val_acc": result.final_val_acc,
        "test_acc_mean": result.test_acc_mean,
        "test_acc_ci95": result.test_acc_ci95,
        "curves": [{k: v for k, v in row.items() if k not in TIMING} for row in result.curves],
        "tasks": result.tasks,
        "task_keys": hashlib.sha1("".join(result.task_keys or []).encode()).hexdigest(),
        "init_fingerprint": result.init_fingerprint,
        "stream_fingerprint": result.stream_fingerprint,
        "params_sha1": params.hexdigest(),
    }


def differences(want: Any, got: Any, exact: bool, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want``: bitwise, or (``exact`` false) floats within
    ``REL`` relative (``ABS`` absolute)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if want.keys() != got.keys():
            return [f"{where}: keys {sorted(want)} != {sorted(got)}"]
        return [d for k in want for d in differences(want[k], got[k], exact, f"{where}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: {len(want)} items != {len(got)}"]
        return [
            d for i, (w, g) in enumerate(zip(want, got)) for d in
            differences(w, g, exact, f"{where}[{i}]")
        ]  # fmt: skip
    if isinstance(want, float) and isinstance(got, (int, float)) and not exact:
        close = want == got or math.isclose(want, got, rel_tol=REL, abs_tol=ABS)
        return [] if close else [f"{where}: {want!r} != {got!r}"]
    return [] if want == got else [f"{where}: {want!r} != {got!r}"]


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def compare(solver: str, dtype: str, within_rounding: bool = False) -> list[str]:
    """A solver's smoke run in ``dtype`` against the record: bitwise on the recording
    kernels (unless ``within_rounding``), within rounding elsewhere (float64 only)."""
    golden = load_golden()
    exact = golden["kernels"] == kernels() and not within_rounding
    if dtype == "float32" and not exact:
        raise ValueError("the float32 record is compared bitwise, on its kernels only")
    keep = (lambda k: True) if exact else (lambda k: k not in BITWISE_ONLY)
    want = {k: v for k, v in golden[dtype][solver].items() if keep(k)}
    got = {k: v for k, v in smoke_numbers(solver, dtype).items() if keep(k)}
    return differences(want, got, exact, f"{solver} ({dtype})")


def failure(found: list[str]) -> str:
    golden = load_golden()
    return (
        f"{len(found)} difference(s) from {GOLDEN.name} (recorded by training code "
        f"{golden['code_fingerprint']} on {golden['kernels']}; here {kernels()}): "
        + "; ".join(found[:8])
    )


@pytest.mark.slow
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_each_solver_trains_as_when_recorded(solver: str) -> None:
    """float32, bitwise, on the recording kernels."""
    here, recorded = kernels(), load_golden()["kernels"]
    if here != recorded:
        pytest.skip(f"float32 is compared bitwise on {recorded} only (here {here}); float64 here")
    found = compare(solver, "float32")
    assert not found, failure(found)


@pytest.mark.slow
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_each_solver_trains_as_when_recorded_in_float64(solver: str) -> None:
    """float64 from the stored network: bitwise on the recording kernels, within rounding
    on any other."""
    found = compare(solver, "float64")
    assert not found, failure(found)


def test_the_stored_network_is_the_one_drawn_here() -> None:
    """The float64 record's start is what ``reset_parameters`` draws for seed 0: bitwise on
    the recording kernels, within one unit in the last place of each tensor's range on
    others (see :func:`ulps_of_range_apart`)."""
    import torch

    from raybench.models import model_for
    from raybench.solvers import make_config

    drawn = model_for(make_config("maml", "smoke", {"seed": 0})).init_params(
        0, torch.device("cpu"), torch.float32
    )
    stored = stored_network()
    assert sorted(drawn) == sorted(stored)
    apart = {k: ulps_of_range_apart(stored[k], drawn[k].numpy()) for k in stored}
    limit = 0.0 if load_golden()["kernels"] == kernels() else 1.0
    assert max(apart.values()) <= limit, apart


def test_every_registered_solver_has_golden_numbers() -> None:
    golden = load_golden()
    assert sorted(golden["float32"]) == sorted(golden["float64"]) == sorted(SOLVERS)


def check_command(*args: str, other_kernels: bool, path: Path | None = None):
    """``python tests/test_golden_runs.py --check ...`` in a fresh process (kernels are chosen
    when torch loads) on the native or other kernels, raybench imported from ``path`` if
    given."""
    environment = kernel_env(other_kernels)
    if path is not None:
        environment["PYTHONPATH"] = os.pathsep.join([str(path), environment.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--check", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_float64_record_holds_under_other_kernels() -> None:
    """What a user's CPU does that ours does not: the float64 record, every solver, with
    ATen's scalar kernels, oneDNN at SSE4.1 and MKL at SSE4.2."""
    done = check_command("float64", other_kernels=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ATen DEFAULT" in done.stdout and f"{len(SOLVERS)} solver(s) agree" in done.stdout


@pytest.mark.slow
def test_a_one_character_change_to_a_solver_fails_on_both_kernel_sets(tmp_path: Path) -> None:
    """The tolerance is no blindfold: the penalty method with its penalty's sign flipped
    (one character) fails the float64 comparison within rounding, natively and under other
    kernels, while the unchanged copy passes it (natively; under other kernels the whole
    record passes in the test above)."""
    import raybench

    copy = tmp_path / "raybench"
    shutil.copytree(Path(raybench.__file__).parent, copy, ignore=shutil.ignore_patterns("*.pyc"))
    penalty = copy / "solvers" / "penalty.py"
    source = penalty.read_text()
    line = "total = loss + self.options.lam"
    assert source.count(line) == 1
    control = check_command("float64", "--within-rounding", "penalty", other_kernels=False,
                            path=tmp_path)  # fmt: skip
    assert control.returncode == 0, control.stdout + control.stderr
    penalty.write_text(source.replace(line, line.replace("+", "-")))
    for other in (False, True):
        done = check_command(
            "float64", "--within-rounding", "penalty", other_kernels=other, path=tmp_path
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert str(copy) in done.stdout  # the changed copy was the one imported
        assert "penalty (float64).test_acc_mean" in done.stdout or "grad_norm" in done.stdout


def write() -> None:
    import torch

    from raybench.code_version import code_fingerprint
    from raybench.models import model_for
    from raybench.solvers import make_config

    network = model_for(make_config("maml", "smoke", {"seed": 0})).init_params(
        0, torch.device("cpu"), torch.float32
    )
    INITIAL_NETWORK.parent.mkdir(exist_ok=True)
    np.savez(INITIAL_NETWORK, **{k: v.numpy() for k, v in sorted(network.items())})
    record: dict[str, Any] = {"code_fingerprint": code_fingerprint(), "kernels": kernels()}
    for dtype in DTYPES:
        record[dtype] = {solver: smoke_numbers(solver, dtype) for solver in sorted(SOLVERS)}
    GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{GOLDEN}: {len(SOLVERS)} solvers, training code {record['code_fingerprint']}")


def check(args: list[str]) -> int:
    """``--check DTYPE [--within-rounding] [SOLVER ...]``: print each difference, exit 1."""
    import raybench

    within = "--within-rounding" in args
    dtype, *solvers = [a for a in args if a != "--within-rounding"] or ["float64"]
    solvers = solvers or sorted(SOLVERS)
    print(f"raybench from {Path(raybench.__file__).parent}; kernels {kernels()}")
    found = [d for solver in solvers for d in compare(solver, dtype, within)]
    for line in found:
        print(line)
    if not found:
        print(f"{len(solvers)} solver(s) agree with {GOLDEN.name} ({dtype})")
    return 1 if found else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    elif sys.argv[1:2] == ["--check"]:
        sys.exit(check(sys.argv[2:]))
    else:
        sys.exit(__doc__)
