"""Hyperliquid orders, Sans-I/O: actions to sign, /info bodies, and the venue's answers parsed.

Assets are addressed by their index in `meta.universe` (perps); a price
has at most 5 significant figures and at most 6 - szDecimals decimals
(integer prices are always allowed), a size at most szDecimals decimals.
Numbers go on the wire as normalised decimal strings ("0.001", "100000"),
as the SDK's `float_to_wire` writes them; the signature covers those exact
strings, so they are made here once and never re-formatted.

Our client order id (32 hex digits) travels as the `cloid` "0x" + id, so
every order can be looked up by it after a restart (`orderStatus` takes a
cloid in place of an oid).

Order types: LIMIT is `{"limit": {"tif": "Gtc"|"Ioc"|"Alo"}}`; MARKET is
an aggressive IOC limit `slippage` through the reference price (the venue
has no market order); STOP_MARKET / STOP_LIMIT are trigger orders
`{"trigger": {"isMarket", "triggerPx", "tpsl": "sl"}}` (a market trigger
still needs a limit price: the trigger price `slippage` worse). GTD has no
Hyperliquid counterpart: it goes out as Gtc and the router cancels it at
its expiry. FOK has none either and is refused here.

A submit's answer is per order: `{"resting": {"oid"}}`, `{"filled":
{"totalSz", "avgPx", "oid"}}`, or `{"error": "..."}`. A "filled" answer is
reported as ACCEPT: the fills themselves (with the venue's trade ids and
fees) come from `userFills` / `userFillsByTime`, so they are counted once.
A whole-action failure is `{"status": "err", "response": "<message>"}`
(unknown signer, bad nonce, ...), which is not about one order.
"""

from __future__ import annotations

import enum
import json
import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

import attrs

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import Liquidity, OrderEvent, OrderType, TimeInForce
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.errors import AuthError, BadMessage, FatalError, RateLimited, TransientError
from fractald.venues.interface import (
    InstrumentSpec,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenuePosition,
)

EXCHANGE_PATH = "/exchange"
INFO_PATH = "/info"
PERP_MAX_DECIMALS = 6
MAX_SIG_FIGS = 5
DEFAULT_SLIPPAGE = 0.05  # the SDK's default for market orders

# Rate limits (per IP, per minute): 1200 weight. An exchange action weighs
# 1 + floor(orders / 40); most /info requests 20; a few light ones 2.
WEIGHT_LIMIT_PER_MINUTE = 1200
LIGHT_INFO = frozenset(
    {
        "l2Book",
        "allMids",
        "clearinghouseState",
        "orderStatus",
        "spotClearinghouseState",
        "exchangeStatus",
    }
)


def exchange_weight(orders: int) -> int:
    return 1 + orders // 40


def info_weight(body: dict[str, Any]) -> int:
    return 2 if body.get("type") in LIGHT_INFO else 20


class Tif(enum.Enum):
    GTC = "Gtc"
    IOC = "Ioc"
    ALO = "Alo"  # add liquidity only (post-only)


# -- instruments -------------------------------------------------------------------


@attrs.frozen(slots=True)
class Asset:
    """One perp from `meta`: its index is what orders carry."""

    name: str
    index: int = attrs.field(validator=attrs.validators.ge(0))
    sz_decimals: int = attrs.field(validator=attrs.validators.in_(range(PERP_MAX_DECIMALS + 1)))
    max_leverage: int = 0
    delisted: bool = False

    @property
    def price_decimals(self) -> int:
        return PERP_MAX_DECIMALS - self.sz_decimals

    def spec(self) -> InstrumentSpec:
        lot = 10.0**-self.sz_decimals
        # The finest tick: coarser at prices with more integer digits (5 significant figures).
        return InstrumentSpec(
            symbol=self.name,
            tick_size=10.0**-self.price_decimals,
            lot_size=lot,
            min_qty=lot,
            min_notional=10.0,
            max_leverage=float(self.max_leverage),
        )


