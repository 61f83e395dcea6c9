"""Every API call's arguments checked before anything runs, by the declarations the CLI
parses its flags with, so Python and the command line refuse the same values.

Each argument is checked against its annotation (``int | None``, ``Sequence[str]``,
``PathLike``, ...): a value of another kind is a :class:`~raybench.errors.ParameterError`
naming the keyword, never a ``TypeError`` from deep inside. A number is then checked against
the range its flag declares (``typer.Option(min=..., max=...)`` of the command that calls
the function; a keyword spelled otherwise on the command line is found through
:data:`raybench.cli.options.API_FLAGS`), and against ``extra`` ranges for the keywords the
command line does not have. Everything else (a solver's name, a setting's value) is checked
by the code it concerns, as for the CLI.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from raybench.errors import ParameterError

F = TypeVar("F", bound=Callable[..., Any])
Range = tuple[float | None, float | None]  # (low, high), None: unbounded

# Names the API's annotations use for its own classes: a value is of one when its class,
# or a base of it, has the name (no import of what it names).
_CLASSES = ("Console", "ExecutionOptions", "SweepOptions", "ExperimentStore")


def checked(command: str | None, **extra: Range) -> Callable[[F], F]:
    """The decorated API function checks each argument given by its annotation and by the
    range the CLI command ``command`` declares for it (``extra``: ranges of keywords the
    command line lacks) before its body runs."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise ParameterError(
                    "{function}: {why}", function=function.__name__, why=exc
                ) from None
            ranges = {**declared_ranges(command), **extra}
            for name, value in bound.arguments.items():
                parameter = signature.parameters[name]
                if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    continue
                check_argument(name, value, str(parameter.annotation), ranges.get(name))
            return function(*args, **kwargs)

        call.checked_by = (command, extra)  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]

    return decorate


def check_argument(name: str, value: Any, annotation: str, bounds: Range | None) -> None:
    """``value`` of the kind ``annotation`` says and, a number, within ``bounds``; else a
    :class:`ParameterError` naming ``name``."""
    if annotation != str(inspect.Parameter.empty) and not _is(value, annotation):
        raise ParameterError(
            "{" + name + "} {value}: expected {kind}", value=_shown(value), kind=annotation
        )
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if bounds is None or not number:
        return
    low, high = bounds
    if (
        math.isnan(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        within = (
            f"from {low:g} to {high:g}"
            if low is not None and high is not None
            else f"at least {low:g}"
            if low is not None
            else f"at most {high:g}"
        )
        raise ParameterError(
            "{" + name + "} {value!r}: expected {within}", value=value, within=within
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is(value: Any, annotation: str) -> bool:
    """Whether ``value`` is of the kind an annotation's text names (its alternatives split
    at the top level's ``|``)."""
    return any(_is_one(value, kind.strip()) for kind in _top_level(annotation, "|"))


def _top_level(text: str, separator: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += c == "["
        depth -= c == "]"
        if c == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _is_one(value: Any, kind: str) -> bool:
    if kind == "Any":
        return True
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "PathLike":
        return isinstance(value, str | os.PathLike)
    if kind in _CLASSES:
        return any(c.__name__ == kind for c in type(value).__mro__)
    outer, _, inner = kind.partition("[")
    inner = inner.removesuffix("]")
    if outer == "Sequence":
        return isinstance(value, list | tuple | range) and all(_is(v, inner) for v in value)
    if outer == "Mapping":
        key, item = (p.strip() for p in _top_level(inner, ","))
        return isinstance(value, Mapping) and all(
            _is(k, key) and _is(v, item) for k, v in value.items()
        )
    return True  # a kind not described here is checked where it is used


@functools.cache
def declared_ranges(command: str | None) -> dict[str, Range]:
    """Each API keyword's range as the CLI command declares its flag (``min``/``max``)."""
    if command is None:
        return {}
    from raybench.cli import app
    from raybench.cli.options import API_FLAGS

    callback = next(c.callback for c in app.registered_commands if (c.name or "") == command)
    hints = typing.get_type_hints(callback, include_extras=True)
    by_flag: dict[str, Range] = {}
    for name, hint in hints.items():
        for info in getattr(hint, "__metadata__", ()):
            low, high = getattr(info, "min", None), getattr(info, "max", None)
            if low is not None or high is not None:
                by_flag[name] = (low, high)
    ranges = dict(by_flag)
    for keyword, flag in API_FLAGS.items():
        cli_name = flag.removeprefix("--").replace("-", "_")
        if cli_name in by_flag:
            ranges[keyword] = by_flag[cli_name]
    return ranges
