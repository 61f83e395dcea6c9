"""Search spaces: ``search_spaces/<solver>.yaml``, checked before anything starts.

A space maps setting keys (the same keys as ``--set``; a solver's own knobs as
``solver.knob``) to a distribution::

    inner_lr: {distribution: loguniform, low: 0.001, high: 0.5}
    inner_steps: {distribution: int, low: 1, high: 10}
    imaml.cg_steps: {distribution: categorical, values: [2, 5, 10]}

Every bound and value is checked against the setting's own allowed range, so a space can
never propose a configuration that ``raybench run`` would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from raybench.config import NEVER_SEARCHED, RUN_BOUNDS, Bound, RunConfig, did_you_mean
from raybench.errors import RaybenchError

DISTRIBUTIONS = ("loguniform", "uniform", "int", "categorical")
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


def default_spaces() -> Path:
    """``./search_spaces`` when run from a checkout, else the one beside the package."""
    local = Path("search_spaces")
    return local if local.is_dir() else DEFAULT_DIR


@dataclass(frozen=True)
class Dimension:
    """One searched setting."""

    key: str
    distribution: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()

    def to_tune(self) -> Any:
        """The Ray Tune domain; OptunaSearch turns it into the Optuna distribution."""
        from ray import tune

        if self.distribution == "loguniform":
            return tune.loguniform(self.low, self.high)
        if self.distribution == "uniform":
            return tune.uniform(self.low, self.high)
        if self.distribution == "int":
            upper = int(self.high) + 1  # Tune's integer upper bound is exclusive
            return (
                tune.lograndint(int(self.low), upper)
                if self.log
                else tune.randint(int(self.low), upper)
            )
        return tune.choice(list(self.values))

    def range_text(self) -> str:
        if self.distribution == "categorical":
            return "one of " + ", ".join(str(v) for v in self.values)
        return f"{self.low:g} to {self.high:g}"

    def contains(self, value: Any) -> bool:
        if self.distribution == "categorical":
            return value in self.values
        return isinstance(value, int | float) and self.low <= value <= self.high  # type: ignore[operator]

    def describe(self) -> dict[str, Any]:
        """As the protocol records it."""
        if self.distribution == "categorical":
            return {"key": self.key, "distribution": self.distribution, "values": list(self.values)}
        out = {"key": self.key, "distribution": self.distribution, "low": self.low}
        out["high"] = self.high
        return {**out, "log": True} if self.log else out


@dataclass(frozen=True)
class SearchSpace:
    solver: str
    path: Path
    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(d.key for d in self.dimensions)

    def describe(self) -> list[dict[str, Any]]:
        return [d.describe() for d in self.dimensions]

    def default_point(self, config: RunConfig) -> dict[str, Any]:
        """``config``'s values of the searched settings, encoded as Tune's parameters: the
        default trial the protocol enqueues first. An option whose default is None takes
        the run setting it stands for (``imaml.proximal_lr``: ``inner_lr``); a default
        outside the space is a one-line error, since the default must be a trial."""
        from raybench.solvers import solver_class

        fallbacks = solver_class(self.solver).defaults_from
        point = {}
        for dim in self.dimensions:
            _, dot, knob = dim.key.partition(".")
            value = config.solver_options.get(knob) if dot else getattr(config, dim.key)
            if value is None and dot and knob in fallbacks:
                value = getattr(config, fallbacks[knob])
            if value is None or not dim.contains(value):
                raise RaybenchError(
                    f"{self.path}: {dim.key}'s default {value!r} at preset {config.preset} "
                    f"is not in the space ({dim.range_text()}); the protocol runs the "
                    "default as the first trial, so widen the range"
                )
            point[encode(dim.key)] = value
        return point

    def to_tune(self) -> dict[str, Any]:
        """Tune's ``param_space``. Keys are encoded (``.`` -> ``__``) because Tune treats
        dots and slashes in names as nesting."""
        return {encode(d.key): d.to_tune() for d in self.dimensions}


def encode(key: str) -> str:
    return key.replace(".", "__")


def decode(params: dict[str, Any]) -> dict[str, Any]:
    """Tune's sampled parameters back to ``--set`` keys, as plain Python values."""
    out = {}
    for key, value in params.items():
        out[key.replace("__", ".")] = value.item() if hasattr(value, "item") else value
    return out


