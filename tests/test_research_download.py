"""`fractald download` against a local fake of Binance's bulk archive and REST API (127.0.0.1 only)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import trio

from fractald.research.catalog import Catalog, month_start
from fractald.research.download import download

JAN, FEB, MAR, APR = month_start(2024, 1), month_start(2024, 2), month_start(2024, 3), month_start(2024, 4)
NOW = MAR + 19 * 86_400_000 + 7 * 3_600_000  # 2024-03-20 07:00 UTC
HOLE = (MAR + 5 * 86_400_000, MAR + 5 * 86_400_000 + 10 * 60_000)  # ten minutes REST never had
MIN = 60_000


def kline(t: int) -> list[object]:
    p = 40_000 + 1_000 * math.sin(t / 3.6e6)
    return [t, f"{p:.1f}", f"{p + 5:.1f}", f"{p - 5:.1f}", f"{p + 1:.1f}", "12.5", t + MIN - 1, "0", 10, "0", "0", "0"]


def archive_zip(year: int, month: int, start: int, end: int) -> bytes:
    rows = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
            "taker_buy_quote_volume,ignore"]
    rows += [",".join(str(x) for x in kline(t)) for t in range(start, end, MIN)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"BTCUSDT-1m-{year}-{month:02d}.csv", "\n".join(rows) + "\n")
    return buf.getvalue()


class FakeBinance:
    """Archive: January good, February with a wrong CHECKSUM, no March. REST: klines (first call 429,
    Retry-After 1) and funding, with a ten-minute hole in March."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.zips = {"2024-01": archive_zip(2024, 1, JAN, FEB), "2024-02": archive_zip(2024, 2, FEB, MAR)}
        self.throttled = False

    def handle(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(path)
        for month, blob in self.zips.items():
            name = f"/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-{month}.zip"
            if path == name:
                return 200, {"Content-Type": "application/zip"}, blob
            if path == name + ".CHECKSUM":
                digest = hashlib.sha256(blob if month == "2024-01" else b"tampered").hexdigest()
                return 200, {}, f"{digest}  BTCUSDT-1m-{month}.zip\n".encode()
        if path == "/fapi/v1/klines":
            if not self.throttled:
                self.throttled = True
                return 429, {"Retry-After": "1"}, b'{"code":-1003,"msg":"Too many requests."}'
            lo, hi, limit = int(query["startTime"][0]), int(query["endTime"][0]), int(query["limit"][0])
            rows = [kline(t) for t in range(lo, hi + 1, MIN) if not HOLE[0] <= t < HOLE[1]][:limit]
            return 200, {}, json.dumps(rows).encode()
        if path == "/fapi/v1/fundingRate":
            lo, hi = int(query["startTime"][0]), int(query["endTime"][0])
            first = (lo + 8 * 3_600_000 - 1) // (8 * 3_600_000) * 8 * 3_600_000
            rows = [{"symbol": "BTCUSDT", "fundingTime": t, "fundingRate": "0.00010000", "markPrice": "40000"}
                    for t in range(first, hi + 1, 8 * 3_600_000)][:1000]
            return 200, {}, json.dumps(rows).encode()
        return 404, {}, b"<Error><Code>NoSuchKey</Code></Error>"


@pytest.fixture
def fake() -> Iterator[tuple[FakeBinance, str]]:
    venue = FakeBinance()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            status, headers, body = venue.handle(url.path, parse_qs(url.query))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield venue, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _run(catalog: Catalog, url: str) -> list:  # type: ignore[type-arg]
    return trio.run(lambda: download(catalog, "binance-futures", "BTCUSDT", JAN, APR, NOW, rest_url=url,
                                     archive_url=url))


@pytest.mark.slow
def test_archive_checksums_rest_fallback_gaps_and_resume(fake: tuple[FakeBinance, str], tmp_path: Path) -> None:
    venue, url = fake
    catalog = Catalog(tmp_path / "catalog")
    jan, feb, mar = _run(catalog, url)
    assert (jan.status, jan.source, jan.rows, jan.gaps) == ("downloaded", "archive", 31 * 1440, 0)
    assert feb.status == "failed" and "does not match the published" in feb.detail
    assert not catalog.candle_path("binance-futures", "BTCUSDT", 2024, 2).exists()  # nothing half-written
    assert (mar.status, mar.source, mar.gaps, mar.missing_minutes) == ("downloaded", "rest", 1, 10)
    assert mar.rows == (NOW - MAR) // MIN - 10
    meta = catalog.meta("binance-futures", "BTCUSDT", 2024, 1)
    assert meta is not None and meta["complete"] and meta["sha256"] == hashlib.sha256(venue.zips["2024-01"]).hexdigest()
    assert catalog.meta("binance-futures", "BTCUSDT", 2024, 3)["complete"] is False  # type: ignore[index]
    assert "/fapi/v1/klines" in venue.requests and venue.throttled  # the 429 was waited out
    import pandas as pd

    funding = pd.read_parquet(catalog.funding_path("binance-futures", "BTCUSDT", 2024, 1))
    assert len(funding) == 31 * 3 and (funding["rate"] == 0.0001).all()

    venue.requests.clear()
    jan2, feb2, mar2 = _run(catalog, url)
    assert jan2.status == "up to date"
    assert not any("2024-01" in p for p in venue.requests)  # a complete month is not fetched again
    assert feb2.status == "failed" and mar2.status == "downloaded"

    bars = catalog.load("binance-futures", "BTCUSDT", JAN + 10 * MIN, FEB)
    assert len(bars) == 31 * 1440 - 10 and bars[0].ts_open == JAN + 10 * MIN
    assert bars[0].close == pytest.approx(float(kline(JAN + 10 * MIN)[4]))


@pytest.mark.slow
def test_backtest_reads_the_catalog(fake: tuple[FakeBinance, str], tmp_path: Path) -> None:
    from fractald.backtest import add_backtest_arguments
    from fractald.backtest_cli import run_backtest

    _, url = fake
    catalog = Catalog(tmp_path / "catalog")
    _run(catalog, url)
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    args = parser.parse_args(["--catalog", str(catalog.root), "--symbol", "BTCUSDT", "--from", "2024-01-03",
                              "--to", "2024-01-10", "--strategy", "fvg_fill"])
    report = run_backtest(args)
    assert report["summary"]["bars"] == 7 * 1440
    args = parser.parse_args(["--catalog", str(catalog.root), "--symbol", "ETHUSDT", "--from", "2024-01-03"])
    with pytest.raises(ValueError, match="no binance-futures ETHUSDT candles.*BTCUSDT.*fractald download"):
        run_backtest(args)


def test_download_refuses_bad_requests_by_name(tmp_path: Path) -> None:
    from test_research_plugins import _fractald

    bad = _fractald(["download", "--venue", "binance-futures", "--symbol", "btcusdt", "--from", "2024-01-01"],
                    None, tmp_path)
    assert bad.returncode == 2 and "like BTCUSDT" in bad.stderr
    bad = _fractald(["download", "--venue", "binance-futures", "--symbol", "BTCUSDT", "--from", "yesterday"],
                    None, tmp_path)
    assert bad.returncode == 2 and "--from 'yesterday'" in bad.stderr
    assert not (tmp_path / "catalog").exists()
