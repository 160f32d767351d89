"""The router actor: intents from the ledger's outbox to one venue, the venue's reports back to trading.

Venue-agnostic: it takes any `fractald.venues.interface.Venue` (paper,
Hyperliquid, Binance, IBKR) and the ledger's outbox (`Outbox`: the
AsyncLedger fits), and talks to trading through two channels (commands
in, `VenueReport`s out).

Crash-only, in this order:

1. `recover()`: every intent without an outcome is resolved by asking the
   venue by client order id (`fractald.routing.recovery`) before anything
   new is sent. Fills the venue made while we were down (a stop that fired)
   come back as reports for the order they belong to, once.
2. Then commands: a `Submit` is recorded and claimed in one transaction
   *before* it is sent (a claim that exists already means a run before
   this one may have sent it: ask the venue, never send again); a submit
   whose answer is lost (timeout, dropped connection, 5xx) is asked for by
   client order id until the venue's answer is definitive.
3. Meanwhile the venue's own reports (fills, triggers, cancels) stream in.

Every fill is passed on once per venue trade id, whichever path brought it
(the submit's answer, the stream, a snapshot after a reconnect, recovery).
Ended orders get their outcome in the outbox (see `deliver` for who marks it).

`protect()` makes the venue hold the protective stops trading wants
(`fractald.routing.protection`); a position it cannot protect raises the
`on_alarm` callback (trading goes REDUCING and alerts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs
import cattrs
import trio

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderEvent, OrderType, TimeInForce
from fractald.core.execution.reports import VenueReport
from fractald.core.models import Side
from fractald.errors import TransientError
from fractald.routing import protection
from fractald.routing.recovery import Resolution, Verdict, resolve
from fractald.store.ledger import IntentRecord
from fractald.venues.interface import Venue, VenueFill

QTY_EPS = 1e-9
_converter = cattrs.Converter()
_OUTCOMES = {
    OrderEvent.CANCEL: "canceled",
    OrderEvent.REJECT: "rejected",
    OrderEvent.EXPIRE: "expired",
}


class Outbox(Protocol):
    """What the router needs of the ledger (fractald.store.writer.AsyncLedger has it)."""

    async def record_and_claim(self, client_order_id: str, payload: Any, ts: int) -> bool: ...

    async def mark_outcome(
        self, client_order_id: str, outcome: str, ts: int | None = None
    ) -> bool: ...

    async def pending_intents(self) -> list[IntentRecord]: ...

    async def get_intent(self, client_order_id: str) -> IntentRecord | None: ...


@attrs.frozen(slots=True)
class Submit:
    intent: OrderIntent


@attrs.frozen(slots=True)
class Cancel:
    client_order_id: str
    symbol: str


@attrs.frozen(slots=True)
class Modify:
    client_order_id: str
    symbol: str
    quantity: float | None = None
    price: float | None = None
    trigger_price: float | None = None


Command = Submit | Cancel | Modify


@attrs.frozen(slots=True)
class RouterSettings:
    # A claimed intent the venue does not know is "never sent" only after this long
    # (a request still in flight would have landed by then).
    settle_ms: int = attrs.field(default=15_000, validator=attrs.validators.ge(0))
    max_entry_age_ms: int = attrs.field(default=60_000, validator=attrs.validators.ge(0))
    resolve_interval_s: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    fills_lookback_ms: int = 60_000  # fills asked for from this long before the oldest claim


def intent_payload(intent: OrderIntent) -> dict[str, Any]:
    data = _converter.unstructure(intent)
    return data if isinstance(data, dict) else {}


def intent_from_payload(payload: dict[str, Any]) -> OrderIntent:
    return _converter.structure(payload, OrderIntent)


class Router:
    def __init__(
        self,
        venue: Venue,
        outbox: Outbox,
        reports: trio.MemorySendChannel[VenueReport],
        *,
        clock_ms: Callable[[], int],
        settings: RouterSettings | None = None,
        seen_trade_ids: Iterable[str] = (),
        log: Any = None,
        on_alarm: Callable[[str, dict[str, Any]], None] | None = None,
        record_outcomes: bool = True,
    ) -> None:
        self.venue = venue
        self.outbox = outbox
        self.reports = reports
        self.clock_ms = clock_ms
        self.settings = settings or RouterSettings()
        self.seen_trade_ids: set[str] = set(seen_trade_ids)
        self.log = log
        self.on_alarm = on_alarm or (lambda code, detail: None)
        self.record_outcomes = record_outcomes
        self.unresolved: dict[str, tuple[OrderIntent, int]] = {}  # coid -> (intent, claimed at)
        self.quantity: dict[str, float] = {}
        self.filled: dict[str, float] = {}
        self.recovered = trio.Event()
        self.sent: list[str] = []  # client order ids this router sent (each once)
        # GTD orders a venue holds as GTC (`holds_gtd` false): coid -> (symbol, expiry), cancelled then.
        self.expiries: dict[str, tuple[str, int]] = {}
        self.in_flight = 0  # commands being sent now

    def _log(self, event: str, **kw: Any) -> None:
        if self.log is not None:
            self.log.info(event, venue=self.venue.name, **kw)

    # -- passing reports on ----------------------------------------------------------------

    async def deliver(self, report: VenueReport) -> None:
        """One report to trading, each fill once per venue trade id.

        With `record_outcomes` (the default) the router marks an ended order's
        outcome in the outbox after passing the report on. Built with
        `record_outcomes=False`, it leaves that to whoever applies the reports
        (trading, or `fractald.routing.journal`), which commits the events and
        the outcome in one transaction: then a crash between the two cannot
        leave an order ended in the outbox whose fill the ledger never got.
        """
        coid = report.client_order_id
        outcome = _OUTCOMES.get(report.kind)
        if report.kind in (OrderEvent.FILL, OrderEvent.PARTIAL_FILL):
            if report.trade_id and report.trade_id in self.seen_trade_ids:
                return
            if report.trade_id:
                self.seen_trade_ids.add(report.trade_id)
            self.filled[coid] = self.filled.get(coid, 0.0) + report.quantity
            if coid in self.quantity and self.filled[coid] >= self.quantity[coid] - QTY_EPS:
                outcome = "filled"
        if outcome is not None:
            self.unresolved.pop(coid, None)
            self.expiries.pop(coid, None)
        await self.reports.send(report)
        if outcome is not None and coid and self.record_outcomes:
            await self.outbox.mark_outcome(coid, outcome, max(0, report.ts))

    async def _apply(self, resolution: Resolution) -> None:
        for report in resolution.reports:
            await self.deliver(report)
        self._log(
            "intent_resolved",
            client_order_id=resolution.client_order_id,
            verdict=resolution.verdict.value,
            reason=resolution.reason,
        )

    # -- 1. recovery -------------------------------------------------------------------------

    async def recover(self) -> list[Resolution]:
        """Resolve every intent without an outcome by asking the venue; only then send the unsent."""
        pending = await self.outbox.pending_intents()
        todo = [(intent_from_payload(r.payload), r.submitted_ms) for r in pending]
        for intent, _ in todo:
            self.quantity[intent.client_order_id] = intent.quantity
            self._track_expiry(intent)
        claims = [ms for _, ms in todo if ms is not None]
        fills = (
            await self.venue.fills_since(max(0, min(claims) - self.settings.fills_lookback_ms))
            if claims
            else []
        )
        done: list[Resolution] = []
        to_send: list[OrderIntent] = []
        while todo:
            later = []
            for intent, claimed_ms in todo:
                resolution = await self._resolve_one(intent, claimed_ms, fills)
                if resolution.verdict is Verdict.ASK_LATER:
                    later.append((intent, claimed_ms))
                    continue
                done.append(resolution)
                if resolution.verdict is Verdict.SEND:
                    to_send.append(intent)
                else:
                    await self._apply(resolution)
            todo = later
            if todo:
                await trio.sleep(self.settings.resolve_interval_s)
                fills = await self.venue.fills_since(
                    max(0, min(claims) - self.settings.fills_lookback_ms)
                )
        for intent in to_send:  # after every earlier intent is resolved
            await self.submit(intent)
        self.recovered.set()
        return done

    async def _resolve_one(
        self, intent: OrderIntent, claimed_ms: int | None, fills: list[VenueFill]
    ) -> Resolution:
        order = await self.venue.order_status(intent.client_order_id, intent.symbol)
        return resolve(
            intent,
            claimed_ms=claimed_ms,
            venue_order=order,
            fills=fills,
            seen_trade_ids=self.seen_trade_ids,
            now_ms=self.clock_ms(),
            settle_ms=self.settings.settle_ms,
            max_age_ms=self.settings.max_entry_age_ms,
        )

    # -- 2. commands ---------------------------------------------------------------------------

    def _track_expiry(self, intent: OrderIntent) -> None:
        if (
            intent.tif is TimeInForce.GTD
            and intent.expire_ts is not None
            and not getattr(self.venue, "holds_gtd", False)
        ):
            self.expiries[intent.client_order_id] = (intent.symbol, intent.expire_ts)

    async def cancel_expired(self) -> None:
        """GTD orders the venue holds as GTC: cancelled once their expiry has passed."""
        now = self.clock_ms()
        for coid, (symbol, expire_ts) in list(self.expiries.items()):
            if expire_ts <= now and self.expiries.pop(coid, None) is not None:
                self._log("gtd_expired", client_order_id=coid, expire_ts=expire_ts)
                await self.handle(Cancel(coid, symbol))

    async def submit(self, intent: OrderIntent) -> None:
        coid = intent.client_order_id
        self.quantity[coid] = intent.quantity
        self._track_expiry(intent)
        now = self.clock_ms()
        if not await self.outbox.record_and_claim(coid, intent_payload(intent), max(0, now)):
            record = await self.outbox.get_intent(
                coid
            )  # maybe sent by a run before: ask, never resend
            if record is not None and record.outcome is not None:
                self._log("intent_already_ended", client_order_id=coid, outcome=record.outcome)
                self.expiries.pop(coid, None)
                return
            claimed = (
                record.submitted_ms
                if record is not None and record.submitted_ms is not None
                else now
            )
            self._log("intent_claimed_before", client_order_id=coid)
            self.unresolved[coid] = (intent, claimed)
            return
        self.sent.append(coid)
        try:
            report = await self.venue.submit(intent)
        except TransientError as exc:
            self._log("submit_unanswered", client_order_id=coid, error=exc.code)
            self.unresolved[coid] = (intent, now)
            return
        await self.deliver(report)

    async def handle(self, command: Command) -> None:
        self.in_flight += 1  # reconciliation waits while a request is out (its answer would race)
        try:
            await self._handle(command)
        finally:
            self.in_flight -= 1

    async def _handle(self, command: Command) -> None:
        if isinstance(command, Submit):
            await self.submit(command.intent)
        elif isinstance(command, Cancel):
            await self.deliver(await self.venue.cancel(command.client_order_id, command.symbol))
        else:
            report = await self.venue.modify(
                command.client_order_id,
                command.symbol,
                quantity=command.quantity,
                price=command.price,
                trigger_price=command.trigger_price,
            )
            if report.kind is OrderEvent.UPDATE and command.quantity is not None:
                self.quantity[command.client_order_id] = (
                    self.filled.get(command.client_order_id, 0.0) + command.quantity
                )
            await self.deliver(report)

    async def resolve_unanswered(self) -> None:
        """Ask the venue about every submit whose answer never came, until each is definitive."""
        if not self.unresolved:
            return
        oldest = min(ms for _, ms in self.unresolved.values())
        fills = await self.venue.fills_since(max(0, oldest - self.settings.fills_lookback_ms))
        for coid, (intent, claimed_ms) in list(self.unresolved.items()):
            resolution = await self._resolve_one(intent, claimed_ms, fills)
            if resolution.verdict in (Verdict.RESOLVED, Verdict.NOT_SENT):
                self.unresolved.pop(coid, None)
                await self._apply(resolution)

    # -- 3. venue-held stops ----------------------------------------------------------------------

    async def protect(self, wanted: list[protection.WantedStop]) -> list[protection.Action]:
        positions = await self.venue.positions()
        open_orders = await self.venue.open_orders()
        actions = protection.plan(wanted, positions, open_orders)
        for action in actions:
            if isinstance(action, protection.Place):
                await self.submit(stop_intent(action.stop, self.clock_ms()))
            elif isinstance(action, protection.Resize):
                await self.handle(
                    Modify(
                        action.stop.client_order_id,
                        action.stop.symbol,
                        quantity=action.stop.quantity,
                        trigger_price=action.stop.trigger_price,
                    )
                )
            elif isinstance(action, protection.CancelStop):
                await self.handle(Cancel(action.client_order_id, action.symbol))
            else:
                self.on_alarm("unprotected_position", attrs.asdict(action))
        return actions

    # -- the actor ----------------------------------------------------------------------------------

    async def run(
        self,
        commands: trio.MemoryReceiveChannel[Command],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await self.recover()
        task_status.started()
        from_venue, venue_reports = trio.open_memory_channel[VenueReport](1024)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.venue.stream_reports, from_venue)
            nursery.start_soon(self._pass_on, venue_reports)
            nursery.start_soon(self._resolve_periodically)
            async with commands:
                async for command in commands:
                    await self.handle(command)
            nursery.cancel_scope.cancel()

    async def _pass_on(self, venue_reports: trio.MemoryReceiveChannel[VenueReport]) -> None:
        async with venue_reports:
            async for report in venue_reports:
                await self.deliver(report)

    async def _resolve_periodically(self) -> None:
        while True:
            await trio.sleep(self.settings.resolve_interval_s)
            await self.resolve_unanswered()
            await self.cancel_expired()


def stop_intent(stop: protection.WantedStop, ts: int) -> OrderIntent:
    """A protective stop as an order: reduce-only stop-market on the closing side."""
    return OrderIntent(
        ts,
        stop.client_order_id,
        stop.symbol,
        Side.BUY if stop.side == "BUY" else Side.SELL,
        OrderType.STOP_MARKET,
        stop.quantity,
        trigger_price=stop.trigger_price,
        tif=TimeInForce.GTC,
        reduce_only=True,
        role="stop",
    )
