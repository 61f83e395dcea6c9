"""Run configuration: frozen, validated, built from a preset plus ``key=value`` overrides.

Every value a user can set is declared once here with its allowed range, so the CLI, the
Parquet columns and the error messages all come from the same declaration.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raybench.errors import ParameterError, RaybenchError


@dataclass(frozen=True)
class Bound:
    """The allowed values of one setting, and how to read it from a string."""

    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    optional: bool = False
    help: str = ""

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        name = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[
            self.kind
        ]
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        text = name + (" " + " and ".join(parts) if parts else "")
        return text + (" (or 'none')" if self.optional else "")

    def parse(self, key: str, raw: Any) -> Any:
        """Coerce ``raw`` (a string from the CLI or a value from YAML) and check the range."""
        if self.optional and (raw is None or (isinstance(raw, str) and raw.lower() == "none")):
            return None
        value: Any
        try:
            if self.kind is bool:
                value = _parse_bool(raw)
            elif self.kind is int:
                if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                    raise ValueError
                if isinstance(raw, str) and "_" in raw:  # Python reads 1_0 as 10; people do not
                    raise ValueError
                value = int(raw) if not isinstance(raw, str) else int(raw.strip())
            elif self.kind is float:
                if isinstance(raw, bool) or (isinstance(raw, str) and "_" in raw):
                    raise ValueError
                value = float(raw)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
            else:
                value = str(raw)
        except (TypeError, ValueError):
            raise ConfigError(key, raw, self) from None
        if self.choices is not None and value not in self.choices:
            raise ConfigError(key, raw, self)
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ConfigError(key, raw, self)
        if self.high is not None and value > self.high:
            raise ConfigError(key, raw, self)
        return value


class ConfigError(RaybenchError):
    """A setting outside its allowed range; the message names the key and the range."""

    def __init__(self, key: str, raw: Any, bound: Bound) -> None:
        super().__init__(f"invalid value {raw!r} for {key}: expected {bound.describe()}")


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def setting(default: Any, bound: Bound) -> Any:
    """A dataclass field carrying its allowed range."""
    return field(default=default, metadata={"bound": bound})


def bounds_of(cls: type) -> dict[str, Bound]:
    return {f.name: f.metadata["bound"] for f in dataclasses.fields(cls) if "bound" in f.metadata}


SPLITS = ("maml", "lake")
# How a solver maps its per-task function over a batch (raybench.batching).
BATCHINGS = ("auto", "vmap", "loop")
# How evaluation adapts: "plain" SGD for every solver, or the "solver"'s own inner loop.
EVAL_ADAPTATIONS = ("plain", "solver")
# The network's nonlinearity and downsampling (raybench.models): the report's is ReLU and
# max-pooling; smooth ones make the support loss differentiable everywhere
# (docs/imaml-assumptions.md).
ACTIVATIONS = ("relu", "gelu", "silu")
POOLINGS = ("max", "avg")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class RunConfig:
    """One training run of one solver with one seed. Defaults are the report's Table 1."""

    solver: str = "maml"
    seed: int = setting(0, Bound(int, 0, 2**31 - 1, help="seed of the run (init and tasks)"))
    # Task protocol.
    ways: int = setting(5, Bound(int, 2, 100, help="classes per task (N-way)"))
    shots: int = setting(1, Bound(int, 1, 10, help="support images per class (K-shot)"))
    query: int = setting(15, Bound(int, 1, 19, help="query images per class"))
    split: str = setting("maml", Bound(str, choices=SPLITS, help="pinned character split"))
    rotations: bool = setting(True, Bound(bool, help="rotate each class by k*90 degrees"))
    # Optimisation (the report's Table 1).
    inner_lr: float = setting(0.01, Bound(float, 0, 10, low_open=True, help="inner SGD step"))
    inner_steps: int = setting(5, Bound(int, 0, 100, help="inner SGD steps in training"))
    outer_lr: float = setting(0.001, Bound(float, 0, 1, low_open=True, help="Adam step"))
    meta_batch: int = setting(16, Bound(int, 1, 1024, help="tasks per meta-step"))
    meta_steps: int = setting(2000, Bound(int, 1, 10**7, help="outer (meta) steps"))
    # Evaluation.
    eval_every: int = setting(100, Bound(int, 1, 10**7, help="meta-steps between evaluations"))
    val_tasks: int = setting(200, Bound(int, 1, 10**5, help="fixed validation tasks"))
    test_tasks: int = setting(600, Bound(int, 1, 10**5, help="fixed test tasks"))
    eval_inner_steps: int | None = setting(
        None, Bound(int, 0, 1000, optional=True, help="inner steps at evaluation (default: same)")
    )
    eval_batch: int = setting(100, Bound(int, 1, 10**5, help="tasks per evaluation chunk"))
    eval_adaptation: str = setting(
        "plain",
        Bound(
            str,
            choices=EVAL_ADAPTATIONS,
            help="adaptation at evaluation: plain SGD (every solver alike) or the solver's own",
        ),
    )
    # Off the hot path by default (issue 30): those passes cost 8-15% of a quick step and
    # 25 of MAML's 164 GFLOP at the paper scale; one task per step, averaged over the
    # ``eval_every`` steps of a curve point, still gives each point ``eval_every`` tasks.
    curve_tasks: int | None = setting(
        1,
        Bound(int, 1, 1024, optional=True, help="tasks of each meta-step on which training "
              "measures the curves that need their own passes: support after adaptation, "
              "query before it ('none': every task, as before)"),
    )  # fmt: skip
    # Implicit solvers' assumptions (raybench.assumptions), measured at evaluation points.
    diag_tasks: int = setting(
        8,
        Bound(int, 0, 1000, help="validation tasks on which an implicit solver's assumptions "
              "are measured at each evaluation (0: off)"),
    )  # fmt: skip
    diag_lanczos_steps: int = setting(
        20,
        Bound(int, 1, 500, help="Lanczos iterations for the support Hessian's extreme "
              "eigenvalues in those measurements"),
    )  # fmt: skip
    # Model and runtime.
    hidden: int = setting(64, Bound(int, 1, 1024, help="filters per conv block"))
    bn: str = setting("batch", Bound(str, choices=("batch",), help="batch-norm statistics"))
    activation: str = setting(
        "relu", Bound(str, choices=ACTIVATIONS, help="nonlinearity of each conv block")
    )
    pooling: str = setting(
        "max", Bound(str, choices=POOLINGS, help="2x2 downsampling of each conv block")
    )
    device: str = setting("auto", Bound(str, choices=DEVICES, help="where to train"))
    dtype: str = setting("float32", Bound(str, choices=DTYPES, help="parameter precision"))
    cuda_graph: bool = setting(
        False, Bound(bool, help="replay each meta-step from a CUDA graph (CUDA only)")
    )
    batching: str = setting(
        "auto",
        Bound(
            str,
            choices=BATCHINGS,
            help="tasks of a batch: vmap, a loop, or auto (vmap on a GPU, a loop on a CPU)",
        ),
    )
    # Measured at quick on a 2-core CPU (issue 30): MAML's step x0.65, compiled once per
    # process and shape, minutes cold and seconds from inductor's on-disk cache.
    compile: bool = setting(
        False,
        Bound(bool, help="torch.compile each task's meta-gradient in the task loop (MAML, "
              "FOMAML and Reptile on a CPU): faster steps after a compile of minutes "
              "the first time a shape is seen (seconds from the cache after)"),
    )  # fmt: skip
    preset: str = "paper"
    solver_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def adapt_steps_eval(self) -> int:
        return self.inner_steps if self.eval_inner_steps is None else self.eval_inner_steps

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["solver_options"] = dict(sorted(self.solver_options.items()))
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def fingerprint(self) -> str:
        """Hash of everything but the seed: runs of one configuration share it. Settings
        added after a store was written are left out at their neutral value (see
        ``ADDED_SETTINGS``), so runs stored before keep their ids."""
        data = self.to_dict()
        data.pop("seed")
        for name in CURVE_ONLY_SETTINGS:
            data.pop(name, None)
        for name in ADDED_SETTINGS:
            solver, _, knob = name.rpartition(".")  # "setting" or "solver.knob"
            if solver and solver != self.solver:
                continue
            neutral = neutral_value(name, self.solver)
            where = data["solver_options"] if solver else data
            if where.get(knob, neutral) == neutral:
                where.pop(knob, None)
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def run_id(self) -> str:
        return f"{self.solver}-s{self.seed}-{self.fingerprint()}"


