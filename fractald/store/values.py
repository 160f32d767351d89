"""Checks and encodings every ledger table shares: a bad value raises ValueError naming it.

Values are checked before a transaction opens, so a bad item writes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from fractald.store import db


def check_text(value: object, what: str, max_len: int | None = None) -> str:
    if not isinstance(value, str) or not value or value != value.strip():
        raise ValueError(
            f"{what} must be a non-empty string without surrounding spaces, got {value!r}"
        )
    if max_len is not None and len(value) > max_len:
        raise ValueError(f"{what} is {len(value)} characters long; at most {max_len} allowed")
    return value


def check_int(value: object, what: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an int, got {value!r}")  # noqa: TRY004 - callers catch ValueError
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def dict_json(value: object, what: str) -> str:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a dict, got {type(value).__name__}")  # noqa: TRY004 - as above
    return db.canonical_json(dict(value), what)


def rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid an INSERT just made (sqlite3 types it Optional; after an INSERT it is set)."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid
