"""Open trades across a futures roll (issue 19): closed on the old month, reason contract_roll.

The bundled candles stand in for two contract months, as in test_ibkr_roll.py:
up to the roll the old month, from there the new one trading far away (a step
that crosses every open trade's stop or target). A paper session with a trade
open when the roll is told must close it on the old month, at the old month's
last price, before the roll applies; the new month's first bars then find no
trade to stop out or take profit. With `[feed] roll_open_trades = "keep"` the
same step ends the trade at a new-month price (what the close prevents).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
from paper_engine import PaperEngine
from test_engine import T0, params, signal
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.continuous import ContractRolled, shifted
from fractald.core.execution import events as ev
from fractald.core.execution.engine import FillSource
from fractald.core.execution.orders import OrderEvent, OrderType
from fractald.core.execution.paper import PaperParams
from fractald.core.models import Bar, Quote, Side
from fractald.session import TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles

STEP = 0.2  # the new month trades 20 % over or under the old one: past any stop and target


def _config(mode: str = "close") -> Config:
    config = Config()
    return attrs.evolve(config, feed=attrs.evolve(config.feed, roll_open_trades=mode))


async def _session(db: Path, config: Config) -> TradingSession:
    ledger = await AsyncLedger.open(db)
    return await TradingSession.recover(config, ledger, structlog.get_logger("test"), EventBus())


async def _until_a_trade_is_open(session: TradingSession, bars: list[Bar]) -> int:
    """Feed `bars` until a trade's entry has filled; the index of the next 1m candle."""
    for i, bar in enumerate(bars):
        await session.on_bar(bar)
        if bar.timeframe == "1m" and session._open_trades(bar.symbol):
            return i + 1
    raise AssertionError("no trade opened on the bundled candles")


