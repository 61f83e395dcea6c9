"""Meta-gradient fidelity: every solver's meta-gradient against the exact unrolled MAML one.

At a given meta-parameter point (the initialisation, or a stored run's final checkpoint) and
on one fixed batch of validation tasks, the reference is explicit second-order MAML's
meta-gradient with the comparison's inner learning rate and inner steps; each meta-solver is
computed on the very same tasks, once per value of its knob (CG iterations, Neumann terms,
penalty weight), and compared by cosine similarity, relative error and norm ratio. This shows
what a cheaper solver gives up, and how fast its knob buys the exact gradient back.

Reptile's pseudo-gradient theta - phi is compared too, although it is not a gradient of the
MAML objective (its scale follows inner_lr x steps): only its direction says something.

Each implicit solver (iMAML, Neumann) is also compared with the exact solution of its own
linear system, at its own adapted weights (:func:`raybench.assumptions.exact_solution`: a
dense solve for a small network, long MINRES otherwise). Its error against MAML then splits
into the solver's approximation error (its answer against that exact solution) and the
mismatch between the implicit and the unrolled objective (the exact solution against MAML);
the row carries the assumption measurements of :mod:`raybench.assumptions` too, with the CG
iteration at which a task met negative curvature.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from torch import Tensor

from raybench.assumptions import (
    ExactSolution,
    curve_values,
    exact_solution,
    lanczos_starts,
    measure,
)
from raybench.config import RunConfig
from raybench.data import OmniglotImages
from raybench.errors import ParameterError, RaybenchError
from raybench.measurements.defaults import DEFAULT_SWEEPS, DEFAULT_TASKS, Sweep
from raybench.measurements.fidelity_plan import REFERENCE, meta_solvers
from raybench.metrics import CURVE_FIELDS
from raybench.models import Params, model_for
from raybench.results.store import ExperimentStore, load_checkpoint
from raybench.resume import progress_params
from raybench.run_setup import task_sampler
from raybench.runtime import device_name, git_commit, resolve_device, sync
from raybench.solvers import SOLVERS, make_config, make_solver, solver_class
from raybench.solvers._implicit import ImplicitSolver
from raybench.solvers.base import Solver
from raybench.tasks import TaskBatch

SCHEMA_VERSION = 1
FIDELITY_TASKS_SEED = 3  # not the validation set's seed: its own constant, pinned
PSEUDO_GRADIENTS = frozenset({"reptile"})  # not the gradient of any objective we compare to

FIDELITY_SCHEMA = pa.schema(
    [
        pa.field("schema_version", pa.int32()),
        pa.field("study_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("point", pa.string()),
        pa.field("point_kind", pa.string()),  # init | run | checkpoint
        pa.field("point_source", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("solver", pa.string()),
        pa.field("family", pa.string()),
        pa.field("knob", pa.string()),
        pa.field("knob_value", pa.float64()),
        pa.field("options_json", pa.string()),
        pa.field("pseudo_gradient", pa.bool_()),
        pa.field("cosine", pa.float64()),
        pa.field("rel_error", pa.float64()),
        pa.field("norm_ratio", pa.float64()),
        pa.field("grad_norm", pa.float64()),
        pa.field("maml_grad_norm", pa.float64()),
        pa.field("time_ms", pa.float64()),
        # implicit solvers: against the exact solution of their own system (null otherwise)
        pa.field("exact_method", pa.string()),  # dense | minres
        pa.field("exact_residual", pa.float64()),  # max ||A g* - b|| / ||b|| over tasks
        pa.field("vs_exact_cosine", pa.float64()),  # the solver's answer vs g*: its error
        pa.field("vs_exact_rel_error", pa.float64()),
        pa.field("exact_cosine", pa.float64()),  # g* vs MAML: implicit vs unrolled objective
        pa.field("exact_rel_error", pa.float64()),
        pa.field("exact_hessian_min", pa.float64()),  # exact extreme eigenvalues (dense only)
        pa.field("exact_hessian_max", pa.float64()),
        pa.field("negative_curvature_first", pa.int64()),  # CG iteration that met it, min
        pa.field("negative_curvature_last", pa.int64()),  # ... and max over those tasks
        *[
            pa.field(name, pa.int64() if kind is int else pa.float64())
            for name, kind in CURVE_FIELDS
        ],
        pa.field("tasks", pa.int64()),
        pa.field("tasks_seed", pa.int64()),
        pa.field("tasks_part", pa.string()),
        pa.field("split", pa.string()),
        pa.field("ways", pa.int64()),
        pa.field("shots", pa.int64()),
        pa.field("query", pa.int64()),
        pa.field("rotations", pa.bool_()),
        pa.field("inner_lr", pa.float64()),
        pa.field("inner_steps", pa.int64()),
        pa.field("hidden", pa.int64()),
        pa.field("dtype", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("config_fingerprint", pa.string()),
        pa.field("config_json", pa.string()),
        pa.field("device", pa.string()),
        pa.field("torch_version", pa.string()),
        pa.field("git_commit", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Point:
    """Meta-parameters to compare the solvers at, and where they came from."""

    name: str  # init-s0, a run id, or ckpt-<file stem>: also the start of the file name
    kind: str  # init | run | checkpoint
    source: str
    params: Params = field(repr=False)
    seed: int | None = None


def init_point(config: RunConfig) -> Point:
    """The model's initialisation for the config's seed, as a run with that seed starts."""
    model = model_for(config)
    params = model.init_params(config.seed, torch.device("cpu"), torch.float32)
    return Point(f"init-s{config.seed}", "init", f"seed {config.seed}", params, config.seed)


def checkpoint_point(path: Path, *, name: str | None = None) -> Point:
    """A stored checkpoint (a plain tensor dict), or the training state a run in progress
    saves (``<experiment>/progress/<run_id>.pt``: its meta-parameters at the last
    evaluation point), loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise RaybenchError(f"checkpoint {str(path)!r} not found")
    try:
        params = load_checkpoint(path)
    except Exception as exc:  # pickle errors, truncated files, weights_only refusals
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic != b"PK\x03\x04":  # torch.save writes a zip archive
            why = "not a file saved by torch.save (a checkpoint or a training state)"
        else:
            why = f"damaged or truncated ({' '.join(str(exc).split())[:120]})"
        raise RaybenchError(
            f"cannot read checkpoint {str(path)!r}: {why}; give a checkpoints/<run_id>.pt "
            "or progress/<run_id>.pt file"
        ) from None
    where = "checkpoint"
    in_progress = progress_params(params)
    if in_progress is not None:
        params, step = in_progress
        where = f"step {step} of a run in progress"
    if not isinstance(params, dict) or not all(isinstance(v, Tensor) for v in params.values()):
        raise RaybenchError(f"checkpoint {str(path)!r} is not a dict of tensors")
    return Point(name or f"ckpt-{_safe(path.stem)}", "checkpoint", f"{path} ({where})", params)


