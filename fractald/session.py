"""A trading session: the pure pipeline plus its persistence, as the trading actor runs it.

Every batch of events a bar produces is committed together with a JSON
snapshot of the trading state (`fractald.session_state`, versioned by
`fractald.state_schema`) and the candles detection read since the last
batch, in one transaction. Start-up builds the pipeline from the current
config, restores the newest good snapshot into it and rebuilds detection
from the stored candles; the feed resumes after the bar the snapshot covers.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import cattrs

from fractald.config import Config
from fractald.core.continuous import ContractRolled
from fractald.core.models import Bar, FeedHealth, Quote, TradeTick
from fractald.errors import StateCorrupt
from fractald.reconcile import ReconcileReport, reconcile
from fractald.session_state import (
    candle_row,
    fold_legacy_events,
    restore_into,
    session_state,
    shift_row,
    warm_up_from,
)
from fractald.state_schema import LEGACY_PICKLE_SCHEMA, migrate, refuse_if_newer
from fractald.store.db import canonical_json
from fractald.store.equity_store import EquityMark, EquityRow, equity_in_ledger, split_equity
from fractald.store.ledger import CandleRow, Ledger, Snapshot
from fractald.store.order_store import MARK as ORDERS_MARK
from fractald.store.order_store import OrderRow, ended_orders, split_orders
from fractald.store.writer import AsyncLedger

# The cursor's key (SYMBOL/roll) for the last futures roll applied to a symbol's stored candles.
ROLL_CURSOR = "roll"
# Events that do not change the trading state (may follow the newest snapshot).
NOT_STATE_KINDS = ("intent_repaired",)
# Trading events an operator reads in `journalctl -u fractald` (the rest: `fractalctl tail`).
LOGGED_KINDS = {
    "signal": "info",
    "signal_denied": "info",
    "bracket_opened": "info",
    "order_filled": "info",
    "stop_moved": "info",
    "bracket_closed": "info",
    "trade_closed": "info",
    "breaker_tripped": "warning",
    "breakers_cleared": "info",
    "trading_state": "warning",
    "strategy_state": "warning",
    "order_anomaly": "error",
}
_LOG_FIELD_CAP = 12
# Events about one order, by client order id: after them the order may have reached its end.
ORDER_EVENT_KINDS = frozenset({"order_intent", "order_status", "order_filled", "cancel_requested"})
# A snapshot at least every this many 1m bars (and on the daemon's timer, after anything not
# caused by a bar, and at shutdown); bars in between commit only their events and candles.
SNAPSHOT_EVERY_BARS = 5000
_INF = float("inf")

_converter = cattrs.Converter()


def event_kind(event: Any) -> str:
    kind = getattr(event, "kind", None)
    if isinstance(kind, str):
        return kind
    name = type(event).__name__
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def event_payload(event: Any) -> dict[str, Any]:
    if attrs.has(type(event)):
        data = _converter.unstructure(event)
        return data if isinstance(data, dict) else {"value": data}
    if isinstance(event, dict):
        return event
    return {"value": repr(event)}


def build_pipeline(config: Config) -> Any:
    """The pure pipeline the backtester also drives, from the one shared factory."""
    from fractald.pipeline_factory import pipeline_from_config

    return pipeline_from_config(config)


def apply_risk_config(engine: Any, config: Config) -> list[Any]:
    """Give an engine (running, or unpickled with older settings) the risk parameters `config` implies.

    Sizing, gates and breakers come from [risk]; reliability and
    execution-quality settings (not in [risk]) are kept as the engine has them.
    An engine without `set_risk` (none, or a signal-only one) is left alone.
    Returns the engine's events (a `RiskChanged` when the limits changed), for the ledger.
    """
    from fractald.pipeline_factory import risk_params

    set_risk = getattr(engine, "set_risk", None)
    if set_risk is None:
        return []
    new = risk_params(config)
    return list(
        set_risk(
            attrs.evolve(
                engine.params.risk, sizing=new.sizing, gates=new.gates, breakers=new.breakers
            )
        )
        or []
    )


def _log_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """A log line's fields: the payload's scalars and small nested records, never `event`."""
    fields: dict[str, Any] = {}
    for key, value in payload.items():
        if len(fields) >= _LOG_FIELD_CAP:
            break
        if key in ("event", "reasons", "level", "actor"):
            continue
        fields["ts_event" if key == "ts" else key] = value  # `ts` is the log line's own time
    return fields


# Periodic venue reconciliation: fills asked for from this long before the newest one held, and
# an order of ours the venue has never heard of is "lost" only once it is this old.
VENUE_FILLS_LOOKBACK_MS = 60_000
VENUE_SETTLE_MS = 15_000


def _position_differences(books: dict[str, float], venue: Any) -> list[tuple[str, float, float]]:
    return [
        (sym, books.get(sym, 0.0), float(venue.get(sym, 0.0)))
        for sym in sorted(set(books) | set(venue))
        if abs(books.get(sym, 0.0) - venue.get(sym, 0.0)) > 1e-9
    ]


def _account_limits(config: Config) -> Any:
    from fractald.routing.reconciliation import AccountLimits

    leverage = getattr(getattr(config, "broker", None), "leverage", None) or {}
    spot = getattr(getattr(config, "broker", None), "kind", "") == "binance-spot"
    return AccountLimits(
        equity_tolerance=config.daemon.reconcile_equity_tolerance,
        margin_tolerance=config.daemon.reconcile_margin_tolerance,
        leverage={k: float(v) for k, v in leverage.items()},
        holds_coins=spot,
    )


class EventBus(Protocol):
    """Where committed events go (tail, alerts, metrics): `fractald.actors.events.EventBus`."""

    def publish(self, kind: str, data: dict[str, Any] | None = ..., /) -> object: ...


class TradingSession:
    def __init__(
        self,
        config: Config,
        ledger: AsyncLedger,
        log: Any,
        bus: EventBus,
        pipeline: Any,
        cursor: dict[str, int],
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.log = log
        self.bus = bus
        self.pipeline = pipeline
        self.cursor = cursor
        self.bars_since_snapshot = 0
        self.bars_processed = 0
        self.last_bar: dict[str, dict[str, Any]] = {}
        self.feed_health: dict[str, FeedHealth] = {}
        self.last_reconcile: dict[str, Any] = {}
        self._candles: list[CandleRow] = []  # read by detection, not yet committed
        # The equity history's closed points the ledger holds (snapshots carry only the rest).
        self._equity_stored: EquityMark | None = None
        self._orders_stored: dict[str, Any] = {}  # ended orders the ledger holds, by id
        self._timeframes_of: dict[str, frozenset[str]] = {}
        # While a feed batch's bars are stepped: their events and times, not yet committed.
        self._held: list[tuple[Any, int]] | None = None
        # Engine events of a config change (RiskChanged), made outside a bar: the next commit
        # records them first, so the ledger replays the limits in force at each point.
        self._uncommitted: list[Any] = []
        # Catching up after a restart: the events the log holds after the snapshot, which the
        # bars re-driven from its cursor must make again (checked, not committed twice).
        self._expected: collections.deque[tuple[str, str, int]] = collections.deque()
        self._stored_until: dict[str, int] = {}  # newest stored candle per symbol/timeframe
        self._reconcile_when_caught_up = False
        self._config_when_caught_up: Config | None = None
        self.ticks_dropped_catching_up = 0
        # With a venue broker: called with every committed batch (the trading actor routes its
        # orders and cancels), only after the commit, so nothing leaves before it is recorded.
        self.after_commit: Callable[[list[Any]], Awaitable[None]] | None = None
        # With a venue broker: the venue's net positions (None when it cannot be asked now), and
        # a difference seen once, which must be seen again before it counts (a fill on its way).
        self.venue_positions: Callable[[], Awaitable[dict[str, float] | None]] | None = None
        self._position_difference: tuple[tuple[str, float, float], ...] = ()
        # With a venue broker: everything periodic reconciliation compares (orders, fills since,
        # positions, account), given our working orders and the fills' start; None: not now.
        self.venue_snapshot: Callable[[dict[str, str], int], Awaitable[Any]] | None = None
        self._differences: frozenset[tuple[str, str]] = frozenset()
        self.account_limits = _account_limits(config)

    @property
    def catching_up(self) -> bool:
        """True while re-driven bars are still re-making events the log already holds."""
        return bool(self._expected)

    # -- start-up == recovery -------------------------------------------------------------
    @classmethod
    async def recover(
        cls, config: Config, ledger: AsyncLedger, log: Any, bus: EventBus
    ) -> TradingSession:
        """The pipeline from the current config, with the stored state put back into it.

        A state newer than this code is refused (StateTooNew) before anything
        is loaded; an older JSON one is migrated; a 0.1.0 one is rebuilt from
        the event log and written back as JSON at once, so that happens once.
        """
        snapshot = await ledger.latest_good_snapshot()
        pipeline = build_pipeline(config)
        if snapshot is None:
            session = cls(config, ledger, log, bus, pipeline, {})
            await session._expect_events_after(0)
            log.info("session_fresh_start", events_to_remake=len(session._expected))
            return session
        where = f"snapshot {snapshot.id} of {ledger.path}"
        version = refuse_if_newer(snapshot.state, where)
        if version == LEGACY_PICKLE_SCHEMA:
            return await cls._upgrade_legacy(config, ledger, log, bus, pipeline, snapshot)
        try:
            state = migrate(dict(snapshot.state), where)
            stored = equity_in_ledger(state)
            split = ORDERS_MARK in state.get("engine", {})
            if stored is not None or split:
                # the closed equity points and the ended orders, from their own tables
                state = await ledger.run(functools.partial(Ledger.whole_state, state=state))
            notes = restore_into(pipeline, state)
            session = cls(config, ledger, log, bus, pipeline, dict(state["cursor"]))
            session.bars_processed = int(state["bars_processed"])
            session._equity_stored = stored
            session._orders_stored = ended_orders(state) if split else {}
        except (KeyError, TypeError, ValueError, cattrs.BaseValidationError) as exc:
            raise StateCorrupt(
                f"{where} cannot be read ({type(exc).__name__}: {exc}); "
                "see runbooks/state-database-corrupt.md"
            ) from exc
        for note in notes:
            log.warning("state_restore_note", note=note)
        warmed = await session._rebuild_detection()
        await session._expect_events_after(snapshot.last_seq)
        log.info(
            "session_recovered",
            snapshot_id=snapshot.id,
            last_seq=snapshot.last_seq,
            schema_version=state["schema_version"],
            written_by=snapshot.state.get("code_version"),
            cursor=session.cursor,
            bars_processed=session.bars_processed,
            candles_replayed=warmed,
            events_to_remake=len(session._expected),
        )
        return session

    async def _expect_events_after(self, last_seq: int) -> None:
        """The trading events after the snapshot: the bars re-driven from its cursor remake them."""

        def read(led: Ledger) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
            expected = [
                (e.kind, canonical_json(e.payload, "event"), e.ts_event)
                for e in led.events_after(last_seq)
                if e.kind not in NOT_STATE_KINDS
            ]
            return expected, led.newest_candles()

        expected, self._stored_until = await self.ledger.run(read)
        self._expected = collections.deque(expected)

    @classmethod
    async def _upgrade_legacy(
        cls,
        config: Config,
        ledger: AsyncLedger,
        log: Any,
        bus: EventBus,
        pipeline: Any,
        snapshot: Snapshot,
    ) -> TradingSession:
        """0.1.0's pickled pipeline is never loaded: fold the event log instead, then store JSON."""
        state = snapshot.state
        counts = await ledger.run(lambda led: fold_legacy_events(pipeline, led.events_after(0)))
        session = cls(
            config,
            ledger,
            log,
            bus,
            pipeline,
            {str(k): int(v) for k, v in dict(state.get("cursor", {})).items()},
        )
        session.bars_processed = int(state.get("bars_processed", 0))
        for p in getattr(pipeline, "pipelines", {}).values():
            p.bars = session.bars_processed
            p._last_ts = {
                key.split("/", 1)[1]: ts
                for key, ts in session.cursor.items()
                if key.split("/", 1)[0] == p.symbol
            }
        await session.commit([], ts_event=0)
        log.warning(
            "state_upgraded_from_0_1_0",
            snapshot_id=snapshot.id,
            events_folded=counts,
            cursor=session.cursor,
            note="detection state starts afresh (0.1.0 stored no candles); open trades "
            "keep their stops and targets, their strategy management restarts "
            "with the next signal",
        )
        return session

    async def _rebuild_detection(self, symbol: str | None = None) -> int:
        """Run detection over the stored candles the cursor covers (of `symbol` only, when
        given), a page at a time."""
        after, fed = 0, 0
        while True:
            page = await self.ledger.run(lambda led, a=after: led.candles_page(a))  # type: ignore[misc]
            if not page:
                return fed
            rows = (row for _, row in page if symbol is None or row[0] == symbol)
            fed += warm_up_from(self.pipeline, rows, self.cursor)
            after = page[-1][0]

    async def on_contract_roll(self, roll: ContractRolled) -> None:
        """A futures feed moved to the next contract month: back-adjust what detection read.

        The candles stored for the symbol before the roll (and those not committed yet)
        get the price step between the months added, in the transaction of a snapshot that
        marks the roll applied (a crash leaves both or neither), and the symbol's detection
        state is rebuilt over the adjusted candles: swings, FVGs,
        order blocks, liquidity, VWAP bands and armed setups then sit at the new month's
        prices, so the step itself breaks no structure and sweeps no pool. A restart after
        this rebuilds the very same state from the same stored candles.

        Open trades of the symbol are closed first, on the old month, with the exit
        reason `contract_roll` ([feed] roll_open_trades = "close", the default): their
        exits are committed with the roll's mark, so no trade's stop or target ever meets
        the new month's prices. With "keep" they keep their old-month levels (logged).
        """
        symbol, before, offset = roll.symbol, roll.ts_ms, roll.offset
        applied = self.cursor.get(f"{symbol}/{ROLL_CURSOR}")
        if applied is not None and before <= applied:
            # Told again (the feed restarted before a bar of the new month was committed):
            # the stored candles already are the adjusted ones.
            self.log.info("contract_roll_already_applied", symbol=symbol, ts_ms=before)
            return
        closing = self._close_for_roll(roll)
        self.cursor[f"{symbol}/{ROLL_CURSOR}"] = before  # in the snapshot with the adjustment
        self._candles = [
            shift_row(row, offset) if row[0] == symbol and row[2] < before else row
            for row in self._candles
        ]
        if self._expected:  # catching up, nothing may be committed: the log's snapshot stays
            stored = await self.ledger.run(lambda led: led.shift_candles(symbol, before, offset))
        else:  # the stored candles move in the snapshot's own transaction, with the roll's mark
            stored = await self.ledger.run(lambda led: led.candles_before(symbol, before))
            stored += sum(1 for row in self._candles if row[0] == symbol and row[2] < before)
            await self.commit(closing, ts_event=before, candle_shift=(symbol, before, offset))
            self._announce(closing)
        warmed = 0
        reset = getattr(self.pipeline, "reset_detection", None)
        if reset is not None:
            reset(symbol)
            warmed = await self._rebuild_detection(symbol)
            pending = (row for row in self._candles if row[0] == symbol)  # catching up: not stored
            warmed += warm_up_from(self.pipeline, pending, self.cursor)
        open_trades = self._open_trades(symbol)
        detail = {
            "symbol": symbol,
            "ts_ms": before,
            "old": roll.old,
            "new": roll.new,
            "offset": offset,
            "measured": roll.measured,
            "candles_adjusted": stored,
            "candles_replayed": warmed,
            "open_trades": open_trades,
        }
        self.log.warning("contract_roll_adjusted", **detail)
        self.bus.publish("contract_rolled", detail)

    def _close_for_roll(self, roll: ContractRolled) -> list[Any]:
        """The engine's events closing `roll.symbol`'s trades on the old month (none to keep them).

        Catching up, nothing may be committed and the log holds no such exits: the
        trades are kept then, and said so (an operator closes them by hand)."""
        symbol = roll.symbol
        open_trades = self._open_trades(symbol)
        close = getattr(self.pipeline, "close_for_roll", None)
        mode = getattr(self.config.feed, "roll_open_trades", "close")
        if close is None or mode != "close" or not self._holds(symbol):
            if open_trades:
                self.log.warning(
                    "contract_roll_trades_kept", symbol=symbol, trades=open_trades, mode=mode
                )
            return []
        if self._expected:
            self.log.warning(
                "contract_roll_trades_kept",
                symbol=symbol,
                trades=open_trades,
                mode=mode,
                note="catching up with the log: close them by hand (fractalctl exit)",
            )
            return []
        events = list(close(symbol))
        self.log.warning(
            "contract_roll_trades_closed",
            symbol=symbol,
            old=roll.old,
            new=roll.new,
            trades=open_trades,
            orders=[e.client_order_id for e in events if event_kind(e) == "order_intent"],
        )
        return events

    def _holds(self, symbol: str) -> bool:
        """True when the engine has a trade or a position of `symbol` (an entry waiting too)."""
        engine = self.engine
        if engine is None:
            return False
        brackets = getattr(engine, "brackets", {})
        positions = getattr(getattr(engine, "accounting", None), "positions", {})
        return any(b.symbol == symbol for b in brackets.values()) or any(
            p.symbol == symbol and p.quantity != 0 for p in positions.values()
        )

    def _open_trades(self, symbol: str) -> list[str]:
        """The signal ids of `symbol`'s trades whose entry has filled."""
        pipeline = getattr(self.pipeline, "pipelines", {}).get(symbol, self.pipeline)
        trades = getattr(pipeline, "open_trades", None)
        return [] if trades is None else sorted(s for s, t in trades().items() if t is not None)

    def apply_config(self, config: Config) -> None:
        """A new config on a running session (SIGHUP, `risk set`): [risk] reaches the engine.

        [strategies] and [broker] shape the pipeline itself; they take
        effect when it is built again, at the next start (see
        `config.reload_changes`, which refuses them on reload).
        """
        self.config = config
        if self._expected:
            # Catching up: the bars must remake the log with the limits it was made under;
            # the new ones apply (and are logged) once the catch-up is done.
            self._config_when_caught_up = config
            return
        self._uncommitted += apply_risk_config(self.engine, config)

    # -- market events --------------------------------------------------------------------
    async def on_bars(self, bars: list[Bar], accepting: Callable[[], bool] = lambda: True) -> None:
        """`on_bar` of each of `bars` (consecutive feed events, in order); quiet bars in runs.

        A base bar inside its symbol's quiet window (`Pipeline.quiet_window`:
        no order, position or trade, the day's breakers checked) makes no
        event, so it needs no commit: such bars are gathered and handed to
        the pipeline together (`on_quiet_bars`, as the backtest loop does)
        before the next input that is not one, which leaves every state as
        `on_bar` one by one would. Not while catching up (each bar is checked
        against the log) and not where the pipeline has no quiet window.
        `accepting` is asked at each bar that is stepped (an operator may stop
        entries while a commit is under way).
        """
        # With the paper broker nothing leaves the process, so the events of the batch's bars
        # are committed in one transaction at its end; a crash before it loses them with the
        # cursor, and the bars after the snapshot's cursor remake them (as for any bar).
        if self.after_commit is None and self._in_process_broker() and not self._expected:
            self._held = []
        try:
            await self._on_bars(bars, accepting)
            if self._held:
                await self._commit_held(snapshot=False, ts_event=bars[-1].ts_event)
        finally:
            self._held = None

    async def _commit_held(self, snapshot: bool, ts_event: int) -> None:
        held, self._held = self._held or [], []
        events = [event for event, _ in held]
        await self.commit(events, ts_event, snapshot=snapshot, stamps=[ts for _, ts in held])
        self._announce(events)

    async def _on_bars(self, bars: list[Bar], accepting: Callable[[], bool]) -> None:
        run: list[Bar] = []
        window: tuple[str, tuple[int, int] | None] | None = None  # (symbol, its quiet window)
        for bar in bars:
            if window is None or window[0] != bar.symbol:
                if run:
                    self._flush_quiet(run)
                    run = []
                window = (bar.symbol, None if self._expected else self._quiet_window(bar))
            span = window[1]
            if span is not None and self._quiet(bar, span):
                run.append(bar)
                if self.bars_since_snapshot >= SNAPSHOT_EVERY_BARS:
                    self._flush_quiet(run)
                    run = []
                    if self._held is not None:
                        await self._commit_held(snapshot=True, ts_event=bar.ts_event)
                    else:
                        await self.commit([], ts_event=bar.ts_event)
                continue
            if run:
                self._flush_quiet(run)
                run = []
            await self.on_bar(bar, accepting())
            window = None  # anything not quiet may have changed the window: asked again
        if run:
            self._flush_quiet(run)

    def _quiet_window(self, bar: Bar) -> tuple[int, int] | None:
        pipeline = getattr(self.pipeline, "pipelines", {}).get(bar.symbol, self.pipeline)
        window = getattr(pipeline, "quiet_window", None)
        if window is None or getattr(pipeline, "symbol", None) != bar.symbol:
            return None
        span: tuple[int, int] | None = window()
        return span

    def _quiet(self, bar: Bar, span: tuple[int, int]) -> bool:
        """`bar` goes into a quiet run (its bookkeeping done here); False: `on_bar` it."""
        key = f"{bar.symbol}/{bar.timeframe}"
        if not (
            span[0] <= bar.ts_open
            and bar.ts_event < span[1]
            and bar.timeframe == "1m"
            and bar.ts_open > self.cursor.get(key, -1)
            and bar.timeframe not in self._detection_timeframes(bar.symbol)
            and 0 < bar.low <= bar.high < _INF
            and 0 < bar.open < _INF
            and 0 < bar.close < _INF
            and bar.volume < _INF
        ):
            return False
        pipeline = getattr(self.pipeline, "pipelines", {}).get(bar.symbol, self.pipeline)
        if bar.timeframe != pipeline.base_timeframe:
            return False
        self.cursor[key] = bar.ts_open
        self.bars_processed += 1
        self.bars_since_snapshot += 1
        return True

    def _flush_quiet(self, run: list[Bar]) -> None:
        """A run of quiet base bars of one symbol through the pipeline at once."""
        last = run[-1]
        pipeline = getattr(self.pipeline, "pipelines", {}).get(last.symbol, self.pipeline)
        pipeline.on_quiet_bars(run)
        self.last_bar[f"{last.symbol}/{last.timeframe}"] = {
            "ts_open": last.ts_open,
            "close": last.close,
            "complete": last.complete,
        }

    async def on_bar(self, bar: Bar, accepting: bool = True) -> None:
        key = f"{bar.symbol}/{bar.timeframe}"
        if bar.ts_open <= self.cursor.get(key, -1):
            return  # already covered by the restored state (a resumed or restarted feed)
        events: list[Any] = []
        if self.pipeline is not None:
            events = list(self.pipeline.on_bar(bar, accepting=accepting))
        if bar.timeframe in self._detection_timeframes(
            bar.symbol
        ) and bar.ts_open > self._stored_until.get(key, -1):
            self._candles.append(candle_row(bar))
        self.last_bar[key] = {"ts_open": bar.ts_open, "close": bar.close, "complete": bar.complete}
        self.cursor[key] = bar.ts_open
        if bar.timeframe == "1m":
            self.bars_processed += 1
            self.bars_since_snapshot += 1
        if self._expected:
            await self._remade(events, bar)
            return
        due = self.bars_since_snapshot >= SNAPSHOT_EVERY_BARS
        held = self._held
        if held is not None:  # a batch's bars: committed together at its end (`on_bars`)
            held.extend((event, bar.ts_event) for event in events)
            if due:
                await self._commit_held(snapshot=True, ts_event=bar.ts_event)
            return
        if events or due:
            await self.commit(events, ts_event=bar.ts_event, snapshot=due)
        self._announce(events)

    async def _remade(self, events: list[Any], bar: Bar) -> None:
        """Catching up: this bar's events must be the next ones the log holds, in order.

        They were committed (and announced) before the restart, so they are
        neither written nor published again. Anything else means the log
        holds events these bars do not make (a damaged snapshot, or a feed
        that no longer sends those bars): corrupt state for a human, never
        orders sent twice.
        """
        for event in events:
            made = (event_kind(event), canonical_json(event_payload(event), "event"))
            logged = self._expected.popleft() if self._expected else None
            if logged is None or made != logged[:2]:
                self._refuse_remake(bar, made[0], logged)
        if self._expected and self._expected[0][2] < bar.ts_event:
            self._refuse_remake(bar, None, self._expected[0])
        if not self._expected:
            self.log.info(
                "session_caught_up", cursor=self.cursor, bars_processed=self.bars_processed
            )
            if self._config_when_caught_up is not None:
                config, self._config_when_caught_up = self._config_when_caught_up, None
                self.apply_config(config)
            if self._reconcile_when_caught_up:
                self._reconcile_when_caught_up = False
                await self.reconcile("start")

    def feed_ended(self) -> None:
        """A finished feed (a replay's end): fine, unless the log still holds events to remake."""
        if self._expected:
            kind, _, ts = self._expected[0]
            raise StateCorrupt(
                f"the feed ended while {len(self._expected)} logged events after the newest good "
                f"snapshot were not made again (next: {kind} at ts {ts}): the replay is shorter "
                "than the one the log came from. See runbooks/state-database-corrupt.md",
                remaining=len(self._expected),
            )

    def _refuse_remake(
        self, bar: Bar, made: str | None, logged: tuple[str, str, int] | None
    ) -> None:
        raise StateCorrupt(
            f"re-driving {bar.symbol} {bar.timeframe} bar {bar.ts_open} after the newest good "
            f"snapshot made {made or 'no event'}, but the log holds "
            f"{'nothing more' if logged is None else f'{logged[0]} at ts {logged[2]}'}: the log "
            "and the snapshot disagree, and trading on would repeat or lose orders. See "
            "runbooks/state-database-corrupt.md",
            bar_ts_open=bar.ts_open,
        )

    async def on_tick(self, tick: TradeTick | Quote) -> None:
        if self.pipeline is None or not hasattr(self.pipeline, "on_tick"):
            return
        if self._expected:
            # Fills from ticks are committed with a snapshot, so the log after the snapshot
            # holds only what bars made; a live tick during the catch-up would act on state
            # behind the log. The bars carry the price path meanwhile.
            self.ticks_dropped_catching_up += 1
            return
        events = list(self.pipeline.on_tick(tick))
        if events:
            await self.commit(events, ts_event=tick.ts_event)
            self._announce(events)

    def on_feed_health(self, health: FeedHealth) -> None:
        self.feed_health[health.symbol] = health
        if self.pipeline is not None and hasattr(self.pipeline, "on_feed_health"):
            self.pipeline.on_feed_health(health)

    # -- persistence ----------------------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        return session_state(self.pipeline, self.cursor, self.bars_processed)

    def _detection_timeframes(self, symbol: str) -> frozenset[str]:
        timeframes = self._timeframes_of.get(symbol)
        if timeframes is None:
            of = getattr(self.pipeline, "detection_timeframes", None)
            timeframes = self._timeframes_of[symbol] = frozenset() if of is None else of(symbol)
        return timeframes

    @property
    def engine(self) -> Any:
        return getattr(self.pipeline, "engine", None)

    def _in_process_broker(self) -> bool:
        """True when orders are 'sent' inside this process (the pipeline's paper venue)."""
        return getattr(self.pipeline, "venue", None) is not None

    def _outcomes(self, events: list[Any]) -> list[tuple[str, str, int]]:
        """Orders these events touched that are now in a terminal state, with that state."""
        engine = self.engine
        orders = getattr(engine, "orders", {})
        out: list[tuple[str, str, int]] = []
        for cid, ts in {
            e.client_order_id: e.ts for e in events if event_kind(e) in ORDER_EVENT_KINDS
        }.items():
            order = orders.get(cid)
            if order is not None and order.status.terminal:
                out.append((cid, order.status.value.lower(), max(0, int(ts))))
        return out

    async def commit(
        self,
        events: list[Any],
        ts_event: int,
        snapshot: bool = True,
        candle_shift: tuple[str, int, float] | None = None,
        stamps: list[int] | None = None,
    ) -> None:
        """Events, the intents among them, their lifecycle and the state they lead to: all or nothing.

        Only bars may commit without a `snapshot`: after a restart the bars
        after the snapshot's cursor are re-driven and remake those events
        exactly (`_remade`). Ticks, operator commands and reconciliation are
        not re-sent, so what they cause is committed with a snapshot.

        Each OrderIntent is recorded. With the paper broker the order is
        'sent' inside the engine call that made the intent, so its
        submission is claimed in the same transaction as the intent, the
        broker's answer and the snapshot: a crash before the commit forgets
        all of it together (the bar is re-driven, deterministically), a
        crash after keeps all of it. Orders that reached a terminal state
        get their outcome in the same transaction too. (A real venue router
        records the intent and claims the submission in a transaction of
        its own BEFORE sending, then commits the venue's answer like this.)
        """
        if self._uncommitted:
            events = [*self._uncommitted, *events]
            snapshot = True  # a risk change is no bar's doing: no re-driven bar remakes it
        if stamps is None:  # each event's own time (a batch of bars), else all at ts_event
            stamps = [ts_event] * len(events)
        if len(stamps) < len(events):  # risk changes first: at the first bar's time
            stamps = [stamps[0] if stamps else ts_event] * (len(events) - len(stamps)) + stamps
        items = [
            (event_kind(e), event_payload(e), ts) for e, ts in zip(events, stamps, strict=True)
        ]
        intents = [
            e for e in events if event_kind(e) == "order_intent" and hasattr(e, "client_order_id")
        ]
        submissions = (
            [(e.client_order_id, max(0, int(e.ts))) for e in intents]
            if self._in_process_broker()
            else []
        )
        if self._expected:
            raise RuntimeError("nothing may be committed while catching up with the log")
        state: dict[str, Any] | None = None
        equity: list[EquityRow] = []
        equity_stored = self._equity_stored
        orders: list[OrderRow] = []
        orders_stored = self._orders_stored
        if snapshot:  # the equity history's closed points and ended orders: own tables, once each
            state, equity, equity_stored = split_equity(self.snapshot_state(), equity_stored)
            state, orders, orders_stored = split_orders(state, orders_stored)
        await self.ledger.commit_batch(
            items,
            [(e.client_order_id, event_payload(e)) for e in intents],
            state,
            submissions=submissions,
            outcomes=self._outcomes(events),
            candles=self._candles,
            equity=equity,
            candle_shift=candle_shift,
            ended_orders=orders,
        )
        self._equity_stored = equity_stored
        self._orders_stored = orders_stored
        self._candles = []
        self._uncommitted = []
        if snapshot:
            self.bars_since_snapshot = 0
        if self.after_commit is not None and events:
            await self.after_commit(events)

    async def write_snapshot(self, reason: str) -> None:
        """A snapshot now (timer, shutdown); none while catching up: the older one stays right."""
        if self._expected:
            self.log.info("snapshot_deferred", reason=reason, catching_up=len(self._expected))
            return
        await self.commit([], ts_event=0)
        self.log.info("snapshot_written", reason=reason, cursor=self.cursor)

    # -- reconciliation ---------------------------------------------------------------------
    async def reconcile(self, why: str) -> ReconcileReport | None:
        """Ledger against broker; repairs what is definitive, else goes REDUCING and says why.

        The paper venue is asked through the `Venue` interface, from its own
        book; a real venue's positions through `venue_positions`.
        """
        engine = self.engine
        if engine is not None and not self._in_process_broker() and not self._expected:
            return await self._reconcile_venue(why, engine)
        if engine is None or not self._in_process_broker():
            return None
        if self._expected:  # the book is behind the log until the catch-up is done
            self._reconcile_when_caught_up = True
            return None
        books: dict[str, float] = {}
        for position in engine.accounting.positions.values():
            books[position.symbol] = books.get(position.symbol, 0.0) + position.quantity
        ts = int(getattr(engine, "last_ts", 0))
        from fractald.venues.paper import PaperVenueAdapter

        venue = PaperVenueAdapter(self.pipeline.venue, engine.instruments, engine.equity)
        report = await reconcile(self.ledger, venue, books, ts)
        self.last_reconcile = {
            "why": why,
            "clean": report.clean,
            "ts": ts,
            "repairs": len(report.repairs),
            "mismatches": len(report.mismatches),
        }
        for repair in report.repairs:
            self.log.warning("reconcile_repaired", why=why, **attrs.asdict(repair))
        if report.clean:
            self.log.info("reconcile_clean", why=why, **report.figures)
            return report
        return await self._mismatched(why, engine, ts, report)

    async def _reconcile_venue(self, why: str, engine: Any) -> ReconcileReport | None:
        """The books' net positions against the venue's: the same difference twice is REDUCING.

        Orders and fills are the router's to resolve (by client order id, at every start); this
        catches what no report explains, such as a position changed by hand at the venue.
        """
        from fractald.reconcile import Mismatch, MismatchCode

        if self.venue_snapshot is not None:
            return await self._reconcile_at_venue(why, engine)
        venue = await self.venue_positions() if self.venue_positions is not None else None
        if venue is None:
            return None
        books: dict[str, float] = {}
        for position in engine.accounting.positions.values():
            books[position.symbol] = books.get(position.symbol, 0.0) + position.quantity
        differ = tuple(
            (sym, round(books.get(sym, 0.0), 9), round(venue.get(sym, 0.0), 9))
            for sym in sorted(set(books) | set(venue))
            if abs(books.get(sym, 0.0) - venue.get(sym, 0.0)) > 1e-9
        )
        ts = int(getattr(engine, "last_ts", 0))
        seen_before, self._position_difference = self._position_difference, differ
        mismatches = tuple(
            Mismatch(MismatchCode.POSITION, sym, {"books": b, "venue": v}) for sym, b, v in differ
        )
        report = ReconcileReport((), mismatches, {"symbols": len(set(books) | set(venue))})
        self.last_reconcile = {
            "why": why,
            "clean": report.clean,
            "ts": ts,
            "repairs": 0,
            "mismatches": len(mismatches),
        }
        if report.clean:
            self.log.info("reconcile_clean", why=why, venue=True)
            return report
        if differ != seen_before:  # the first sighting may be a fill still on its way to us
            self.log.warning(
                "reconcile_position_differs",
                why=why,
                differences=[m.as_dict() for m in mismatches],
                note="checked again at the next reconciliation",
            )
            return report
        return await self._mismatched(why, engine, ts, report)

    async def _reconcile_at_venue(self, why: str, engine: Any) -> ReconcileReport | None:
        """Orders, fills, positions and margin against the venue (`fractald.routing.reconciliation`).

        Definitive differences are repaired at once, as the reports the engine missed (a fill
        recorded and attributed, an order the venue ended or lost ended here too; a stop
        cancelled at the venue is then placed again by its bracket). Positions are compared
        after the repairs. Any other difference seen in two reconciliations in a row (the first
        may be a report still on its way) is REDUCING, coded, with an alert.
        """
        from fractald.core.execution.orders import OrderStatus
        from fractald.reconcile import Mismatch, MismatchCode, Repair
        from fractald.routing import reconciliation as rc
        from fractald.routing.journal import recorded_fills

        working = {
            o.client_order_id: rc.BookOrder(
                o.client_order_id, o.symbol, o.quantity, o.filled_qty, o.ts_created
            )
            for o in engine.working_orders()
            if o.status is not OrderStatus.INITIALIZED
        }
        seen, last_fill_ts = await self.ledger.run(
            lambda led: (frozenset(recorded_fills(led)), led.last_fill_ts())
        )
        # From the newest fill held (or the oldest working order, or now: a fill before we ever
        # traded is not ours to explain), less a margin for fills stamped out of order.
        starts = [t for t in (last_fill_ts, *(o.ts for o in working.values())) if t > 0]
        since = min(starts, default=int(getattr(engine, "last_ts", 0)))
        ask = self.venue_snapshot
        assert ask is not None
        snapshot = await ask(
            {c: o.symbol for c, o in working.items()}, since - VENUE_FILLS_LOOKBACK_MS
        )
        if snapshot is None:
            return None
        plan = rc.plan_repairs(
            rc.BooksView(working, seen),
            snapshot,
            now_ms=snapshot.taken_ms,
            settle_ms=VENUE_SETTLE_MS,
        )
        ts = int(getattr(engine, "last_ts", 0))
        await self._apply_repairs(why, plan.repairs)
        books: dict[str, float] = {}
        for position in engine.accounting.positions.values():
            books[position.symbol] = books.get(position.symbol, 0.0) + position.quantity
        mismatches = [
            *plan.mismatches,
            *(
                Mismatch(MismatchCode.POSITION, sym, {"books": round(b, 9), "venue": v})
                for sym, b, v in _position_differences(books, snapshot.positions)
            ),
            *rc.account_mismatches(
                float(engine.equity),
                snapshot.account,
                snapshot.position_details,
                self.account_limits,
            ),
        ]
        report = ReconcileReport(
            tuple(Repair(r.client_order_id, r.kind.value, r.reason) for r in plan.repairs),
            tuple(mismatches),
            {"venue_open_orders": len(snapshot.open_orders), "venue_fills": len(snapshot.fills)},
        )
        self.last_reconcile = {
            "why": why,
            "clean": report.clean,
            "ts": ts,
            "repairs": len(report.repairs),
            "mismatches": len(mismatches),
            "codes": sorted({m.code.value for m in mismatches}),
        }
        keys = frozenset((m.code.value, m.subject) for m in mismatches)
        seen_before, self._differences = self._differences, keys
        if report.clean:
            self.log.info("reconcile_clean", why=why, venue=True, repairs=len(report.repairs))
            return report
        if not keys & seen_before:  # a first sighting may be a report still on its way to us
            self.log.warning(
                "reconcile_differs",
                why=why,
                differences=[m.as_dict() for m in mismatches],
                note="checked again at the next reconciliation",
            )
            return report
        return await self._mismatched(why, engine, ts, report)

    async def _apply_repairs(self, why: str, repairs: tuple[Any, ...]) -> None:
        """The venue's reports the engine missed, through the engine, each committed with its events."""
        on_report = getattr(self.pipeline, "on_venue_report", None) or self.engine.on_venue_report
        for report in repairs:
            events = list(on_report(report))
            self.log.warning(
                "reconcile_repaired",
                why=why,
                client_order_id=report.client_order_id,
                report=report.kind.value,
                trade_id=report.trade_id,
                reason=report.reason,
            )
            if events:
                await self.commit(events, ts_event=max(0, int(report.ts)))
                self._announce(events)

    async def _mismatched(
        self, why: str, engine: Any, ts: int, report: ReconcileReport
    ) -> ReconcileReport:
        found = report.as_dict()
        self.log.error("reconcile_mismatch", why=why, **found)
        self.bus.publish("reconcile_mismatch", {"why": why, **found})
        await self._reduce(engine, ts, report)
        return report

    async def _reduce(self, engine: Any, ts: int, report: ReconcileReport) -> None:
        """Trip the reconciliation breaker (REDUCING: only risk-reducing orders), once, persisted.

        Through the portfolio when there is one, so entries the trip withdraws
        also end their management in the pipelines.
        """
        from fractald.core.risk.breakers import Breaker, TradingState

        codes = sorted({m.code.value for m in report.mismatches})
        trip = getattr(self.pipeline, "trip", None) or engine.trip
        events = trip(
            Breaker.RECONCILIATION,
            TradingState.REDUCING,
            "reconciliation mismatch: " + ", ".join(codes),
            {"mismatches": [m.as_dict() for m in report.mismatches]},
            ts,
        )
        if not events:
            return  # tripped already
        await self.commit(events, ts_event=ts)
        self._announce(events)

    def announce(self, events: list[Any]) -> None:
        """Committed events from outside a bar (venue reports) to the bus and the log."""
        self._announce(events)

    def _announce(self, events: list[Any]) -> None:
        """Committed events go to the bus (tail, alerts, metrics); the notable ones to the log too."""
        for event in events:
            kind, payload = event_kind(event), event_payload(event)
            self.bus.publish(kind, payload)
            level = LOGGED_KINDS.get(kind)
            if level is not None:
                getattr(self.log, level)(kind, **_log_fields(payload))

    # -- what operators see ---------------------------------------------------------------
    def summary_line(self) -> str:
        if self.pipeline is not None and hasattr(self.pipeline, "summary_line"):
            return str(self.pipeline.summary_line())
        return f"{self.bars_processed} bars"

    def status(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "bars_processed": self.bars_processed,
            "cursor": self.cursor,
            "last_bar": self.last_bar,
            "reconcile": self.last_reconcile,
        }
        if self.pipeline is not None and hasattr(self.pipeline, "status"):
            base.update(self.pipeline.status())
        return base
