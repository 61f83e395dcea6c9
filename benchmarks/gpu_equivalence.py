"""On the GPU machine: the fast paths compute what the reference computes.

For MAML and FOMAML at the paper preset, on one real meta-batch: the vectorised meta-gradient
against the per-task reference loop (float32 tolerance), and the CUDA-graph replay against
the eager vectorised step (identical). Prints one line per check; exit 1 if one fails.
Run: python3 benchmarks/gpu_equivalence.py  (after `source .gpu/setup.sh`)
"""

from __future__ import annotations

import sys

import torch

from raybench.data import load_omniglot
from raybench.models import model_for
from raybench.reference import loop_meta_grad
from raybench.solvers import make_config, make_solver
from raybench.speed import meta_step
from raybench.tasks import TaskSampler, make_split


def flat(grads: dict) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads.values()]).double()


def main() -> int:
    device = torch.device("cuda")
    data = load_omniglot()
    ok = True
    for name in ("maml", "fomaml"):
        config = make_config(name, "paper", {"device": "cuda"})
        split = make_split(config.split, data.characters, data.background)
        sampler = TaskSampler(
            data.images, split.train, ways=config.ways, shots=config.shots, query=config.query,
            rotations=True, device=device,
        )  # fmt: skip
        model = model_for(config)
        solver = make_solver(config, model)
        params = model.init_params(0, device, torch.float32)
        batch = sampler.sample(config.meta_batch, torch.Generator(device=device).manual_seed(0))
        fast, _ = solver.meta_grad(params, batch)
        loop = loop_meta_grad(
            model, params, batch, inner_lr=config.inner_lr, inner_steps=config.inner_steps,
            first_order=name == "fomaml",
        )  # fmt: skip
        rel = ((flat(fast) - flat(loop)).norm() / flat(loop).norm()).item()
        graphed = meta_step(solver, params, batch, cuda_graph=True, device=device)
        replay, _ = graphed(batch)
        diff = (flat(replay) - flat(fast)).abs().max().item()
        passed = rel < 1e-4 and diff < 1e-5
        ok &= passed
        print(f"{name}: vectorised vs loop rel. error {rel:.2e}; graph vs eager max |diff| "
              f"{diff:.2e}: {'ok' if passed else 'FAILED'}", flush=True)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
