"""Multi-symbol backtests through one portfolio: shared risk, a per-symbol breakdown, and one symbol
giving exactly the single-symbol backtest."""

from __future__ import annotations

import argparse
from pathlib import Path

import attrs
import pytest

from fractald.backtest import StrategySettings, add_backtest_arguments, new_runner
from fractald.backtest_cli import run_backtest
from fractald.backtest_portfolio import PortfolioRunner
from fractald.research.catalog import Catalog
from fractald.venues.replay import bundled_candles

N = 12_000  # about 8 days of 1m candles


def _bars(symbol: str, scale: float, shift_days: int = 0) -> list:  # type: ignore[type-arg]
    bars = bundled_candles()[shift_days * 1440:shift_days * 1440 + N]
    base_ts = bundled_candles()[0].ts_open
    return [attrs.evolve(b, symbol=symbol, ts_open=base_ts + i * 60_000, open=b.open * scale, high=b.high * scale,
                         low=b.low * scale, close=b.close * scale) for i, b in enumerate(bars)]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    cat = Catalog(root)
    for symbol, scale, shift in (("BTCUSDT", 1.0, 0), ("ETHUSDT", 0.08, 0), ("SOLUSDT", 0.004, 10)):
        bars = _bars(symbol, scale, shift)
        months = {}
        for b in bars:
            months.setdefault((2022, 1) if b.ts_open < 1_643_673_600_000 else (2022, 2), []).append(b)
        for (y, m), chunk in months.items():
            cat.write_candles("binance-futures", symbol, y, m, chunk, {"complete": True, "rows": len(chunk)})
    return root


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.slow
def test_three_symbols_share_one_portfolio_and_report_per_symbol(catalog: Path) -> None:
    report = run_backtest(_args("--catalog", str(catalog), "--symbols", "BTCUSDT,ETHUSDT,SOLUSDT",
                                "--from", "2021-12-01"))
    s = report["summary"]
    assert set(s["by_symbol"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert sum(g["trades"] for g in s["by_symbol"].values()) == s["trades"] > 0
    assert s["bars_by_symbol"] == {"BTCUSDT": N, "ETHUSDT": N, "SOLUSDT": N}
    # BTC and ETH move together: the correlation cluster / exposure caps of the shared account bite
    shared = {"cluster_exposure", "max_open_positions", "portfolio_heat", "gross_exposure"}
    assert shared & set(s["denied"]), s["denied"]
    assert {t["symbol"] for t in report["trade_list"]} <= {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


@pytest.mark.slow
def test_one_symbol_through_the_portfolio_is_the_plain_backtest() -> None:
    bars = _bars("BTCUSDT", 1.0)
    st = StrategySettings.of(["fvg_fill", "liquidity_sweep"])
    plain = new_runner("BTCUSDT", "1m", st, 10_000.0)
    plain.feed(bars)
    portfolio = PortfolioRunner(["BTCUSDT"], "1m", st, 10_000.0)
    portfolio.feed({"BTCUSDT": bars})
    assert portfolio.trades == plain.trades and len(plain.trades) > 0
    assert (portfolio.signals, portfolio.denials) == (plain.signals, plain.denials)


def test_symbols_needs_a_catalog_and_distinct_symbols(catalog: Path) -> None:
    with pytest.raises(ValueError, match="--catalog DIR"):
        run_backtest(_args("--symbols", "BTCUSDT,ETHUSDT", "--from", "2022-01-01"))
    with pytest.raises(ValueError, match="distinct symbols"):
        run_backtest(_args("--catalog", str(catalog), "--symbols", "BTCUSDT,BTCUSDT", "--from", "2021-12-01"))
    with pytest.raises(ValueError, match="no binance-futures DOGEUSDT"):
        run_backtest(_args("--catalog", str(catalog), "--symbols", "BTCUSDT,DOGEUSDT", "--from", "2021-12-01"))