def run_points(store: ExperimentStore) -> tuple[list[Point], list[str]]:
    """The final checkpoint of every stored meta-learning run, and why others were skipped
    (baselines' checkpoints carry a pre-training head of another shape; diverged or failed
    runs have nothing meaningful to compare at)."""
    runs = store.read("runs")
    if runs.num_rows == 0:
        raise RaybenchError(f"experiment {store.root} has no finished runs to take points from")
    points: list[Point] = []
    notes: list[str] = []
    for row in sorted(runs.to_pylist(), key=lambda r: str(r.get("run_id"))):
        run_id = str(row.get("run_id"))
        checkpoint = row.get("checkpoint")
        if row.get("family") == "baseline":
            notes.append(f"{run_id}: skipped, a baseline (pre-training head, no meta-gradient)")
        elif row.get("status") != "completed":
            notes.append(f"{run_id}: skipped, status {row.get('status')}")
        elif not checkpoint or not (store.root / checkpoint).is_file():
            notes.append(f"{run_id}: skipped, no checkpoint file")
        else:
            try:
                point = checkpoint_point(store.root / checkpoint, name=_safe(run_id))
            except RaybenchError as exc:  # one damaged file never aborts the study
                notes.append(f"{run_id}: skipped, {exc}")
                continue
            points.append(
                Point(point.name, "run", f"{store.name}/{run_id}", point.params, row.get("seed"))
            )
    return points, notes


