"""The IB side of the IBKR market-data feed: one ib_async connection on its own asyncio thread.

It resolves each configured future's root to its front-month contract (with
IB's trading and liquid hours), subscribes to 5-second real-time TRADES bars
(outside regular hours too: futures trade nearly round the clock) and to top
of book, and answers backfills with `reqHistoricalData` 1-minute TRADES bars.
Everything IB pushes (bars, quotes, error codes, the socket closing) crosses
to trio as plain `LinkItem`s through a bounded channel (`ibkr_bridge.ToTrio`):
the IB thread waits when trio is behind, nothing is dropped, and no IB call
ever blocks the trio loop (each is awaited under a timeout).

The connection's client id must differ from the order venue's: TWS allows
one connection per client id (error 326).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from fractald.core.models import Bar
from fractald.errors import ConfigError, NetworkError, RateLimited
from fractald.venues.ibkr import front_month
from fractald.venues.ibkr_bridge import AsyncioThread, ToTrio
from fractald.venues.ibkr_hours import CalendarSessions, calendar_sessions, inside, open_at
from fractald.venues.ibkr_pacing import HistoryLimits, HistoryPacing


@attrs.frozen(slots=True)
class IBFeedSettings:
    host: str = "127.0.0.1"
    port: int = 4002
    client_id: int = 18  # the order venue's default is 17: one connection per client id
    exchange: str = "CME"
    currency: str = "USD"
    roll_days: int = 5
    request_timeout_s: float = 10.0
    history_limits: HistoryLimits = attrs.field(factory=HistoryLimits)  # IB's pacing rules
    calendar: str = "CMES"  # exchange_calendars name for hours past IB's; "" = none


@attrs.frozen(slots=True)
class RealtimeBar:
    """One 5 s TRADES bar; `ts_ms` is its start (IB stamps a real-time bar with its start)."""

    symbol: str
    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    con_id: int = 0  # the contract month it came from (a roll leaves the old month's in flight)


@attrs.frozen(slots=True)
class TopOfBook:
    symbol: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    con_id: int = 0


@attrs.frozen(slots=True)
class LinkNotice:
    """An IB error/notice code (1100 connectivity lost, 1102 restored, ...)."""

    code: int
    message: str
    req_id: int = -1


@attrs.frozen(slots=True)
class LinkLost:
    """The API socket to TWS / IB Gateway closed (TWS restarted, network, ...)."""

    detail: str


LinkItem = RealtimeBar | TopOfBook | LinkNotice | LinkLost


@attrs.frozen(slots=True)
class Instrument:
    """A configured root resolved at IB: the contract traded now and its session hours (UTC ms)."""

    symbol: str
    local_symbol: str
    expiry: str
    tick_size: float
    trading: tuple[tuple[int, int], ...]
    liquid: tuple[tuple[int, int], ...]
    contract: Any = attrs.field(eq=False, repr=False)
    # The exchange's calendar, for when IB's hours (the coming days only) do not reach.
    calendar: CalendarSessions | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def con_id(self) -> int:
        return int(self.contract.conId or 0)

    def trading_at(self, ts_ms: int) -> bool | None:
        """Whether the contract trades at `ts_ms`: IB's hours, else the calendar's, else None."""
        return open_at(self.trading, self.calendar, ts_ms)

    def liquid_at(self, ts_ms: int) -> bool | None:
        """Within regular (liquid) hours: IB's only (a calendar has no overnight session)."""
        return inside(self.liquid, ts_ms)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _sessions(parse: Callable[[], Sequence[Any]]) -> tuple[tuple[int, int], ...]:
    try:
        return tuple((_ms(s.start), _ms(s.end)) for s in parse())
    except (ValueError, KeyError, TypeError):
        return ()  # hours IB gave in a form we cannot read: treated as unknown, never as closed