def parse_meta(payload: Any) -> dict[str, Asset]:
    """`meta` -> assets by coin name; delisted ones are kept (their orders must still resolve)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("universe"), list):
        raise BadMessage("hyperliquid meta: expected an object with a 'universe' list")
    out: dict[str, Asset] = {}
    for index, item in enumerate(payload["universe"]):
        try:
            out[str(item["name"])] = Asset(
                str(item["name"]),
                index,
                int(item["szDecimals"]),
                int(item.get("maxLeverage", 0)),
                bool(item.get("isDelisted", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadMessage(f"hyperliquid meta universe[{index}] unreadable: {exc!r}") from exc
    return out


def check_symbols(symbols: list[str], assets: dict[str, Asset]) -> list[str]:
    """Problems with configured symbols (the venue's coin names, e.g. BTC), each naming the valid ones."""
    tradable = sorted(n for n, a in assets.items() if not a.delisted)
    problems = []
    for s in symbols:
        if s not in assets:
            problems.append(
                f"{s!r} is not a Hyperliquid perp; valid: {', '.join(tradable[:40])}"
                + (" ..." if len(tradable) > 40 else "")
            )
        elif assets[s].delisted:
            problems.append(f"{s!r} is delisted on Hyperliquid")
    return problems


# -- numbers on the wire ------------------------------------------------------------


def to_wire(value: Decimal) -> str:
    """A normalised decimal string without exponent: 100000, 0.001 (the SDK's float_to_wire shape)."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "") else text


def round_price(asset: Asset, price: float, *, rounding: str = ROUND_HALF_EVEN) -> str:
    """`price` on the venue's grid: 5 significant figures and at most 6 - szDecimals decimals."""
    if not price > 0:
        raise ValueError(f"{asset.name}: price {price} must be positive")
    d = Decimal(repr(price))
    if d == d.to_integral_value():
        return to_wire(d)  # integer prices are always allowed
    digits_before = d.adjusted() + 1  # digits left of the point (<= 0 for prices below 1)
    decimals = min(asset.price_decimals, max(0, MAX_SIG_FIGS - digits_before))
    q = d.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)
    if not q > 0:
        raise ValueError(f"{asset.name}: price {price} rounds to zero at {decimals} decimals")
    return to_wire(q)


def round_size(asset: Asset, quantity: float) -> str:
    """`quantity` rounded down to szDecimals (never more than the risk sized); zero is an error."""
    q = Decimal(repr(abs(quantity))).quantize(
        Decimal(1).scaleb(-asset.sz_decimals), rounding=ROUND_DOWN
    )
    if not q > 0:
        raise ValueError(
            f"{asset.name}: size {quantity} is below the lot of {asset.sz_decimals} decimals"
        )
    return to_wire(q)


# -- client order ids ---------------------------------------------------------------

_COID_RE = re.compile(r"^[0-9a-f]{32}$")


def cloid(client_order_id: str) -> str:
    """Our 32-hex-digit client order id as Hyperliquid's 16-byte cloid."""
    if not _COID_RE.match(client_order_id):
        raise ValueError(
            f"client order id {client_order_id!r} is not 32 lower-case hex digits: "
            "Hyperliquid needs a 16-byte cloid"
        )
    return "0x" + client_order_id


def client_id(wire_cloid: str | None) -> str:
    """Back from a cloid to our client order id ("" when the order carries none)."""
    return wire_cloid[2:].lower() if wire_cloid and wire_cloid.startswith("0x") else ""


# -- actions ------------------------------------------------------------------------


def _limit_for_aggressive(asset: Asset, side: Side, reference: float, slippage: float) -> str:
    worse = reference * (1 + slippage) if side is Side.BUY else reference * (1 - slippage)
    # Round away from the book so the slippage bound is never tighter than asked.
    return round_price(asset, worse, rounding="ROUND_UP" if side is Side.BUY else "ROUND_DOWN")