RUN_BOUNDS = bounds_of(RunConfig)
# Settings a search space may never search: they say which run it is, not how it learns
NEVER_SEARCHED = ("seed", "solver", "device", "dtype", "preset")


@dataclass(frozen=True)
class PerSolver:
    """A neutral value that depends on the solver: ``default``, or ``solvers[name]``."""

    default: Any
    solvers: Mapping[str, Any] = field(default_factory=dict)

    def of(self, solver: str) -> Any:
        return self.solvers.get(solver, self.default)


# Settings (``name``, or ``solver.knob``) introduced after stores existed, with the value that
# behaves as before they existed. At that value they stay out of the fingerprint, so adding
# a setting does not rename every stored run, make `run` train it again, or stop an
# interrupted run from resuming. A setting whose default changes behaviour must not be
# listed: a new fingerprint is then right.
ADDED_SETTINGS: dict[str, Any] = {
    # Before it existed, iMAML was evaluated with its own proximal inner loop and every
    # other solver with plain SGD: iMAML's runs under the new default get a new id.
    "eval_adaptation": PerSolver("plain", {"imaml": "solver"}),
    # How tasks are mapped (vmap or a loop) changes no result beyond float32 rounding.
    "batching": "auto",
    # Eager, as every run before it existed.
    "compile": False,
    # Measurements at evaluation points only: training and its results are unchanged.
    "diag_tasks": 8,
    "diag_lanczos_steps": 20,
    # Every task of a meta-step measured for the training curves, as before (also out of
    # every fingerprint: ``CURVE_ONLY_SETTINGS``).
    "curve_tasks": None,
    # The network as it was before it had choices: ReLU and max-pooling.
    "activation": "relu",
    "pooling": "max",
    # iMAML's options to meet its assumptions; their defaults are the solver as it was.
    "imaml.linear_solver": "cg",
    "imaml.proximal_steps": None,
    "imaml.proximal_lr": None,
    "imaml.proximal_tol": 0.0,
}


