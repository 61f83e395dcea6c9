"""What a run needs before its first step, built in one place from a config and the data.

Training, bench's timing, the A/B and the fidelity study start from the same objects built
the same way: the split's task samplers on the run's device and dtype, the fixed
validation and test tasks, the network, the solver, the initial meta-parameters (from the
seed) and the outer optimiser. They are built in the order training has always built
them, so a run's numbers do not depend on which command set it up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from raybench.config import RunConfig
from raybench.models import FunctionalModel, Params, model_for
from raybench.runtime import resolve_device
from raybench.solvers import Solver, make_solver
from raybench.speed import configure_device, outer_optimiser
from raybench.tasks import (
    TEST_TASKS_SEED,
    VAL_TASKS_SEED,
    Split,
    TaskIndex,
    TaskSampler,
    make_split,
)

PARTS = ("train", "val", "test")


def task_sampler(
    config: RunConfig,
    data: Any,
    part: str,
    device: torch.device | None = None,
    split: Split | None = None,
) -> TaskSampler:
    """One part of the config's split (train, val or test) as tasks on the run's device and
    in its dtype."""
    split = split or make_split(config.split, data.characters, data.background)
    return TaskSampler(
        data.images,
        split.part(part),
        ways=config.ways,
        shots=config.shots,
        query=config.query,
        rotations=config.rotations,
        device=device or resolve_device(config.device),
        dtype=getattr(torch, config.dtype),
    )


@dataclass
class RunSetup:
    """A run ready for its first meta-step."""

    config: RunConfig
    device: torch.device
    samplers: dict[str, TaskSampler]  # the parts asked for, by name
    model: FunctionalModel
    solver: Solver
    params: Params  # the initial meta-parameters, updated in place by ``optimiser``
    optimiser: torch.optim.Optimizer
    indices: dict[str, TaskIndex] = field(default_factory=dict, repr=False)

    def tasks(self, part: str) -> TaskSampler:
        return self.samplers[part]

    def fixed_index(self, part: str) -> TaskIndex:
        """The validation or test tasks every run of the setting is judged on."""
        if part not in self.indices:
            n, seed = {
                "val": (self.config.val_tasks, VAL_TASKS_SEED),
                "test": (self.config.test_tasks, TEST_TASKS_SEED),
            }[part]
            self.indices[part] = self.samplers[part].fixed_index(n, seed)
        return self.indices[part]

    def generator(self) -> torch.Generator:
        """A new stream of training draws from the run's seed."""
        return torch.Generator(device=self.device).manual_seed(self.config.seed)

    def variant(self, config: RunConfig) -> RunSetup:
        """Another configuration from this one's starting point: the same tasks, its own
        network and solver, a copy of the initial meta-parameters and a new optimiser."""
        model = model_for(config)
        params = {k: v.detach().clone() for k, v in self.params.items()}
        return RunSetup(
            config,
            self.device,
            self.samplers,
            model,
            make_solver(config, model),
            params,
            outer_optimiser(params, config.outer_lr, self.device),
        )


def build_run(
    config: RunConfig,
    data: Any,
    parts: Iterable[str] = PARTS,
    device: torch.device | None = None,
) -> RunSetup:
    """The samplers of ``parts`` (``train`` always among them: the initial network of a
    solver that pre-trains is drawn from it), then network, solver, meta-parameters and
    optimiser. Refuses a split whose training part shares characters with its test part."""
    device = device or resolve_device(config.device)
    names = ["train", *(p for p in parts if p != "train")]
    split = make_split(config.split, data.characters, data.background)
    samplers = {part: task_sampler(config, data, part, device, split) for part in names}
    if not set(samplers["train"].characters).isdisjoint(split.test):
        raise RuntimeError("training would see test characters")
    model = model_for(config)
    solver = make_solver(config, model)
    dtype = getattr(torch, config.dtype)
    params = solver.init_params(config.seed, device, dtype, samplers["train"])
    optimiser = outer_optimiser(params, config.outer_lr, device)
    configure_device(device)
    return RunSetup(config, device, samplers, model, solver, params, optimiser)
