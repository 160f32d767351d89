"""The Hyperliquid order venue: `fractald.venues.interface.Venue` over httpx and websockets, on trio.

Requests come from the Sans-I/O codec (`hyperliquid_orders`), signatures
from `hyperliquid_signing`. Every request spends weight from one per-minute
budget (1200 per IP; /info 20 or 2, an order action 1): a 429 blocks the
budget for its Retry-After.

/exchange is sent exactly once per signed body: a timeout, a dropped
connection or a 5xx raise a `TransientError`, which the interface defines
as "not known whether it happened: ask again by client id" (the router
does, with `order_status`). /info reads are retried with backoff.

`stream_reports` keeps the user channels (orderUpdates, userFills,
userEvents) open with the reconnecting `WsSession`; after every reconnect
userFills starts with a snapshot, and fills already passed on (by trade
id, a bounded memory) are dropped, so a gap loses nothing and repeats
nothing.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import trio

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, TimeInForce
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.errors import BadMessage, ConfigError
from fractald.venues import hyperliquid_orders as hl
from fractald.venues.hyperliquid import (
    MAINNET_REST_URL,
    MAINNET_WS_URL,
    PING_MESSAGE,
    TESTNET_REST_URL,
    TESTNET_WS_URL,
)
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock, valid_address
from fractald.venues.interface import (
    InstrumentSpec,
    VenueAccount,
    VenueFill,
    VenueOrder,
    VenuePosition,
)
from fractald.venues.rest import RestClient
from fractald.venues.ws import WsSession, WsSettings

NETWORK_URLS = {
    "mainnet": (MAINNET_REST_URL, MAINNET_WS_URL),
    "testnet": (TESTNET_REST_URL, TESTNET_WS_URL),
}
FILLS_PAGE = 2000  # userFillsByTime returns at most this many per request
SEEN_FILLS_CAP = 20_000


@attrs.frozen(slots=True)
class HyperliquidSettings:
    account_address: str = attrs.field()
    network: str = attrs.field(default="testnet", validator=attrs.validators.in_(NETWORK_URLS))
    rest_url: str = ""  # empty: the network's default
    ws_url: str = ""
    slippage: float = attrs.field(
        default=hl.DEFAULT_SLIPPAGE,
        validator=attrs.validators.and_(attrs.validators.gt(0.0), attrs.validators.lt(0.5)),
    )
    timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))

    @account_address.validator
    def _check_address(self, _: Any, value: str) -> None:
        if not valid_address(value):
            raise ValueError(
                f"hyperliquid account_address {value!r} is not a 0x-prefixed 20-byte hex address"
            )

    @property
    def mainnet(self) -> bool:
        return self.network == "mainnet"

    @property
    def urls(self) -> tuple[str, str]:
        rest, ws = NETWORK_URLS[self.network]
        return self.rest_url or rest, self.ws_url or ws


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class HyperliquidVenue:
    name = "hyperliquid"

    def __init__(
        self,
        settings: HyperliquidSettings,
        signer: AgentSigner,
        nonces: NonceClock,
        *,
        clock_ms: Callable[[], int] = wall_clock_ms,
        http: httpx.AsyncClient | None = None,
        log: Any = None,
    ) -> None:
        if signer.mainnet != settings.mainnet:
            raise ValueError("the signer's network differs from the venue's")
        self.settings = settings
        self.signer = signer
        self.nonces = nonces
        self.clock_ms = clock_ms
        self.log = log
        rest_url, self.ws_url = settings.urls
        client = http or httpx.AsyncClient(timeout=settings.timeout_s, trust_env=False)
        self.info_rest = RestClient(
            rest_url,
            weight_per_minute=hl.WEIGHT_LIMIT_PER_MINUTE,
            client=client,
            timeout_s=settings.timeout_s,
            log=log,
        )
        self.exchange_rest = RestClient(
            rest_url,
            weight_per_minute=hl.WEIGHT_LIMIT_PER_MINUTE,
            client=client,
            timeout_s=settings.timeout_s,
            max_attempts=1,
            log=log,
        )
        self.exchange_rest.budget = self.info_rest.budget  # one budget: the venue counts per IP
        self.assets: dict[str, hl.Asset] = {}
        self.coid_by_oid: dict[str, str] = {}
        self._seen_fills: collections.OrderedDict[str, None] = collections.OrderedDict()

    @property
    def user(self) -> str:
        return self.settings.account_address

    async def aclose(self) -> None:
        await self.info_rest.aclose()

    # -- plumbing ------------------------------------------------------------------------

    async def _info(self, body: dict[str, Any]) -> Any:
        return await self.info_rest.post_json(hl.INFO_PATH, body, weight=hl.info_weight(body))

    async def _exchange(self, action: dict[str, Any], orders: int = 1) -> list[hl.OrderStatusEntry]:
        nonce = self.nonces.next(self.clock_ms())
        body = hl.exchange_body(action, nonce, self.signer.sign_l1(action, nonce))
        payload = await self.exchange_rest.post_json(
            hl.EXCHANGE_PATH, body, weight=hl.exchange_weight(orders)
        )
        return hl.parse_exchange_reply(payload)

    async def load_assets(self) -> dict[str, hl.Asset]:
        self.assets = hl.parse_meta(await self._info(hl.meta_body()))
        return self.assets

    async def _asset(self, symbol: str) -> hl.Asset:
        if symbol not in self.assets:
            await self.load_assets()
        try:
            return self.assets[symbol]
        except KeyError:
            raise ValueError(f"{symbol!r} is not a Hyperliquid perp") from None

    # -- Venue ----------------------------------------------------------------------------

    async def instruments(self) -> dict[str, InstrumentSpec]:
        return {name: a.spec() for name, a in (await self.load_assets()).items() if not a.delisted}

    async def submit(self, intent: OrderIntent) -> VenueReport:
        ts = self.clock_ms()
        try:
            asset = await self._asset(intent.symbol)
            reference = None
            if intent.order_type is OrderType.MARKET and not (
                intent.price or intent.intended_price
            ):
                reference = hl.parse_mids(await self._info(hl.all_mids_body())).get(intent.symbol)
            wire = hl.order_wire(
                intent, asset, reference_price=reference, slippage=self.settings.slippage
            )
        except ValueError as exc:  # refused here, before anything is signed: nothing was sent
            return VenueReport(
                OrderEvent.REJECT, intent.client_order_id, ts, reason=f"invalid_order: {exc}"
            )
        entries = await self._exchange(hl.order_action([wire]))
        if len(entries) != 1:
            raise BadMessage(f"hyperliquid order reply has {len(entries)} statuses for one order")
        report = hl.submit_report(intent.client_order_id, entries[0], ts)
        if report.venue_order_id:
            self.coid_by_oid[report.venue_order_id] = intent.client_order_id
        return report

    async def cancel(self, client_order_id: str, symbol: str) -> VenueReport:
        asset = await self._asset(symbol)
        entries = await self._exchange(hl.cancel_by_cloid_action([(asset, client_order_id)]))
        if len(entries) != 1:
            raise BadMessage(f"hyperliquid cancel reply has {len(entries)} statuses for one cancel")
        return hl.cancel_report(client_order_id, entries[0], self.clock_ms())

    async def modify(
        self,
        client_order_id: str,
        symbol: str,
        *,
        quantity: float | None = None,
        price: float | None = None,
        trigger_price: float | None = None,
    ) -> VenueReport:
        """Hyperliquid replaces the order (a new oid, the same cloid): the rest of it is read back first."""
        ts = self.clock_ms()
        current = await self.order_status(client_order_id, symbol)
        if current is None or current.terminal:
            return VenueReport(
                OrderEvent.UPDATE_REJECT,
                client_order_id,
                ts,
                reason="not_modifiable: the venue holds no open order by this id",
            )
        asset = await self._asset(symbol)
        trigger = trigger_price if trigger_price is not None else current.trigger_price
        intent = OrderIntent(
            ts,
            client_order_id,
            symbol,
            Side.BUY if current.side == "BUY" else Side.SELL,
            OrderType.STOP_MARKET if trigger is not None else OrderType.LIMIT,
            quantity if quantity is not None else current.quantity - current.filled_qty,
            price=price if price is not None else (None if trigger is not None else current.price),
            trigger_price=trigger,
            tif=TimeInForce.GTC,
            reduce_only=current.reduce_only,
        )
        try:
            wire = hl.order_wire(intent, asset, slippage=self.settings.slippage)
        except ValueError as exc:
            return VenueReport(
                OrderEvent.UPDATE_REJECT, client_order_id, ts, reason=f"invalid_order: {exc}"
            )
        entries = await self._exchange(hl.modify_action(client_order_id, wire))
        bad = [e for e in entries if isinstance(e, hl.OrderError)]
        if bad:
            return VenueReport(
                OrderEvent.UPDATE_REJECT,
                client_order_id,
                ts,
                reason=f"{bad[0].code}: {bad[0].message}",
            )
        oid = next((str(e.oid) for e in entries if isinstance(e, (hl.Resting, hl.Filled))), "")
        if oid:
            self.coid_by_oid[oid] = client_order_id
        return VenueReport(
            OrderEvent.UPDATE,
            client_order_id,
            ts,
            venue_order_id=oid,
            quantity=float(wire["s"]),
            trigger_price=trigger,
        )

    async def order_status(self, client_order_id: str, symbol: str = "") -> VenueOrder | None:
        """By cloid alone (the symbol is not needed here, so the shared reconcile() can ask too)."""
        return hl.parse_order_status(
            await self._info(hl.order_status_body(self.user, client_order_id))
        )

    async def open_orders(self) -> list[VenueOrder]:
        return hl.parse_open_orders(await self._info(hl.open_orders_body(self.user)))

    async def fills_since(self, ts: int) -> list[VenueFill]:
        out: list[VenueFill] = []
        start = ts
        while True:
            page = hl.parse_fills(await self._info(hl.fills_by_time_body(self.user, start)))
            out.extend(page)
            if len(page) < FILLS_PAGE:
                break
            start = max(f.ts for f in page)  # the same millisecond again: duplicates dropped below
        unique = {(f.trade_id): f for f in out}
        return sorted(unique.values(), key=lambda f: (f.ts, f.trade_id))

    async def _clearinghouse(self) -> tuple[list[VenuePosition], VenueAccount]:
        return hl.parse_clearinghouse(await self._info(hl.clearinghouse_body(self.user)))

    async def positions(self) -> dict[str, float]:
        return {p.symbol: p.quantity for p in (await self._clearinghouse())[0]}

    async def position_details(self) -> list[VenuePosition]:
        return (await self._clearinghouse())[0]

    async def account(self) -> VenueAccount:
        return (await self._clearinghouse())[1]

    async def set_leverage(self, symbol: str, leverage: int, *, cross: bool = True) -> None:
        """Set the account's leverage on `symbol` (at start, from `[broker] leverage`).

        A value above the perp's maximum (from `meta`) is a ConfigError naming both; a refusal
        by the venue raises its classified error (ActionRefused: the daemon stops).
        """
        try:
            action = hl.update_leverage_action(await self._asset(symbol), leverage, cross)
        except ValueError as exc:
            raise ConfigError(f"config.broker.leverage.{symbol}: {exc}") from None
        await self._exchange(action, orders=0)

    async def check_key(self) -> None:
        """A signed no-op: raises AuthError when the venue does not know this agent for the account."""
        await self._exchange(hl.noop_action(), orders=0)

    async def server_time_ms(self) -> int:
        """The venue's clock, from clearinghouseState's `time`."""
        payload = await self._info(hl.clearinghouse_body(self.user))
        if not isinstance(payload, dict) or "time" not in payload:
            raise BadMessage("hyperliquid clearinghouseState has no time")
        return int(payload["time"])

    # -- the user stream -------------------------------------------------------------------

    def _first_time(self, report: VenueReport) -> bool:
        """True once per fill trade id (bounded memory); non-fills always pass."""
        if report.kind is not OrderEvent.FILL:
            return True
        if report.trade_id in self._seen_fills:
            return False
        self._seen_fills[report.trade_id] = None
        if len(self._seen_fills) > SEEN_FILLS_CAP:
            self._seen_fills.popitem(last=False)
        return True

    def _with_client_id(self, report: VenueReport) -> VenueReport:
        if report.client_order_id or not report.venue_order_id:
            return report
        return attrs.evolve(report, client_order_id=self.coid_by_oid.get(report.venue_order_id, ""))

    def mark_fills_seen(self, trade_ids: list[str]) -> None:
        """Fills the ledger already holds (at start): the snapshot will not repeat them."""
        for tid in trade_ids:
            self._first_time(VenueReport(OrderEvent.FILL, "", 0, trade_id=tid))

    async def stream_reports(self, send: trio.MemorySendChannel[VenueReport]) -> None:
        session = WsSession(
            WsSettings(
                self.ws_url,
                silence_timeout_s=90.0,
                app_ping=PING_MESSAGE,
                app_ping_interval_s=30.0,
                max_failures=20,
            ),
            lambda: hl.user_subscriptions(self.user),
            log=self.log,
        )

        async def on_message(raw: str | bytes) -> bool:
            message = hl.parse_user_message(raw)
            for report in message.reports:
                report = self._with_client_id(report)
                if self._first_time(report):
                    await send.send(report)
            return True

        await session.run(on_message)
