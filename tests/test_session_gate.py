"""Session gates from the exchange calendar: holidays, early closes, entry margins, flatten before close."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fractald.backtest import StrategySettings, new_runner
from fractald.config import Config, SessionConfig, load_config
from fractald.core.models import Bar
from fractald.core.pipeline import SetupSkipped, SignalEmitted
from fractald.core.risk.session_gate import SessionGate
from fractald.errors import ConfigError
from fractald.session_calendar import session_gate
from research_support import install_toy, toy_on_path


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_xnys_regular_hours_holidays_and_early_closes() -> None:
    gate = session_gate("XNYS", skip_first_minutes=5, no_entry_last_minutes=15, flatten_before_close_minutes=5)
    # Monday 2024-12-23: 09:30-16:00 New York = 14:30-21:00 UTC
    assert gate.session_at(ms("2024-12-23T15:00")) == (ms("2024-12-23T14:30"), ms("2024-12-23T21:00"))
    assert "first 5 minutes" in gate.entry_refusal(ms("2024-12-23T14:35"))  # type: ignore[operator]
    assert gate.entry_refusal(ms("2024-12-23T14:36")) is None
    assert gate.entry_refusal(ms("2024-12-23T20:45")) is None  # 15:45 New York: the last entry
    assert "last 15 minutes" in gate.entry_refusal(ms("2024-12-23T20:46"))  # type: ignore[operator]
    assert gate.entry_refusal(ms("2024-12-23T22:00")) == "XNYS: market closed"
    # Christmas Eve closes at 13:00 New York (18:00 UTC); Christmas Day is a holiday
    assert gate.session_at(ms("2024-12-24T17:00")) == (ms("2024-12-24T14:30"), ms("2024-12-24T18:00"))
    assert gate.entry_refusal(ms("2024-12-24T18:30")) == "XNYS: market closed"
    assert gate.session_at(ms("2024-12-25T16:00")) is None
    # summer time: 09:30 New York is 13:30 UTC
    assert gate.session_at(ms("2024-07-01T13:45"))[0] == ms("2024-07-01T13:30")  # type: ignore[index]
    assert not gate.must_flatten(ms("2024-12-24T17:54"))
    assert gate.must_flatten(ms("2024-12-24T17:55"))  # 5 minutes before the early close
    assert "outside the calendar" in gate.entry_refusal(ms("1950-01-03T15:00"))  # type: ignore[operator]


def test_bad_windows_and_unknown_calendars_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sorted and not overlap"):
        SessionGate("x", (0, 50), (100, 150))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[session]\ncalendar = "NYSE_TYPO"\n')
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert any("config.session.calendar" in p and "XNYS" in p for p in err.value.problems)


def _bars(start: str, minutes: int) -> list[Bar]:
    t0 = ms(start)
    return [Bar("ES", "1m", t0 + k * 60_000, 100.0 + (k % 3) * 0.1, 100.3 + (k % 3) * 0.1, 99.9, 100.1 + (k % 3) * 0.1,
                10.0) for k in range(minutes)]


def test_pipeline_skips_entries_outside_the_session_and_flattens_before_the_close(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", {"toy_cycle": "fractald_toy.cycle:CycleLong"})
    with toy_on_path(site):
        from fractald.strategy_plugins import load_plugins

        load_plugins(force=True)
        config = Config(session=SessionConfig("XNYS", skip_first_minutes=5, no_entry_last_minutes=15,
                                              flatten_before_close_minutes=5))
        st = StrategySettings(("toy_cycle",), "1m", ("1m",), {"toy_cycle": {"period": 7, "offset": 3, "time_exit_bars": 1000, "trail_atr": None, "break_even_at_r": None, "targets_r": (20.0,)}}, config)
        runner = new_runner("ES", "1m", st, 10_000.0)
        events: list[object] = []
        for bar in _bars("2024-12-24T13:00", 360):  # from before the open to past the 13:00 early close
            events += runner.step(bar)
    opens, close = ms("2024-12-24T14:30"), ms("2024-12-24T18:00")
    sent = [e.ts for e in events if isinstance(e, SignalEmitted)]
    skipped = [e for e in events if isinstance(e, SetupSkipped) and e.code == "OUTSIDE_SESSION"]
    assert sent and all(opens + 5 * 60_000 < t <= close - 15 * 60_000 for t in sent)
    assert any(e.ts < opens for e in skipped) and any(e.ts > close for e in skipped)
    assert any(opens < e.ts <= opens + 5 * 60_000 for e in skipped)
    trades = [e.trade for e in events if getattr(e, "kind", "") == "trade_closed"]
    assert trades and all(t.ts_exit <= close for t in trades)
    flattened = [t for t in trades if "session_close" in t.exit_reason]
    assert flattened, [(t.exit_reason, t.ts_exit) for t in trades]  # what was open went before 13:00