def _safe(name: str) -> str:
    """A file-name-safe version of a point name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "point"


def fixed_tasks(
    config: RunConfig, data: OmniglotImages, n_tasks: int, seed: int = FIDELITY_TASKS_SEED
) -> TaskBatch:
    """The same validation tasks for every solver, point and device (drawn on the CPU)."""
    sampler = task_sampler(config, data, "val")
    return sampler.gather(sampler.fixed_index(n_tasks, seed))


@dataclass(frozen=True)
class Case:
    """One row to compute: a solver with one value of its knob (or none)."""

    solver: str
    knob: str | None
    value: Any
    config: RunConfig


class FidelityStudy:
    """The comparison's settings, tasks and rows to compute; :meth:`run` does one point.

    ``preset`` and ``overrides`` are those of ``raybench run``: inner_lr, inner_steps, ways,
    hidden, dtype, device... apply to the reference and to every solver alike.
    """

    def __init__(
        self,
        data: OmniglotImages,
        *,
        preset: str = "paper",
        overrides: Mapping[str, Any] | None = None,
        solvers: Sequence[str] | None = None,
        sweeps: Mapping[str, Sweep] | None = None,
        n_tasks: int = DEFAULT_TASKS,
        tasks_seed: int = FIDELITY_TASKS_SEED,
    ) -> None:
        if n_tasks < 1:
            raise ParameterError("{tasks} must be at least 1, got {n}", n=n_tasks)
        overrides = dict(overrides or {})
        self.reference = make_config(REFERENCE, preset, overrides)
        self.solvers, self.skipped = meta_solvers(list(solvers or SOLVERS))
        self.sweeps = {**DEFAULT_SWEEPS, **(sweeps or {})}
        self.cases: list[Case] = []  # every config validated before anything is computed
        for solver in self.solvers:
            knob, values = self.sweeps.get(solver, (None, (None,)))
            for value in values:
                extra = {} if knob is None else {f"{solver}.{knob}": value}
                config = make_config(solver, preset, {**overrides, **extra})
                self.cases.append(Case(solver, knob, value, config))
        self.n_tasks, self.tasks_seed = n_tasks, tasks_seed
        self.device = resolve_device(self.reference.device)
        self.dtype = getattr(torch, self.reference.dtype)
        self.model = model_for(self.reference)
        self.batch = fixed_tasks(self.reference, data, n_tasks, tasks_seed)

    def study_id(self, point: Point) -> str:
        """File name of a point's table: the point and a hash of everything compared."""
        key = json.dumps(
            {
                "reference": self.reference.to_json(),
                "point": [point.name, point.kind, point.source],
                "tasks": [self.n_tasks, self.tasks_seed],
                "cases": [c.config.to_json() for c in self.cases],
            },
            sort_keys=True,
        )
        return f"{_safe(point.name)}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def params_at(self, point: Point) -> Params:
        """The point's tensors on the study's device and dtype, checked against the model."""
        expected = self.model.init_params(0, torch.device("cpu"), torch.float32)
        got = point.params
        wrong = sorted(set(expected) ^ set(got)) or [
            k for k in expected if tuple(got[k].shape) != tuple(expected[k].shape)
        ]
        if wrong:
            hint = ""
            head = got.get("head.weight")
            if head is not None and head.dim() == 2:
                hint = f" (it looks like ways={head.shape[0]}, hidden={head.shape[1]})"
            raise ParameterError(
                "point {name} does not fit the model of the comparison (ways={ways}, "
                "hidden={hidden}): parameter {wrong!r} differs{hint}; choose {preset}/"
                "{settings} to match the run",
                name=point.name,
                ways=self.reference.ways,
                hidden=self.reference.hidden,
                wrong=wrong[0],
                hint=hint,
            )
        return {k: got[k].to(device=self.device, dtype=self.dtype) for k in expected}

    def run(
        self,
        point: Point,
        *,
        experiment: str = "",
        progress: Callable[[str], None] | None = None,
    ) -> pa.Table:
        """Every case at ``point``: one row each, in the order of :attr:`cases`."""
        params = self.params_at(point)
        notify = progress or (lambda _msg: None)
        keys = list(params)

        def flat(grads: Params) -> Tensor:
            return torch.cat([grads[k].detach().reshape(-1) for k in keys]).double()

        def compute(config: RunConfig) -> tuple[Tensor, float, Solver]:
            solver = make_solver(config, self.model)
            sync(self.device)
            start = time.perf_counter()
            grads, _ = solver.meta_grad(params, self.batch)
            sync(self.device)
            return flat(grads), 1000 * (time.perf_counter() - start), solver

        notify(f"{point.name}: reference (maml, {self.reference.inner_steps} inner steps)")
        reference, _, _ = compute(self.reference)
        ref_norm = reference.norm().item()
        now = datetime.now(timezone.utc)
        common = {
            "schema_version": SCHEMA_VERSION,
            "study_id": self.study_id(point),
            "experiment": experiment,
            "point": point.name,
            "point_kind": point.kind,
            "point_source": point.source,
            "seed": point.seed,
            "maml_grad_norm": ref_norm,
            "tasks": self.n_tasks,
            "tasks_seed": self.tasks_seed,
            "tasks_part": "val",
            **{
                k: getattr(self.reference, k)
                for k in ("split", "ways", "shots", "query", "rotations", "inner_lr")
            },
            **{k: getattr(self.reference, k) for k in ("inner_steps", "hidden", "dtype", "preset")},
            "config_fingerprint": self.reference.fingerprint(),
            "config_json": self.reference.to_json(),
            "device": device_name(self.device),
            "torch_version": torch.__version__,
            "git_commit": git_commit(),
            "created_at": now,
        }
        rows = []
        exact_cache: dict[str, ExactSolution] = {}
        for i, case in enumerate(self.cases, 1):
            label = case.solver if case.knob is None else f"{case.solver} {case.knob}={case.value}"
            notify(f"{point.name}: {label} ({i}/{len(self.cases)})")
            g, ms, solver = compute(case.config)
            cosine, rel_error = compare(g, reference)
            norm = g.norm().item()
            implicit: dict[str, Any] = {}
            if isinstance(solver, ImplicitSolver):
                exact = self.exact(case, solver, params, exact_cache)
                implicit = self.implicit_columns(solver, params, g, flat(exact.grad), reference)
                implicit.update(
                    exact_method=exact.method,
                    exact_residual=exact.residual,
                    exact_hessian_min=exact.hessian_min,
                    exact_hessian_max=exact.hessian_max,
                )
            rows.append(
                {
                    **common,
                    "solver": case.solver,
                    "family": solver_class(case.solver).family,
                    "knob": case.knob,
                    "knob_value": None if case.value is None else float(case.value),
                    "options_json": json.dumps(dict(case.config.solver_options), sort_keys=True),
                    "pseudo_gradient": case.solver in PSEUDO_GRADIENTS,
                    "cosine": cosine,
                    "rel_error": rel_error,
                    "norm_ratio": norm / ref_norm if ref_norm > 0 else float("nan"),
                    "grad_norm": norm,
                    "time_ms": ms,
                    **implicit,
                }
            )
        return pa.Table.from_pylist(rows, schema=FIDELITY_SCHEMA)

    def exact(
        self,
        case: Case,
        solver: ImplicitSolver,
        params: Params,
        cache: dict[str, ExactSolution],
    ) -> ExactSolution:
        """The exact solution of the case's own system, computed once per system: options
        that only change how it is solved (CG steps, Neumann terms) share it."""
        options = {
            k: v for k, v in case.config.solver_options.items() if k not in solver.solve_options
        }
        key = json.dumps([case.solver, options], sort_keys=True)
        if key not in cache:
            cache[key] = exact_solution(solver, params, self.batch)
        return cache[key]

    def implicit_columns(
        self, solver: ImplicitSolver, params: Params, g: Tensor, exact: Tensor, reference: Tensor
    ) -> dict[str, Any]:
        """The solver against its own exact solution, that solution against MAML, and the
        assumption measurements on the same tasks."""
        starts = lanczos_starts(params, self.n_tasks)
        measured = measure(solver, params, self.batch, starts, self.reference.diag_lanczos_steps)
        stopped = measured.iterations[measured.negative_curvature] + 1  # the iteration that met it
        vs_cosine, vs_error = compare(g, exact)
        exact_cosine, exact_error = compare(exact, reference)
        return {
            **curve_values(solver, measured),
            "vs_exact_cosine": vs_cosine,
            "vs_exact_rel_error": vs_error,
            "exact_cosine": exact_cosine,
            "exact_rel_error": exact_error,
            "negative_curvature_first": int(stopped.min()) if stopped.numel() else None,
            "negative_curvature_last": int(stopped.max()) if stopped.numel() else None,
        }


def compare(g: Tensor, reference: Tensor) -> tuple[float, float]:
    """Cosine similarity and relative error ``||g - ref|| / ||ref||`` (NaN when undefined)."""
    norm, ref_norm = g.norm().item(), reference.norm().item()
    dot = torch.dot(g, reference).item()
    cosine = dot / (norm * ref_norm) if norm > 0 and ref_norm > 0 else float("nan")
    rel_error = (g - reference).norm().item() / ref_norm if ref_norm > 0 else float("nan")
    return cosine, rel_error
