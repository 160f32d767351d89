"""Access to the recorded exchange data under tests/data (see tests/data/SOURCES.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data"

FUTURES_WS = DATA / "BINANCE_FUTURES.ws.1.0"
FUTURES_HTTP = DATA / "BINANCE_FUTURES.http.0.0"
SPOT_WS = DATA / "BINANCE.ws.1.0"
SPOT_HTTP = DATA / "BINANCE.http.0.0"
HL_CANDLES = DATA / "test_get_candles_snapshot.yaml"
HL_L2 = DATA / "test_get_l2_snapshot.yaml"
CANDLES_JSON = DATA / "candles.json"
CANDLES_CSV = DATA / "btc-perp-20211231_1m_head3000.csv"

_BODY = re.compile(r"string: '((?:[^']|'')*)'", re.DOTALL)


def cassette_bodies(path: Path) -> list[Any]:
    """Response bodies of a vcrpy cassette, decoded (YAML single-quoted scalars, folded lines)."""
    text = path.read_text()
    bodies = []
    for m in _BODY.finditer(text):
        scalar = re.sub(r"\s*\n\s*", " ", m.group(1)).replace("''", "'")
        bodies.append(json.loads(scalar))
    return bodies


def capture_messages(path: Path) -> list[str]:
    """The raw messages of a cryptofeed WS capture, in order."""
    lines = path.read_text().splitlines()[1:]
    return [line.partition(": ")[2] for line in lines if line.strip()]
