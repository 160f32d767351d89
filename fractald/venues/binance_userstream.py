"""Binance user data stream, Sans-I/O: raw frames in, typed events out; the listenKey schedule.

The stream is `<ws_url>/ws/<listenKey>`. The key is made by `POST listenKey`,
lives 60 minutes unless kept alive (`PUT`, every 30 minutes here), and
when Binance expires it anyway the stream says `listenKeyExpired`: the
transport makes a new key, reconnects, and resyncs by REST, since events
in the gap are gone.

Futures events: `ORDER_TRADE_UPDATE` (orders of the matching engine),
`ALGO_UPDATE` (conditional orders in the Algo Service: our stops and
take-profits), `ACCOUNT_UPDATE` (balances and positions), `listenKeyExpired`.
Spot: `executionReport`, `outboundAccountPosition`, delivered on the WebSocket API
as `{"subscriptionId": N, "event": {...}}` after `userDataStream.subscribe.signature`
(`parse_ws_api_frame`); `eventStreamTerminated` ends the subscription.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from fractald.core.execution.orders import Liquidity, OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.venues.binance_orders import LISTEN_KEY_KEEPALIVE_S


@attrs.frozen(slots=True)
class OrderUpdate:
    """A matching-engine order changed. `report` is None for changes the engine needs not see."""

    symbol: str
    venue_order_id: str
    client_order_id: str
    report: VenueReport | None
    original_type: str = ""
    fee_asset: str = ""  # spot: the asset the fee (report.fee, as charged) was taken in


@attrs.frozen(slots=True)
class AlgoUpdate:
    """A conditional (algo) order changed; `actual_order_id` names the order it triggered."""

    symbol: str
    client_order_id: str
    status: str
    actual_order_id: str
    report: VenueReport | None


@attrs.frozen(slots=True)
class AccountUpdate:
    ts: int
    reason: str
    balances: dict[str, float]
    positions: dict[str, float]  # symbol -> signed quantity (one-way mode)


@attrs.frozen(slots=True)
class ListenKeyExpired:
    ts: int
    listen_key: str


@attrs.frozen(slots=True)
class Unrecognised:
    event: str
    detail: str


@attrs.frozen(slots=True)
class WsApiReply:
    """The WebSocket API's answer to one request: status 200 and a result, or an error."""

    request_id: str
    status: int
    code: int = 0
    msg: str = ""


UserEvent = OrderUpdate | AlgoUpdate | AccountUpdate | ListenKeyExpired | Unrecognised