# Settings that change only how many tasks training's curves average over, never the
# weights, the validation or the test results (tested): out of the fingerprint at any value,
# so changing their default (issue 30) renamed no stored run and made none train again. A
# run records its own value; a run resumed across such a change has curves of both kinds.
CURVE_ONLY_SETTINGS: tuple[str, ...] = ("curve_tasks",)


def neutral_value(name: str, solver: str | None) -> Any:
    """How a run of ``solver`` behaved before the added setting ``name`` existed (None for
    a setting that was always there)."""
    neutral = ADDED_SETTINGS.get(name)
    return neutral.of(solver or "") if isinstance(neutral, PerSolver) else neutral


PRESETS: dict[str, dict[str, Any]] = {
    # Table 1 of the report: the defaults above.
    "paper": {},
    # A few meta-steps on a few tasks: seconds on a CPU, for tests and a first try.
    "smoke": {
        "meta_steps": 4,
        "meta_batch": 2,
        "inner_steps": 2,
        "eval_every": 2,
        "val_tasks": 4,
        "test_tasks": 8,
        "eval_batch": 8,
        "query": 5,
        "hidden": 16,
    },
    # The report's protocol (5-way 1-shot, inner lr 0.01 x 5 steps, Adam 0.001, the same
    # splits, batch norm and test-task draw) at the scale a 2-core CPU trains all eight
    # solvers x 3 seeds in under 30 minutes: 16 filters, 4 tasks per meta-step, 5 query
    # images per class, 200 meta-steps, 50 validation and 300 test tasks. The README's main
    # job; `paper` stays the full-scale reproduction.
    "quick": {
        "hidden": 16,
        "meta_batch": 4,
        "query": 5,
        "meta_steps": 200,
        "eval_every": 50,
        "val_tasks": 50,
        "test_tasks": 300,
    },
    # The report's settings at the other standard Omniglot task sizes (the matrix).
    "5w5s": {"shots": 5},
    "20w1s": {"ways": 20},
    "20w5s": {"ways": 20, "shots": 5},
    # The MAML paper's Omniglot protocol (Finn et al., 2017, section 5.1 and appendix A.1),
    # so its published accuracies can be reproduced: 5-way trained with one inner step of
    # 0.4 and evaluated with three, meta-batch 32; 20-way trained and evaluated with five
    # steps of 0.1, meta-batch 16; K query images per class, as in the paper's code; Adam
    # 0.001; 60,000 meta-steps; 600 test tasks.
    "literature-5w1s": {
        "ways": 5, "shots": 1, "query": 1, "inner_lr": 0.4, "inner_steps": 1,
        "eval_inner_steps": 3, "meta_batch": 32, "meta_steps": 60000, "eval_every": 1000,
    },
    "literature-5w5s": {
        "ways": 5, "shots": 5, "query": 5, "inner_lr": 0.4, "inner_steps": 1,
        "eval_inner_steps": 3, "meta_batch": 32, "meta_steps": 60000, "eval_every": 1000,
    },
    "literature-20w1s": {
        "ways": 20, "shots": 1, "query": 1, "inner_lr": 0.1, "inner_steps": 5,
        "eval_inner_steps": 5, "meta_batch": 16, "meta_steps": 60000, "eval_every": 1000,
    },
    "literature-20w5s": {
        "ways": 20, "shots": 5, "query": 5, "inner_lr": 0.1, "inner_steps": 5,
        "eval_inner_steps": 5, "meta_batch": 16, "meta_steps": 60000, "eval_every": 1000,
    },
}  # fmt: skip

