"""Binance replies, Sans-I/O: REST bodies and headers in, typed data and categorised errors out.

Error bodies are `{"code": -2019, "msg": "Margin is insufficient."}`. What a
code means decides what happens next (`judge_error`):

- -1021 (timestamp outside recvWindow): `ClockSkew`; resync the clock offset and send again.
- -2015 / -2014 / -1022 (key, IP or signature refused): `AuthError`, fatal, naming
  `runbooks/binance-auth-refused.md`.
- 429 / 418, -1003 / -1015: `RateLimited` with Retry-After; 418 means the IP is banned.
- 5xx, -1001, -1006, -1007: `VenueUnavailable`: the outcome is unknown, ask by client id.
- anything else from an order call (-2019 margin, -2021 would trigger, -2022 reduce-only,
  -4164 notional, -5022 post-only, ...): a refusal of that one order (`Refusal`), which the
  transport turns into a REJECT / CANCEL_REJECT report; never an exception.

Rate limits: every reply carries `X-MBX-USED-WEIGHT-<n><unit>` and, after an order,
`X-MBX-ORDER-COUNT-<n><unit>`; `UsageHeaders` reads them so the transport can
slow down before the venue says 429.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.errors import (
    AuthError,
    BadMessage,
    FatalError,
    FractalError,
    RateLimited,
    TransientError,
    VenueUnavailable,
    parse_retry_after,
)
from fractald.venues.binance import Market
from fractald.venues.interface import (
    InstrumentSpec,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenuePosition,
)

AUTH_RUNBOOK = "runbooks/binance-auth-refused.md"
AUTH_CODES = frozenset({-2015, -2014, -1022, -2008})
RATE_CODES = frozenset({-1003, -1015})
UNKNOWN_OUTCOME_CODES = frozenset({-1001, -1006, -1007})
UNKNOWN_ORDER_CODES = frozenset({-2011, -2013})
CLOCK_CODE = -1021
MARGIN_CODE = -2019


class ClockSkew(TransientError):
    """-1021: our timestamp fell outside recvWindow; measure the server time and retry."""

    code = "clock_skew"


@attrs.frozen(slots=True)
class Refusal:
    """Binance refused one request on its merits (not retriable as is)."""

    status: int
    code: int
    message: str

    @property
    def reason(self) -> str:
        return f"binance:{self.code} {self.message}"

    @property
    def unknown_order(self) -> bool:
        return self.code in UNKNOWN_ORDER_CODES

    @property
    def margin(self) -> bool:
        return self.code == MARGIN_CODE


def error_body(body: bytes | str) -> tuple[int, str]:
    """(code, msg) of an error body; (0, text) when it is not Binance's shape."""
    try:
        data = json.loads(body)
        return int(data["code"]), str(data["msg"])
    except (ValueError, TypeError, KeyError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return 0, text[:200]


def judge_error(
    status: int, body: bytes | str, headers: Mapping[str, str] | None, what: str
) -> FractalError | Refusal:
    """What an HTTP error reply means: an exception to raise, or a refusal of the request."""
    code, msg = error_body(body)
    text = f"{what}: HTTP {status} {code} {msg}"
    if status in (429, 418) or code in RATE_CODES:
        return RateLimited(
            text,
            retry_after_s=parse_retry_after(headers),
            status=status,
            venue_code=code,
            banned=status == 418,
        )
    if code == CLOCK_CODE:
        return ClockSkew(text, venue_code=code)
    if code in AUTH_CODES or status in (401, 403):
        return AuthError(f"{text}; see {AUTH_RUNBOOK}", venue_code=code, runbook=AUTH_RUNBOOK)
    if status >= 500 or code in UNKNOWN_OUTCOME_CODES or status == 408:
        return VenueUnavailable(text, status=status, venue_code=code)
    if 400 <= status < 500 and code < 0:
        return Refusal(status, code, msg)
    return FatalError(text, status=status, venue_code=code)


# -- rate-limit headers ----------------------------------------------------------

_USAGE_RE = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@attrs.frozen(slots=True)
class UsageHeaders:
    """What the venue says we have used: {(kind, window seconds): count}."""

    used: dict[tuple[str, int], int] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> UsageHeaders:
        used: dict[tuple[str, int], int] = {}
        for name, value in headers.items():
            m = _USAGE_RE.match(name)
            if m is None:
                continue
            try:
                used[(m.group(1).lower(), int(m.group(2)) * _UNIT_S[m.group(3).lower()])] = int(
                    value
                )
            except ValueError:
                continue
        return cls(used)

    def weight_1m(self) -> int | None:
        return self.used.get(("used-weight", 60))

    def orders_in(self, window_s: int) -> int | None:
        return self.used.get(("order-count", window_s))


def pause_needed(
    usage: UsageHeaders, limits: Mapping[tuple[str, int], int], now_s: float, *, share: float = 0.9
) -> float:
    """Seconds to hold new requests so we stay under `share` of each limit: until the window
    that is nearly full rolls over (Binance's windows are aligned to the clock)."""
    wait = 0.0
    for key, limit in limits.items():
        used = usage.used.get(key)
        if used is not None and used >= limit * share:
            window = key[1]
            wait = max(wait, window - (now_s % window))
    return wait


# -- order replies ---------------------------------------------------------------

_ORDER_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
    "REJECTED": "rejected",
    "PENDING_CANCEL": "open",
    "NEW_INSURANCE": "open",
    "NEW_ADL": "open",
}
_ALGO_STATUS = {
    "NEW": "open",
    "TRIGGERING": "triggered",
    "TRIGGERED": "triggered",
    "FINISHED": "triggered",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


def _f(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def _shape(what: str, payload: Any, fn: Any) -> Any:
    try:
        return fn(payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadMessage(f"binance {what} unreadable: {exc!r}") from exc


def parse_order(payload: dict[str, Any]) -> VenueOrder:
    """GET/POST/DELETE order replies (futures and spot)."""

    def build(d: dict[str, Any]) -> VenueOrder:
        stop = _f(d.get("stopPrice"))
        return VenueOrder(
            client_order_id=d["clientOrderId"],
            symbol=d["symbol"],
            status=_ORDER_STATUS.get(d["status"], d["status"].lower()),
            quantity=_f(d["origQty"]),
            filled_qty=_f(d["executedQty"]),
            venue_order_id=str(d["orderId"]),
            side=d["side"],
            price=_f(d.get("price")) or None,
            trigger_price=stop or None,
            reduce_only=bool(d.get("reduceOnly", False)),
        )

    result: VenueOrder = _shape("order", payload, build)
    return result


def parse_algo_order(payload: dict[str, Any]) -> VenueOrder:
    """GET/POST algo order replies: a conditional order by its clientAlgoId. A triggered one's
    fills belong to the matching-engine order `actualOrderId` (our `venue_order_id`)."""

    def build(d: dict[str, Any]) -> VenueOrder:
        # FINISHED says the triggered order ended, not how: that is the actual order's status
        # (the transport asks for it by `actualOrderId`).
        status = _ALGO_STATUS.get(d["algoStatus"], d["algoStatus"].lower())
        qty = _f(d.get("quantity"))
        filled = 0.0
        return VenueOrder(
            client_order_id=d["clientAlgoId"],
            symbol=d["symbol"],
            status=status,
            quantity=qty,
            filled_qty=filled,
            venue_order_id=str(d.get("actualOrderId") or ""),
            side=d["side"],
            price=_f(d.get("price")) or None,
            trigger_price=_f(d.get("triggerPrice")) or None,
            reduce_only=bool(d.get("reduceOnly", False) or d.get("closePosition")),
        )

    result: VenueOrder = _shape("algo order", payload, build)
    return result


def ack_report(order: VenueOrder, ts: int) -> list[VenueReport]:
    """What an order reply tells the engine at once: ACCEPT, or (for a MARKET/IOC answered as
    done) the end state. Fills themselves come from the user stream / userTrades with trade ids."""
    kind = _ACK_EVENTS.get(order.status, OrderEvent.ACCEPT)
    reason = "binance:rejected" if kind is OrderEvent.REJECT else ""
    return [
        VenueReport(
            kind,
            order.client_order_id,
            ts,
            reason=reason,
            venue_order_id=order.venue_order_id,
            trigger_price=order.trigger_price,
        )
    ]


_ACK_EVENTS = {
    "canceled": OrderEvent.CANCEL,
    "expired": OrderEvent.EXPIRE,
    "rejected": OrderEvent.REJECT,
}


def parse_user_trade(d: dict[str, Any], client_ids: Mapping[str, str]) -> VenueFill | None:
    """One `userTrades` / `myTrades` row; `client_ids` maps Binance orderId to our client id
    (rows of orders we never placed give None)."""
    cid = client_ids.get(str(d["orderId"]))
    if cid is None:
        return None
    return VenueFill(
        client_order_id=cid,
        trade_id=str(d["id"]),
        ts=int(d["time"]),
        quantity=_f(d["qty"]),
        price=_f(d["price"]),
        fee=_f(d.get("commission")),
        symbol=d["symbol"],
        side=d.get("side") or ("BUY" if d.get("isBuyer") else "SELL"),
    )


def spot_fee(
    commission: float, asset: str, symbol: str, fill_price: float, asset_price: float = 0.0
) -> tuple[float, float]:
    """A spot commission as (its value in the quote asset, the coins of the base asset it took).

    Binance takes a BUY's commission out of the coins bought unless the account pays fees in
    BNB, and a SELL's out of the quote received: a base-asset fee is worth `fill_price` each
    and leaves the position that many coins short of the traded quantity; a third asset (BNB)
    is worth `asset_price` (its last price in the quote asset) and takes no coins.
    """
    base = spot_base_asset(symbol)
    if not commission or asset in ("", symbol[len(base) :]):
        return commission, 0.0
    if asset == base:
        return commission * fill_price, commission
    if asset_price <= 0:
        raise ValueError(f"{symbol}: a fee in {asset} needs {asset}'s price to be counted")
    return commission * asset_price, 0.0


def kept_to_the_lot(quantity: float, fee_qty: float, lot_size: float) -> float:
    """The coins of a fill the bot no longer holds as its own: the commission taken from them
    and the dust it leaves below one lot step (Binance sells whole steps only, so the dust can
    never be sold: it is lost to the bot like the fee). The position then stays on the step."""
    if fee_qty <= 0 or lot_size <= 0:
        return fee_qty
    lots = math.floor((quantity - fee_qty) / lot_size + 1e-9)
    return max(fee_qty, quantity - lots * lot_size)


def spot_base_asset(symbol: str) -> str:
    """BTCUSDT -> BTC (spot symbols here are quoted in USDT, or a three-letter quote)."""
    return symbol[:-4] if symbol.endswith("USDT") else symbol[:-3]


def parse_position_risk(payload: list[dict[str, Any]]) -> list[VenuePosition]:
    def build(rows: list[dict[str, Any]]) -> list[VenuePosition]:
        return [
            VenuePosition(
                r["symbol"],
                _f(r["positionAmt"]),
                _f(r.get("entryPrice")),
                _f(r.get("unRealizedProfit")),
            )
            for r in rows
            if _f(r["positionAmt"]) != 0.0
        ]

    result: list[VenuePosition] = _shape("positionRisk", payload, build)
    return result


def parse_futures_account(payload: dict[str, Any]) -> VenueAccount:
    def build(d: dict[str, Any]) -> VenueAccount:
        return VenueAccount(
            equity=_f(d["totalMarginBalance"]),
            available=_f(d["availableBalance"]),
            margin_used=_f(d.get("totalInitialMargin")),
            currency="USDT",
        )

    result: VenueAccount = _shape("account", payload, build)
    return result


def parse_spot_account(payload: dict[str, Any], quote: str = "USDT") -> VenueAccount:
    """Spot has no equity figure: the quote asset's balance (free + locked) stands for it."""

    def build(d: dict[str, Any]) -> VenueAccount:
        row = next((b for b in d["balances"] if b["asset"] == quote), {"free": 0, "locked": 0})
        return VenueAccount(
            equity=_f(row["free"]) + _f(row["locked"]),
            available=_f(row["free"]),
            margin_used=0.0,
            currency=quote,
        )

    result: VenueAccount = _shape("account", payload, build)
    return result


def parse_server_time(payload: dict[str, Any]) -> int:
    result: int = _shape("time", payload, lambda d: int(d["serverTime"]))
    return result


def parse_ticker_price(payload: dict[str, Any]) -> float:
    result: float = _shape("ticker price", payload, lambda d: float(d["price"]))
    return result


def parse_listen_key(payload: dict[str, Any]) -> str:
    result: str = _shape("listenKey", payload, lambda d: str(d["listenKey"]))
    return result


# -- instruments ----------------------------------------------------------------


def _filters(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in row.get("filters", [])}


def parse_exchange_info(payload: dict[str, Any], market: Market) -> dict[str, InstrumentSpec]:
    """Tick, step, minimum quantity and notional of every symbol that is TRADING."""

    def build(d: dict[str, Any]) -> dict[str, InstrumentSpec]:
        out: dict[str, InstrumentSpec] = {}
        for row in d["symbols"]:
            if row.get("status") != "TRADING":
                continue
            if market is Market.FUTURES and row.get("contractType") not in ("PERPETUAL", None):
                continue  # quarterly delivery contracts expire: not traded by this daemon
            f = _filters(row)
            lot = f["LOT_SIZE"]
            notional = f.get("MIN_NOTIONAL") or f.get("NOTIONAL") or {}
            out[row["symbol"]] = InstrumentSpec(
                symbol=row["symbol"],
                tick_size=_f(f["PRICE_FILTER"]["tickSize"]),
                lot_size=_f(lot["stepSize"]),
                min_qty=_f(lot.get("minQty")),
                min_notional=_f(notional.get("notional") or notional.get("minNotional")),
            )
        return out

    result: dict[str, InstrumentSpec] = _shape("exchangeInfo", payload, build)
    return result


def symbol_problems(
    symbols: list[str],
    specs: Mapping[str, InstrumentSpec],
    market: Market,
    key: str = "feed.symbols",
) -> list[str]:
    """Every configured symbol Binance does not trade, each with the valid form."""
    label = "USD-M futures" if market is Market.FUTURES else "spot"
    problems = []
    for sym in symbols:
        if sym in specs:
            continue
        guess = sym.upper().replace("-", "").replace("/", "").replace("_", "")
        if guess.endswith("PERP"):
            guess = guess[:-4] + "USDT"
        hint = f"; did you mean {guess!r}?" if guess in specs else ""
        if sym.upper().endswith("USD_PERP") or re.search(r"USD_\d{6}$", sym.upper()):
            hint = "; that is a COIN-M (/dapi) contract, which fractald refuses"
        problems.append(
            f"{key}: {sym!r} is not a Binance {label} symbol trading now: Binance "
            f"names them upper case, base then quote, e.g. 'BTCUSDT'{hint}"
        )
    return problems
