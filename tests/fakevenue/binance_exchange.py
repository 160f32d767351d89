"""The book of a fake Binance USD-M futures venue: accounts, orders, algo orders, positions, fills.

Plain synchronous state, driven by the HTTP/WS shell in
`binance_exchange_server.py` and by the test (which moves the price).
Replies use Binance's field names and error shapes
(`{"code": -2019, "msg": "Margin is insufficient."}`), so a client sees what
it would see at Binance:

- newClientOrderId / clientAlgoId must be unique among *open* orders (as
  Binance documents); reusing a finished one is accepted, as at Binance,
  and every accepted id is counted in `submissions` so a test can prove
  nothing was sent twice.
- MARKET fills at the price; LIMIT crosses at once as taker or rests and
  fills as maker when the price trades through it; a new GTX that would take
  is refused with -5022 (and never recorded, as Binance says); IOC/FOK
  remainders expire.
- Conditional orders (STOP_MARKET, TAKE_PROFIT_MARKET) live in the "algo
  service": on the trigger they become a MARKET order in the matching engine
  (`actualOrderId`), reduce-only capped at the position.
- One-way mode, one margin asset (USDT), fees 4 bps taker / 2 bps maker.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import attrs

TAKER_FEE = 0.0004
MAKER_FEE = 0.0002
OPEN = ("NEW", "PARTIALLY_FILLED")


class ApiError(Exception):
    """A Binance error reply: HTTP status, code, msg."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


@attrs.define
class Symbol:
    name: str
    tick: float = 0.1
    step: float = 0.001
    min_qty: float = 0.001
    min_notional: float = 100.0