def _f(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


_EXEC_EVENTS = {
    "NEW": OrderEvent.ACCEPT,
    "CANCELED": OrderEvent.CANCEL,
    "EXPIRED": OrderEvent.EXPIRE,
    "AMENDMENT": OrderEvent.UPDATE,
    "REPLACED": OrderEvent.UPDATE,
    "REJECTED": OrderEvent.REJECT,
}


def _fill_kind(status: str) -> OrderEvent:
    return OrderEvent.FILL if status == "FILLED" else OrderEvent.PARTIAL_FILL


def _order_report(
    cid: str, exec_type: str, status: str, ts: int, o: dict[str, Any], trigger: float
) -> VenueReport | None:
    venue_id = str(o["i"])
    if exec_type in ("TRADE", "CALCULATED"):  # CALCULATED: a liquidation or ADL fill
        return VenueReport(
            _fill_kind(status),
            cid,
            ts,
            trade_id=str(o["t"]),
            quantity=_f(o["l"]),
            price=_f(o["L"]),
            fee=_f(o.get("n")),
            liquidity=Liquidity.MAKER if o.get("m") else Liquidity.TAKER,
            reason="liquidation" if exec_type == "CALCULATED" else "",
            venue_order_id=venue_id,
        )
    kind = _EXEC_EVENTS.get(exec_type)
    if kind is None:
        return None
    reason = str(o.get("r") or "") if kind is OrderEvent.REJECT else ""
    return VenueReport(
        kind, cid, ts, venue_order_id=venue_id, trigger_price=trigger or None, reason=reason
    )


def parse_order_trade_update(msg: dict[str, Any]) -> OrderUpdate:
    o = msg["o"]
    ts = int(o.get("T") or msg.get("T") or msg["E"])
    report = _order_report(o["c"], o["x"], o["X"], ts, o, _f(o.get("sp")))
    return OrderUpdate(o["s"], str(o["i"]), o["c"], report, o.get("ot", ""))


def parse_execution_report(msg: dict[str, Any]) -> OrderUpdate:
    """Spot: a cancel carries the canceled order's client id in `C`, not `c`."""
    cid = msg["C"] if msg["x"] == "CANCELED" and msg.get("C") else msg["c"]
    o = {
        "i": msg["i"],
        "t": msg.get("t"),
        "l": msg["l"],
        "L": msg["L"],
        "n": msg.get("n"),
        "m": msg.get("m"),
        "r": msg.get("r"),
    }
    report = _order_report(
        cid, msg["x"], msg["X"], int(msg.get("T") or msg["E"]), o, _f(msg.get("P"))
    )
    return OrderUpdate(
        msg["s"], str(msg["i"]), cid, report, msg.get("o", ""), str(msg.get("N") or "")
    )


_ALGO_EVENTS = {
    "NEW": OrderEvent.ACCEPT,
    "CANCELED": OrderEvent.CANCEL,
    "EXPIRED": OrderEvent.EXPIRE,
    "REJECTED": OrderEvent.REJECT,
    "TRIGGERED": OrderEvent.TRIGGER,
}


def parse_algo_update(msg: dict[str, Any]) -> AlgoUpdate:
    """TRIGGERING and FINISHED carry nothing for the engine: the fills and the end of the
    triggered order arrive as ORDER_TRADE_UPDATEs of `actual_order_id`."""
    o = msg["o"]
    ts = int(msg.get("E") or msg["T"])
    kind = _ALGO_EVENTS.get(o["X"])
    report = None
    if kind is not None:
        report = VenueReport(
            kind,
            o["caid"],
            ts,
            venue_order_id=str(o.get("ai") or ""),
            trigger_price=_f(o.get("tp")) or None,
            reason=str(o.get("rm") or "") if kind is OrderEvent.REJECT else "",
        )
    return AlgoUpdate(o["s"], o["caid"], o["X"], str(o.get("ai") or ""), report)


def parse_account_update(msg: dict[str, Any]) -> AccountUpdate:
    a = msg["a"]
    balances = {b["a"]: _f(b["wb"]) for b in a.get("B", [])}
    positions = {p["s"]: _f(p["pa"]) for p in a.get("P", []) if p.get("ps", "BOTH") == "BOTH"}
    return AccountUpdate(int(msg.get("T") or msg["E"]), a.get("m", ""), balances, positions)


def parse_outbound_account_position(msg: dict[str, Any]) -> AccountUpdate:
    balances = {b["a"]: _f(b["f"]) + _f(b["l"]) for b in msg.get("B", [])}
    return AccountUpdate(int(msg["E"]), "spot", balances, {})


def parse_listen_key_expired(msg: dict[str, Any]) -> ListenKeyExpired:
    return ListenKeyExpired(int(msg["E"]), str(msg.get("listenKey", "")))


_BY_EVENT: dict[str, Callable[[dict[str, Any]], UserEvent]] = {
    "ORDER_TRADE_UPDATE": parse_order_trade_update,
    "ALGO_UPDATE": parse_algo_update,
    "ACCOUNT_UPDATE": parse_account_update,
    "listenKeyExpired": parse_listen_key_expired,
    "executionReport": parse_execution_report,
    "outboundAccountPosition": parse_outbound_account_position,
}


def parse_user_event(raw: str | bytes) -> UserEvent:
    """One frame of the user data stream; anything unreadable is `Unrecognised`, never raised."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Unrecognised("not_json", f"{exc}: {raw[:120]!r}")
    if isinstance(msg, dict) and isinstance(msg.get("data"), dict):  # combined-stream wrapper
        msg = msg["data"]
    if not isinstance(msg, dict):
        return Unrecognised("not_object", repr(msg)[:120])
    event = msg.get("e", "")
    parse = _BY_EVENT.get(event)
    if parse is None:
        return Unrecognised(str(event) or "no_event", json.dumps(msg)[:200])
    try:
        result: UserEvent = parse(msg)
    except (KeyError, TypeError, ValueError) as exc:
        return Unrecognised(str(event), f"unreadable: {exc!r}")
    return result


def parse_ws_api_frame(raw: str | bytes) -> UserEvent | WsApiReply:
    """One frame of a spot WebSocket API session: a request's reply, or a user data event."""
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return Unrecognised("not_json", f"{exc}: {raw[:120]!r}")
    if isinstance(msg, dict) and "status" in msg and "id" in msg:
        err = msg.get("error") or {}
        return WsApiReply(
            str(msg["id"]), int(msg["status"]), int(err.get("code", 0)), str(err.get("msg", ""))
        )
    if isinstance(msg, dict) and isinstance(msg.get("event"), dict):
        event = msg["event"]
        if event.get("e") == "eventStreamTerminated":  # the subscription is over: subscribe again
            return ListenKeyExpired(int(event.get("E", 0)), "")
        return parse_user_event(json.dumps(event))
    return Unrecognised("ws_api_frame", repr(msg)[:200])


# -- listenKey schedule -----------------------------------------------------------


@attrs.frozen(slots=True)
class ListenKeySchedule:
    """When the key needs a keepalive, on the transport's monotonic clock (seconds)."""

    listen_key: str = ""
    kept_alive_at: float = 0.0
    interval_s: float = LISTEN_KEY_KEEPALIVE_S

    def created(self, key: str, now: float) -> ListenKeySchedule:
        return ListenKeySchedule(key, now, self.interval_s)

    def kept_alive(self, now: float) -> ListenKeySchedule:
        return ListenKeySchedule(self.listen_key, now, self.interval_s)

    def expired(self) -> ListenKeySchedule:
        return ListenKeySchedule("", 0.0, self.interval_s)

    def next_keepalive(self) -> float:
        return self.kept_alive_at + self.interval_s

    @property
    def needs_key(self) -> bool:
        return not self.listen_key