def order_wire(
    intent: OrderIntent,
    asset: Asset,
    *,
    reference_price: float | None = None,
    slippage: float = DEFAULT_SLIPPAGE,
    tif: Tif | None = None,
) -> dict[str, Any]:
    """One order of an `order` action (keys in the SDK's order: a, b, p, s, r, t, c)."""
    buy = intent.side is Side.BUY
    t: dict[str, Any]
    if intent.order_type is OrderType.LIMIT:
        if intent.tif is TimeInForce.FOK:
            raise ValueError("Hyperliquid has no fill-or-kill orders")
        wire_tif = tif or (
            Tif.ALO if intent.post_only else Tif.IOC if intent.tif is TimeInForce.IOC else Tif.GTC
        )
        price = round_price(asset, _need(intent.price, "a limit price"))
        t = {"limit": {"tif": wire_tif.value}}
    elif intent.order_type is OrderType.MARKET:
        ref = reference_price or intent.price or intent.intended_price
        price = _limit_for_aggressive(asset, intent.side, _need(ref, "a reference price"), slippage)
        t = {"limit": {"tif": Tif.IOC.value}}
    else:
        trigger = round_price(asset, _need(intent.trigger_price, "a trigger price"))
        market = intent.order_type is OrderType.STOP_MARKET
        price = (
            _limit_for_aggressive(asset, intent.side, float(trigger), slippage)
            if market
            else round_price(asset, _need(intent.price, "a limit price"))
        )
        t = {"trigger": {"isMarket": market, "triggerPx": trigger, "tpsl": "sl"}}
    return {
        "a": asset.index,
        "b": buy,
        "p": price,
        "s": round_size(asset, intent.quantity),
        "r": intent.reduce_only,
        "t": t,
        "c": cloid(intent.client_order_id),
    }


def _need(value: float | None, what: str) -> float:
    if value is None or not value > 0:
        raise ValueError(f"this order needs {what}")
    return float(value)


def order_action(wires: list[dict[str, Any]], grouping: str = "na") -> dict[str, Any]:
    return {"type": "order", "orders": wires, "grouping": grouping}


def cancel_by_cloid_action(cancels: list[tuple[Asset, str]]) -> dict[str, Any]:
    return {
        "type": "cancelByCloid",
        "cancels": [{"asset": a.index, "cloid": cloid(c)} for a, c in cancels],
    }


def cancel_action(cancels: list[tuple[Asset, int]]) -> dict[str, Any]:
    return {"type": "cancel", "cancels": [{"a": a.index, "o": oid} for a, oid in cancels]}


def modify_action(client_order_id: str, wire: dict[str, Any]) -> dict[str, Any]:
    """Replace the order known by this cloid with `wire` (which keeps the same cloid)."""
    return {"type": "batchModify", "modifies": [{"oid": cloid(client_order_id), "order": wire}]}


def update_leverage_action(asset: Asset, leverage: int, cross: bool = True) -> dict[str, Any]:
    """The account's leverage on one perp (cross or isolated margin), as the SDK's update_leverage."""
    if not 1 <= leverage <= (asset.max_leverage or leverage):
        raise ValueError(
            f"{asset.name}: leverage {leverage} is outside 1..{asset.max_leverage} "
            "(the venue's maximum for this perp)"
        )
    return {"type": "updateLeverage", "asset": asset.index, "isCross": cross, "leverage": leverage}


def noop_action() -> dict[str, Any]:
    """A signed action that changes nothing (it spends a nonce): proves the agent key works."""
    return {"type": "noop"}


def exchange_body(
    action: dict[str, Any],
    nonce: int,
    signature: dict[str, Any],
    *,
    vault_address: str | None = None,
    expires_after: int | None = None,
) -> dict[str, Any]:
    body = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": vault_address}
    if expires_after is not None:
        body["expiresAfter"] = expires_after
    return body


# -- /info requests -----------------------------------------------------------------


def meta_body() -> dict[str, Any]:
    return {"type": "meta"}


def all_mids_body() -> dict[str, Any]:
    return {"type": "allMids"}


def open_orders_body(user: str) -> dict[str, Any]:
    # frontendOpenOrders, not openOrders: only it says trigger, reduce-only and the cloid.
    return {"type": "frontendOpenOrders", "user": user}


def order_status_body(user: str, client_order_id: str) -> dict[str, Any]:
    return {"type": "orderStatus", "user": user, "oid": cloid(client_order_id)}