@attrs.define
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float = 0.0
    tif: str = "GTC"
    reduce_only: bool = False
    status: str = "NEW"
    executed: float = 0.0
    cum_quote: float = 0.0
    orig_type: str = ""
    time: int = 0

    def reply(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed if self.executed else 0.0
        return {"orderId": self.order_id, "symbol": self.symbol, "status": self.status,
                "clientOrderId": self.client_id, "price": f"{self.price:g}", "avgPrice": f"{avg:.5f}",
                "origQty": f"{self.qty:g}", "executedQty": f"{self.executed:g}",
                "cumQty": f"{self.executed:g}", "cumQuote": f"{self.cum_quote:.5f}",
                "timeInForce": self.tif, "type": self.type, "reduceOnly": self.reduce_only,
                "closePosition": False, "side": self.side, "positionSide": "BOTH",
                "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
                "origType": self.orig_type or self.type, "priceMatch": "NONE",
                "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
                "time": self.time, "updateTime": self.time}


@attrs.define
class AlgoOrder:
    algo_id: int
    client_id: str
    symbol: str
    side: str
    type: str  # STOP_MARKET | TAKE_PROFIT_MARKET
    qty: float
    trigger: float
    reduce_only: bool = False
    close_position: bool = False
    status: str = "NEW"
    actual_order_id: str = ""
    executed: float = 0.0
    avg_price: float = 0.0
    reject_reason: str = ""
    time: int = 0

    def reply(self) -> dict[str, Any]:
        return {"algoId": self.algo_id, "clientAlgoId": self.client_id, "algoType": "CONDITIONAL",
                "orderType": self.type, "symbol": self.symbol, "side": self.side,
                "positionSide": "BOTH", "timeInForce": "GTC", "quantity": f"{self.qty:g}",
                "algoStatus": self.status, "actualOrderId": self.actual_order_id,
                "actualPrice": f"{self.avg_price:.5f}",
                "triggerPrice": f"{self.trigger:g}", "price": "0.000",
                "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "MARK_PRICE",
                "priceMatch": "NONE", "closePosition": self.close_position, "priceProtect": True,
                "reduceOnly": self.reduce_only, "createTime": self.time, "updateTime": self.time,
                "triggerTime": 0, "goodTillDate": 0}

    def due(self, price: float) -> bool:
        stop = self.type.startswith("STOP")
        if self.side == "SELL":
            return price <= self.trigger if stop else price >= self.trigger
        return price >= self.trigger if stop else price <= self.trigger


@attrs.define
class Position:
    qty: float = 0.0
    entry: float = 0.0


@attrs.define
class Account:
    api_key: str
    secret: str
    wallet: float = 10_000.0
    leverage: dict[str, int] = attrs.Factory(dict)
    margin_type: dict[str, str] = attrs.Factory(dict)
    positions: dict[str, Position] = attrs.Factory(dict)
    orders: dict[int, Order] = attrs.Factory(dict)
    algos: dict[int, AlgoOrder] = attrs.Factory(dict)
    trades: list[dict[str, Any]] = attrs.Factory(list)
    submissions: Counter[str] = attrs.Factory(Counter)


class Exchange:
    """One venue: symbols, a price per symbol, accounts by API key. `emit(api_key, event)`
    is called for every user-data event (the server pushes them to that account's streams)."""

    def __init__(self, symbols: list[Symbol], prices: dict[str, float],
                 now_ms: Callable[[], int]) -> None:
        self.symbols = {s.name: s for s in symbols}
        self.prices = dict(prices)
        self.now_ms = now_ms
        self.accounts: dict[str, Account] = {}
        self.ids = itertools.count(1000)
        self.trade_ids = itertools.count(500_000)
        self.emit: Callable[[str, dict[str, Any]], None] = lambda key, event: None

    def add_account(self, api_key: str, secret: str, wallet: float = 10_000.0) -> Account:
        self.accounts[api_key] = Account(api_key, secret, wallet)
        return self.accounts[api_key]

    # -- reads -------------------------------------------------------------------

    def symbol(self, name: str | None) -> Symbol:
        if not name or name not in self.symbols:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.symbols[name]

    def exchange_info(self) -> dict[str, Any]:
        def row(s: Symbol) -> dict[str, Any]:
            return {"symbol": s.name, "pair": s.name, "contractType": "PERPETUAL", "status": "TRADING",
                    "baseAsset": s.name[:-4], "quoteAsset": "USDT", "marginAsset": "USDT",
                    "filters": [
                        {"filterType": "PRICE_FILTER", "minPrice": "0.1", "maxPrice": "4529764",
                         "tickSize": f"{s.tick:g}"},
                        {"filterType": "LOT_SIZE", "minQty": f"{s.min_qty:g}", "maxQty": "1000",
                         "stepSize": f"{s.step:g}"},
                        {"filterType": "MIN_NOTIONAL", "notional": f"{s.min_notional:g}"}],
                    "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                                   "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}
        return {"timezone": "UTC", "serverTime": self.now_ms(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": 2400},
                               {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 1200}],
                "symbols": [row(s) for s in self.symbols.values()]}

    def unrealized(self, acct: Account) -> float:
        return sum(p.qty * (self.prices[s] - p.entry) for s, p in acct.positions.items() if p.qty)

    def initial_margin(self, acct: Account) -> float:
        return sum(abs(p.qty) * self.prices[s] / acct.leverage.get(s, 20)
                   for s, p in acct.positions.items() if p.qty)

    def account_reply(self, acct: Account) -> dict[str, Any]:
        upnl = self.unrealized(acct)
        im = self.initial_margin(acct)
        equity = acct.wallet + upnl
        return {"totalInitialMargin": f"{im:.8f}", "totalMaintMargin": f"{im / 4:.8f}",
                "totalWalletBalance": f"{acct.wallet:.8f}", "totalUnrealizedProfit": f"{upnl:.8f}",
                "totalMarginBalance": f"{equity:.8f}", "availableBalance": f"{equity - im:.8f}",
                "maxWithdrawAmount": f"{equity - im:.8f}",
                "assets": [{"asset": "USDT", "walletBalance": f"{acct.wallet:.8f}"}],
                "positions": [{"symbol": s, "positionAmt": f"{p.qty:g}"}
                              for s, p in acct.positions.items()]}

    def position_risk(self, acct: Account) -> list[dict[str, Any]]:
        out = []
        for name in self.symbols:
            p = acct.positions.get(name, Position())
            out.append({"symbol": name, "positionSide": "BOTH", "positionAmt": f"{p.qty:g}",
                        "entryPrice": f"{p.entry:.5f}", "markPrice": f"{self.prices[name]:.5f}",
                        "unRealizedProfit": f"{p.qty * (self.prices[name] - p.entry):.8f}",
                        "leverage": str(acct.leverage.get(name, 20)),
                        "marginType": acct.margin_type.get(name, "cross"),
                        "updateTime": self.now_ms()})
        return out

    def find_order(self, acct: Account, client_id: str | None, order_id: str | None) -> Order:
        for o in sorted(acct.orders.values(), key=lambda o: -o.order_id):
            if (client_id and o.client_id == client_id) or (order_id and str(o.order_id) == order_id):
                return o
        raise ApiError(400, -2013, "Order does not exist.")

    def find_algo(self, acct: Account, client_id: str | None, algo_id: str | None) -> AlgoOrder:
        for a in sorted(acct.algos.values(), key=lambda a: -a.algo_id):
            if (client_id and a.client_id == client_id) or (algo_id and str(a.algo_id) == algo_id):
                return a
        raise ApiError(400, -2013, "Order does not exist.")

    # -- orders ------------------------------------------------------------------

    def _check_new(self, acct: Account, client_id: str, symbol: Symbol, qty: float) -> None:
        if not client_id or len(client_id) > 36:
            raise ApiError(400, -4015, "Client order id is not valid.")
        open_ids = {o.client_id for o in acct.orders.values() if o.status in OPEN}
        open_ids |= {a.client_id for a in acct.algos.values() if a.status == "NEW"}
        if client_id in open_ids:
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        if qty < symbol.min_qty - 1e-12 or abs(round(qty / symbol.step) * symbol.step - qty) > 1e-9:
            raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")

    def new_order(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        sym = self.symbol(p.get("symbol"))
        kind, side = p.get("type", ""), p.get("side", "")
        if kind in ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"):
            raise ApiError(400, -4120, "Order type not supported for this endpoint. Please use the "
                           "Algo Order API endpoints instead.")
        if kind not in ("MARKET", "LIMIT") or side not in ("BUY", "SELL"):
            raise ApiError(400, -1116, "Invalid orderType.")
        qty = float(p.get("quantity", "0"))
        cid = p.get("newClientOrderId") or f"web_{next(self.ids)}"
        self._check_new(acct, cid, sym, qty)
        price = float(p.get("price", "0") or 0)
        if kind == "LIMIT" and abs(round(price / sym.tick) * sym.tick - price) > 1e-9:
            raise ApiError(400, -4014, "Price not increased by tick size.")
        mark = self.prices[sym.name]
        if qty * (price or mark) < sym.min_notional and p.get("reduceOnly") != "true":
            raise ApiError(400, -4164, f"Order's notional must be no smaller than "
                           f"{sym.min_notional:g} (unless you choose reduce only).")
        reduce_only = p.get("reduceOnly") == "true"
        if reduce_only and not self._reducible(acct, sym.name, side):
            raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
        if not reduce_only and self._margin_short(acct, sym.name, qty * (price or mark)):
            raise ApiError(400, -2019, "Margin is insufficient.")
        order = Order(next(self.ids), cid, sym.name, side, kind, qty, price,
                      p.get("timeInForce", "GTC") if kind == "LIMIT" else "GTC", reduce_only,
                      time=self.now_ms())
        if order.tif == "GTX" and ((side == "BUY" and price >= mark) or (side == "SELL" and price <= mark)):
            raise ApiError(400, -5022, "Due to the order could not be executed as maker, the Post "
                           "Only order will be rejected. The order will not be recorded in the "
                           "order history")
        acct.orders[order.order_id] = order
        acct.submissions[cid] += 1
        self._order_event(acct, order, "NEW")
        self._match_new(acct, order)
        return order.reply()

    def _reducible(self, acct: Account, symbol: str, side: str) -> bool:
        pos = acct.positions.get(symbol, Position()).qty
        return (pos > 0 and side == "SELL") or (pos < 0 and side == "BUY")

    def _margin_short(self, acct: Account, symbol: str, notional: float) -> bool:
        equity = acct.wallet + self.unrealized(acct)
        needed = notional / acct.leverage.get(symbol, 20)
        return equity - self.initial_margin(acct) < needed

    def _match_new(self, acct: Account, order: Order) -> None:
        mark = self.prices[order.symbol]
        crosses = order.type == "MARKET" or (order.side == "BUY" and order.price >= mark) or (
            order.side == "SELL" and order.price <= mark)
        if crosses and order.tif == "GTX":
            self._finish(acct, order, "EXPIRED")
        elif crosses:
            self._fill(acct, order, order.qty - order.executed, mark, maker=False)
        elif order.tif in ("IOC", "FOK"):
            self._finish(acct, order, "EXPIRED")

    def cancel_order(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        self.symbol(p.get("symbol"))
        order = self.find_order(acct, p.get("origClientOrderId"), p.get("orderId"))
        if order.status not in OPEN:
            raise ApiError(400, -2011, "Unknown order sent.")
        self._finish(acct, order, "CANCELED")
        return order.reply()

    def modify_order(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        order = self.find_order(acct, p.get("origClientOrderId"), p.get("orderId"))
        if order.status not in OPEN or order.type != "LIMIT":
            raise ApiError(400, -2013, "Order does not exist.")
        order.qty, order.price = float(p["quantity"]), float(p["price"])
        self._order_event(acct, order, "AMENDMENT")
        self._match_new(acct, order)
        return order.reply()

    def new_algo(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        sym = self.symbol(p.get("symbol"))
        if p.get("algoType") != "CONDITIONAL":
            raise ApiError(400, -1102, "Mandatory parameter 'algoType' was not sent, was empty/null, "
                           "or malformed.")
        kind, side = p.get("type", ""), p.get("side", "")
        if kind not in ("STOP_MARKET", "TAKE_PROFIT_MARKET") or side not in ("BUY", "SELL"):
            raise ApiError(400, -1116, "Invalid orderType.")
        close = p.get("closePosition") == "true"
        qty = 0.0 if close else float(p.get("quantity", "0"))
        cid = p.get("clientAlgoId") or f"algo_{next(self.ids)}"
        self._check_new(acct, cid, sym, sym.min_qty if close else qty)
        trigger = float(p.get("triggerPrice", "0"))
        algo = AlgoOrder(next(self.ids), cid, sym.name, side, kind, qty, trigger,
                         p.get("reduceOnly") == "true", close, time=self.now_ms())
        if algo.due(self.prices[sym.name]):
            raise ApiError(400, -2021, "Order would immediately trigger.")
        acct.algos[algo.algo_id] = algo
        acct.submissions[cid] += 1
        self._algo_event(acct, algo)
        return algo.reply()

    def cancel_algo(self, acct: Account, p: dict[str, str]) -> dict[str, Any]:
        algo = self.find_algo(acct, p.get("clientAlgoId"), p.get("algoId"))
        if algo.status != "NEW":
            raise ApiError(400, -2011, "Unknown order sent.")
        algo.status = "CANCELED"
        self._algo_event(acct, algo)
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_id, "code": "200",
                "msg": "success"}

    # -- the market ----------------------------------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        """Move the market: resting limits that trade through fill as maker, due stops trigger."""
        self.prices[symbol] = price
        for acct in self.accounts.values():
            for order in sorted(acct.orders.values(), key=lambda o: o.order_id):
                if order.symbol == symbol and order.status in OPEN and order.type == "LIMIT":
                    through = (order.side == "BUY" and price <= order.price) or (
                        order.side == "SELL" and price >= order.price)
                    if through:
                        self._fill(acct, order, order.qty - order.executed, order.price, maker=True)
            for algo in sorted(acct.algos.values(), key=lambda a: a.algo_id):
                if algo.symbol == symbol and algo.status == "NEW" and algo.due(price):
                    self._trigger(acct, algo, price)

    def _trigger(self, acct: Account, algo: AlgoOrder, price: float) -> None:
        pos = acct.positions.get(algo.symbol, Position()).qty
        qty = algo.qty
        if algo.close_position or algo.reduce_only:
            if not self._reducible(acct, algo.symbol, algo.side):
                algo.status, algo.reject_reason = "REJECTED", "Reduce Only reject"
                self._algo_event(acct, algo)
                return
            qty = abs(pos) if algo.close_position else min(qty, abs(pos))
        order = Order(next(self.ids), f"autoclose-{algo.algo_id}", algo.symbol, algo.side, "MARKET",
                      qty, 0.0, "GTC", algo.reduce_only or algo.close_position,
                      orig_type=algo.type, time=self.now_ms())
        acct.orders[order.order_id] = order
        algo.status, algo.actual_order_id = "TRIGGERED", str(order.order_id)
        self._algo_event(acct, algo)
        self._order_event(acct, order, "NEW")
        self._fill(acct, order, qty, price, maker=False)
        algo.status, algo.executed = "FINISHED", order.executed
        algo.avg_price = order.cum_quote / order.executed if order.executed else 0.0
        self._algo_event(acct, algo)

    def _fill(self, acct: Account, order: Order, qty: float, price: float, *, maker: bool) -> None:
        if order.reduce_only:
            qty = min(qty, abs(acct.positions.get(order.symbol, Position()).qty))
        if qty <= 1e-12:
            self._finish(acct, order, "EXPIRED")
            return
        fee = qty * price * (MAKER_FEE if maker else TAKER_FEE)
        realized = self._apply_position(acct, order.symbol, qty if order.side == "BUY" else -qty, price)
        acct.wallet += realized - fee
        order.executed += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed >= order.qty - 1e-12 else "PARTIALLY_FILLED"
        trade_id = next(self.trade_ids)
        acct.trades.append({"symbol": order.symbol, "id": trade_id, "orderId": order.order_id,
                            "side": order.side, "price": f"{price:g}", "qty": f"{qty:g}",
                            "realizedPnl": f"{realized:.8f}", "quoteQty": f"{qty * price:.8f}",
                            "commission": f"{fee:.8f}", "commissionAsset": "USDT",
                            "time": self.now_ms(), "positionSide": "BOTH", "buyer": order.side == "BUY",
                            "maker": maker})
        self._order_event(acct, order, "TRADE", last_qty=qty, last_price=price, fee=fee,
                          trade_id=trade_id, maker=maker)
        self._account_event(acct, order.symbol)
        if order.status == "PARTIALLY_FILLED" and order.reduce_only:
            self._finish(acct, order, "EXPIRED")  # nothing left to reduce

    def _apply_position(self, acct: Account, symbol: str, signed: float, price: float) -> float:
        pos = acct.positions.setdefault(symbol, Position())
        realized = 0.0
        if pos.qty and (pos.qty > 0) != (signed > 0):
            closing = min(abs(signed), abs(pos.qty))
            realized = closing * (price - pos.entry) * (1 if pos.qty > 0 else -1)
        new_qty = pos.qty + signed
        if abs(new_qty) < 1e-12:
            pos.qty, pos.entry = 0.0, 0.0
        elif pos.qty == 0 or (pos.qty > 0) != (new_qty > 0):
            pos.qty, pos.entry = new_qty, price
        elif (pos.qty > 0) == (signed > 0):
            pos.entry = (pos.entry * abs(pos.qty) + price * abs(signed)) / abs(new_qty)
            pos.qty = new_qty
        else:
            pos.qty = new_qty
        return realized

    def _finish(self, acct: Account, order: Order, status: str) -> None:
        order.status = status
        self._order_event(acct, order, status)

    # -- user data events ----------------------------------------------------------

    def _order_event(self, acct: Account, order: Order, exec_type: str, *, last_qty: float = 0.0,
                     last_price: float = 0.0, fee: float = 0.0, trade_id: int = 0,
                     maker: bool = False) -> None:
        now = self.now_ms()
        avg = order.cum_quote / order.executed if order.executed else 0.0
        self.emit(acct.api_key, {
            "e": "ORDER_TRADE_UPDATE", "E": now, "T": now,
            "o": {"s": order.symbol, "c": order.client_id, "S": order.side, "o": order.type,
                  "f": order.tif, "q": f"{order.qty:g}", "p": f"{order.price:g}", "ap": f"{avg:g}",
                  "sp": "0", "x": exec_type, "X": order.status, "i": order.order_id,
                  "l": f"{last_qty:g}", "z": f"{order.executed:g}", "L": f"{last_price:g}",
                  "N": "USDT", "n": f"{fee:.8f}", "T": now, "t": trade_id, "b": "0", "a": "0",
                  "m": maker, "R": order.reduce_only, "wt": "CONTRACT_PRICE",
                  "ot": order.orig_type or order.type, "ps": "BOTH", "cp": False, "rp": "0",
                  "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}})

    def _algo_event(self, acct: Account, algo: AlgoOrder) -> None:
        now = self.now_ms()
        self.emit(acct.api_key, {
            "e": "ALGO_UPDATE", "T": now, "E": now,
            "o": {"caid": algo.client_id, "aid": algo.algo_id, "at": "CONDITIONAL", "o": algo.type,
                  "s": algo.symbol, "S": algo.side, "ps": "BOTH", "f": "GTC", "q": f"{algo.qty:g}",
                  "X": algo.status, "ai": algo.actual_order_id, "ap": f"{algo.avg_price:.5f}",
                  "aq": f"{algo.executed:g}", "act": "MARKET" if algo.actual_order_id else "0",
                  "tp": f"{algo.trigger:g}", "p": "0", "V": "EXPIRE_MAKER", "wt": "MARK_PRICE",
                  "pm": "NONE", "cp": algo.close_position, "pP": True, "R": algo.reduce_only,
                  "tt": 0, "gtd": 0, "rm": algo.reject_reason}})

    def _account_event(self, acct: Account, symbol: str) -> None:
        pos = acct.positions.get(symbol, Position())
        now = self.now_ms()
        self.emit(acct.api_key, {
            "e": "ACCOUNT_UPDATE", "E": now, "T": now,
            "a": {"m": "ORDER",
                  "B": [{"a": "USDT", "wb": f"{acct.wallet:.8f}", "cw": f"{acct.wallet:.8f}",
                         "bc": "0"}],
                  "P": [{"s": symbol, "pa": f"{pos.qty:g}", "ep": f"{pos.entry:.5f}", "bep": "0",
                         "cr": "0", "up": f"{pos.qty * (self.prices[symbol] - pos.entry):.8f}",
                         "mt": acct.margin_type.get(symbol, "cross"), "iw": "0", "ps": "BOTH"}]}})
