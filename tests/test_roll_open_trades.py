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

from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.continuous import ContractRolled, shifted
from fractald.core.models import Bar
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