def fills_by_time_body(user: str, start_ms: int, end_ms: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "userFillsByTime", "user": user, "startTime": start_ms}
    if end_ms is not None:
        body["endTime"] = end_ms
    return body


def clearinghouse_body(user: str) -> dict[str, Any]:
    return {"type": "clearinghouseState", "user": user}


# -- answers from /exchange -----------------------------------------------------------


@attrs.frozen(slots=True)
class Resting:
    oid: int


@attrs.frozen(slots=True)
class Filled:
    oid: int
    total_sz: float
    avg_px: float


@attrs.frozen(slots=True)
class OrderError:
    message: str

    @property
    def code(self) -> str:
        return reject_code(self.message)


OrderStatusEntry = Resting | Filled | OrderError | str  # str: "success", "waitingForFill", ...

# The venue's words for a refused order, first match wins; the code goes into VenueReport.reason.
_REJECT_CODES = (
    ("minimum value", "min_notional"),
    ("tick size", "tick"),
    ("invalid price", "bad_price"),
    ("insufficient margin", "margin"),
    ("reduce only", "reduce_only"),
    ("post only", "post_only_would_match"),
    ("could not immediately match", "ioc_no_match"),
    ("no liquidity", "no_liquidity"),
    ("tp/sl", "bad_trigger"),
    ("trigger", "bad_trigger"),
    ("duplicate", "duplicate_cloid"),
    ("never placed, already canceled, or filled", "unknown_order"),
    ("cannot modify", "not_modifiable"),
    ("open interest", "open_interest_cap"),
    ("too far from", "price_too_far"),
)


def reject_code(message: str) -> str:
    low = message.lower()
    return next((code for needle, code in _REJECT_CODES if needle in low), "rejected")


class ActionRefused(FatalError):
    """The venue refused a whole action (`{"status": "err"}`): not about one order."""

    code = "venue_action_refused"


def action_error(message: str) -> FatalError | TransientError:
    """Classify a whole-action refusal: an unknown signer is auth; a nonce clash is worth a retry."""
    low = message.lower()
    if "does not exist" in low and ("api wallet" in low or "user" in low):
        # The venue recovers *some* address from any signature: a wrong key, a wrong
        # network or an unapproved agent all read "User or API Wallet 0x.. does not exist".
        return AuthError(f"hyperliquid refused the signer: {message}")
    if "nonce" in low:
        return NonceRefused(f"hyperliquid refused the nonce: {message}")
    if "rate limit" in low or "too many" in low:
        return RateLimited(f"hyperliquid: {message}")
    return ActionRefused(f"hyperliquid refused the action: {message}")


class NonceRefused(TransientError):
    """`Invalid nonce: ...`: a re-sent body whose first copy landed, or a clock far off."""

    code = "nonce_refused"


def parse_exchange_reply(payload: Any) -> list[OrderStatusEntry]:
    """The per-order statuses of an ok reply (empty for a reply without them, e.g. batchModify's
    `{"type": "default"}`); a refused action raises its classified error."""
    if not isinstance(payload, dict) or "status" not in payload:
        raise BadMessage(f"hyperliquid /exchange: unexpected reply {str(payload)[:200]}")
    if payload["status"] != "ok":
        raise action_error(str(payload.get("response")))
    response = payload.get("response") or {}
    data = response.get("data") if isinstance(response, dict) else None
    statuses = data.get("statuses", []) if isinstance(data, dict) else []
    return [_status_entry(s) for s in statuses]


def _status_entry(s: Any) -> OrderStatusEntry:
    if isinstance(s, str):
        return s
    if not isinstance(s, dict):
        raise BadMessage(f"hyperliquid order status unreadable: {s!r}")
    if "resting" in s:
        return Resting(int(s["resting"]["oid"]))
    if "filled" in s:
        f = s["filled"]
        return Filled(int(f["oid"]), float(f["totalSz"]), float(f["avgPx"]))
    if "error" in s:
        return OrderError(str(s["error"]))
    raise BadMessage(f"hyperliquid order status unreadable: {s!r}")