# `raybench run --matrix`: solvers x these settings.
MATRIX_PRESETS = ("paper", "5w5s", "20w1s", "20w5s")


def did_you_mean(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_preset(name: str) -> None:
    """A one-line error naming every preset (as an unknown solver names the solvers)."""
    if name not in PRESETS:
        raise RaybenchError(
            f"unknown preset {name!r}{did_you_mean(name, PRESETS)}; presets: {', '.join(PRESETS)}"
        )


def parse_assignments(items: Iterable[str], parameter: str = "settings") -> dict[str, str]:
    """``["inner_lr=0.4", "imaml.lam=2"]`` -> ``{"inner_lr": "0.4", "imaml.lam": "2"}``; a
    key given twice with two values is an error (which one was meant?), named as
    ``parameter`` (``settings``: ``--set``)."""
    out: dict[str, str] = {}
    named = "{" + parameter + "}"
    for item in items:
        if not isinstance(item, str):
            raise ParameterError(named + " expects key=value texts, got {item!r}", item=item)
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ParameterError(named + " expects key=value, got {item!r}", item=item)
        if key in out and out[key] != value:
            raise ParameterError(
                named + " gives {key} twice ({first}, {second}): give it once",
                key=key, first=out[key], second=value,
            )  # fmt: skip
        out[key] = value
    return out


def build_config(
    solver: str,
    preset: str = "paper",
    overrides: Mapping[str, Any] | None = None,
    solver_option_bounds: Mapping[str, Mapping[str, Bound]] | None = None,
    solver_option_defaults: Mapping[str, Any] | None = None,
) -> RunConfig:
    """Preset, then overrides; each value checked against its bound.

    Keys of the form ``<solver>.<knob>`` set a solver's own option and are ignored for other
    solvers, so one ``--set imaml.lam=2`` can be given to ``--solvers all``; its value is
    checked all the same. An unknown key is an error naming the key, so a typo never
    silently does nothing.
    """
    check_preset(preset)
    option_bounds = solver_option_bounds or {}
    values: dict[str, Any] = {}
    options: dict[str, Any] = dict(solver_option_defaults or {})
    for key, raw in {**PRESETS[preset], **dict(overrides or {})}.items():
        if not isinstance(key, str):
            raise RaybenchError(f"setting {key!r}: a setting's name is text, like inner_lr")
        prefix, dot, knob = key.partition(".")
        if dot:
            if prefix not in option_bounds:
                known = sorted(option_bounds)
                raise RaybenchError(
                    f"unknown solver {prefix!r} in {key!r}{did_you_mean(prefix, known)}"
                )
            knobs = option_bounds[prefix]
            if knob not in knobs:
                allowed = ", ".join(sorted(knobs)) or "none"
                raise RaybenchError(
                    f"unknown option {key!r} for solver {prefix!r} (options: {allowed})"
                )
            value = knobs[knob].parse(key, raw)  # checked even when that solver is not run
            if prefix == solver:
                options[knob] = value
        elif key in RUN_BOUNDS:
            values[key] = RUN_BOUNDS[key].parse(key, raw)
        else:
            raise RaybenchError(f"unknown setting {key!r}{did_you_mean(key, RUN_BOUNDS)}")
    config = RunConfig(solver=solver, preset=preset, solver_options=options, **values)
    if config.cuda_graph and config.device == "cpu":
        raise RaybenchError("cuda_graph=true replays CUDA graphs: it needs device cuda or auto")
    if config.shots + config.query > 20:
        raise RaybenchError(
            f"shots + query = {config.shots + config.query}: Omniglot has 20 drawings per class"
        )
    return config