async def _logged(session: TradingSession, trade_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The ledger's events of one trade (kind, payload), in order."""
    def read(led: Any) -> list[tuple[str, dict[str, Any]]]:
        return [
            (e.kind, e.payload)
            for e in led.events_after(0)
            if e.payload.get("signal_id") == trade_id
            or (e.payload.get("trade") or {}).get("trade_id") == trade_id
        ]

    return await session.ledger.run(read)


async def _roll_with_a_trade_open(
    tmp_path: Path, mode: str
) -> tuple[TradingSession, str, float, float]:
    """A session with a trade open, told of a roll, then fed the new month's first day.

    Returns the session, the trade, the old month's last close and the step."""
    config = _config(mode)
    candles = bundled_candles()[:6000]
    session = await _session(tmp_path / f"{mode}.db", config)
    ones = [b for b in feed(candles, config)]
    at = await _until_a_trade_is_open(session, ones)
    [trade_id] = session._open_trades("BTC-PERP")
    bracket = session.engine.brackets[trade_id]
    # A step in the trade's favour crosses its target, against it its stop: against it.
    step = -STEP if bracket.side.sign > 0 else STEP
    rest = [b for b in ones[at:] if b.timeframe == "1m"][:1440]
    last_close = [b for b in ones[:at] if b.timeframe == "1m"][-1].close
    offset = last_close * step
    await session.on_contract_roll(
        ContractRolled("BTC-PERP", rest[0].ts_open, "MESZ1", "MESH2", offset)
    )
    session.held_after_roll = session._holds("BTC-PERP")  # type: ignore[attr-defined]
    session.roll_ts = rest[0].ts_open  # type: ignore[attr-defined]
    for bar in feed([shifted(b, offset) for b in rest], config):
        await session.on_bar(bar)
    return session, trade_id, last_close, offset


async def test_a_roll_closes_the_open_trade_on_the_old_month(tmp_path: Path) -> None:
    session, trade_id, last_close, offset = await _roll_with_a_trade_open(tmp_path, "close")
    logged = await _logged(session, trade_id)
    assert [p["reason"] for k, p in logged if k == "bracket_exit"] == ["contract_roll"]
    [closed] = [p["trade"] for k, p in logged if k == "trade_closed"]
    assert closed["exit_reason"] == "contract_roll"
    # At the old month's last price (the paper broker's slippage aside), never the new one's.
    assert closed["exit_price"] == pytest.approx(last_close, rel=1e-3)
    assert abs(closed["exit_price"] - (last_close + offset)) > abs(offset) / 2
    assert closed["ts_exit"] <= session.roll_ts  # before any bar of the new month
    assert session.held_after_roll is False  # nothing of the symbol left when the roll applied
    await session.ledger.aclose()


async def test_keeping_trades_over_a_roll_lets_the_step_end_them(tmp_path: Path) -> None:
    """The mutant the close exists for: kept, the trade meets the new month's prices."""
    session, trade_id, last_close, offset = await _roll_with_a_trade_open(tmp_path, "keep")
    logged = await _logged(session, trade_id)
    assert "contract_roll" not in [p["reason"] for k, p in logged if k == "bracket_exit"]
    [closed] = [p["trade"] for k, p in logged if k == "trade_closed"]
    assert closed["exit_reason"] == "stop"
    assert abs(closed["exit_price"] - last_close) > abs(offset) / 2  # stopped out across the step
    await session.ledger.aclose()


def test_roll_open_trades_is_validated() -> None:
    from fractald.config import config_from_dict
    from fractald.errors import ConfigError

    with pytest.raises(ConfigError, match="roll_open_trades"):
        config_from_dict({"feed": {"roll_open_trades": "hold"}})
    assert config_from_dict({"feed": {"roll_open_trades": "keep"}}).feed.roll_open_trades == "keep"


def _ticks_engine_with_a_long() -> Any:
    """A paper engine filling on ticks with 50 ms latency, long 50 BTC from 100 (stop 98)."""
    p = params(fills_from=FillSource.TICKS,
               paper=PaperParams(latency_ms=50, slippage_bps=0, maker_fee_bps=0, taker_fee_bps=0))
    eng = PaperEngine(p)
    eng.on_quote(Quote("BTC", 99.5, 1.0, 100.0, 1.0, T0))
    eng.on_signal(signal(0), T0)
    eng.on_quote(Quote("BTC", 99.5, 1.0, 100.0, 1.0, T0 + 60))  # the entry fills
    assert eng.accounting.net_quantity("BTC") > 0
    return eng


def test_with_latency_the_roll_close_fills_before_the_new_months_first_price() -> None:
    """Ticks mode: a market exit fills at the venue's next price after its latency, which after
    a roll is the new month's. The roll's close lets the latency pass first, with no new price."""
    new_month = Quote("BTC", 79.5, 1.0, 80.0, 1.0, T0 + 200)  # 20 under: far through the stop

    eng = _ticks_engine_with_a_long()
    out = eng.close_for_roll("BTC", T0 + 100)
    out += eng.on_quote(new_month)
    [closed] = [e.trade for e in out if isinstance(e, ev.TradeClosed)]
    assert (closed.exit_reason, closed.exit_price) == ("contract_roll", 99.5)  # the old bid
    assert [e.reason for e in out if isinstance(e, ev.BracketExit)] == ["contract_roll"]
    assert eng.accounting.net_quantity("BTC") == 0.0 and eng.brackets == {}

    # A plain flatten at the same moment is filled at the new month's bid: the step.
    eng = _ticks_engine_with_a_long()
    out = eng.flatten("BTC", T0 + 100)
    out += eng.on_quote(new_month)
    [closed] = [e.trade for e in out if isinstance(e, ev.TradeClosed)]
    assert closed.exit_price == 79.5


def test_a_roll_with_nothing_open_makes_no_event() -> None:
    eng = PaperEngine(params())
    assert eng.close_for_roll("BTC", T0) == []


@contextlib.asynccontextmanager
async def _ib_with_two_months(old_expires_in_days: int, client_id: int) -> AsyncIterator[Any]:
    """The fake TWS listing an old month (at 5000) and the new one (at 5150, 90 days later),
    and an IBKR venue connected to it (roll 5 days before expiry): (fake, venue, old, new)."""
    pytest.importorskip("ib_async")
    from fakevenue.fake_tws import FakeContract, FakeTWS

    from fractald.venues.ibkr import IBKRVenue, IBSettings

    today = datetime.now(UTC)
    old, new = (
        FakeContract(con_id=con_id, expiry=(today + timedelta(days=days)).strftime("%Y%m%d"),
                     local_symbol=local)
        for con_id, days, local in ((1001, old_expires_in_days, "MESZ6"),
                                    (1002, old_expires_in_days + 90, "MESH7"))
    )
    fake = FakeTWS(price=5000.0, contract=old, listed=[new]).start()
    fake.set_price(5150.0, con_id=new.con_id)
    venue = IBKRVenue(IBSettings(port=fake.port, client_id=client_id, roll_days=5))
    try:
        yield fake, venue, old, new
    finally:
        await venue.close()
        fake.stop()


def _mes(cid: str, side: Side, kind: OrderType, role: str, qty: float = 2.0,
         **kw: Any) -> ev.OrderIntent:
    return ev.OrderIntent(0, cid, "MES", side, kind, qty, role=role, **kw)


async def test_at_ib_the_roll_close_trades_the_old_month() -> None:
    """The fake TWS lists both months; the venue trades the front month it resolved (the old
    one): the roll's close (its stop canceled, a reduce-only market exit) flattens that month's
    position at its price, and the new month is never traded."""
    async with _ib_with_two_months(20, client_id=41) as (fake, venue, old, new):
        await venue.connect()
        await venue.submit_bracket(
            _mes("e1", Side.BUY, OrderType.MARKET, "entry"),
            _mes("s1", Side.SELL, OrderType.STOP_MARKET, "stop", trigger_price=4990.0),
        )
        assert fake.positions[old.con_id][0] == 2.0
        # What the engine's close_for_roll sends: the stop canceled, the exit at market.
        assert (await venue.cancel("s1", "MES")).kind is OrderEvent.CANCEL
        await venue.submit(_mes("x1", Side.SELL, OrderType.MARKET, "exit1", reduce_only=True))
        [exit_order] = [o for o in fake.orders.values() if o.order_ref == "x1"]
        assert exit_order.contract.con_id == old.con_id and exit_order.avg_price == 5000.0
        assert fake.positions[old.con_id][0] == 0.0
        assert fake.positions.get(new.con_id, (0.0, 0.0))[0] == 0.0  # the new month untouched
        assert await venue.positions() == {}


async def test_at_ib_an_exit_goes_to_the_month_held_once_the_venue_trades_the_new_one() -> None:
    """The venue (re)connected after the roll day: it trades the new month, while the position
    is still on the old one (a roll while the daemon was down). IB has no reduce-only for
    futures: the exit must go to the old month, or it would open a position on the new one."""
    async with _ib_with_two_months(3, client_id=42) as (fake, venue, old, new):
        fake.positions[old.con_id] = (2.0, 4990.0)  # long 2 of the old month, held over the roll
        await venue.connect()
        assert venue.contract.conId == new.con_id  # the front month now
        assert await venue.positions() == {"MES": 2.0}  # the old month's, still ours
        # Its protective stop goes to the old month, and moving it keeps it there.
        await venue.submit(_mes("s2", Side.SELL, OrderType.STOP_MARKET, "stop",
                                trigger_price=4980.0, reduce_only=True))
        await venue.modify("s2", "MES", trigger_price=4985.0)
        [stop] = [o for o in fake.orders.values() if o.order_ref == "s2"]
        assert (stop.contract.con_id, stop.aux_price, stop.working) == (old.con_id, 4985.0, True)
        assert (await venue.cancel("s2", "MES")).kind is OrderEvent.CANCEL
        await venue.submit(_mes("x2", Side.SELL, OrderType.MARKET, "exit1", reduce_only=True))
        [exit_order] = [o for o in fake.orders.values() if o.order_ref == "x2"]
        assert exit_order.contract.con_id == old.con_id
        assert fake.positions[old.con_id][0] == 0.0
        assert fake.positions.get(new.con_id, (0.0, 0.0))[0] == 0.0  # nothing opened there
        # An entry (not reduce-only) trades the front month.
        await venue.submit(_mes("e3", Side.BUY, OrderType.MARKET, "entry", qty=1.0))
        [entry] = [o for o in fake.orders.values() if o.order_ref == "e3"]
        assert entry.contract.con_id == new.con_id
        assert await venue.positions() == {"MES": 1.0}  # the root's net over its months


async def test_at_ib_entries_follow_a_roll_day_that_passes_while_connected() -> None:
    """Connected 20 days before the old month expires, the venue trades it; 16 days later (within
    the 5 roll days) a new entry trades the next month without a reconnect, and an exit of the
    old month's position still goes there."""
    async with _ib_with_two_months(20, client_id=43) as (fake, venue, old, new):
        await venue.connect()
        await venue.submit_bracket(
            _mes("e4", Side.BUY, OrderType.MARKET, "entry", qty=1.0),
            _mes("s4", Side.SELL, OrderType.STOP_MARKET, "stop", qty=1.0, trigger_price=4990.0),
        )
        assert fake.positions[old.con_id][0] == 1.0
        later = venue._now_ms() + 16 * 86_400_000
        venue._now_ms = lambda: later  # type: ignore[method-assign]
        await venue.submit_bracket(
            _mes("e5", Side.BUY, OrderType.MARKET, "entry", qty=1.0),
            _mes("s5", Side.SELL, OrderType.STOP_MARKET, "stop", qty=1.0, trigger_price=5140.0),
        )
        [entry, stop] = [next(o for o in fake.orders.values() if o.order_ref == ref)
                         for ref in ("e5", "s5")]
        assert entry.contract.con_id == stop.contract.con_id == new.con_id
        assert fake.positions[new.con_id][0] == 1.0
        await venue.submit(_mes("e6", Side.BUY, OrderType.MARKET, "entry", qty=1.0))
        assert next(o for o in fake.orders.values() if o.order_ref == "e6").contract.con_id == new.con_id
        assert (await venue.cancel("s4", "MES")).kind is OrderEvent.CANCEL
        await venue.submit(_mes("x4", Side.SELL, OrderType.MARKET, "exit1", qty=1.0,
                                reduce_only=True))
        [exit_order] = [o for o in fake.orders.values() if o.order_ref == "x4"]
        assert exit_order.contract.con_id == new.con_id  # the month this venue trades holds one too
        assert await venue.positions() == {"MES": 2.0}
