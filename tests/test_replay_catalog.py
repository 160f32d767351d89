"""`fractald chart` and the daemon's replay read the Parquet catalog `fractald download` fills.

The catalog here is written with the catalog's own writer from the bundled
real BTC candles (as BTCUSDT on binance-futures), so what is read back can
be compared with what went in.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from daemon_harness import REPO, DaemonProcess
from fakevenue.harness import Collected, RecordingLog

from fractald.config import CATALOG_VENUES, Config, config_from_dict
from fractald.core.models import Bar
from fractald.errors import ConfigError
from fractald.research.catalog import VENUES, Catalog, month_start
from fractald.venues.feed import FeedSettings, run_feed
from fractald.venues.replay import bundled_candles

SYMBOL = "BTCUSDT"
JAN_10, JAN_12 = month_start(2022, 1) + 9 * 86_400_000, month_start(2022, 1) + 11 * 86_400_000


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The bundled month (2021-12-31 23:01 .. 2022-02-01) as a catalog, one file a month."""
    cat = Catalog(tmp_path_factory.mktemp("catalog"))
    bars = [Bar(SYMBOL, b.timeframe, b.ts_open, b.open, b.high, b.low, b.close, b.volume) for b in bundled_candles()]
    for year, month in ((2021, 12), (2022, 1), (2022, 2)):
        lo = month_start(year, month)
        hi = month_start(year + month // 12, month % 12 + 1)
        chunk = [b for b in bars if lo <= b.ts_open < hi]
        cat.write_candles("binance-futures", SYMBOL, year, month, chunk, {"complete": True, "rows": len(chunk)})
    return cat


def _fractald(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "fractald.cli", *args], check=False, capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_config_and_catalog_agree_on_the_venues() -> None:
    assert CATALOG_VENUES == VENUES


def test_catalog_columns_are_the_bars_stored(catalog: Catalog) -> None:
    columns = catalog.load_columns("binance-futures", SYMBOL, JAN_10, JAN_12)
    assert len(columns) == 2 * 1440 and columns.ts_open[0] == JAN_10 and columns.ts_open[-1] == JAN_12 - 60_000
    expected = [b for b in bundled_candles(SYMBOL) if JAN_10 <= b.ts_open < JAN_12]
    assert list(columns) == expected == catalog.load("binance-futures", SYMBOL, JAN_10, JAN_12)


@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_chart_reads_the_catalog(catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    done = _fractald(["chart", "--catalog", str(catalog.root), "--symbol", SYMBOL, "--from", "2022-01-10",
                      "--to", "2022-01-12", "--timeframes", "1h,15m", "--plot", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "2880 candles" in done.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "problem"), [
    (["--symbol", SYMBOL], "--catalog needs --from"),
    (["--symbol", "ETHUSDT", "--from", "2022-01-10"], "no binance-futures ETHUSDT candles.*BTCUSDT"),
    (["--symbol", SYMBOL, "--from", "2022-01-10", "--venue", "kraken"], "unknown venue 'kraken'"),
])
def test_chart_names_a_bad_catalog_request(catalog: Catalog, tmp_path: Path, args: list[str], problem: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from fractald.reporting.chart_cli import add_chart_arguments, run_chart

    parser = argparse.ArgumentParser()
    add_chart_arguments(parser)
    ns = parser.parse_args(["--catalog", str(catalog.root), "--plot", str(tmp_path / "x.png"), *args])
    assert run_chart(ns) == 2
    err = capsys.readouterr().err
    assert re.search(problem, err), err
    assert not (tmp_path / "x.png").exists()


async def _replay(settings: FeedSettings) -> tuple[Collected, RecordingLog]:
    got, log = Collected(), RecordingLog()
    send, receive = trio.open_memory_channel[object](64)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(got.consume, receive)
        async with send:
            await run_feed(settings, send, got.beat, log)
    return got, log


async def test_feed_replays_the_catalogs_range_and_rolls_it_up(catalog: Catalog) -> None:
    settings = FeedSettings(symbols=(SYMBOL,), timeframes=("1m", "15m", "1h"), replay_catalog=str(catalog.root),
                            replay_from_ms=JAN_10, replay_to_ms=JAN_12)
    got, log = await _replay(settings)
    assert got.bars_of("1m") == [b for b in bundled_candles(SYMBOL) if JAN_10 <= b.ts_open < JAN_12]
    assert len(got.bars_of("1h")) == 48 and all(b.complete for b in got.bars_of("1h"))
    [started] = log.events("replay_started")
    assert started["candles"] == 2880 and "catalog" in started["path"]
    # no end: up to the last candle stored
    open_end = FeedSettings(symbols=(SYMBOL,), timeframes=("1m",), replay_catalog=str(catalog.root),
                            replay_from_ms=month_start(2022, 1) + 30 * 86_400_000)
    got, _ = await _replay(open_end)
    assert got.bars_of("1m")[-1] == bundled_candles(SYMBOL)[-1]


def test_feed_settings_refuse_a_catalog_replay_without_symbol_or_start() -> None:
    with pytest.raises(ValueError, match="a catalog replay needs a symbol and replay_from_ms"):
        FeedSettings(replay_catalog="/x", replay_from_ms=1)
    with pytest.raises(ValueError, match="a catalog replay needs a symbol and replay_from_ms"):
        FeedSettings(replay_catalog="/x", symbols=(SYMBOL,))


def _feed_config(**feed: object) -> Config:
    return config_from_dict({"feed": {"symbols": [SYMBOL], **feed}})


def test_check_config_names_every_catalog_problem(catalog: Catalog, tmp_path: Path) -> None:
    good = _feed_config(replay_catalog=str(catalog.root), replay_from="2022-01-10", replay_to="2022-01-12")
    assert good.feed.replay_catalog == str(catalog.root)
    cases = [
        ({"replay_catalog": str(catalog.root)}, "config.feed.replay_from: a catalog replay needs its first day"),
        ({"replay_catalog": str(catalog.root), "replay_from": "soon"}, "config.feed.replay_from: 'soon' is neither"),
        ({"replay_catalog": str(tmp_path / "nowhere"), "replay_from": "2022-01-10"},
         "config.feed.replay_catalog: .*nowhere' is not a directory"),
        ({"replay_catalog": str(catalog.root), "replay_from": "2022-01-10", "replay_path": __file__},
         "give either replay_path or replay_catalog, not both"),
        ({"replay_from": "2022-01-10"}, "config.feed.replay_from: '2022-01-10' is only used with replay_catalog"),
        ({"replay_catalog": str(catalog.root), "replay_from": "2022-01-10", "replay_catalog_venue": "kraken"},
         "config.feed.replay_catalog_venue"),
    ]
    for feed, problem in cases:
        with pytest.raises(ConfigError, match=problem):
            _feed_config(**feed)


def test_market_data_passes_the_catalog_range_to_the_feed(catalog: Catalog) -> None:
    from fractald.actors.market_data import MarketDataActor

    f = _feed_config(replay_catalog=str(catalog.root), replay_from="2022-01-10", replay_to="2022-01-12").feed
    assert MarketDataActor._replay_catalog(f) == {
        "replay_catalog": str(catalog.root), "replay_catalog_venue": "binance-futures",
        "replay_from_ms": JAN_10, "replay_to_ms": JAN_12}
    assert MarketDataActor._replay_catalog(_feed_config().feed) == {}


@pytest.mark.slow
def test_daemon_replay_of_the_catalog_trades_as_the_backtest_of_it(catalog: Catalog, tmp_path: Path) -> None:
    cfg = tmp_path / "fractald.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\nstall_limit_s = 5.0\n'
                   f'[feed]\nvenue = "replay"\nsymbols = ["{SYMBOL}"]\nreplay_catalog = "{catalog.root}"\n'
                   f'replay_from = "2022-01-03"\nreplay_to = "2022-01-11"\nreplay_speed = 0\n'
                   f'[log]\nformat = "json"\nlevel = "info"\n')
    from test_parity import daemon_trades, wait_for_log

    daemon = DaemonProcess(cfg)
    try:
        wait_for_log(daemon, "trading_caught_up", timeout=240)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    replayed = daemon_trades(tmp_path / "state" / "fractald.db")
    done = _fractald(["backtest", "--config", str(cfg), "--catalog", str(catalog.root), "--symbol", SYMBOL,
                      "--from", "2022-01-03", "--to", "2022-01-11", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    backtested = json.loads(done.stdout)["trade_list"]
    assert len(backtested) >= 3, "the week should trade"
    assert [t["trade_id"] for t in replayed] == [t["id"] for t in backtested]
    assert [t["pnl"] for t in replayed] == pytest.approx([t["pnl"] for t in backtested], abs=1e-6)
