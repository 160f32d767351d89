"""The matching side of the fake Hyperliquid venue: accounts, agents, nonces, orders, fills. No I/O.

Signatures are checked with the official SDK's own recovery
(`hyperliquid.utils.signing.recover_agent_or_user_from_l1_action`), not our
codec, so a codec mistake cannot be mirrored here. The recovered address
must be an API wallet the account approved for this network (or the
account itself); anything else reads, as at the venue, "User or API Wallet
0x.. does not exist." (the venue cannot tell a bad signature from an
unknown signer: both recover to an address it does not know).

Prices: one price per coin, moved by `set_price`; a marketable order fills
at that price (taker), a resting limit fills at its limit when the price
crosses it (maker), a trigger order fires when the price reaches its
trigger (`sl` for a sell: at or below; for a buy: at or above; `tp` the
other way) and then fills like a market order within its limit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
from hyperliquid.utils.signing import recover_agent_or_user_from_l1_action

TAKER_FEE = 0.00045
MAKER_FEE = 0.00015
NONCE_WINDOW = 100
MIN_NOTIONAL = 10.0
DEFAULT_LEVERAGE = 20  # a coin's leverage until the user sets one (the venue's default is 20x cross)
# The venue's texts, as its docs' error table and live answers quoted in public SDK issues give
# them: order errors end in " asset=N" (left out of the docs' table); "Order has invalid size."
# has no suffix. Texts no public source confirms are marked where they are made.
NEVER_PLACED = "Order was never placed, already canceled, or filled."


@attrs.frozen
class Coin:
    name: str
    sz_decimals: int
    max_leverage: int = 50


@attrs.define
class HlOrder:
    oid: int
    user: str
    coin: str
    is_buy: bool
    limit_px: Decimal
    orig_sz: Decimal
    sz: Decimal
    reduce_only: bool
    tif: str  # Gtc / Ioc / Alo, or "" for triggers
    cloid: str | None
    timestamp: int
    trigger_px: Decimal | None = None
    is_market: bool = False
    tpsl: str = ""
    status: str = "open"
    status_ts: int = 0
    triggered: bool = False

    def frontend(self) -> dict[str, Any]:
        return {"coin": self.coin, "side": "B" if self.is_buy else "A", "limitPx": str(self.limit_px),
                "sz": str(self.sz), "oid": self.oid, "timestamp": self.timestamp,
                "triggerCondition": self._condition(), "isTrigger": self.trigger_px is not None,
                "triggerPx": str(self.trigger_px or "0.0"), "children": [], "isPositionTpsl": False,
                "reduceOnly": self.reduce_only,
                "orderType": ("Stop Market" if self.is_market else "Stop Limit") if self.trigger_px else "Limit",
                "origSz": str(self.orig_sz), "tif": self.tif or None, "cloid": self.cloid}

    def ws(self) -> dict[str, Any]:
        return {"coin": self.coin, "side": "B" if self.is_buy else "A", "limitPx": str(self.limit_px),
                "sz": str(self.sz), "oid": self.oid, "timestamp": self.timestamp, "origSz": str(self.orig_sz),
                "cloid": self.cloid}

    def _condition(self) -> str:
        if self.trigger_px is None:
            return "N/A"
        above = self.is_buy == (self.tpsl == "sl")
        return f"Price {'above' if above else 'below'} {self.trigger_px}"


@attrs.define
class User:
    address: str
    usdc: float
    agents: set[str] = attrs.field(factory=set)  # lower-case addresses approved for this network
    positions: dict[str, tuple[float, float]] = attrs.field(factory=dict)  # coin -> (szi, entry px)
    fills: list[dict[str, Any]] = attrs.field(factory=list)
    leverage: dict[str, tuple[int, bool]] = attrs.field(factory=dict)  # coin -> (leverage, is cross)


class ExchangeError(Exception):
    """A whole action refused: `{"status": "err", "response": message}`."""


class HlExchange:
    def __init__(self, coins: list[Coin], prices: dict[str, float], now_ms: Callable[[], int], *,
                 mainnet: bool = False) -> None:
        self.coins = coins
        self.index = {c.name: i for i, c in enumerate(coins)}
        self.prices = {k: Decimal(repr(v)) for k, v in prices.items()}
        self.now_ms = now_ms
        self.mainnet = mainnet
        self.users: dict[str, User] = {}
        self.signer_owner: dict[str, str] = {}
        self.nonces: dict[str, list[int]] = {}
        self.orders: dict[int, HlOrder] = {}
        self.by_cloid: dict[tuple[str, str], HlOrder] = {}
        self._oids = itertools.count(1000)
        self._tids = itertools.count(900_000)
        self.emit: Callable[[str, str, Any], None] = lambda user, channel, data: None
        self.actions: list[dict[str, Any]] = []  # every accepted action, for the tests' own checks

    # -- accounts --------------------------------------------------------------------

    def add_user(self, address: str, usdc: float = 10_000.0, agents: tuple[str, ...] = ()) -> User:
        user = User(address.lower(), usdc, {a.lower() for a in agents})
        self.users[user.address] = user
        self.signer_owner[user.address] = user.address
        for a in user.agents:
            self.signer_owner[a] = user.address
        return user

    def meta(self) -> dict[str, Any]:
        return {"universe": [{"name": c.name, "szDecimals": c.sz_decimals, "maxLeverage": c.max_leverage}
                             for c in self.coins]}

    # -- /exchange ---------------------------------------------------------------------

    def exchange(self, body: dict[str, Any]) -> dict[str, Any]:
        action, nonce, sig = body["action"], int(body["nonce"]), body["signature"]
        signer = str(recover_agent_or_user_from_l1_action(
            action, sig, body.get("vaultAddress"), nonce, body.get("expiresAfter"), self.mainnet)).lower()
        owner = self.signer_owner.get(signer)
        if owner is None:
            raise ExchangeError(f"User or API Wallet {signer} does not exist.")
        self._check_nonce(signer, nonce)
        expires = body.get("expiresAfter")
        if expires is not None and self.now_ms() > int(expires):
            raise ExchangeError(f"Action expired at {expires}")  # text not confirmed by a public source
        user = self.users[owner]
        self.actions.append(action)
        kind = action["type"]
        if kind == "order":
            return _ok("order", [self._place(user, w) for w in action["orders"]])
        if kind == "cancel":
            return _ok("cancel", [self._cancel(user, self.orders.get(int(c["o"])), c["a"])
                                  for c in action["cancels"]])
        if kind == "cancelByCloid":
            return _ok("cancel", [self._cancel(user, self.by_cloid.get((user.address, str(c["cloid"]).lower())),
                                               c["asset"]) for c in action["cancels"]])
        if kind == "batchModify":
            return _ok("batchModify", [self._modify(user, m) for m in action["modifies"]])
        if kind == "updateLeverage":
            return self._update_leverage(user, action)
        if kind in ("scheduleCancel", "noop"):
            return {"status": "ok", "response": {"type": "default"}}
        raise ExchangeError(f"Unknown action type {kind}")  # text not confirmed by a public source

    def _update_leverage(self, user: User, action: dict[str, Any]) -> dict[str, Any]:
        coin = self.coins[int(action["asset"])]
        leverage = int(action["leverage"])
        if not 1 <= leverage <= coin.max_leverage:
            raise ExchangeError("Invalid leverage value")  # only third-party code quotes this text
        user.leverage[coin.name] = (leverage, bool(action["isCross"]))
        return {"status": "ok", "response": {"type": "default"}}

    def _check_nonce(self, signer: str, nonce: int) -> None:
        now = self.now_ms()
        if nonce <= now - 2 * 86_400_000:
            raise ExchangeError(f"Invalid nonce: nonce too low {nonce} < {now - 2 * 86_400_000}")
        if nonce >= now + 86_400_000:
            raise ExchangeError(f"Invalid nonce: nonce too high {nonce} > {now + 86_400_000}")
        seen = self.nonces.setdefault(signer, [])
        if nonce in seen:
            raise ExchangeError(f"Invalid nonce: duplicate nonce {nonce}")
        if len(seen) >= NONCE_WINDOW and nonce < seen[0]:
            raise ExchangeError(f"Invalid nonce: nonce too low {nonce} < {seen[0]}")
        seen.append(nonce)
        seen.sort()
        del seen[:-NONCE_WINDOW]

    def _place(self, user: User, w: dict[str, Any], *, oid: int | None = None) -> dict[str, Any]:
        asset = int(w["a"])
        if not 0 <= asset < len(self.coins):
            return {"error": f"Invalid asset {asset}"}  # text not confirmed by a public source
        coin = self.coins[asset]
        px, sz = Decimal(w["p"]), Decimal(w["s"])
        cl = str(w["c"]).lower() if w.get("c") else None
        if cl is not None and (user.address, cl) in self.by_cloid and oid is None:
            return {"error": "Duplicate cloid."}  # text not confirmed by a public source
        if -sz.as_tuple().exponent > coin.sz_decimals or sz <= 0:
            return {"error": "Order has invalid size."}
        if not _valid_price(px, coin.sz_decimals):
            return {"error": f"Price must be divisible by tick size. asset={asset}"}
        t = w["t"]
        trigger = t.get("trigger")
        tif = t.get("limit", {}).get("tif", "")
        ref = Decimal(trigger["triggerPx"]) if trigger else px
        if ref * sz < Decimal(MIN_NOTIONAL) and not w["r"]:
            return {"error": f"Order must have minimum value of ${MIN_NOTIONAL:g}. asset={asset}"}
        order = HlOrder(oid or next(self._oids), user.address, coin.name, bool(w["b"]), px, sz, sz, bool(w["r"]),
                        tif, cl, self.now_ms(),
                        trigger_px=Decimal(trigger["triggerPx"]) if trigger else None,
                        is_market=bool(trigger and trigger["isMarket"]), tpsl=trigger["tpsl"] if trigger else "")
        if order.reduce_only and self._would_increase(user, order):
            return {"error": f"Reduce only order would increase position. asset={asset}"}
        if not order.reduce_only and trigger is None and self._margin_short(user, order):
            return {"error": f"Insufficient margin to place order. asset={asset}"}
        if trigger is None:
            mark = self.prices[coin.name]
            crosses = px >= mark if order.is_buy else px <= mark
            if tif == "Alo" and crosses:
                return {"error": f"Post only order would have immediately matched, bbo was {mark}@{mark}. "
                                 f"asset={asset}"}
            if tif == "Ioc" and not crosses:
                return {"error": f"Order could not immediately match against any resting orders. asset={asset}"}
        self._register(order)
        if trigger is None and (order.limit_px >= self.prices[coin.name] if order.is_buy
                                else order.limit_px <= self.prices[coin.name]):
            self._fill(order, self.prices[coin.name], crossed=True)
            if order.sz > 0 and tif == "Ioc":
                self._set_status(order, "canceled")
            if order.status == "filled":
                return {"filled": {"totalSz": str(order.orig_sz - order.sz), "avgPx": _fmt(self.prices[coin.name]),
                                   "oid": order.oid}}
        self._set_status(order, "open")
        return {"resting": {"oid": order.oid}}

    def _register(self, order: HlOrder) -> None:
        self.orders[order.oid] = order
        if order.cloid:
            self.by_cloid[(order.user, order.cloid)] = order

    def _margin_short(self, user: User, order: HlOrder) -> bool:
        """The order's initial margin at the coin's leverage is more than the account has free."""
        free = float(self.clearinghouse(user)["withdrawable"])
        lev = user.leverage.get(order.coin, (DEFAULT_LEVERAGE, True))[0]
        return float(order.limit_px * order.sz) / lev > free

    def _would_increase(self, user: User, order: HlOrder) -> bool:
        szi = user.positions.get(order.coin, (0.0, 0.0))[0]
        return szi == 0 or (szi > 0) == order.is_buy

    def _cancel(self, user: User, order: HlOrder | None, asset: int | None = None) -> Any:
        """`asset`: the one the request named (None: a cancel by hand, the order's own)."""
        if order is None or order.user != user.address or order.status != "open":
            return {"error": f"{NEVER_PLACED} asset={asset}"}
        self._set_status(order, "canceled")
        return "success"

    def _modify(self, user: User, m: dict[str, Any]) -> Any:
        ref = m["oid"]
        old = (self.by_cloid.get((user.address, str(ref).lower())) if isinstance(ref, str)
               else self.orders.get(int(ref)))
        if old is None or old.user != user.address or old.status != "open":
            return {"error": "Cannot modify canceled or filled order"}
        self._set_status(old, "canceled")
        if old.cloid:
            del self.by_cloid[(user.address, old.cloid)]
        return self._place(user, m["order"])

    # -- matching --------------------------------------------------------------------

    def set_price(self, coin: str, price: float) -> None:
        """Move the price; resting limits it crosses fill (maker), triggers it reaches fire."""
        self.prices[coin] = mark = Decimal(repr(price))
        for order in sorted(self.orders.values(), key=lambda o: o.oid):
            if order.coin != coin or order.status != "open":
                continue
            if order.trigger_px is not None and not order.triggered:
                if self._reached(order, mark):
                    order.triggered = True
                    self._set_status(order, "triggered")
                    if mark <= order.limit_px if order.is_buy else mark >= order.limit_px:
                        self._fill(order, mark, crossed=True)
                    if order.status == "triggered":
                        order.status = "open"  # beyond its limit: rests as a limit now
            elif order.limit_px >= mark if order.is_buy else order.limit_px <= mark:
                self._fill(order, order.limit_px, crossed=False)  # a resting limit the price crossed

    def _reached(self, order: HlOrder, mark: Decimal) -> bool:
        assert order.trigger_px is not None
        falls = (not order.is_buy) == (order.tpsl == "sl")  # sell stop / buy take-profit: price falling
        return mark <= order.trigger_px if falls else mark >= order.trigger_px

    def _fill(self, order: HlOrder, px: Decimal, *, crossed: bool) -> None:
        user = self.users[order.user]
        szi, entry = user.positions.get(order.coin, (0.0, 0.0))
        size = order.sz
        if order.reduce_only:
            size = min(size, Decimal(repr(abs(szi))))
            if size <= 0 or (szi > 0) == order.is_buy:
                self._set_status(order, "reduceOnlyCanceled")
                return
        qty, price = float(size), float(px)
        signed = qty if order.is_buy else -qty
        closed = 0.0
        if szi and (szi > 0) != order.is_buy:
            closing = min(abs(szi), qty)
            closed = closing * (price - entry) * (1 if szi > 0 else -1)
        new = round(szi + signed, 10)
        if abs(new) < 1e-12:
            user.positions.pop(order.coin, None)
        elif szi == 0 or (szi > 0) == (new > 0) and abs(new) > abs(szi):
            user.positions[order.coin] = (new, (abs(szi) * entry + qty * price) / abs(new))
        else:
            user.positions[order.coin] = (new, entry if (szi > 0) == (new > 0) else price)
        fee = qty * price * (TAKER_FEE if crossed else MAKER_FEE)
        user.usdc += closed - fee
        order.sz -= size
        fill = {"coin": order.coin, "px": _fmt(px), "sz": _fmt(size), "side": "B" if order.is_buy else "A",
                "time": self.now_ms(), "startPosition": repr(szi), "dir": _direction(szi, order.is_buy),
                "closedPnl": f"{closed:.6f}", "hash": "0x" + f"{order.oid:064x}", "oid": order.oid,
                "crossed": crossed, "fee": f"{fee:.6f}", "tid": next(self._tids), "feeToken": "USDC"}
        if order.cloid:
            fill["cloid"] = order.cloid
        user.fills.append(fill)
        self.emit(order.user, "userFills", {"user": order.user, "fills": [fill]})
        if order.sz == 0:
            self._set_status(order, "filled")

    def _set_status(self, order: HlOrder, status: str) -> None:
        order.status, order.status_ts = status, self.now_ms()
        self.emit(order.user, "orderUpdates", [{"order": order.ws(), "status": status,
                                                "statusTimestamp": order.status_ts}])

    # -- /info ---------------------------------------------------------------------------

    def info(self, body: dict[str, Any]) -> Any:
        kind = body.get("type")
        user = self.users.get(str(body.get("user", "")).lower())
        if kind == "meta":
            return self.meta()
        if kind == "spotMeta":
            return {"universe": [], "tokens": []}
        if kind == "allMids":
            return {k: str(v) for k, v in self.prices.items()}
        if user is None and kind in ("clearinghouseState", "frontendOpenOrders", "openOrders", "orderStatus",
                                     "userFills", "userFillsByTime"):
            return [] if kind != "clearinghouseState" else _empty_state(self.now_ms())
        assert user is not None or kind not in ("clearinghouseState",)
        if kind == "clearinghouseState":
            return self.clearinghouse(user)  # type: ignore[arg-type]
        if kind in ("frontendOpenOrders", "openOrders"):
            return [o.frontend() for o in self.orders.values()
                    if o.user == user.address and o.status in ("open", "triggered")]  # type: ignore[union-attr]
        if kind == "orderStatus":
            return self.order_status(user, body["oid"])  # type: ignore[arg-type]
        if kind == "userFills":
            return list(reversed(user.fills))[:2000]  # type: ignore[union-attr]
        if kind == "userFillsByTime":
            end = body.get("endTime") or 2**62
            return [f for f in user.fills if int(body["startTime"]) <= f["time"] <= end][:2000]  # type: ignore
        raise ExchangeError("Failed to deserialize the JSON body into the target type")

    def order_status(self, user: User, ref: Any) -> dict[str, Any]:
        order = (self.by_cloid.get((user.address, str(ref).lower())) if isinstance(ref, str)
                 else self.orders.get(int(ref)))
        if order is None or order.user != user.address:
            return {"status": "unknownOid"}
        return {"status": "order", "order": {"order": order.frontend(), "status": order.status,
                                              "statusTimestamp": order.status_ts}}

    def clearinghouse(self, user: User) -> dict[str, Any]:
        positions, ntl, upnl, margin = [], 0.0, 0.0, 0.0
        for coin, (szi, entry) in user.positions.items():
            mark = float(self.prices[coin])
            pnl = szi * (mark - entry)
            ntl += abs(szi) * mark
            upnl += pnl
            lev, cross = user.leverage.get(coin, (DEFAULT_LEVERAGE, True))
            margin += abs(szi) * mark / lev
            positions.append({"type": "oneWay", "position": {
                "coin": coin, "szi": repr(szi), "entryPx": repr(entry), "positionValue": repr(abs(szi) * mark),
                "unrealizedPnl": repr(pnl), "returnOnEquity": "0.0", "liquidationPx": None,
                "leverage": {"type": "cross" if cross else "isolated", "value": lev},
                "marginUsed": repr(abs(szi) * mark / lev)}})
        value = user.usdc + upnl
        summary = {"accountValue": repr(value), "totalNtlPos": repr(ntl), "totalRawUsd": repr(user.usdc),
                   "totalMarginUsed": repr(margin)}
        return {"assetPositions": positions, "marginSummary": summary, "crossMarginSummary": summary,
                "withdrawable": repr(max(0.0, value - margin)), "time": self.now_ms()}


def _fmt(d: Decimal) -> str:
    return f"{d.normalize():f}"


def _ok(kind: str, statuses: list[Any]) -> dict[str, Any]:
    return {"status": "ok", "response": {"type": kind, "data": {"statuses": statuses}}}


def _empty_state(now: int) -> dict[str, Any]:
    zero = {"accountValue": "0.0", "totalNtlPos": "0.0", "totalRawUsd": "0.0", "totalMarginUsed": "0.0"}
    return {"assetPositions": [], "marginSummary": zero, "crossMarginSummary": zero, "withdrawable": "0.0",
            "time": now}


def _valid_price(px: Decimal, sz_decimals: int) -> bool:
    if px <= 0:
        return False
    if px == px.to_integral_value():
        return True
    decimals = -px.normalize().as_tuple().exponent
    sig = len(px.normalize().as_tuple().digits)
    return decimals <= 6 - sz_decimals and sig <= 5


def _direction(szi: float, is_buy: bool) -> str:
    if szi == 0 or (szi > 0) == is_buy:
        return "Open Long" if is_buy else "Open Short"
    return "Close Short" if is_buy else "Close Long"
