"""Colour on a terminal only: never with NO_COLOR set (no-color.org), TERM=dumb, or into a
pipe or file. A leaf module, so fractalctl colours its tables without importing logging."""

from __future__ import annotations

import os
from typing import Any, TextIO

# ANSI SGR codes of the few colours the tables use.
GREEN, RED, YELLOW, BOLD = "32", "31", "33", "1"


def colors_wanted(stream: TextIO, env: Any = None) -> bool:
    """Colours only on a terminal, and never with NO_COLOR set (no-color.org) or TERM=dumb."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def paint(text: str, code: str | None) -> str:
    """`text` in the colour `code` (None: as it is)."""
    return text if not code else f"\033[{code}m{text}\033[0m"


def sign_colour(text: str) -> str | None:
    """Green for a gain, red for a loss, from a figure's text ("+12.50", "-3", "0", "-")."""
    cleaned = text.strip().replace(",", "").rstrip("%")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return GREEN if value > 0 else RED if value < 0 else None
