"""Every solver's smoke run gives the numbers it gave when ``tests/golden/smoke-runs.json``
was recorded: the training code computes what it computed.

This is the evidence behind a training-code fingerprint declared equivalent to an older one
(:data:`raybench.code_version.EQUIVALENT`): a change that only moves declarations changes
the fingerprint, never these numbers. On the CPU model and torch that recorded them the
comparison is bitwise; on another one, float32 kernels may round differently in the last bits, so
values agree to 1e-4 relative and accuracies to one prediction of one task.

Record again (only when training is meant to change, with a note why)::

    RAYBENCH_DATA=../shared/data/omniglot python tests/test_golden_runs.py --write
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from raybench.solvers import SOLVERS

GOLDEN = Path(__file__).parent / "golden" / "smoke-runs.json"
TIMING = {"train_time_s", "ms_per_step"}  # measured, never the same twice
REL, ABS = 1e-4, 1e-6  # values from another CPU model: float32 rounding only


def cpu_model() -> str:
    """The CPU's model and a hash of its instruction-set flags (the kernels torch picks)."""
    model, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    if not model:
        import platform

        model = platform.processor() or platform.machine()
    return f"{model} (flags {hashlib.sha1(flags.encode()).hexdigest()[:8]})"


def torch_version() -> str:
    import torch

    return torch.__version__


def smoke_numbers(solver: str) -> dict[str, Any]:
    """What a solver's smoke run (seed 0, one thread, inline) stores, without timings; the
    final parameters as a hash (bitwise only)."""
    import torch

    from raybench.data import load_omniglot
    from raybench.solvers import make_config
    from raybench.train import train

    torch.set_num_threads(1)
    result = train(make_config(solver, "smoke", {"seed": 0}), load_omniglot())
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


def one_prediction(config: dict[str, Any]) -> float:
    """An accuracy's step: one query prediction of one task, in percent."""
    return 100.0 / (config["ways"] * config["query"])


def differences(want: Any, got: Any, exact: bool, step: float, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want``: exactly, or within rounding (``step``: the
    accuracies' one prediction)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if want.keys() != got.keys():
            return [f"{where}: keys {sorted(want)} != {sorted(got)}"]
        return [d for k in want for d in differences(want[k], got[k], exact, step, f"{where}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{where}: {len(want)} items != {len(got)}"]
        return [
            d for i, (w, g) in enumerate(zip(want, got)) for d in
            differences(w, g, exact, step, f"{where}[{i}]")
        ]  # fmt: skip
    if isinstance(want, float) and isinstance(got, (int, float)) and not exact:
        if "acc" in where.rsplit(".", 1)[-1]:  # accuracies and their intervals
            close = abs(want - got) <= step + 1e-9
        else:
            close = math.isclose(want, got, rel_tol=REL, abs_tol=ABS) or want == got
        return [] if close else [f"{where}: {want!r} != {got!r}"]
    return [] if want == got else [f"{where}: {want!r} != {got!r}"]


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_each_solver_trains_as_when_recorded(solver: str) -> None:
    from raybench.solvers import make_config

    golden = load_golden()
    exact = (golden["cpu_model"], golden["torch"]) == (cpu_model(), torch_version())
    config = json.loads(make_config(solver, "smoke", {"seed": 0}).to_json())
    want = {k: v for k, v in golden["runs"][solver].items() if exact or k != "params_sha1"}
    got = {k: v for k, v in smoke_numbers(solver).items() if exact or k != "params_sha1"}
    found = differences(want, got, exact, one_prediction(config), solver)
    assert not found, (
        f"{len(found)} difference(s) from {GOLDEN.name} (recorded by training code "
        f"{golden['code_fingerprint']}, {'bitwise' if exact else 'within rounding'}): "
        + "; ".join(found[:8])
    )


def test_every_registered_solver_has_golden_numbers() -> None:
    assert sorted(load_golden()["runs"]) == sorted(SOLVERS)


def write() -> None:
    from raybench.code_version import code_fingerprint

    runs = {solver: smoke_numbers(solver) for solver in SOLVERS}
    record = {
        "code_fingerprint": code_fingerprint(),
        "cpu_model": cpu_model(),
        "torch": torch_version(),
        "runs": runs,
    }
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{GOLDEN}: {len(runs)} solvers, training code {record['code_fingerprint']}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    write()