def submit_report(client_order_id: str, entry: OrderStatusEntry, ts: int) -> VenueReport:
    """What the engine hears from a submit's answer (fills come separately, with trade ids)."""
    if isinstance(entry, (Resting, Filled)):
        return VenueReport(OrderEvent.ACCEPT, client_order_id, ts, venue_order_id=str(entry.oid))
    if isinstance(entry, OrderError):
        return VenueReport(
            OrderEvent.REJECT, client_order_id, ts, reason=f"{entry.code}: {entry.message}"
        )
    # waitingForTrigger / waitingForFill: accepted, not yet live.
    return VenueReport(OrderEvent.ACCEPT, client_order_id, ts)


def cancel_report(client_order_id: str, entry: OrderStatusEntry, ts: int) -> VenueReport:
    if entry == "success":
        return VenueReport(OrderEvent.CANCEL, client_order_id, ts, reason="requested")
    message = entry.message if isinstance(entry, OrderError) else str(entry)
    return VenueReport(
        OrderEvent.CANCEL_REJECT, client_order_id, ts, reason=f"{reject_code(message)}: {message}"
    )


# -- answers from /info ---------------------------------------------------------------

_SIDE = {"B": "BUY", "A": "SELL"}


def venue_status(hl_status: str, remaining: float, original: float) -> str:
    """Hyperliquid's order status word in the interface's lower-case vocabulary."""
    if hl_status == "open":
        return "partially_filled" if 0 < remaining < original else "open"
    if hl_status == "filled":
        return "filled"
    if hl_status == "triggered":
        return "triggered"
    if hl_status == "rejected" or hl_status.endswith("Rejected"):
        return "rejected"
    if hl_status in ("canceled", "scheduledCancel") or hl_status.endswith("Canceled"):
        return "canceled"
    return hl_status


def _venue_order(o: dict[str, Any], status: str) -> VenueOrder:
    original = float(o.get("origSz", o["sz"]))
    remaining = float(o["sz"])
    trigger = o.get("triggerPx")
    return VenueOrder(
        client_order_id=client_id(o.get("cloid")),
        symbol=str(o["coin"]),
        status=venue_status(status, remaining, original),
        quantity=original,
        filled_qty=max(0.0, original - remaining) if status != "filled" else original,
        venue_order_id=str(o["oid"]),
        side=_SIDE.get(str(o.get("side")), ""),
        price=float(o["limitPx"]) if o.get("limitPx") is not None else None,
        trigger_price=float(trigger) if o.get("isTrigger") and trigger is not None else None,
        reduce_only=bool(o.get("reduceOnly", False)),
    )


def parse_order_status(payload: Any) -> VenueOrder | None:
    """`orderStatus` by cloid: None when the venue never saw it (`{"status": "unknownOid"}`)."""
    if not isinstance(payload, dict):
        raise BadMessage(f"hyperliquid orderStatus: unexpected {str(payload)[:200]}")
    if payload.get("status") == "unknownOid":
        return None
    try:
        wrapper = payload["order"]
        return _venue_order(wrapper["order"], str(wrapper["status"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"hyperliquid orderStatus unreadable: {exc!r}") from exc


def parse_open_orders(payload: Any) -> list[VenueOrder]:
    if not isinstance(payload, list):
        raise BadMessage("hyperliquid frontendOpenOrders: expected a list")
    try:
        return [_venue_order(o, "open") for o in payload]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"hyperliquid frontendOpenOrders unreadable: {exc!r}") from exc


def parse_fill(f: dict[str, Any]) -> VenueFill:
    return VenueFill(
        client_order_id=client_id(f.get("cloid")),
        trade_id=str(f["tid"]),
        ts=int(f["time"]),
        quantity=float(f["sz"]),
        price=float(f["px"]),
        fee=float(f.get("fee", 0.0)),
        symbol=str(f["coin"]),
        side=_SIDE.get(str(f["side"]), ""),
    )


def parse_fills(payload: Any) -> list[VenueFill]:
    if not isinstance(payload, list):
        raise BadMessage("hyperliquid userFillsByTime: expected a list")
    try:
        return [parse_fill(f) for f in payload]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"hyperliquid fill unreadable: {exc!r}") from exc


