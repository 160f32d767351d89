"""Read-only views of the engine, and the JSON snapshot/restore.

Market-derived caches (last prices, ATR, correlation windows) live in
snapshots only. The paper venue's book is not the engine's: its owner
snapshots it (`PaperVenue.snapshot`) and resyncs it from the engine's
orders after ledger events were replayed (`PaperVenue.resync`).
"""

from __future__ import annotations

import collections
from typing import Any

from fractald.core.execution._engine_core import EngineCore, _Atr
from fractald.core.execution.brackets import Bracket, BracketState
from fractald.core.execution.converter import converter as _conv
from fractald.core.execution.orders import Order, OrderStatus
from fractald.core.models import FeedHealth
from fractald.core.risk.breakers import TradingState, Trip
from fractald.core.risk.gates import OpenRisk, OrderRateLimiter
from fractald.core.risk.sizing import Instrument

# What a snapshot holds that comes from market data rather than from events:
# prices and their marks, the ATR, feed health, correlation windows, the paper
# book's quotes and queue places, the equity curve, the drawdown peak and the
# day's opening equity, the time of the latest input. A rebuild from a snapshot
# plus later ledger events gets these from the snapshot (the events do not
# carry them); everything else must come out equal to the live engine's.
MARKET_DERIVED = (
    "last_ts",
    "last_funding_ts",
    "feed",
    "last_price",
    "atr",
    "correlation",
    "broker",  # the paper venue's book, which session snapshots store beside the engine's
)
_MARKET_DERIVED_ACCOUNTING = ("marks", "equity_curve")
_MARKET_DERIVED_BREAKERS = ("peak_equity", "day", "day_start_equity")


def event_sourced(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The part of `TradingEngine.snapshot()` that the ledger's events alone determine."""
    out = {k: v for k, v in snapshot.items() if k not in MARKET_DERIVED}
    acc = {k: v for k, v in snapshot["accounting"].items() if k not in _MARKET_DERIVED_ACCOUNTING}
    out["accounting"] = acc
    out["breakers"] = {
        k: v for k, v in snapshot["breakers"].items() if k not in _MARKET_DERIVED_BREAKERS
    }
    return out


class EngineState(EngineCore):
    """Views (`state`, `equity`, `status`...), `snapshot` and `restore`."""

    # ======================================================================= views
    @property
    def state(self) -> TradingState:
        return self.breakers.state

    @property
    def equity(self) -> float:
        return self.accounting.equity

    def instrument(self, symbol: str) -> Instrument:
        inst = self.instruments.get(symbol)
        if inst is None:
            inst = self.instruments[symbol] = Instrument(
                symbol, self.params.default_lot_size, self.params.default_tick_size
            )
        return inst

    def open_risks(self) -> list[OpenRisk]:
        return [
            OpenRisk(b.symbol, b.exposure(self.last_price.get(b.symbol, 0.0)), b.open_risk())
            for b in self.brackets.values()
            if b.state is not BracketState.CLOSED
        ]

    def working_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.status.terminal]

    def orders_awaiting_ack(self) -> list[Order]:
        """Orders sent (or about to be, when the process died) with no word from the venue yet.

        After a restart each must be looked up at the venue by client order id:
        known there, carry on; unknown, it never left, so send it again (same id)
        or reject it locally.
        """
        return [o for o in self.orders.values() if o.status is OrderStatus.SUBMITTED]

    def status(self) -> dict[str, Any]:
        """What `fractalctl status` shows."""
        return {
            "trading_state": self.state.value,
            "paused": self.paused,
            "equity": self.equity,
            "peak_equity": self.breakers.peak_equity,
            "trips": [
                {
                    "breaker": t.breaker.value,
                    "state": t.state.value,
                    "reason": t.reason,
                    "ts": t.ts,
                    "figures": t.figures,
                }
                for t in self.breakers.trips.values()
            ],
            "open_brackets": len(self.brackets),
            "working_orders": len(self.working_orders()),
            "strategies": {s: r.state.value for s, r in self.reliability.records.items()},
        }

    # ================================================================ persistence
    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able state; `restore` on a fresh engine with the same params gives it back."""
        return {
            "version": 1,
            "last_ts": self.last_ts,
            "last_funding_ts": self.last_funding_ts,
            "paused": self.paused,
            "orders": [_conv.unstructure(o) for o in self.orders.values()],
            "closed_orders": list(self.closed_orders),
            "brackets": [_conv.unstructure(b) for b in self.brackets.values()],
            "seen_signals": list(self.seen_signals),
            "feed": [_conv.unstructure(h) for h in self.feed.values()],
            "last_price": dict(self.last_price),
            "atr": {k: _conv.unstructure(v) for k, v in self.atr.items()},
            "accounting": self.accounting.snapshot(),
            "breakers": self.breakers.snapshot(),
            "trips": [_conv.unstructure(t) for t in self.breakers.trips.values()],
            "reliability": {s: _conv.unstructure(r) for s, r in self.reliability.records.items()},
            "exec_quality": self.exec_quality.snapshot(),
            "correlation": self.correlation.snapshot(),
            "rate": self.rate.history(),
        }

    def restore(self, data: dict[str, Any]) -> None:
        from fractald.core.risk.reliability import StrategyRecord

        if data.get("version") != 1:
            raise ValueError(f"unknown engine snapshot version {data.get('version')!r}; expected 1")
        self.last_ts = int(data["last_ts"])
        self.last_funding_ts = int(data["last_funding_ts"])
        self.paused = bool(data["paused"])
        self.orders = {
            o.client_order_id: o for o in (_conv.structure(d, Order) for d in data["orders"])
        }
        self.closed_orders = collections.deque(data["closed_orders"])
        self.brackets = {
            b.signal_id: b for b in (_conv.structure(d, Bracket) for d in data["brackets"])
        }
        self.seen_signals = collections.OrderedDict((s, None) for s in data["seen_signals"])
        self.feed = {h.symbol: h for h in (_conv.structure(d, FeedHealth) for d in data["feed"])}
        self.last_price = {k: float(v) for k, v in data["last_price"].items()}
        self.atr = {k: _conv.structure(v, _Atr) for k, v in data["atr"].items()}
        self.accounting.restore(data["accounting"])
        self.breakers.restore(
            data["breakers"],
            {t.breaker: t for t in (_conv.structure(d, Trip) for d in data["trips"])},
        )
        self.reliability.records = {
            s: _conv.structure(r, StrategyRecord) for s, r in data["reliability"].items()
        }
        self.exec_quality.restore(data["exec_quality"])
        self.correlation.restore(data["correlation"])
        self.rate = OrderRateLimiter(self.rate.limit, self.rate.window_ms, data["rate"])
