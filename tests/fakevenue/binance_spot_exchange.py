"""The book of a fake Binance spot venue: balances, orders, stop orders, trades, user-data events.

Plain synchronous state for `binance_spot_server.FakeBinanceSpot` (signed REST on /api/v3 and
the WebSocket API's user data subscription). It answers with Binance's spot field names and
error shapes:

- Balances are coins: a BUY locks quote (USDT) and a SELL locks the base asset while the order
  is open; an order that needs more than is free is refused with -2010 "Account has
  insufficient balance for requested action." (how spot says "no short selling").
- newClientOrderId must be unique among open orders: -2010 "Duplicate order sent.".
- Filters from exchangeInfo: PRICE_FILTER (-1013 "Filter failure: PRICE_FILTER"), LOT_SIZE,
  NOTIONAL (-1013 with the filter's name).
- MARKET fills at the price; LIMIT crosses at once as taker or rests (maker when traded
  through); LIMIT_MAKER that would take is refused (-2010 "Order would immediately match and
  take."); IOC/FOK remainders expire; STOP_LOSS_LIMIT / TAKE_PROFIT_LIMIT rest untriggered
  (a stop that would trigger at once: -2010 "Stop price would trigger immediately.") and
  become a LIMIT at their price when the last price crosses the stop price.
- Fees 0.1 % as Binance charges them (`fee_in`): "base" (Binance's default) takes a BUY's
  commission out of the coins bought and a SELL's out of the USDT received; "bnb" (BNB fee
  burn on) takes 0.075 % of the quote amount in BNB at `prices["BNBUSDT"]`, falling back to
  "base" when the BNB balance is short; "quote" takes every fee in USDT.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

from fakevenue.binance_exchange import ApiError, Symbol

FEE = 0.001
OPEN = ("NEW", "PARTIALLY_FILLED")
TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
         "TAKE_PROFIT_LIMIT")
CONDITIONAL = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
NO_BALANCE = "Account has insufficient balance for requested action."


@attrs.define
class SpotOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float = 0.0
    stop: float = 0.0
    tif: str = "GTC"
    status: str = "NEW"
    executed: float = 0.0
    cum_quote: float = 0.0
    locked: float = 0.0  # what this order holds of its account's balance (quote for a BUY)
    triggered: bool = False
    time: int = 0

    def reply(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_id, "price": f"{self.price:.8f}",
                "origQty": f"{self.qty:.8f}", "executedQty": f"{self.executed:.8f}",
                "cummulativeQuoteQty": f"{self.cum_quote:.8f}", "status": self.status,
                "timeInForce": self.tif, "type": self.type, "side": self.side,
                "stopPrice": f"{self.stop:.8f}", "icebergQty": "0.00000000", "time": self.time,
                "updateTime": self.time, "isWorking": self.type not in CONDITIONAL or self.triggered,
                "workingTime": self.time, "origQuoteOrderQty": "0.00000000",
                "selfTradePreventionMode": "EXPIRE_MAKER"}

    def due(self, price: float) -> bool:
        stop_loss = self.type.startswith("STOP_LOSS")
        if self.side == "SELL":
            return price <= self.stop if stop_loss else price >= self.stop
        return price >= self.stop if stop_loss else price <= self.stop


@attrs.define
class SpotAccount:
    api_key: str
    secret: str
    free: dict[str, float] = attrs.Factory(dict)
    locked: dict[str, float] = attrs.Factory(dict)
    orders: dict[int, SpotOrder] = attrs.Factory(dict)
    trades: list[dict[str, Any]] = attrs.Factory(list)
    submissions: Counter[str] = attrs.Factory(Counter)

    def total(self, asset: str) -> float:
        return self.free.get(asset, 0.0) + self.locked.get(asset, 0.0)


def base_of(symbol: str) -> str:
    return symbol[:-4]


class SpotExchange:
    """Symbols quoted in USDT, a last price per symbol, accounts by API key; `emit(api_key,
    event)` gets every user-data event (the server sends them to that account's subscribers)."""

    def __init__(self, symbols: list[Symbol], prices: dict[str, float],
                 now_ms: Callable[[], int]) -> None:
        self.symbols = {s.name: s for s in symbols}
        self.prices = dict(prices)
        self.now_ms = now_ms
        self.accounts: dict[str, SpotAccount] = {}
        self.ids = itertools.count(7000)
        self.trade_ids = itertools.count(900_000)
        self.emit: Callable[[str, dict[str, Any]], None] = lambda key, event: None
        self.fee_in = "base"  # "base" | "bnb" | "quote": see the module's docstring

    def add_account(self, api_key: str, secret: str, wallet: float = 10_000.0) -> SpotAccount:
        self.accounts[api_key] = SpotAccount(api_key, secret, {"USDT": wallet})
        return self.accounts[api_key]

    def symbol(self, name: str | None) -> Symbol:
        if not name or name not in self.symbols:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.symbols[name]

    # -- reads -------------------------------------------------------------------------

    def exchange_info(self) -> dict[str, Any]:
        def row(s: Symbol) -> dict[str, Any]:
            return {"symbol": s.name, "status": "TRADING", "baseAsset": base_of(s.name),
                    "baseAssetPrecision": 8, "quoteAsset": "USDT", "quotePrecision": 8,
                    "orderTypes": list(TYPES), "ocoAllowed": True, "otoAllowed": True,
                    "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                    "permissionSets": [["SPOT"]],
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": f"{s.tick:g}",
                         "maxPrice": "1000000.00000000", "tickSize": f"{s.tick:g}"},
                        {"filterType": "LOT_SIZE", "minQty": f"{s.min_qty:g}",
                         "maxQty": "9000.00000000", "stepSize": f"{s.step:g}"},
                        {"filterType": "NOTIONAL", "minNotional": f"{s.min_notional:g}",
                         "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                         "applyMaxToMarket": False, "avgPriceMins": 5}]}
        return {"timezone": "UTC", "serverTime": self.now_ms(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": 6000},
                               {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                                "limit": 100},
                               {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                                "limit": 200000}],
                "exchangeFilters": [], "symbols": [row(s) for s in self.symbols.values()]}

    def account_reply(self, acct: SpotAccount) -> dict[str, Any]:
        assets = sorted(set(acct.free) | set(acct.locked))
        return {"makerCommission": 10, "takerCommission": 10, "canTrade": True,
                "canWithdraw": True, "canDeposit": True, "accountType": "SPOT",
                "updateTime": self.now_ms(), "permissions": ["SPOT"],
                "balances": [{"asset": a, "free": f"{acct.free.get(a, 0.0):.8f}",
                              "locked": f"{acct.locked.get(a, 0.0):.8f}"} for a in assets]}

    def find_order(self, acct: SpotAccount, client_id: str | None, order_id: str | None) -> SpotOrder:
        if not client_id and not order_id:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                           "both were empty/null!")
        for o in sorted(acct.orders.values(), key=lambda o: -o.order_id):
            if (client_id and o.client_id == client_id) or (order_id and str(o.order_id) == order_id):
                return o
        raise ApiError(400, -2013, "Order does not exist.")

    # -- orders --------------------------------------------------------------------------

    def _check_filters(self, sym: Symbol, qty: float, price: float) -> None:
        if qty < sym.min_qty - 1e-12 or abs(round(qty / sym.step) * sym.step - qty) > 1e-9:
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        if price and abs(round(price / sym.tick) * sym.tick - price) > 1e-9:
            raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty * (price or self.prices[sym.name]) < sym.min_notional - 1e-9:
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")

    def new_order(self, acct: SpotAccount, p: dict[str, str]) -> dict[str, Any]:
        sym = self.symbol(p.get("symbol"))
        kind, side = p.get("type", ""), p.get("side", "")
        if kind not in TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if "reduceOnly" in p:
            raise ApiError(400, -1104, "Not all sent parameters were read; read 8 parameter(s) "
                           "but was sent 9.")
        needs_tif = kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        if needs_tif and p.get("timeInForce") not in ("GTC", "IOC", "FOK"):
            raise ApiError(400, -1102, "Mandatory parameter 'timeInForce' was not sent, was "
                           "empty/null, or malformed.")
        qty = float(p.get("quantity", "0") or 0)
        price = float(p.get("price", "0") or 0)
        stop = float(p.get("stopPrice", "0") or 0)
        if kind != "MARKET" and kind not in ("STOP_LOSS", "TAKE_PROFIT") and not price:
            raise ApiError(400, -1102, "Mandatory parameter 'price' was not sent, was empty/null, "
                           "or malformed.")
        if kind in CONDITIONAL and not stop:
            raise ApiError(400, -1102, "Mandatory parameter 'stopPrice' was not sent, was "
                           "empty/null, or malformed.")
        cid = p.get("newClientOrderId") or f"web_{next(self.ids)}"
        if any(o.client_id == cid and o.status in OPEN for o in acct.orders.values()):
            raise ApiError(400, -2010, "Duplicate order sent.")
        self._check_filters(sym, qty, price)
        last = self.prices[sym.name]
        order = SpotOrder(next(self.ids), cid, sym.name, side, kind, qty, price, stop,
                          p.get("timeInForce", "GTC") if needs_tif else "GTC", time=self.now_ms())
        if kind in CONDITIONAL and order.due(last):
            raise ApiError(400, -2010, "Stop price would trigger immediately.")
        if kind == "LIMIT_MAKER" and self._crosses(order, last):
            raise ApiError(400, -2010, "Order would immediately match and take.")
        self._lock(acct, order, price or stop or last)
        acct.orders[order.order_id] = order
        acct.submissions[cid] += 1
        self._execution(acct, order, "NEW")
        self._account_event(acct, sym.name)
        if kind not in CONDITIONAL:
            self._match(acct, order, last)
        reply = order.reply()
        reply["fills"] = [t["_fill"] for t in acct.trades if t["orderId"] == order.order_id]
        return reply

    def _lock(self, acct: SpotAccount, order: SpotOrder, price: float) -> None:
        asset = "USDT" if order.side == "BUY" else base_of(order.symbol)
        fee = FEE if self.fee_in == "quote" else 0.0
        amount = order.qty * price * (1 + fee) if order.side == "BUY" else order.qty
        if acct.free.get(asset, 0.0) < amount - 1e-9:
            raise ApiError(400, -2010, NO_BALANCE)
        acct.free[asset] = acct.free.get(asset, 0.0) - amount
        acct.locked[asset] = acct.locked.get(asset, 0.0) + amount
        order.locked = amount

    def _unlock(self, acct: SpotAccount, order: SpotOrder, amount: float) -> None:
        asset = "USDT" if order.side == "BUY" else base_of(order.symbol)
        amount = min(amount, order.locked)
        order.locked -= amount
        acct.locked[asset] = acct.locked.get(asset, 0.0) - amount
        acct.free[asset] = acct.free.get(asset, 0.0) + amount

    @staticmethod
    def _crosses(order: SpotOrder, last: float) -> bool:
        return order.type == "MARKET" or (order.side == "BUY" and order.price >= last) or (
            order.side == "SELL" and order.price <= last)

    def _match(self, acct: SpotAccount, order: SpotOrder, last: float) -> None:
        if self._crosses(order, last):
            self._fill(acct, order, order.qty - order.executed, last, maker=False)
        elif order.tif in ("IOC", "FOK"):
            self._finish(acct, order, "EXPIRED")

    def cancel_order(self, acct: SpotAccount, p: dict[str, str]) -> dict[str, Any]:
        self.symbol(p.get("symbol"))
        order = self.find_order(acct, p.get("origClientOrderId"), p.get("orderId"))
        if order.status not in OPEN:
            raise ApiError(400, -2011, "Unknown order sent.")
        self._finish(acct, order, "CANCELED", cancel_id=p.get("newClientOrderId") or
                     f"cancel_{next(self.ids)}")
        reply = order.reply()
        reply["origClientOrderId"] = order.client_id
        return reply

    # -- the market --------------------------------------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        """Move the market: due stops trigger (become limits), limits traded through fill."""
        self.prices[symbol] = price
        for acct in self.accounts.values():
            for order in sorted(acct.orders.values(), key=lambda o: o.order_id):
                if order.symbol != symbol or order.status not in OPEN:
                    continue
                if order.type in CONDITIONAL and not order.triggered:
                    if not order.due(price):
                        continue
                    order.triggered = True
                    if not order.price:  # STOP_LOSS / TAKE_PROFIT: a market order now
                        self._fill(acct, order, order.qty - order.executed, price, maker=False)
                        continue
                    if self._crosses(order, price):
                        self._fill(acct, order, order.qty - order.executed, price, maker=False)
                        continue
                if order.type != "MARKET" and self._crosses(order, price) and order.status in OPEN:
                    self._fill(acct, order, order.qty - order.executed, order.price, maker=True)

    def _fill(self, acct: SpotAccount, order: SpotOrder, qty: float, price: float, *,
              maker: bool) -> None:
        if order.type != "MARKET" and order.price:
            # A limit never trades beyond its price (a taker limit fills at the best price).
            price = min(price, order.price) if order.side == "BUY" else max(price, order.price)
        quote = qty * price
        base = base_of(order.symbol)
        fee, fee_asset = self._commission(acct, order.side, base, qty, quote)
        if order.side == "BUY":
            quote_fee = fee if fee_asset == "USDT" else 0.0
            self._unlock(acct, order, quote + quote_fee if order.type != "MARKET" else order.locked)
            acct.free["USDT"] = acct.free.get("USDT", 0.0) - quote
            acct.free[base] = acct.free.get(base, 0.0) + qty
        else:
            self._unlock(acct, order, qty)
            acct.free[base] = acct.free.get(base, 0.0) - qty
            acct.free["USDT"] = acct.free.get("USDT", 0.0) + quote
        acct.free[fee_asset] = acct.free.get(fee_asset, 0.0) - fee
        order.executed += qty
        order.cum_quote += quote
        order.status = "FILLED" if order.executed >= order.qty - 1e-12 else "PARTIALLY_FILLED"
        if order.status == "FILLED" and order.locked:
            self._unlock(acct, order, order.locked)
        trade_id = next(self.trade_ids)
        acct.trades.append({"symbol": order.symbol, "id": trade_id, "orderId": order.order_id,
                            "orderListId": -1, "price": f"{price:.8f}", "qty": f"{qty:.8f}",
                            "quoteQty": f"{quote:.8f}", "commission": f"{fee:.8f}",
                            "commissionAsset": fee_asset, "time": self.now_ms(),
                            "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True,
                            "_fill": {"price": f"{price:.8f}", "qty": f"{qty:.8f}",
                                      "commission": f"{fee:.8f}", "commissionAsset": fee_asset,
                                      "tradeId": trade_id}})
        self._execution(acct, order, "TRADE", last_qty=qty, last_price=price, fee=fee,
                        fee_asset=fee_asset,
                        trade_id=trade_id, maker=maker)
        self._account_event(acct, order.symbol)

    def _commission(self, acct: SpotAccount, side: str, base: str, qty: float,
                    quote: float) -> tuple[float, str]:
        """(commission, its asset) of one trade, as Binance charges it under `fee_in`."""
        if self.fee_in == "bnb":
            bnb = quote * FEE * 0.75 / self.prices["BNBUSDT"]
            if acct.free.get("BNB", 0.0) >= bnb:
                return bnb, "BNB"
        if self.fee_in == "quote" or side == "SELL":
            return quote * FEE, "USDT"
        return qty * FEE, base

    def _finish(self, acct: SpotAccount, order: SpotOrder, status: str, cancel_id: str = "") -> None:
        order.status = status
        self._unlock(acct, order, order.locked)
        self._execution(acct, order, status, cancel_id=cancel_id)
        self._account_event(acct, order.symbol)

    def my_trades(self, acct: SpotAccount, symbol: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in t.items() if k != "_fill"} for t in acct.trades
                if t["symbol"] == symbol]

    # -- user data events ----------------------------------------------------------------

    def _execution(self, acct: SpotAccount, order: SpotOrder, exec_type: str, *,
                   last_qty: float = 0.0, last_price: float = 0.0, fee: float = 0.0,
                   fee_asset: str = "",
                   trade_id: int = -1, maker: bool = False, cancel_id: str = "") -> None:
        now = self.now_ms()
        canceled = exec_type == "CANCELED"
        self.emit(acct.api_key, {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": cancel_id if canceled else order.client_id, "S": order.side, "o": order.type,
            "f": order.tif, "q": f"{order.qty:.8f}", "p": f"{order.price:.8f}",
            "P": f"{order.stop:.8f}", "F": "0.00000000", "g": -1,
            "C": order.client_id if canceled else "", "x": exec_type, "X": order.status,
            "r": "NONE", "i": order.order_id, "l": f"{last_qty:.8f}", "z": f"{order.executed:.8f}",
            "L": f"{last_price:.8f}", "n": f"{fee:.8f}", "N": fee_asset or None, "T": now,
            "t": trade_id, "v": 0, "I": next(self.ids), "w": order.status in OPEN,
            "m": maker, "M": False, "O": order.time, "Z": f"{order.cum_quote:.8f}",
            "Y": f"{last_qty * last_price:.8f}", "Q": "0.00000000", "W": order.time,
            "V": "EXPIRE_MAKER"})

    def _account_event(self, acct: SpotAccount, symbol: str) -> None:
        now = self.now_ms()
        self.emit(acct.api_key, {
            "e": "outboundAccountPosition", "E": now, "u": now,
            "B": [{"a": a, "f": f"{acct.free.get(a, 0.0):.8f}", "l": f"{acct.locked.get(a, 0.0):.8f}"}
                  for a in ("USDT", base_of(symbol))]})