def fill_report(f: dict[str, Any]) -> VenueReport:
    """A fill as the engine hears it: the trade id (`tid`) makes a second copy recognisable."""
    return VenueReport(
        OrderEvent.FILL,
        client_id(f.get("cloid")),
        int(f["time"]),
        trade_id=str(f["tid"]),
        quantity=float(f["sz"]),
        price=float(f["px"]),
        fee=float(f.get("fee", 0.0)),
        liquidity=Liquidity.TAKER if f.get("crossed") else Liquidity.MAKER,
        venue_order_id=str(f["oid"]),
    )


def parse_clearinghouse(payload: Any) -> tuple[list[VenuePosition], VenueAccount]:
    try:
        positions = []
        for item in payload.get("assetPositions", []):
            p = item["position"]
            if float(p["szi"]) != 0.0:
                positions.append(
                    VenuePosition(
                        str(p["coin"]),
                        float(p["szi"]),
                        float(p.get("entryPx") or 0.0),
                        float(p.get("unrealizedPnl") or 0.0),
                    )
                )
        summary = payload["marginSummary"]
        account = VenueAccount(
            equity=float(summary["accountValue"]),
            available=float(payload.get("withdrawable", 0.0)),
            margin_used=float(summary.get("totalMarginUsed", 0.0)),
            currency="USDC",
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"hyperliquid clearinghouseState unreadable: {exc!r}") from exc
    return positions, account


def parse_mids(payload: Any) -> dict[str, float]:
    if not isinstance(payload, dict):
        raise BadMessage("hyperliquid allMids: expected an object")
    return {k: float(v) for k, v in payload.items()}


# -- the user WebSocket channels --------------------------------------------------------


def user_subscriptions(user: str) -> list[str]:
    """orderUpdates, userFills (a snapshot first, `isSnapshot: true`), userEvents."""
    return [
        json.dumps({"method": "subscribe", "subscription": {"type": kind, "user": user}})
        for kind in ("orderUpdates", "userFills", "userEvents")
    ]


@attrs.frozen(slots=True)
class UserMessage:
    """What one pushed message says: reports for the engine; `snapshot` marks userFills' first
    message (fills from before this connection: the consumer drops trade ids it already has)."""

    reports: tuple[VenueReport, ...] = ()
    snapshot: bool = False
    other: str = ""  # a channel we do not act on (pong, subscriptionResponse, funding, ...)


def _order_update_report(u: dict[str, Any]) -> VenueReport | None:
    o, status, ts = u["order"], str(u["status"]), int(u.get("statusTimestamp", 0))
    coid, oid = client_id(o.get("cloid")), str(o["oid"])
    word = venue_status(status, float(o["sz"]), float(o.get("origSz", o["sz"])))
    if word in ("open", "partially_filled") and status == "open":
        return VenueReport(OrderEvent.ACCEPT, coid, ts, venue_order_id=oid)
    if word == "triggered":
        return VenueReport(OrderEvent.TRIGGER, coid, ts, venue_order_id=oid)
    if word == "canceled":
        return VenueReport(OrderEvent.CANCEL, coid, ts, reason=status, venue_order_id=oid)
    if word == "rejected":
        return VenueReport(OrderEvent.REJECT, coid, ts, reason=status, venue_order_id=oid)
    return None  # filled: the fill reports carry the quantities


def parse_user_message(raw: str | bytes) -> UserMessage:
    try:
        msg = json.loads(raw)
        channel, data = msg.get("channel"), msg.get("data")
        if channel == "orderUpdates":
            reports = [r for u in data if (r := _order_update_report(u)) is not None]
            return UserMessage(tuple(reports))
        if channel == "userFills":
            return UserMessage(
                tuple(fill_report(f) for f in data.get("fills", [])),
                snapshot=bool(data.get("isSnapshot", False)),
            )
        if channel == "userEvents":
            # Its fills repeat userFills' and its cancels orderUpdates': noted, not acted on twice.
            return UserMessage(other="userEvents:" + ",".join(sorted(data)))
        return UserMessage(other=str(channel))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadMessage(f"hyperliquid user message unreadable: {exc!r}: {str(raw)[:200]}") from exc