def _bound_for(solver: str, key: str, where: str) -> Bound:
    from raybench.solvers.base import option_bounds

    if key in NEVER_SEARCHED:
        raise RaybenchError(f"{where}: {key!r} cannot be searched")
    prefix, dot, knob = key.partition(".")
    if dot:
        bounds = option_bounds()
        if prefix != solver:
            raise RaybenchError(f"{where}: {key!r} is an option of {prefix!r}, not of {solver!r}")
        if knob not in bounds.get(solver, {}):
            known = ", ".join(sorted(bounds.get(solver, {}))) or "none"
            raise RaybenchError(f"{where}: unknown option {key!r} (options of {solver}: {known})")
        return bounds[solver][knob]
    if key not in RUN_BOUNDS:
        raise RaybenchError(f"{where}: unknown parameter {key!r}{did_you_mean(key, RUN_BOUNDS)}")
    return RUN_BOUNDS[key]


def parse_dimension(solver: str, key: str, spec: Any, path: Path) -> Dimension:
    try:
        return _parse_dimension(solver, key, spec, path)
    except RaybenchError as exc:
        text = str(exc)
        raise RaybenchError(text if text.startswith(str(path)) else f"{path}: {text}") from None


def _parse_dimension(solver: str, key: str, spec: Any, path: Path) -> Dimension:
    where = f"{path}: {key}"
    bound = _bound_for(solver, str(key), str(path))
    if not isinstance(spec, dict):
        raise RaybenchError(
            f"{where}: expected a mapping like {{distribution: loguniform, low: .., high: ..}}"
        )
    kind = spec.get("distribution")
    if kind not in DISTRIBUTIONS:
        raise RaybenchError(
            f"{where}: unknown distribution {kind!r} (one of {', '.join(DISTRIBUTIONS)})"
        )
    allowed = (
        {"distribution", "values"}
        if kind == "categorical"
        else {"distribution", "low", "high", "log"}
    )
    extra = set(spec) - allowed
    if extra:
        raise RaybenchError(f"{where}: unexpected field {sorted(extra)[0]!r} for {kind}")
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise RaybenchError(f"{where}: categorical needs a non-empty list 'values'")
        return Dimension(key, kind, values=tuple(bound.parse(key, v) for v in values))
    if "low" not in spec or "high" not in spec:
        raise RaybenchError(f"{where}: {kind} needs 'low' and 'high'")
    if kind == "int" and bound.kind is not int:
        raise RaybenchError(
            f"{where}: 'int' only fits integer settings ({key} is {bound.describe()})"
        )
    if kind != "int" and bound.kind is not float:
        raise RaybenchError(
            f"{where}: {kind} only fits real-valued settings ({key} is {bound.describe()})"
        )
    low, high = bound.parse(key, spec["low"]), bound.parse(key, spec["high"])
    if low is None or high is None or not low < high:
        raise RaybenchError(f"{where}: needs low < high, got {spec['low']!r} and {spec['high']!r}")
    if kind == "loguniform" and low <= 0:
        raise RaybenchError(f"{where}: loguniform needs low > 0")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise RaybenchError(f"{where}: 'log' must be true or false")
    return Dimension(key, kind, float(low), float(high), log=log)


def load_space(solver: str, directory: Path | None = None) -> SearchSpace:
    """``<directory>/<solver>.yaml``, fully validated; one-line errors naming file and key."""
    path = Path(directory or DEFAULT_DIR) / f"{solver}.yaml"
    if not path.is_file():
        raise RaybenchError(f"no search space for {solver!r}: {path} does not exist")
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RaybenchError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except UnicodeDecodeError as exc:
        raise RaybenchError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise RaybenchError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(body, dict) or not body:
        raise RaybenchError(f"{path}: expected a mapping of parameter: distribution")
    dims = tuple(parse_dimension(solver, str(k), v, path) for k, v in body.items())
    return SearchSpace(solver, path, dims)
