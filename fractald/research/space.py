"""Parameter spaces (for `optimize`) and grids (for `sweep`), read from TOML and validated.

A space file declares, per parameter of the strategy, how to search it:

    [params.swing_length]
    type = "int"            # int | float | categorical
    low = 3
    high = 12
    step = 1                # optional (int default 1; float: none = continuous)

    [params.stop_buffer_atr]
    type = "float"
    low = 0.0
    high = 0.5
    log = false             # optional

    [params.require_trend]
    type = "categorical"
    choices = [true, false]

A grid file lists values:  [grid]  swing_length = [3, 5, 8]
Every mistake is named with its key path; parameters the strategy does not have
are refused with the ones it has.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

KINDS = ("int", "float", "categorical")


class SpaceError(ValueError):
    """A bad space or grid file; the message names every problem with its key."""


@attrs.frozen(slots=True)
class ParamSpec:
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks for this parameter."""
        if self.kind == "int":
            return trial.suggest_int(
                self.name,
                int(self.low or 0),
                int(self.high or 0),
                step=int(self.step or 1),
                log=self.log,
            )
        if self.kind == "float":
            return trial.suggest_float(
                self.name,
                float(self.low or 0.0),
                float(self.high or 0.0),
                step=self.step,
                log=self.log,
            )
        return trial.suggest_categorical(self.name, list(self.choices))

    def distribution(self) -> Any:
        import optuna.distributions as d

        if self.kind == "int":
            return d.IntDistribution(
                int(self.low or 0), int(self.high or 0), step=int(self.step or 1), log=self.log
            )
        if self.kind == "float":
            return d.FloatDistribution(
                float(self.low or 0.0), float(self.high or 0.0), step=self.step, log=self.log
            )
        return d.CategoricalDistribution(list(self.choices))


def _read(path: str | Path, what: str) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SpaceError(f"{what} file {str(p)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SpaceError(f"{what} file {str(p)!r} is not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{what} file {str(p)!r} is not valid TOML: {exc}") from None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def parse_space(data: Mapping[str, Any], known: Iterable[str]) -> tuple[ParamSpec, ...]:
    """Validate a space table against the strategy's parameter names."""
    known = set(known)
    problems: list[str] = []
    extra = sorted(set(data) - {"params"})
    if extra:
        problems.append(
            f"unknown top-level key(s) {extra}; a space file has only [params.NAME] tables"
        )
    params = data.get("params")
    if not isinstance(params, Mapping) or not params:
        raise SpaceError(
            "; ".join([*problems, "params: no [params.NAME] tables: nothing to search"])
        )
    specs = []
    for name, spec in params.items():
        key = f"params.{name}"
        if name not in known:
            problems.append(
                f"{key}: the strategy has no parameter {name!r}; it has {', '.join(sorted(known))}"
            )
            continue
        if not isinstance(spec, Mapping):
            problems.append(f"{key}: must be a table with type = int|float|categorical")
            continue
        kind = spec.get("type")
        if kind not in KINDS:
            problems.append(f"{key}.type: {kind!r} is not one of {', '.join(KINDS)}")
            continue
        allowed = (
            {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "step", "log"}
        )
        unknown = sorted(set(spec) - allowed)
        if unknown:
            problems.append(
                f"{key}: unknown key(s) {unknown} for type {kind}; allowed: {sorted(allowed)}"
            )
            continue
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                problems.append(f"{key}.choices: must be a non-empty list")
                continue
            specs.append(ParamSpec(name, kind, choices=tuple(choices)))
            continue
        low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
        if not (_number(low) and _number(high)):
            problems.append(f"{key}: low and high must be numbers, got {low!r}, {high!r}")
            continue
        assert low is not None and high is not None
        if low >= high:
            problems.append(
                f"{key}: low and high must be numbers with low < high, got {low!r}, {high!r}"
            )
            continue
        if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
            problems.append(f"{key}: an int parameter needs whole low/high, got {low!r}, {high!r}")
            continue
        if step is not None and (not _number(step) or step <= 0):
            problems.append(f"{key}.step: must be a positive number, got {step!r}")
            continue
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and low <= 0):
            problems.append(f"{key}.log: must be true/false, and log needs low > 0")
            continue
        specs.append(
            ParamSpec(
                name, kind, float(low), float(high), None if step is None else float(step), log
            )
        )
    if problems:
        raise SpaceError("; ".join(problems))
    return tuple(specs)


def load_space(path: str | Path, known: Iterable[str]) -> tuple[ParamSpec, ...]:
    try:
        return parse_space(_read(path, "space"), known)
    except SpaceError as exc:
        raise SpaceError(f"{path}: {exc}") from None


def parse_grid(data: Mapping[str, Any], known: Iterable[str]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in file order."""
    known = set(known)
    grid = data.get("grid")
    problems = (
        [
            f"unknown top-level key(s) {sorted(set(data) - {'grid'})}; a grid file has one [grid] table"
        ]
        if set(data) - {"grid"}
        else []
    )
    if not isinstance(grid, Mapping) or not grid:
        raise SpaceError("; ".join([*problems, "grid: no [grid] table with NAME = [values]"]))
    for name, values in grid.items():
        if name not in known:
            problems.append(
                f"grid.{name}: the strategy has no parameter {name!r}; it has {', '.join(sorted(known))}"
            )
        elif not isinstance(values, list) or not values:
            problems.append(f"grid.{name}: must be a non-empty list of values")
    if problems:
        raise SpaceError("; ".join(problems))
    names = list(grid)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(grid[n] for n in names))
    ]


def load_grid(path: str | Path, known: Iterable[str]) -> list[dict[str, Any]]:
    try:
        return parse_grid(_read(path, "grid"), known)
    except SpaceError as exc:
        raise SpaceError(f"{path}: {exc}") from None
