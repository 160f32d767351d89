"""Writes `state-schema2-managed.json`: trading state of schema 2 with a managed open trade.

Schema 2 (fractald up to commit 6969057) kept a trade's management plan and
state in the pipeline (`pipelines[*].trades`); schema 3 keeps it on the
engine's bracket. This script must run on schema-2 code: from a checkout of
6969057, `python tests/data/make_state_schema2.py OUT.json`. It drives the
default config over the bundled candles until a filled trade's management
has moved its stop, snapshots there, then records what that code did with
the trade afterwards (its stop moves, its exit and the closed trade), which
`tests/test_state_schema.py` expects of the upgraded state.
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


def trade_events(events: list[Any], sid: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, ev.StopMoved) and e.signal_id == sid:
            out.append({"stop_moved": e.new, "reason": e.reason, "ts": e.ts})
        elif isinstance(e, ev.BracketExit) and e.signal_id == sid:
            out.append({"exit": e.reason, "ts": e.ts})
        elif isinstance(e, ev.TradeClosed) and e.trade.trade_id == sid:
            t = e.trade
            out.append({"closed": t.exit_reason, "exit_price": t.exit_price, "pnl": t.pnl})
    return out


def main(path: str) -> None:
    assert SCHEMA_VERSION == 2, "run this on schema-2 code (commit 6969057)"
    builder = SymbolBars("BTC-PERP", ["1m", "15m", "1h", "4h"])
    bars = [b for bar in bundled_candles() for b in builder.on_base_bar(bar).bars]
    live = pipeline_from_config(Config())
    trades = live.pipelines["BTC-PERP"]._trades
    for i, bar in enumerate(bars):
        live.on_bar(bar)
        moved = [
            sid
            for sid, m in trades.items()
            if m.state is not None and m.state.stop != m.plan.stop
        ]
        if moved:
            break
    split = i + 1
    cursor: dict[str, int] = {}
    for b in bars[:split]:
        cursor[f"{b.symbol}/{b.timeframe}"] = b.ts_open
    state = json.loads(json.dumps(session_state(live, cursor, split)))
    state["engine"]["accounting"]["equity_curve"] = state["engine"]["accounting"]["equity_curve"][-50:]
    after: list[dict[str, Any]] = []
    for bar in bars[split:]:
        after += trade_events(live.on_bar(bar), moved[0])
        if any("closed" in x for x in after):
            break
    with open(path, "w") as f:
        json.dump({"split": split, "signal_id": moved[0], "state": state, "after": after}, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
