"""The Venue on Interactive Brokers (TWS / IB Gateway) through ib_async.

Our deterministic client order id travels in `orderRef`, so every question
after a restart (open orders, executions) is answered by our id, not IB's
per-session order ids. Entries can go out as IB brackets (parent + stop +
targets, children transmitted with the last leg; IB treats a bracket's
children as one-cancels-other) so the protective stop rests at IB from the
moment the entry fills. An unfilled entry is cancelled after
`entry_ttl_s` (90 s by default).

All IB calls run on ib_async's own asyncio loop in a thread
(`ibkr_bridge.AsyncioThread`); nothing here blocks trio.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Self

import attrs
import trio

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import Liquidity, OrderEvent, OrderType, TimeInForce
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Bar, Side
from fractald.core.realtime_bars import FiveSecondRollup
from fractald.errors import AuthError, ConfigError, NetworkError
from fractald.venues.ibkr_bridge import AsyncioThread, ToTrio
from fractald.venues.ibkr_codes import IBCategory, categorize
from fractald.venues.interface import (
    InstrumentSpec,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenuePosition,
)

# IB order status -> our lower-case venue status
STATUS = {
    "PendingSubmit": "open",
    "PreSubmitted": "open",
    "Submitted": "open",
    "ApiPending": "open",
    "PendingCancel": "open",
    "Filled": "filled",
    "Cancelled": "canceled",
    "ApiCancelled": "canceled",
    "Inactive": "rejected",
}


@attrs.frozen(slots=True)
class IBSettings:
    host: str = "127.0.0.1"
    port: int = 4002  # IB Gateway paper; TWS paper is 7497
    client_id: int = 17
    account: str = ""
    symbol: str = "MES"  # the future's root; the front month is chosen from contract details
    exchange: str = "CME"
    currency: str = "USD"
    roll_days: int = 5
    entry_ttl_s: float = 90.0
    request_timeout_s: float = 10.0


def front_month(expiries: Sequence[str], today: str, roll_days: int) -> str:
    """The contract month to trade: the nearest expiry more than `roll_days` days after `today`.

    Expiries and today are YYYYMMDD; rolling `roll_days` before expiry keeps the
    position out of the last days' thin liquidity and the delivery process.
    """
    if not expiries:
        raise ValueError("no contract expiries to choose from")
    day = datetime.strptime(today, "%Y%m%d")
    ok = sorted(e for e in expiries if (datetime.strptime(e[:8], "%Y%m%d") - day).days > roll_days)
    if not ok:
        raise ValueError(
            f"every expiry of {sorted(expiries)} is within {roll_days} days of {today}"
        )
    return ok[0]


def ib_order(intent: OrderIntent) -> Any:
    """The ib_async Order for one intent (our id in orderRef)."""
    import ib_async

    action = "BUY" if intent.side is Side.BUY else "SELL"
    tif = {
        TimeInForce.GTC: "GTC",
        TimeInForce.IOC: "IOC",
        TimeInForce.FOK: "FOK",
        TimeInForce.GTD: "GTD",
    }
    common = {"orderRef": intent.client_order_id, "tif": tif[intent.tif]}
    if intent.tif is TimeInForce.GTD and intent.expire_ts is not None:
        common["goodTillDate"] = datetime.fromtimestamp(intent.expire_ts / 1000, UTC).strftime(
            "%Y%m%d %H:%M:%S UTC"
        )
    if intent.order_type is OrderType.MARKET:
        return ib_async.MarketOrder(action, intent.quantity, **common)
    if intent.order_type is OrderType.LIMIT:
        assert intent.price is not None
        return ib_async.LimitOrder(action, intent.quantity, intent.price, **common)
    if intent.order_type is OrderType.STOP_MARKET:
        assert intent.trigger_price is not None
        return ib_async.StopOrder(action, intent.quantity, intent.trigger_price, **common)
    raise ValueError(f"IBKR venue: order type {intent.order_type.value} is not supported")


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class IBKRVenue:
    """`fractald.venues.interface.Venue` on IBKR. Use `async with IBKRVenue(settings) as venue:`."""

    name = "ibkr"
    holds_gtd = (
        True  # IB expires a GTD order itself (goodTillDate); others are cancelled by the router
    )

    def __init__(self, settings: IBSettings) -> None:
        self.settings = settings
        self.thread: AsyncioThread | None = None
        self.ib: Any = None
        self.contract: Any = None
        self.details: Any = None
        self._months: dict[str, Any] = {}  # expiry -> contract details, as listed at connect
        self.errors: list[
            tuple[int, int, str]
        ] = []  # (req id, code, message), for status and tests
        self._reports: ToTrio | None = None
        self._deadlines: dict[str, float] = {}  # entry client id -> trio time to cancel it

    # -- connection -------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        import ib_async

        if self.thread is None:
            self.thread = AsyncioThread()
        s = self.settings

        async def go() -> Any:
            ib = ib_async.IB()
            ib.RaiseRequestErrors = False
            await ib.connectAsync(
                s.host, s.port, clientId=s.client_id, account=s.account, timeout=s.request_timeout_s
            )
            return ib

        try:
            self.ib = await self.thread.call(go, s.request_timeout_s * 2)
        except (ConnectionError, OSError, TimeoutError, trio.TooSlowError) as exc:
            raise NetworkError(
                f"IBKR: cannot connect to {s.host}:{s.port} as client {s.client_id}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.ib.errorEvent += self._on_error
        if any(categorize(code) is IBCategory.FATAL for _, code, _ in self.errors):
            raise AuthError(f"IBKR refused the session: {self.errors[-1][2]}")
        await self._resolve_contract()

    async def close(self) -> None:
        if self.ib is not None and self.thread is not None:
            ib = self.ib
            self.thread.call_soon(ib.disconnect)
        if self.thread is not None:
            self.thread.stop()
        self.ib = self.thread = None

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        # Recorded only: ib_async itself ends a refused order (status Cancelled, the code in its log),
        # and `_report_of` turns that into a REJECT with the code.
        self.errors.append((req_id, code, message))
        del self.errors[:-200]

    async def _call(self, make: Any) -> Any:
        assert self.thread is not None and self.ib is not None, "IBKRVenue is not connected"
        return await self.thread.call(make, self.settings.request_timeout_s)

    def _now_ms(self) -> int:
        return int(datetime.now(UTC).timestamp() * 1000)

    async def _resolve_contract(self) -> None:
        import ib_async

        s = self.settings
        details = await self._call(
            lambda: self.ib.reqContractDetailsAsync(
                ib_async.Future(s.symbol, exchange=s.exchange, currency=s.currency)
            )
        )
        if not details:
            raise ConfigError(f"broker.symbol: IBKR knows no {s.symbol} future on {s.exchange}")
        self._months = {d.contract.lastTradeDateOrContractMonth: d for d in details}
        self._follow_front_month()

    def _follow_front_month(self) -> None:
        """Trade today's front month. Called at each connect and before each entry, so a roll
        day that passes while connected moves new entries to the next month, as the feed does."""
        today = datetime.fromtimestamp(self._now_ms() / 1000, UTC).strftime("%Y%m%d")
        try:
            chosen = front_month(list(self._months), today, self.settings.roll_days)
        except ValueError:  # only expiring contracts listed (the fake's, in tests): the last one
            chosen = max(self._months)
        self.details = self._months[chosen]
        self.contract = self.details.contract

    # -- Venue ------------------------------------------------------------------------
    async def instruments(self) -> dict[str, InstrumentSpec]:
        d = self.details
        return {
            self.settings.symbol: InstrumentSpec(
                self.settings.symbol,
                tick_size=float(d.minTick),
                lot_size=1.0,
                min_qty=1.0,
                multiplier=float(d.contract.multiplier or 1),
            )
        }

    async def submit(self, intent: OrderIntent) -> VenueReport:
        if intent.post_only:  # IB has no maker-only order for futures: never send one that may take
            return VenueReport(
                OrderEvent.REJECT,
                intent.client_order_id,
                intent.ts,
                reason="post_only_unsupported: IBKR has no post-only order type",
            )
        order = ib_order(intent)
        contract = await self._contract_for(intent)
        trade = await self._call(lambda: _placed(self.ib, contract, order))
        if intent.role == "entry":
            self._deadlines[intent.client_order_id] = (
                trio.current_time() + self.settings.entry_ttl_s
            )
        return self._report_of(trade)

    async def _contract_for(self, intent: OrderIntent) -> Any:
        """The contract month an order trades: the front month, except an exit after a roll.

        IB has no reduce-only order for futures, so a reduce-only intent (an exit, a roll's
        close) goes to the month that holds a position it reduces: after a roll the venue may
        trade the new month already (it resolves the front month at each connect) while the
        position is still on the old one, and an exit sent to the new month would open a
        position there instead of closing the old one.
        """
        if not intent.reduce_only:
            self._follow_front_month()
            return self.contract
        sign = 1.0 if intent.side is Side.BUY else -1.0
        held = [
            p.contract
            for p in await self._call(lambda: self.ib.reqPositionsAsync())
            if self._same_root(p.contract) and float(p.position) * sign < 0
        ]
        if not held or any(c.conId == self.contract.conId for c in held):
            return self.contract
        month = copy.copy(held[0])  # ib_async's own record of the position stays as it is
        month.exchange = month.exchange or self.contract.exchange  # IB's positions omit it
        return month

    async def submit_bracket(
        self, entry: OrderIntent, stop: OrderIntent, targets: Sequence[OrderIntent] = ()
    ) -> list[VenueReport]:
        """Entry, protective stop and targets as one IB bracket: the children go with the last leg."""
        legs = [ib_order(entry), ib_order(stop), *(ib_order(t) for t in targets)]
        self._follow_front_month()

        async def place() -> list[Any]:
            parent = legs[0]
            parent.orderId = self.ib.client.getReqId()
            parent.transmit = False
            for child in legs[1:]:
                child.parentId = parent.orderId
                child.transmit = False
            legs[-1].transmit = True
            placed = [self.ib.placeOrder(self.contract, leg) for leg in legs]
            await _settled(placed)
            return placed

        trades = await self._call(place)
        self._deadlines[entry.client_order_id] = trio.current_time() + self.settings.entry_ttl_s
        return [self._report_of(t) for t in trades]

    async def cancel(self, client_order_id: str, symbol: str = "") -> VenueReport:
        trade = await self._trade(client_order_id)
        if trade is None or trade.isDone():
            return VenueReport(
                OrderEvent.CANCEL_REJECT,
                client_order_id,
                self._now_ms(),
                reason="not working at IBKR",
            )
        await self._call(lambda: _cancelled(self.ib, trade))
        self._deadlines.pop(client_order_id, None)
        return self._report_of(trade)

    async def modify(
        self,
        client_order_id: str,
        symbol: str = "",
        *,
        quantity: float | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
    ) -> VenueReport:
        trade = await self._trade(client_order_id)
        if trade is None or trade.isDone():
            return VenueReport(
                OrderEvent.UPDATE_REJECT,
                client_order_id,
                self._now_ms(),
                reason="not working at IBKR",
            )
        order = trade.order
        if quantity is not None:
            order.totalQuantity = quantity
        if price is not None:
            order.lmtPrice = price
        if trigger_price is not None:
            order.auxPrice = trigger_price
        # The month the order trades (a stop on the old month after a roll stays there).
        contract = trade.contract if getattr(trade.contract, "conId", 0) else self.contract
        await self._call(lambda: _modified(self.ib, contract, order))
        return VenueReport(
            OrderEvent.UPDATE, client_order_id, self._now_ms(), venue_order_id=str(order.permId)
        )

    async def order_status(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        trade = await self._trade(client_order_id)
        if trade is not None:
            return self._venue_order(trade)
        fills = [f for f in await self.fills_since(0) if f.client_order_id == client_order_id]
        if fills:
            qty = sum(f.quantity for f in fills)
            return VenueOrder(client_order_id, self.settings.symbol, "filled", qty, qty)
        return None

    async def open_orders(self) -> list[VenueOrder]:
        trades = await self._call(lambda: self.ib.reqAllOpenOrdersAsync())
        return [self._venue_order(t) for t in trades if t.order.orderRef]

    async def fills_since(self, ts: int) -> list[VenueFill]:
        import ib_async

        when = datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y%m%d-%H:%M:%S") if ts > 0 else ""
        fills = await self._call(
            lambda: self.ib.reqExecutionsAsync(ib_async.ExecutionFilter(time=when))
        )
        return [
            VenueFill(
                f.execution.orderRef,
                f.execution.execId,
                _ms(f.execution.time),
                float(f.execution.shares),
                float(f.execution.price),
                float(f.commissionReport.commission or 0.0),
                self.settings.symbol,
                "BUY" if f.execution.side == "BOT" else "SELL",
            )
            for f in fills
            if f.execution.orderRef and _ms(f.execution.time) >= ts
        ]

    async def positions(self) -> dict[str, float]:
        net: dict[str, float] = {}
        for p in await self.position_details():
            net[p.symbol] = net.get(p.symbol, 0.0) + p.quantity
        return net

    async def position_details(self) -> list[VenuePosition]:
        """The root's positions in every contract month: after a roll the old month's position
        is still ours (held over a roll while down, or its close not filled yet), and the
        books hold it under the root's name, so reconciliation must see it."""
        positions = await self._call(lambda: self.ib.reqPositionsAsync())
        own_mult = float(self.contract.multiplier or 1)
        return [
            VenuePosition(
                self.settings.symbol,
                float(p.position),
                float(p.avgCost) / float(p.contract.multiplier or own_mult),
            )
            for p in positions
            if p.position and self._same_root(p.contract)
        ]

    def _same_root(self, contract: Any) -> bool:
        """A month of the future this venue trades (the front month or another)."""
        return contract.conId == self.contract.conId or (
            contract.symbol == self.settings.symbol and contract.secType == "FUT"
        )

    async def account(self) -> VenueAccount:
        values = {(v.tag, v.currency): v.value for v in self.ib.accountValues()}
        cur = self.settings.currency

        def num(tag: str) -> float:
            try:
                return float(values.get((tag, cur), "nan"))
            except ValueError:
                return math.nan

        return VenueAccount(num("NetLiquidation"), num("AvailableFunds"), currency=cur)

    async def stream_reports(self, send: trio.MemorySendChannel[VenueReport]) -> None:
        """Fills and status changes as VenueReports; unfilled entries cancelled at their TTL."""
        self._reports = ToTrio(send, trio.lowlevel.current_trio_token())
        reports = self._reports

        def on_exec(trade: Any, fill: Any, _commission: Any) -> None:
            # on the commission report, which IB sends right after the execution: the fee is then known
            if not fill.execution.orderRef:
                return
            # the execution's cumulative quantity, not the status (IB sends the two in either order)
            done = float(fill.execution.cumQty or 0) >= float(trade.order.totalQuantity) - 1e-9
            event = OrderEvent.FILL if done else OrderEvent.PARTIAL_FILL
            reports.put(
                VenueReport(
                    event,
                    fill.execution.orderRef,
                    _ms(fill.execution.time),
                    trade_id=fill.execution.execId,
                    quantity=float(fill.execution.shares),
                    price=float(fill.execution.price),
                    fee=float(fill.commissionReport.commission or 0.0),
                    liquidity=Liquidity.TAKER,
                    venue_order_id=str(trade.order.permId),
                )
            )

        def on_status(trade: Any) -> None:
            status = trade.orderStatus.status
            if trade.order.orderRef and status in ("Cancelled", "ApiCancelled", "Inactive"):
                reports.put(self._report_of(trade))

        self.thread.call_soon(_subscribe, self.ib, on_exec, on_status)  # type: ignore[union-attr]
        try:
            while True:
                await trio.sleep(1.0)
                await self._expire_entries()
        finally:
            if self.thread is not None and self.ib is not None:
                self.thread.call_soon(_unsubscribe, self.ib, on_exec, on_status)
            reports.closed = True

    async def stream_bars(
        self, send: trio.MemorySendChannel[Bar], rollup: FiveSecondRollup | None = None
    ) -> None:
        """Market data: IB's 5 s real-time bars (trades) rolled into 1 m bars, until cancelled."""
        assert self.thread is not None and self.ib is not None
        rollup = rollup or FiveSecondRollup(self.settings.symbol, float(self.details.minTick))
        out = ToTrio(send, trio.lowlevel.current_trio_token())
        bars = await self._call(lambda: _subscribe_bars(self.ib, self.contract))

        def on_update(bar_list: Any, has_new: bool) -> None:
            if has_new:
                b = bar_list[-1]
                for minute in rollup.on_bar(
                    _ms(b.time), b.open_, b.high, b.low, b.close, float(b.volume)
                ):
                    out.put(minute)

        self.thread.call_soon(_watch_bars, bars, on_update, True)
        try:
            await trio.sleep_forever()
        finally:
            out.closed = True
            if self.thread is not None and self.ib is not None:
                self.thread.call_soon(_watch_bars, bars, on_update, False)
                self.thread.call_soon(self.ib.cancelRealTimeBars, bars)

    async def _expire_entries(self) -> None:
        now = trio.current_time()
        for cid, deadline in list(self._deadlines.items()):
            if now < deadline:
                continue
            self._deadlines.pop(cid)
            trade = await self._trade(cid)
            if trade is not None and not trade.isDone() and trade.orderStatus.filled == 0:
                await self.cancel(cid)

    # -- helpers --------------------------------------------------------------------
    async def _trade(self, client_order_id: str) -> Any:
        for t in reversed(self.ib.trades()):
            if t.order.orderRef == client_order_id:
                return t
        for t in await self._call(lambda: self.ib.reqAllOpenOrdersAsync()):
            if t.order.orderRef == client_order_id:
                return t
        return None

    def _venue_order(self, trade: Any) -> VenueOrder:
        o, st = trade.order, trade.orderStatus
        # Futures at IB have no reduce-only flag; fractald only ever sends stop orders as protective
        # stops (entries are market or limit), so a stop is reported as the reduce-only leg it is.
        return VenueOrder(
            o.orderRef,
            self.settings.symbol,
            STATUS.get(st.status, "open"),
            float(o.totalQuantity),
            float(st.filled),
            str(o.permId),
            o.action,
            None if o.orderType != "LMT" else float(o.lmtPrice),
            None if o.orderType != "STP" else float(o.auxPrice),
            reduce_only=o.orderType == "STP",
        )

    def _report_of(self, trade: Any) -> VenueReport:
        st = trade.orderStatus.status
        event = {
            "Filled": OrderEvent.FILL,
            "Cancelled": OrderEvent.CANCEL,
            "ApiCancelled": OrderEvent.CANCEL,
            "Inactive": OrderEvent.REJECT,
        }.get(st, OrderEvent.ACCEPT)
        reason = ""
        refused = [
            e for e in trade.log if e.errorCode and categorize(e.errorCode) is IBCategory.REJECT
        ]
        if event in (OrderEvent.CANCEL, OrderEvent.REJECT) and refused:
            event, reason = OrderEvent.REJECT, f"ib_{refused[-1].errorCode}: {refused[-1].message}"
        elif event is OrderEvent.REJECT:
            reason = "inactive"
        fill = trade.orderStatus
        return VenueReport(
            event,
            trade.order.orderRef,
            self._now_ms(),
            reason=reason,
            venue_order_id=str(trade.order.permId),
            quantity=float(fill.filled) if event is OrderEvent.FILL else 0.0,
            price=float(fill.avgFillPrice) if event is OrderEvent.FILL else 0.0,
        )


