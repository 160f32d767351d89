"""`fractald lookahead-check`: a repainting strategy is caught; causal ones pass."""

from __future__ import annotations

import json
from pathlib import Path

from fractald.backtest import StrategySettings, new_runner
from fractald.research.lookahead import check
from research_support import install_toy, jump_series, toy_on_path, write_csv
from test_research_plugins import GOOD, _fractald


def _runner_factory(name: str, bars: list, timeframe: str = "1m", trend: tuple[str, ...] = ("1m",)):  # type: ignore[no-untyped-def]
    st = StrategySettings.of([name], timeframe, trend)
    return lambda: new_runner(bars[0].symbol, "1m", st, 10_000.0)


def test_a_repainting_plugin_is_reported(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", GOOD)
    data = write_csv(jump_series(800), tmp_path / "toy.csv")
    run = _fractald(["lookahead-check", "--strategy", "toy_repaint", "--data", str(data), "--symbol", "TOY",
                     "--timeframe", "1m", "--trend-timeframes", "1m", "--cuts", "12", "--json"], site, tmp_path)
    assert run.returncode == 1, run.stderr
    out = json.loads(run.stdout)
    assert out["lookahead"] is True and out["signals"] > 0
    assert {f["kind"] for f in out["findings"]} == {"only_with_later_bars"}


def test_the_causal_toy_passes(tmp_path: Path) -> None:
    site = install_toy(tmp_path / "site", GOOD)
    bars = jump_series(800)
    with toy_on_path(site):
        from fractald.strategy_plugins import load_plugins

        load_plugins(force=True)
        findings, signals = check(bars, _runner_factory("toy_cycle", bars), cuts=12)
    assert signals > 0
    assert findings == []


def test_a_builtin_strategy_on_real_candles_passes() -> None:
    from fractald.venues.replay import load_candles

    bars = load_candles(Path(__file__).parent / "data" / "btc-perp-20211231_1m_head3000.csv", "BTC-PERP")
    findings, signals = check(bars, _runner_factory("liquidity_sweep", bars, "15m", ("15m", "1h")), cuts=4)
    assert findings == []
