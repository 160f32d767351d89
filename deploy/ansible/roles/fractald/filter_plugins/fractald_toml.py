"""Ansible filter `to_fractald_toml`: render a nested dict as a TOML document.

The role keeps the daemon's configuration as one variable (a dict shaped like
fractald.toml) so that any key the daemon knows can be set from group_vars;
Ansible has no TOML filter of its own. Only what fractald's config uses is
supported: tables, strings, booleans, integers, floats and lists of those.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class TomlRenderError(ValueError):
    pass


def _key(name: Any) -> str:
    text = str(name)
    return text if _BARE_KEY.match(text) else json.dumps(text)


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TomlRenderError(f"{where}: {value!r} cannot be written to TOML")
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, f"{where}[{i}]") for i, v in enumerate(value)) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(v, f'{where}.{k}')}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TomlRenderError(f"{where}: {type(value).__name__} values cannot be written to TOML")


def _table(data: Mapping[str, Any], path: list[str], out: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        out.append(f"[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        out.append(f"{_key(key)} = {_value(value, '.'.join([*path, str(key)]))}")
    if path and (scalars or not tables):
        out.append("")
    for key, value in tables.items():
        _table(value, [*path, str(key)], out)


def to_fractald_toml(data: Mapping[str, Any]) -> str:
    """The TOML text for `data`; top-level scalars first, then one [table] per mapping."""
    if not isinstance(data, Mapping):
        raise TomlRenderError(f"expected a mapping, got {type(data).__name__}")
    out: list[str] = []
    _table(data, [], out)
    return "\n".join(out).rstrip("\n") + "\n"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"to_fractald_toml": to_fractald_toml}
