"""Strategy plug-ins: classes registered under the `fractald.strategies` entry-point group.

A user strategy is one module in any installed package whose metadata says

    [project.entry-points."fractald.strategies"]
    my_breakout = "my_package.breakout:MyBreakout"

`load_plugins()` imports each once and registers it (fractald.core.strategies.registry),
so `check-config`, `backtest`, `lookahead-check`, `optimize` and the daemon all
know it. A plug-in that cannot be imported, or that is not a Strategy, is an
error naming the entry point and the package: never a half-registered strategy.
What a plug-in builds on is `fractald.strategy_api`.
"""

from __future__ import annotations

from importlib import metadata

from fractald.core.strategies import registry

GROUP = "fractald.strategies"
_loaded = False


class PluginError(ValueError):
    """A strategy plug-in that cannot be used; the message names it and why."""


def load_plugins(*, force: bool = False) -> list[str]:
    """Register every installed plug-in strategy (once per process); their names, sorted."""
    global _loaded
    if _loaded and not force:
        return sorted(n for n, c in registry.STRATEGIES.items() if c.__module__ not in _BUILTIN)
    problems: list[str] = []
    for ep in metadata.entry_points(group=GROUP):
        where = f"entry point {ep.name!r} ({ep.value}) of package {_dist(ep)}"
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - any failure of someone else's import: name it
            problems.append(f"{where} failed to import: {type(exc).__name__}: {exc}")
            continue
        if getattr(cls, "name", None) != ep.name:
            problems.append(
                f"{where}: the class's name is {getattr(cls, 'name', None)!r}, "
                f"but the entry point is {ep.name!r}; they must be equal"
            )
            continue
        try:
            registry.register(cls)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
    _loaded = True
    if problems:
        raise PluginError("; ".join(problems))
    return sorted(n for n, c in registry.STRATEGIES.items() if c.__module__ not in _BUILTIN)


def _dist(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "(unknown)"


_BUILTIN = frozenset(c.__module__ for c in registry.STRATEGIES.values())