async def _settled(trades: Sequence[Any], timeout_s: float = 5.0) -> None:
    """Wait (on the IB loop) until every order has left PendingSubmit, or the timeout."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (
        any(t.orderStatus.status in ("PendingSubmit", "") for t in trades)
        and loop.time() < deadline
    ):
        await asyncio.sleep(0.02)


async def _placed(ib: Any, contract: Any, order: Any) -> Any:
    trade = ib.placeOrder(contract, order)
    await _settled([trade])
    return trade


async def _modified(ib: Any, contract: Any, order: Any) -> Any:
    """Re-place an order with new terms, then a round trip on the same connection: TWS handles one
    connection's messages in order, so when the open-orders answer is in, the change has been made."""
    trade = ib.placeOrder(contract, order)
    await ib.reqOpenOrdersAsync()
    return trade


async def _cancelled(ib: Any, trade: Any) -> Any:
    import asyncio

    ib.cancelOrder(trade.order)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not trade.isDone() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    return trade


def _subscribe(ib: Any, on_exec: Any, on_status: Any) -> None:
    ib.commissionReportEvent += on_exec
    ib.orderStatusEvent += on_status


def _unsubscribe(ib: Any, on_exec: Any, on_status: Any) -> None:
    ib.commissionReportEvent -= on_exec
    ib.orderStatusEvent -= on_status


async def _subscribe_bars(ib: Any, contract: Any) -> Any:
    return ib.reqRealTimeBars(contract, 5, "TRADES", False)


def _watch_bars(bars: Any, handler: Any, on: bool) -> None:
    if on:
        bars.updateEvent += handler
    else:
        bars.updateEvent -= handler
