"""Per-key checks of a parsed TOML document: types, ranges, unknown keys, each problem worded.

Every problem names the key path, the bad value (redacted, shortened) and what is
allowed; all of them are collected, never just the first.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs
import cattrs

converter = cattrs.Converter(forbid_extra_keys=True)


def _describe(value: Any) -> str:
    from fractald.logs import redact_url

    text = redact_url(repr(value), hide_path=True)  # a bad value may still hold a secret
    return text if len(text) <= 80 else text[:77] + "..."


_TYPE_NAMES = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
}


def _type_name(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return f"a list of {_type_name(args[0])[2:].lstrip()} values"
    if origin is dict:
        return f"a table of {_type_name(args[1])[2:].lstrip()} values"
    return str(tp).replace("typing.", "")


def _check_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_check_type(v, item) for v in value)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        return isinstance(value, dict) and all(
            _check_type(k, key_tp) and _check_type(v, val_tp) for k, v in value.items()
        )
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, arg) for arg in typing.get_args(tp))
    return True


def validate_table(cls: type, data: Any, path: str, problems: list[str]) -> None:
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a table, got {_describe(data)}")
        return
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    for key in data:
        if key not in fields:
            problems.append(
                f"{path}.{key}: unknown key; allowed keys in [{path}]: {', '.join(fields)}"
            )
    for name, field in fields.items():
        if name not in data:
            continue
        value, where = data[name], f"{path}.{name}"
        if attrs.has(field.type):
            validate_table(field.type, value, where, problems)
            continue
        if not _check_type(value, field.type):
            problems.append(
                f"{where}: {_describe(value)} is not a valid value: expected {_type_name(field.type)}"
            )
            continue
        if field.validator is not None:
            try:
                field.validator(None, field, converter.structure(value, field.type))
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {_describe(value)} {exc}")