class IBFeedLink:
    """The connection; `connect()`, `resolve()`, `subscribe()` and `history()` are awaited from trio."""

    def __init__(self, settings: IBFeedSettings) -> None:
        self.settings = settings
        self.thread: AsyncioThread | None = None
        self.ib: Any = None
        self._push: ToTrio | None = None
        self._subscriptions: dict[str, tuple[Any, Any]] = {}  # symbol -> (real-time bars, ticker)
        # Kept across reconnects: IB counts the requests, not the connections.
        self.pacing = HistoryPacing(settings.history_limits)
        self._pacing_lock = trio.Lock()

    @property
    def connected(self) -> bool:
        return self.ib is not None and self.ib.isConnected()

    async def connect(self, push: trio.MemorySendChannel[LinkItem]) -> None:
        """Connect (NetworkError when TWS does not answer); IB's pushes go into `push`."""
        import ib_async

        await self.disconnect()
        if self.thread is None:
            self.thread = AsyncioThread(name="ib_async-feed")
        s = self.settings
        bridge = self._push = ToTrio(push, trio.lowlevel.current_trio_token())

        async def go() -> Any:
            ib = ib_async.IB()
            ib.RaiseRequestErrors = False
            ib.errorEvent += lambda req_id, code, message, *_: bridge.put(
                LinkNotice(code, message, req_id)
            )
            ib.disconnectedEvent += lambda: bridge.put(LinkLost("the API socket closed"))
            await ib.connectAsync(
                s.host, s.port, clientId=s.client_id, timeout=s.request_timeout_s, readonly=True
            )
            return ib

        try:
            self.ib = await self.thread.call(go, s.request_timeout_s * 2)
        except (ConnectionError, OSError, TimeoutError, trio.TooSlowError) as exc:
            bridge.closed = True
            raise NetworkError(
                f"IBKR feed: cannot connect to {s.host}:{s.port} as client {s.client_id}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    async def disconnect(self) -> None:
        self._subscriptions.clear()
        if self._push is not None:
            self._push.closed = True  # nothing from the old connection reaches the new run
        if self.ib is not None and self.thread is not None:
            self.thread.call_soon(self.ib.disconnect)
        self.ib = None

    def close(self) -> None:
        """Synchronous, for a `finally`: stop the thread (the socket closes with it)."""
        if self._push is not None:
            self._push.closed = True
        if self.ib is not None and self.thread is not None:
            self.thread.call_soon(self.ib.disconnect)
        if self.thread is not None:
            self.thread.stop()
        self.ib = self.thread = None

    async def _call(self, make: Callable[[], Any], timeout_s: float | None = None) -> Any:
        if self.thread is None or self.ib is None:
            raise NetworkError("IBKR feed: not connected")
        return await self.thread.call(make, timeout_s or self.settings.request_timeout_s)

    async def resolve(
        self, roots: Sequence[str], today: str, include_expired: bool = False
    ) -> dict[str, Instrument]:
        """Each root's front month (`roll_days` before expiry) on `today`; ConfigError naming
        unknown roots. `include_expired`: a day in the past may have had a month since expired."""
        import ib_async

        s = self.settings
        out: dict[str, Instrument] = {}
        unknown = []
        for root in roots:
            future = ib_async.Future(
                root, exchange=s.exchange, currency=s.currency, includeExpired=include_expired
            )
            details = await self._call(self._details_of(future))
            if not details:
                unknown.append(root)
                continue
            by_expiry = {d.contract.lastTradeDateOrContractMonth: d for d in details}
            try:
                chosen = front_month(list(by_expiry), today, s.roll_days)
            except ValueError:
                chosen = max(by_expiry)  # every listed month expires within roll_days: the last one
            d = by_expiry[chosen]
            out[root] = Instrument(
                root,
                d.contract.localSymbol,
                chosen,
                float(d.minTick),
                _sessions(d.tradingSessions),
                _sessions(d.liquidSessions),
                d.contract,
                self._calendar(),
            )
        if unknown:
            problems = [
                f"config.feed.symbols: {r!r}: IBKR knows no {r} future on {s.exchange}"
                for r in unknown
            ]
            raise ConfigError("; ".join(problems), problems=problems)
        return out

    def _calendar(self) -> CalendarSessions | None:
        name = self.settings.calendar
        return calendar_sessions(name) if name else None  # cached; check-config named a bad one

    def _details_of(self, future: Any) -> Callable[[], Any]:
        return lambda: self.ib.reqContractDetailsAsync(future)

    async def subscribe(self, instruments: Sequence[Instrument]) -> None:
        """5 s TRADES bars (regular hours or not) and top of book for each instrument."""
        bridge = self._push
        assert bridge is not None

        async def go() -> None:
            for inst in instruments:
                bars = self.ib.reqRealTimeBars(inst.contract, 5, "TRADES", False)
                bars.updateEvent += _bar_handler(inst.symbol, inst.con_id, bridge)
                ticker = self.ib.reqMktData(inst.contract, "", False, False)
                ticker.updateEvent += _quote_handler(inst.symbol, inst.con_id, bridge)
                self._subscriptions[inst.symbol] = (bars, ticker)

        await self._call(go)

    async def unsubscribe(self, symbol: str) -> None:
        """Stop one symbol's bars and quotes (a roll: the old month goes before the new one comes)."""
        held = self._subscriptions.pop(symbol, None)
        if held is None:
            return
        bars, ticker = held

        async def go() -> None:
            bars.updateEvent.clear()
            ticker.updateEvent.clear()
            self.ib.cancelRealTimeBars(bars)
            self.ib.cancelMktData(ticker.contract)

        await self._call(go)

    async def history(
        self, inst: Instrument, start_ms: int, end_ms: int, timeout_s: float
    ) -> list[Bar]:
        """1-minute TRADES bars opening in [start_ms, end_ms), outside regular hours included.

        Within IB's pacing rules: a request waits its turn when that is under a third of
        `timeout_s`, else RateLimited says when it may go (the stretch is asked again later)."""
        span_s = max(60, (end_ms - start_ms + 999) // 1000)
        duration = f"{span_s} S" if span_s <= 86_400 else f"{math.ceil(span_s / 86_400)} D"
        end = datetime.fromtimestamp(end_ms / 1000, UTC)
        request = (inst.con_id, end_ms, duration, "1 min", "TRADES", False)
        await self._paced(request, (inst.con_id, "TRADES"), timeout_s / 3)
        try:
            got = await self._call(
                lambda: self.ib.reqHistoricalDataAsync(
                    inst.contract,
                    end,
                    duration,
                    "1 min",
                    "TRADES",
                    False,
                    formatDate=2,
                    timeout=timeout_s,
                ),
                timeout_s + 1.0,
            )
        except trio.TooSlowError:
            raise NetworkError(
                f"IBKR feed: no history for {inst.local_symbol} within {timeout_s} s"
            ) from None
        bars = []
        for b in got:
            when = (
                b.date
                if isinstance(b.date, datetime)
                else datetime.combine(b.date, datetime.min.time(), UTC)
            )
            ts = _ms(when)
            if start_ms <= ts < end_ms:
                bars.append(
                    Bar(
                        inst.symbol,
                        "1m",
                        ts,
                        float(b.open),
                        float(b.high),
                        float(b.low),
                        float(b.close),
                        max(0.0, float(b.volume)),
                    )
                )
        return bars

    async def _paced(self, request: Hashable, contract: Hashable, max_wait_s: float) -> None:
        async with self._pacing_lock:  # one request at a time through the budget
            while True:
                now = trio.current_time()
                wait = self.pacing.wait_s(now, request, contract)
                if wait <= 0:
                    self.pacing.sent(now, request, contract)
                    return
                if wait > max_wait_s:
                    lim = self.pacing.limits
                    raise RateLimited(
                        f"IBKR history: IB's pacing rules ({lim.requests} requests in "
                        f"{lim.window_s:g} s, none identical within {lim.identical_s:g} s, "
                        f"{lim.per_contract} a contract in {lim.per_contract_s:g} s) let this "
                        f"request go in {wait:.1f} s; it is asked again later",
                        retry_after_s=wait,
                    )
                self.pacing.waited += 1
                await trio.sleep(wait)

    async def server_time_ms(self) -> int:
        got = await self._call(lambda: self.ib.reqCurrentTimeAsync())
        return _ms(got)


def _bar_handler(symbol: str, con_id: int, bridge: ToTrio) -> Callable[[Any, bool], None]:
    def on_update(bar_list: Any, has_new: bool) -> None:
        if has_new and bar_list:
            b = bar_list[-1]
            bridge.put(
                RealtimeBar(
                    symbol,
                    _ms(b.time),
                    float(b.open_),
                    float(b.high),
                    float(b.low),
                    float(b.close),
                    max(0.0, float(b.volume)),
                    con_id,
                )
            )

    return on_update


def _quote_handler(symbol: str, con_id: int, bridge: ToTrio) -> Callable[[Any], None]:
    last: list[tuple[float, ...]] = []

    def on_update(ticker: Any) -> None:
        # ib_async marks an empty side with NaN (or -1): no quote to pass on then
        book = tuple(
            0.0 if math.isnan(x) else float(x)
            for x in (ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize)
        )
        if book[0] > 0 and book[2] > 0 and (not last or last[0] != book):
            last[:] = [book]
            bid, bid_size, ask, ask_size = book
            bridge.put(TopOfBook(symbol, bid, bid_size, ask, ask_size, con_id))

    return on_update


def today_utc() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")
