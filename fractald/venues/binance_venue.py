"""Binance USD-M futures (and spot) as a `Venue`: the router's view of Binance, on trio.

Orders are named by our client order id everywhere: `newClientOrderId` for
matching-engine orders, `clientAlgoId` for the conditional ones (stops and
take-profit triggers, which Binance keeps in its Algo Service). Which of the
two an id is, is remembered when we place it; after a restart an unknown id
is looked up in the matching engine first and the Algo Service second.

A triggered conditional order becomes a MARKET order in the matching engine
with an id of Binance's choosing (`actualOrderId`); its fills are reported
under *our* id, learned from ALGO_UPDATE (or from the algo order by REST).

Spot holds coins, not positions: the base asset's balance is the position,
a SELL that is not reduce-only (a short) is refused here as the engine
refuses it, stops are STOP_LOSS_LIMIT orders, and the user data stream is a
signed `userDataStream.subscribe.signature` on the WebSocket API (spot's
listenKey is gone), resynced by REST after every gap as on futures.

`stream_reports` keeps the user data stream: it makes the listenKey, keeps
it alive every 30 minutes, reconnects with backoff when the stream drops
and makes a new key when Binance expires it; after any gap it resyncs by
REST (fills since the last one seen, and the state of every order it saw
open), so a report lost in the gap still arrives.
"""

from __future__ import annotations

import json
import math
import random
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import attrs
import trio
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.trio.client import connect

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent
from fractald.core.execution.reports import VenueReport
from fractald.errors import AuthError, FatalError, FeedDisconnected, TransientError
from fractald.venues import binance_orders as bo
from fractald.venues import binance_replies as br
from fractald.venues import binance_userstream as bu
from fractald.venues.binance import Market
from fractald.venues.binance_rest import BinanceRest
from fractald.venues.interface import (
    InstrumentSpec,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenuePosition,
)
from fractald.venues.ws import Backoff

STREAM_BACKOFF = Backoff(0.5, 30.0)
USER_TRADES_WINDOW_MS = 7 * 24 * 3600 * 1000 - 60_000  # Binance's longest window, less a minute
ALGO_LOOKBACK_MS = 7 * 24 * 3600 * 1000  # Binance keeps finished algo orders queryable this long
NO_MARGIN_CHANGE = -4046  # "No need to change margin type."
FILLS_REMEMBERED = 10_000  # trade ids kept to drop a fill seen twice (stream, then resync)


