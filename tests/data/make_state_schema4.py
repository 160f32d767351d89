"""Writes `state-schema4-open.json`: trading state of schema 4 holding an open position.

Schema 4 (fractald up to commit 1a174e3) kept each position's mark
(`engine.accounting.positions[*].mark_price`) beside the account's marks per
symbol; schema 5 keeps only the latter. This script must run on schema-4
code: from a checkout of 1a174e3, `python tests/data/make_state_schema4.py OUT.json`.
It drives the default config over the bundled candles until a position is
open and marked away from its entry, snapshots there, then records what that
code did afterwards (the closed trades, the equity at each of them, the
final books), which `tests/test_state_schema.py` expects of the upgraded state.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fractald.config import Config
from fractald.core.bars import SymbolBars
from fractald.core.execution import events as ev
from fractald.pipeline_factory import pipeline_from_config
from fractald.session_state import session_state
from fractald.state_schema import SCHEMA_VERSION
from fractald.venues.replay import bundled_candles

AFTER_BARS = 6000


def books(engine: Any) -> dict[str, Any]:
    """What the continuation must reproduce: cash, equity and every book's figures."""
    acc = engine.accounting
    return {
        "cash": acc.cash,
        "equity": acc.equity,
        "positions": [
            [p.strategy, p.symbol, p.quantity, p.avg_price, p.realized_pnl, p.fees, p.funding]
            for p in acc.positions.values()
        ],
    }


def closed_trades(events: list[Any], engine: Any) -> list[dict[str, Any]]:
    return [
        {"trade": e.trade.trade_id, "pnl": e.trade.pnl, "equity": engine.accounting.equity}
        for e in events
        if isinstance(e, ev.TradeClosed)
    ]


def main(path: str) -> None:
    assert SCHEMA_VERSION == 4, "run this on schema-4 code (commit 1a174e3)"
    builder = SymbolBars("BTC-PERP", ["1m", "15m", "1h", "4h"])
    bars = [b for bar in bundled_candles() for b in builder.on_base_bar(bar).bars]
    live = pipeline_from_config(Config())
    engine = live.pipelines["BTC-PERP"].engine
    for i, bar in enumerate(bars):
        live.on_bar(bar)
        acc = engine.accounting
        if any(p.quantity and p.mark_price != p.avg_price for p in acc.positions.values()):
            break
    split = i + 1
    cursor: dict[str, int] = {}
    for b in bars[:split]:
        cursor[f"{b.symbol}/{b.timeframe}"] = b.ts_open
    state = json.loads(json.dumps(session_state(live, cursor, split)))
    after: list[dict[str, Any]] = []
    for bar in bars[split : split + AFTER_BARS]:
        after += closed_trades(live.on_bar(bar), engine)
    out = {"split": split, "state": state, "after": after, "books": books(engine)}
    with open(path, "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