class BinanceVenue:
    """One Binance account on one market. `symbols` are the ones traded (userTrades needs them)."""

    def __init__(
        self,
        market: Market,
        rest: BinanceRest,
        ws_url: str,
        symbols: Iterable[str],
        *,
        leverage: dict[str, int] | None = None,
        margin_type: dict[str, str] | None = None,
        reserved: dict[str, float] | None = None,
        keepalive_s: float = bo.LISTEN_KEY_KEEPALIVE_S,
        backoff: Backoff = STREAM_BACKOFF,
        rng: random.Random | None = None,
        log: Any = None,
    ) -> None:
        self.market = market
        self.name = "binance-futures" if market is Market.FUTURES else "binance-spot"
        self.rest = rest
        self.ws_url = ws_url
        self.symbols = list(symbols)
        self.leverage = dict(leverage or {})
        self.margin_type = dict(margin_type or {})
        self.reserved = dict(reserved or {})  # spot: coins per asset that are not the bot's
        self.keepalive_s = keepalive_s
        self.backoff = backoff
        self.rng = rng or random.Random()
        self.log = log
        self.specs: dict[str, InstrumentSpec] = {}
        self.conditional: set[str] = set()  # our ids that live in the Algo Service
        self.swallow: dict[
            str, int
        ] = {}  # our id -> stream updates of a cancel-and-replace to drop
        self.actual_to_ours: dict[
            str, str
        ] = {}  # matching-engine orderId -> our id (triggered algos)
        self.watching: dict[str, str] = {}  # our id -> symbol, orders seen open
        self.fills_seen: OrderedDict[str, None] = OrderedDict()
        self.reported_ended: OrderedDict[str, None] = OrderedDict()  # cancels answered by cancel()
        self.last_fill_ts = 0
        self.listen_key = bu.ListenKeySchedule(interval_s=keepalive_s)
        self.stream_connects = 0
        self.resyncs = 0
        self.last_price: dict[str, float] = {}
        self.fee_asset_price: dict[str, float] = {}  # spot: BNB (or another fee asset) in quote

    # -- start-up ----------------------------------------------------------------------

    async def start(self) -> None:
        """Clock offset, instruments, then leverage and margin type per symbol (futures)."""
        await self.rest.sync_clock()
        await self.instruments()
        problems = br.symbol_problems(self.symbols, self.specs, self.market)
        if problems:
            raise FatalError("; ".join(problems), problems=problems)
        if self.market is Market.FUTURES:
            await self.apply_symbol_settings()

    async def apply_symbol_settings(self) -> None:
        for symbol, margin in self.margin_type.items():
            answer = await self.rest.call(bo.set_margin_type(symbol, margin))
            if isinstance(answer, br.Refusal) and answer.code != NO_MARGIN_CHANGE:
                raise FatalError(f"{symbol}: margin type {margin} refused: {answer.reason}")
        for symbol, lev in self.leverage.items():
            answer = await self.rest.call(bo.set_leverage(symbol, lev))
            if isinstance(answer, br.Refusal):
                raise FatalError(f"{symbol}: leverage {lev} refused: {answer.reason}")

    async def symbol_settings(self) -> dict[str, tuple[int, str]]:
        """(leverage, margin type) per symbol as Binance has them now (for preflight)."""
        rows = await self._read(bo.position_risk())
        return {
            r["symbol"]: (int(float(r.get("leverage", 0))), str(r.get("marginType", "")).lower())
            for r in rows
        }

    async def instruments(self) -> dict[str, InstrumentSpec]:
        payload = await self.rest.public(bo.exchange_info(self.market))
        self.rest.set_limits(payload)
        self.specs = br.parse_exchange_info(payload, self.market)
        return dict(self.specs)

    async def _spec(self, symbol: str) -> InstrumentSpec:
        if symbol not in self.specs:
            await self.instruments()
        spec = self.specs.get(symbol)
        if spec is None:
            raise FatalError(br.symbol_problems([symbol], self.specs, self.market, "order")[0])
        return spec

    async def _read(self, unsigned: bo.Unsigned) -> Any:
        answer = await self.rest.call(unsigned)
        if isinstance(answer, br.Refusal):
            raise FatalError(f"binance refused {unsigned.method} {unsigned.path}: {answer.reason}")
        return answer

    # -- orders ------------------------------------------------------------------------

    async def submit(self, intent: OrderIntent) -> VenueReport:
        if self.market is Market.SPOT and intent.side.value == "SELL" and not intent.reduce_only:
            return VenueReport(
                OrderEvent.REJECT,
                intent.client_order_id,
                intent.ts,
                reason="spot_cannot_short: spot sells only what it holds (reduce-only exits)",
            )
        spec = await self._spec(intent.symbol)
        try:
            unsigned = bo.new_order(
                intent, spec, self.market, reference_price=self.last_price.get(intent.symbol, 0.0)
            )
        except bo.OrderNotSendable as exc:
            return VenueReport(
                OrderEvent.REJECT, intent.client_order_id, intent.ts, reason=f"{exc.code}: {exc}"
            )
        conditional = self.market is Market.FUTURES and bo.is_conditional(intent)
        if conditional:
            self.conditional.add(intent.client_order_id)
        answer = await self.rest.call(unsigned, idempotent=False)
        if isinstance(answer, br.Refusal):
            return VenueReport(
                OrderEvent.REJECT, intent.client_order_id, intent.ts, reason=answer.reason
            )
        order = br.parse_algo_order(answer) if conditional else br.parse_order(answer)
        if not order.terminal:
            self.watching[order.client_order_id] = order.symbol
        return br.ack_report(order, intent.ts)[0]

    async def cancel(self, client_order_id: str, symbol: str) -> VenueReport:
        ts = self.rest.clock.venue_time(self.rest.now_ms())
        first = client_order_id in self.conditional
        refusals: list[br.Refusal] = []
        for conditional in (first, not first) if self.market is Market.FUTURES else (False,):
            answer = await self.rest.call(
                bo.cancel_order(self.market, symbol, client_order_id, conditional=conditional)
            )
            if not isinstance(answer, br.Refusal):
                self.watching.pop(client_order_id, None)
                self._ended(client_order_id)
                return VenueReport(OrderEvent.CANCEL, client_order_id, ts)
            refusals.append(answer)
            if not answer.unknown_order:
                break
        # The first answer is about where the order was expected to be.
        return VenueReport(OrderEvent.CANCEL_REJECT, client_order_id, ts, reason=refusals[0].reason)

    async def modify(
        self,
        client_order_id: str,
        symbol: str,
        *,
        quantity: float | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
    ) -> VenueReport:
        ts = self.rest.clock.venue_time(self.rest.now_ms())
        if self.market is not Market.FUTURES:
            return VenueReport(
                OrderEvent.UPDATE_REJECT,
                client_order_id,
                ts,
                reason="binance spot cannot modify orders",
            )
        if trigger_price is not None or client_order_id in self.conditional:
            return await self._replace_conditional(
                client_order_id, symbol, quantity, trigger_price, ts
            )
        current = await self.order_status(client_order_id, symbol)
        if current is None or current.terminal or current.price is None:
            return VenueReport(
                OrderEvent.UPDATE_REJECT,
                client_order_id,
                ts,
                reason="binance: no open LIMIT order with this id",
            )
        spec = await self._spec(symbol)
        answer = await self.rest.call(
            bo.modify_order(
                symbol,
                client_order_id,
                current.side,
                bo.quantity_text(quantity if quantity is not None else current.quantity, spec),
                bo.price_text(price if price is not None else current.price, spec),
            ),
            idempotent=False,
        )
        if isinstance(answer, br.Refusal):
            return VenueReport(OrderEvent.UPDATE_REJECT, client_order_id, ts, reason=answer.reason)
        return VenueReport(OrderEvent.UPDATE, client_order_id, ts)

    async def _replace_conditional(
        self, cid: str, symbol: str, quantity: float | None, trigger_price: float | None, ts: int
    ) -> VenueReport:
        """Binance cannot modify an algo order: cancel it and place it again under the same
        clientAlgoId (free again once the old one is no longer open). The stream's CANCELED and
        NEW for the swap are not passed on; this call's answer stands for both. If the new one
        is refused, the stop is gone and the answer says CANCEL."""
        raw = await self.rest.call(bo.query_order(self.market, symbol, cid, conditional=True))
        if isinstance(raw, br.Refusal) or raw.get("algoStatus") != "NEW":
            reason = (
                raw.reason if isinstance(raw, br.Refusal) else f"algo order is {raw['algoStatus']}"
            )
            return VenueReport(OrderEvent.UPDATE_REJECT, cid, ts, reason=f"binance: {reason}")
        spec = await self._spec(symbol)
        close = bool(raw.get("closePosition"))
        unsigned = bo.algo_order(
            symbol,
            raw["side"],
            raw.get("orderType") or raw.get("type", "STOP_MARKET"),
            cid,
            bo.price_text(
                trigger_price if trigger_price is not None else float(raw["triggerPrice"]), spec
            ),
            quantity=None
            if close
            else bo.quantity_text(
                quantity if quantity is not None else float(raw["quantity"]), spec
            ),
            reduce_only=bool(raw.get("reduceOnly")),
        )
        self.swallow[cid] = self.swallow.get(cid, 0) + 2  # its CANCELED and its NEW
        cancelled = await self.rest.call(
            bo.cancel_order(self.market, symbol, cid, conditional=True)
        )
        if isinstance(cancelled, br.Refusal):
            self.swallow[cid] -= 2
            return VenueReport(OrderEvent.UPDATE_REJECT, cid, ts, reason=cancelled.reason)
        placed = await self.rest.call(unsigned, idempotent=False)
        if isinstance(placed, br.Refusal):
            self.swallow[cid] -= 1  # no NEW will come
            self.watching.pop(cid, None)
            return VenueReport(
                OrderEvent.CANCEL, cid, ts, reason=f"replace_failed: {placed.reason}"
            )
        return VenueReport(OrderEvent.UPDATE, cid, ts, trigger_price=float(placed["triggerPrice"]))

    async def order_status(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        """By our client order id; without a symbol (reconciliation after a restart) every
        traded symbol is asked, since Binance looks orders up per symbol."""
        if not symbol:
            for candidate in self.symbols:
                found = await self.order_status(client_order_id, candidate)
                if found is not None:
                    return found
            return None
        first = client_order_id in self.conditional
        for conditional in (first, not first) if self.market is Market.FUTURES else (False,):
            answer = await self.rest.call(
                bo.query_order(self.market, symbol, client_order_id, conditional=conditional)
            )
            if isinstance(answer, br.Refusal):
                if answer.unknown_order:
                    continue
                raise FatalError(f"binance order query refused: {answer.reason}")
            if conditional:
                self.conditional.add(client_order_id)
                order = br.parse_algo_order(answer)
                if order.venue_order_id:
                    self.actual_to_ours[order.venue_order_id] = client_order_id
                    return await self._as_triggered(order, symbol)
                return order
            return br.parse_order(answer)
        return None

    async def _as_triggered(self, algo: VenueOrder, symbol: str) -> VenueOrder:
        """A triggered conditional order as the order it became: its fills and its end."""
        answer = await self.rest.call(
            bo.query_order_by_id(self.market, symbol, algo.venue_order_id)
        )
        if isinstance(answer, br.Refusal):
            return algo  # triggered, its order not yet visible: still working
        actual = br.parse_order(answer)
        return VenueOrder(
            client_order_id=algo.client_order_id,
            symbol=algo.symbol,
            status=actual.status,
            quantity=algo.quantity or actual.quantity,
            filled_qty=actual.filled_qty,
            venue_order_id=actual.venue_order_id,
            side=algo.side,
            trigger_price=algo.trigger_price,
            reduce_only=algo.reduce_only,
        )

    async def open_orders(self) -> list[VenueOrder]:
        if self.market is Market.SPOT:  # all symbols at once weighs 80 on spot, one symbol 6
            rows = [
                r for s in self.symbols for r in await self._read(bo.open_orders(self.market, s))
            ]
            return [br.parse_order(r) for r in rows]
        rows = await self._read(bo.open_orders(self.market))
        orders = [br.parse_order(r) for r in rows]
        orders = [o for o in orders if o.venue_order_id not in self.actual_to_ours]
        if self.market is Market.FUTURES:
            algos = [br.parse_algo_order(r) for r in await self._read(bo.open_algo_orders())]
            self.conditional.update(a.client_order_id for a in algos)
            orders += algos
        return orders

    async def fills_since(self, ts: int) -> list[VenueFill]:
        """Our fills since `ts`, per traded symbol. Binance answers at most 7 days from the start
        time and 1000 trades a page: the start is clamped to the last 7 days, pages follow by id."""
        start = max(ts, self.rest.clock.venue_time(self.rest.now_ms()) - USER_TRADES_WINDOW_MS)
        fills: list[VenueFill] = []
        for symbol in self.symbols:
            trades = await self._trades(symbol, start)
            if not trades:
                continue
            ids = await self._client_ids(symbol, start, {str(t["orderId"]) for t in trades})
            for t in trades:
                fill = br.parse_user_trade(t, ids)
                if fill is not None and self.market is Market.SPOT:
                    fill = await self._spot_fee_fill(fill, str(t.get("commissionAsset") or ""))
                if fill is not None:
                    fills.append(fill)
        return sorted(fills, key=lambda f: (f.ts, f.trade_id))

    async def _trades(self, symbol: str, start: int) -> list[dict[str, Any]]:
        page = await self._read(bo.user_trades(self.market, symbol, start))
        trades = list(page)
        while len(page) >= bo.TRADES_PAGE:
            page = await self._read(
                bo.user_trades_from(self.market, symbol, int(page[-1]["id"]) + 1)
            )
            trades += page
        return trades

    async def _spot_fee_fill(self, fill: VenueFill, asset: str) -> VenueFill:
        fee, fee_qty = br.spot_fee(
            fill.fee,
            asset,
            fill.symbol,
            fill.price,
            await self._fee_asset_price(fill.symbol, asset),
        )
        fee, fee_qty = self._to_the_lot(fill.symbol, fill.quantity, fill.price, fee, fee_qty)
        return attrs.evolve(fill, fee=fee, fee_qty=fee_qty)

    def _to_the_lot(
        self, symbol: str, quantity: float, price: float, fee: float, fee_qty: float
    ) -> tuple[float, float]:
        """Coins taken as fee, and the dust they leave below a lot step, out of the position;
        the dust's value is counted with the fee (the bot can never sell it)."""
        spec = self.specs.get(symbol)
        if not fee_qty or spec is None:
            return fee, fee_qty
        kept = br.kept_to_the_lot(quantity, fee_qty, spec.lot_size)
        return fee + (kept - fee_qty) * price, kept

    async def _fee_asset_price(self, symbol: str, asset: str) -> float:
        """The last price of a fee asset that is neither side of `symbol` (BNB), in its quote;
        asked once per asset (a fee's value need not be exact to the tick)."""
        base = _base_asset(symbol)
        if asset in ("", base, symbol[len(base) :]):
            return 0.0
        if asset not in self.fee_asset_price:
            pair = asset + symbol[len(base) :]
            answer = await self.rest.public(bo.spot_ticker_price(pair))
            if isinstance(answer, br.Refusal):
                raise FatalError(f"binance spot: fees in {asset}, but {pair}: {answer.reason}")
            self.fee_asset_price[asset] = br.parse_ticker_price(answer)
        return self.fee_asset_price[asset]

    async def _client_ids(self, symbol: str, start: int, order_ids: set[str]) -> dict[str, str]:
        """Binance orderId -> our client id for the orders behind some trades: ours by the
        orders placed since `start`, older ones one by one, fired stops by their algo order."""
        ids = {k: v for k, v in self.actual_to_ours.items() if k in order_ids}
        for row in await self._read(bo.all_orders(self.market, symbol, start)):
            ids.setdefault(str(row["orderId"]), row["clientOrderId"])
        for order_id in order_ids - set(ids):
            answer = await self.rest.call(bo.query_order_by_id(self.market, symbol, order_id))
            if not isinstance(answer, br.Refusal):
                ids[order_id] = answer["clientOrderId"]
        if self.market is Market.FUTURES and not order_ids <= self._ours(ids):
            for row in await self._read(bo.all_algo_orders(symbol, start - ALGO_LOOKBACK_MS)):
                if row.get("actualOrderId"):
                    self.actual_to_ours[str(row["actualOrderId"])] = row["clientAlgoId"]
                    ids[str(row["actualOrderId"])] = row["clientAlgoId"]
        return ids

    def _ours(self, ids: dict[str, str]) -> set[str]:
        return {k for k, v in ids.items() if v not in ("",) and not v.startswith("autoclose-")}

    # -- positions and money --------------------------------------------------------------

    async def position_details(self) -> list[VenuePosition]:
        if self.market is Market.FUTURES:
            return br.parse_position_risk(await self._read(bo.position_risk()))
        balances = self._bots_share((await self._read(bo.account(self.market)))["balances"])
        out = []
        for symbol in self.symbols:
            base = _base_asset(symbol)
            spec = self.specs.get(symbol)
            # Dust below one lot step (what a fee taken in coins leaves) cannot be sold: not
            # a position (the books count the bot's coins to the step, see `_to_the_lot`).
            held = balances.get(base, 0.0)
            if spec is not None and spec.lot_size > 0:
                held = math.floor(held / spec.lot_size + 1e-9) * spec.lot_size
            if held > 0:
                out.append(VenuePosition(symbol, held))
        return out

    async def positions(self) -> dict[str, float]:
        return {p.symbol: p.quantity for p in await self.position_details()}

    async def account(self) -> VenueAccount:
        payload = await self._read(bo.account(self.market))
        if self.market is Market.FUTURES:
            return br.parse_futures_account(payload)
        # Spot's equity is the quote balance plus the coins held at their last price: the books
        # count a position's value, so the quote balance alone would look short by it.
        cash = br.parse_spot_account(payload)
        quote_reserved = self.reserved.get(cash.currency, 0.0)
        if quote_reserved:
            cash = attrs.evolve(
                cash,
                equity=cash.equity - quote_reserved,
                available=max(0.0, cash.available - quote_reserved),
            )
        held = self._bots_share(payload["balances"])
        value = 0.0
        for symbol in self.symbols:
            coins = held.get(_base_asset(symbol), 0.0)
            if coins:
                price = br.parse_ticker_price(await self.rest.public(bo.spot_ticker_price(symbol)))
                self.last_price[symbol] = price
                value += coins * price
        return attrs.evolve(cash, equity=cash.equity + value)

    def _bots_share(self, balances: list[dict[str, Any]]) -> dict[str, float]:
        """Coins per asset less what `reserved` keeps apart; a balance below its reserve is
        the bot's 0 (and logged: someone took reserved coins), never a short."""
        out = {}
        for b in balances:
            total = float(b["free"]) + float(b["locked"])
            keep = self.reserved.get(b["asset"], 0.0)
            if total < keep - 1e-12 and self.log is not None:
                self.log.warning(
                    "binance_spot_reserve_short", asset=b["asset"], held=total, reserved=keep
                )
            out[b["asset"]] = max(0.0, total - keep)
        return out

    # -- the user data stream ----------------------------------------------------------------

    async def stream_reports(self, send: trio.MemorySendChannel[VenueReport]) -> None:
        failures, gap = 0, False
        while True:
            try:
                if self.market is Market.SPOT:
                    await self._one_spot_session(send, resync_first=gap)
                    raise FeedDisconnected("binance spot user data subscription ended")
                if self.listen_key.needs_key:
                    key = br.parse_listen_key(
                        await self.rest.public(bo.listen_key_create(self.market))
                    )
                    self.listen_key = self.listen_key.created(key, trio.current_time())
                await self._one_connection(send, resync_first=gap)
                failures = 0
            except Exception as raised:
                exc = _single(raised)
                if not isinstance(exc, STREAM_LOSSES):
                    raise
                if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
                    raise AuthError(f"binance user stream refused: {exc}") from exc
                if self.log is not None:
                    self.log.warning(
                        "binance_user_stream_lost", error=f"{type(exc).__name__}: {exc}"
                    )
                await trio.sleep(self.backoff.delay(failures, self.rng))
                failures += 1
            gap = True

    async def _one_connection(
        self, send: trio.MemorySendChannel[VenueReport], *, resync_first: bool
    ) -> None:
        url = bo.user_stream_url(self.ws_url, self.listen_key.listen_key)
        async with connect(
            url, open_timeout=10, ping_interval=60, ping_timeout=60, close_timeout=2.0, proxy=None
        ) as ws:
            self.stream_connects += 1
            if resync_first:  # connected first, so nothing falls between the resync and the stream
                await self.resync(send)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_alive)
                try:
                    async for frame in ws:
                        if not await self._on_frame(frame, send):
                            break  # the key expired: a new key, a new stream
                finally:
                    nursery.cancel_scope.cancel()
        if not self.listen_key.needs_key:
            raise FeedDisconnected("binance user stream closed by the venue")

    async def _one_spot_session(
        self, send: trio.MemorySendChannel[VenueReport], *, resync_first: bool
    ) -> None:
        """One WebSocket API session: subscribe by signature, then the events until it ends."""
        async with connect(
            self.ws_url,
            open_timeout=10,
            ping_interval=60,
            ping_timeout=60,
            close_timeout=2.0,
            proxy=None,
        ) as ws:
            request_id = f"uds-{self.stream_connects + 1}"
            await ws.send(json.dumps(self.rest.user_stream_subscription(request_id)))
            while True:
                reply = bu.parse_ws_api_frame(await ws.recv())
                if isinstance(reply, bu.WsApiReply) and reply.request_id == request_id:
                    break
            if reply.status != 200:
                what = f"binance spot user stream refused: {reply.code} {reply.msg}"
                if reply.code in (-2014, -2015, -1022):
                    raise AuthError(what)
                if reply.code == -1021:
                    await self.rest.sync_clock()
                raise TransientError(what)
            self.stream_connects += 1
            if resync_first:  # subscribed first, so nothing falls between the resync and the stream
                await self.resync(send)
            async for frame in ws:
                event = bu.parse_ws_api_frame(frame)
                if isinstance(event, bu.ListenKeyExpired):
                    return
                if isinstance(event, bu.WsApiReply):
                    continue
                if isinstance(event, bu.OrderUpdate) and event.fee_asset:
                    await self._fee_asset_price(event.symbol, event.fee_asset)
                for report in self._reports_of(event):
                    await send.send(report)

    async def _keep_alive(self) -> None:
        while True:
            await trio.sleep_until(self.listen_key.next_keepalive())
            answer = await self.rest.public(
                bo.listen_key_keepalive(self.market, self.listen_key.listen_key)
            )
            if isinstance(answer, br.Refusal):  # -1125: the key is gone
                self.listen_key = self.listen_key.expired()
                raise FeedDisconnected(f"binance listenKey keepalive refused: {answer.reason}")
            self.listen_key = self.listen_key.kept_alive(trio.current_time())

    async def _on_frame(
        self, frame: str | bytes, send: trio.MemorySendChannel[VenueReport]
    ) -> bool:
        event = bu.parse_user_event(frame)
        if isinstance(event, bu.ListenKeyExpired):
            self.listen_key = self.listen_key.expired()
            return False
        for report in self._reports_of(event):
            await send.send(report)
        return True

    def _reports_of(self, event: bu.UserEvent) -> list[VenueReport]:
        if isinstance(event, bu.AlgoUpdate):
            if event.actual_order_id:
                self.actual_to_ours[event.actual_order_id] = event.client_order_id
            self.conditional.add(event.client_order_id)
            if self.swallow.get(event.client_order_id, 0) > 0 and event.status in (
                "CANCELED",
                "NEW",
            ):
                self.swallow[event.client_order_id] -= 1
                return []
            return self._track([event.report] if event.report else [], event.symbol)
        if isinstance(event, bu.OrderUpdate) and event.report is not None:
            ours = self.actual_to_ours.get(event.venue_order_id)
            report = event.report
            if self.market is Market.SPOT and report.fee:
                fee, fee_qty = br.spot_fee(
                    report.fee,
                    event.fee_asset,
                    event.symbol,
                    report.price,
                    self.fee_asset_price.get(event.fee_asset, 0.0),
                )
                fee, fee_qty = self._to_the_lot(
                    event.symbol, report.quantity, report.price, fee, fee_qty
                )
                report = attrs.evolve(report, fee=fee, fee_qty=fee_qty)
            if ours is not None:  # the matching-engine half of one of our triggered stops
                if report.kind is OrderEvent.ACCEPT:
                    return []
                report = _renamed(report, ours)
            return self._track([report], event.symbol)
        if isinstance(event, bu.Unrecognised) and self.log is not None:
            self.log.warning(
                "binance_user_stream_unrecognised", event=event.event, detail=event.detail
            )
        return []

    def _ended(self, client_order_id: str) -> None:
        self.reported_ended[client_order_id] = None
        if len(self.reported_ended) > FILLS_REMEMBERED:
            self.reported_ended.popitem(last=False)

    def _track(self, reports: list[VenueReport], symbol: str) -> list[VenueReport]:
        out = []
        for r in reports:
            if (
                r.kind in (OrderEvent.CANCEL, OrderEvent.EXPIRE)
                and r.client_order_id in self.reported_ended
            ):
                continue  # our cancel() already answered it: one CANCEL per order
            if r.trade_id:
                if not self._first_sight(r.trade_id):
                    continue
                self.last_fill_ts = max(self.last_fill_ts, r.ts)
            if r.kind in (OrderEvent.ACCEPT, OrderEvent.TRIGGER, OrderEvent.PARTIAL_FILL):
                self.watching[r.client_order_id] = symbol
            elif r.kind in (
                OrderEvent.FILL,
                OrderEvent.CANCEL,
                OrderEvent.EXPIRE,
                OrderEvent.REJECT,
            ):
                self.watching.pop(r.client_order_id, None)
            out.append(r)
        return out

    def _first_sight(self, trade_id: str) -> bool:
        if trade_id in self.fills_seen:
            return False
        self.fills_seen[trade_id] = None
        if len(self.fills_seen) > FILLS_REMEMBERED:
            self.fills_seen.popitem(last=False)
        return True

    async def resync(self, send: trio.MemorySendChannel[VenueReport]) -> None:
        """After a gap: fills since the last seen, and how every watched order ended."""
        self.resyncs += 1
        since = max(0, self.last_fill_ts - 1)
        for fill in await self.fills_since(since):
            if not self._first_sight(fill.trade_id):
                continue
            self.last_fill_ts = max(self.last_fill_ts, fill.ts)
            await send.send(
                VenueReport(
                    OrderEvent.FILL,
                    fill.client_order_id,
                    fill.ts,
                    trade_id=fill.trade_id,
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    fee_qty=fill.fee_qty,
                )
            )
        for cid, symbol in list(self.watching.items()):
            order = await self.order_status(cid, symbol)
            ts = self.rest.clock.venue_time(self.rest.now_ms())
            end = {
                "canceled": OrderEvent.CANCEL,
                "expired": OrderEvent.EXPIRE,
                "rejected": OrderEvent.REJECT,
            }.get(order.status if order else "")
            if order is not None and order.status == "triggered":
                await send.send(
                    VenueReport(OrderEvent.TRIGGER, cid, ts, venue_order_id=order.venue_order_id)
                )
            if end is not None:
                self.watching.pop(cid, None)
                await send.send(VenueReport(end, cid, ts, reason="resync"))
            elif order is not None and order.status == "filled":
                self.watching.pop(cid, None)


STREAM_LOSSES = (
    OSError,
    ConnectionClosed,
    InvalidHandshake,
    TransientError,
    trio.BrokenResourceError,
)


_base_asset = br.spot_base_asset


def _single(exc: BaseException) -> BaseException:
    """The one error inside nested exception groups (nurseries wrap them), else the group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _renamed(report: VenueReport, client_order_id: str) -> VenueReport:
    return VenueReport(
        report.kind,
        client_order_id,
        report.ts,
        trade_id=report.trade_id,
        quantity=report.quantity,
        price=report.price,
        fee=report.fee,
        liquidity=report.liquidity,
        reason=report.reason,
        venue_order_id=report.venue_order_id,
        trigger_price=report.trigger_price,
        fee_qty=report.fee_qty,
    )
