"""`fractald download`: historical 1m candles (and funding for perpetuals) into the local catalog.

Binance: whole past months from the public bulk archive (one zip per month,
its SHA-256 checked against the archive's own CHECKSUM file), REST klines for
the current month and wherever the archive has no file. Hyperliquid: paged
`candleSnapshot` (the venue serves only its most recent 5000 candles per
interval: older months come back with gaps, which are reported). REST calls
go through the feed's `RestClient`, so the venues' weight limits and
Retry-After are honoured the same way the daemon honours them.

Incremental and resumable: a month already complete in the catalog is not
fetched again; each month is written whole (temporary file, then rename).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import trio

from fractald.core.models import Bar
from fractald.errors import FractalError, parse_retry_after
from fractald.research.catalog import MINUTE, VENUES, Catalog, gaps, month_start, months, next_month
from fractald.venues import binance, hyperliquid
from fractald.venues.rest import RestClient, binance_klines, hyperliquid_candles

ARCHIVE_URL = "https://data.binance.vision"
ARCHIVE_PATHS = {"binance-futures": "futures/um", "binance-spot": "spot"}
MARKETS = {"binance-futures": binance.Market.FUTURES, "binance-spot": binance.Market.SPOT}
DAY = 86_400_000


class DownloadError(ValueError):
    """A bad download request, or data that failed its check; the message says which."""


@attrs.frozen(slots=True)
class MonthResult:
    month: str
    status: str  # "up to date" | "downloaded" | "failed"
    source: str = ""
    rows: int = 0
    gaps: int = 0
    missing_minutes: int = 0
    detail: str = ""


def validate_symbol(venue: str, symbol: str) -> None:
    if venue not in VENUES:
        raise DownloadError(f"--venue {venue!r}: allowed {', '.join(VENUES)}")
    if venue.startswith("binance") and not re.fullmatch(r"[A-Z0-9]{2,20}", symbol):
        raise DownloadError(
            f"--symbol {symbol!r}: Binance symbols are upper-case letters and digits, like BTCUSDT"
        )
    if venue == "hyperliquid" and not re.fullmatch(r"[A-Za-z0-9@:]{1,20}", symbol):
        raise DownloadError(
            f"--symbol {symbol!r}: Hyperliquid names a perpetual by its coin, like BTC"
        )


def parse_archive(symbol: str, data: bytes) -> list[Bar]:
    """The 1m klines CSV inside a Binance archive zip (with or without a header row)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".csv")]
        if len(names) != 1:
            raise DownloadError(f"archive holds {len(names)} CSV files, expected one")
        text = zf.read(names[0]).decode("ascii")
    bars = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0].strip().isdigit():
            continue  # the header row of newer files
        t = int(row[0])
        if t > 10**14:  # spot archives from 2025 on stamp microseconds
            t //= 1000
        bars.append(
            Bar(
                symbol,
                "1m",
                t,
                float(row[1]),
                float(row[2]),
                float(row[3]),
                float(row[4]),
                float(row[5]),
            )
        )
    return bars


class Archive:
    """The bulk archive over httpx: zips and their CHECKSUM files, with Retry-After honoured."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, attempts: int = 4) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.attempts = attempts

    async def _get(self, url: str) -> httpx.Response | None:
        for attempt in range(self.attempts):
            try:
                response = await self.client.get(url)
            except httpx.TransportError as exc:
                if attempt == self.attempts - 1:
                    raise DownloadError(f"GET {url}: {type(exc).__name__}: {exc}") from None
                await trio.sleep(2.0**attempt)
                continue
            if response.status_code == 404:
                return None
            if response.status_code in (429, 418) or response.status_code >= 500:
                wait = parse_retry_after(response.headers)
                await trio.sleep(min(60.0, wait if wait is not None else 2.0**attempt))
                continue
            if response.status_code >= 400:
                raise DownloadError(f"GET {url}: HTTP {response.status_code}")
            return response
        raise DownloadError(f"GET {url}: still refused after {self.attempts} attempts")

    async def month(
        self, venue: str, symbol: str, year: int, month: int
    ) -> tuple[list[Bar], str] | None:
        name = f"{symbol}-1m-{year:04d}-{month:02d}.zip"
        url = f"{self.base_url}/data/{ARCHIVE_PATHS[venue]}/monthly/klines/{symbol}/1m/{name}"
        response = await self._get(url)
        if response is None:
            return None
        digest = hashlib.sha256(response.content).hexdigest()
        check = await self._get(url + ".CHECKSUM")
        if check is None:
            raise DownloadError(f"{name}: the archive publishes no CHECKSUM for it")
        published = check.text.split()[0].lower() if check.text.split() else ""
        if published != digest:
            raise DownloadError(
                f"{name}: SHA-256 {digest} does not match the published {published or '(empty)'}"
            )
        return parse_archive(symbol, response.content), digest


async def _funding(
    venue: str, rest: RestClient, symbol: str, lo: int, hi: int
) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    start = lo
    while start < hi:
        if venue == "binance-futures":
            page = await rest.get_json(
                "/fapi/v1/fundingRate",
                {"symbol": symbol, "startTime": start, "endTime": hi - 1, "limit": 1000},
                weight=1,
            )
            rows = [(int(r["fundingTime"]), float(r["fundingRate"])) for r in page]
        else:
            page = await rest.post_json(
                hyperliquid.INFO_PATH,
                {"type": "fundingHistory", "coin": symbol, "startTime": start, "endTime": hi - 1},
                weight=20,
            )
            rows = [(int(r["time"]), float(r["fundingRate"])) for r in page]
        rows = [r for r in rows if lo <= r[0] < hi]
        if not rows:
            break
        out.extend(rows)
        start = rows[-1][0] + 1
    return sorted(set(out))


def _rest_url(venue: str) -> str:
    return (
        hyperliquid.MAINNET_REST_URL
        if venue == "hyperliquid"
        else binance.ENDPOINTS[MARKETS[venue]].rest_url
    )


async def _rest_candles(venue: str, rest: RestClient, symbol: str, lo: int, hi: int) -> list[Bar]:
    if venue == "hyperliquid":
        return await hyperliquid_candles(rest, symbol, "1m", lo, hi)
    return await binance_klines(rest, MARKETS[venue], symbol, "1m", lo, hi)


async def download(
    catalog: Catalog,
    venue: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    *,
    rest_url: str | None = None,
    archive_url: str = ARCHIVE_URL,
    funding: bool = True,
    progress: Callable[[MonthResult], None] | None = None,
    http: httpx.AsyncClient | None = None,
) -> list[MonthResult]:
    validate_symbol(venue, symbol)
    if start_ms >= end_ms:
        raise DownloadError("--from must be before --to")
    end_ms = min(end_ms, now_ms // MINUTE * MINUTE)
    client = http or httpx.AsyncClient(timeout=30.0, trust_env=False)
    weight = 1200 if venue == "hyperliquid" else binance.ENDPOINTS[MARKETS[venue]].weight_per_minute
    rest = RestClient(
        rest_url or _rest_url(venue), weight_per_minute=weight, client=client, max_wait_s=120.0
    )
    archive = Archive(archive_url, client)
    results = []
    try:
        for ym in months(start_ms, end_ms):
            result = await _month(
                catalog, venue, symbol, ym, start_ms, end_ms, now_ms, rest, archive, funding
            )
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if http is None:
            await client.aclose()
    return results


async def _month(
    catalog: Catalog,
    venue: str,
    symbol: str,
    ym: tuple[int, int],
    start_ms: int,
    end_ms: int,
    now_ms: int,
    rest: RestClient,
    archive: Archive,
    funding: bool,
) -> MonthResult:
    label = f"{ym[0]:04d}-{ym[1]:02d}"
    lo, hi = month_start(*ym), month_start(*next_month(*ym))
    meta = catalog.meta(venue, symbol, *ym)
    if meta is not None and meta.get("complete"):
        return MonthResult(
            label,
            "up to date",
            meta.get("source", ""),
            meta.get("rows", 0),
            len(meta.get("gaps", [])),
        )
    upto = min(hi, now_ms // MINUTE * MINUTE)
    whole_past = hi <= now_ms - DAY  # the archive publishes a month a day or so after it ends
    try:
        got = (
            await archive.month(venue, symbol, *ym)
            if venue in ARCHIVE_PATHS and whole_past
            else None
        )
        if got is not None:
            bars, digest, source = got[0], got[1], "archive"
        else:
            bars, digest, source = await _rest_candles(venue, rest, symbol, lo, upto), "", "rest"
        bars = sorted(
            {b.ts_open: b for b in bars if lo <= b.ts_open < upto}.values(), key=lambda b: b.ts_open
        )
        holes = gaps([b.ts_open for b in bars], lo, upto)
        meta = {
            "venue": venue,
            "symbol": symbol,
            "month": label,
            "rows": len(bars),
            "source": source,
            "sha256": digest,
            "complete": upto == hi,
            "fetched_to_ms": upto,
            "gaps": [[a, b] for a, b in holes],
        }
        if bars:
            catalog.write_candles(venue, symbol, *ym, bars, meta)
        if funding and venue != "binance-spot":
            catalog.write_funding(venue, symbol, *ym, await _funding(venue, rest, symbol, lo, upto))
    except (DownloadError, FractalError, ValueError, KeyError, TypeError) as exc:
        return MonthResult(label, "failed", detail=f"{type(exc).__name__}: {exc}")
    missing = sum(b - a for a, b in holes) // MINUTE
    return MonthResult(
        label,
        "downloaded" if bars else "failed",
        source,
        len(bars),
        len(holes),
        missing,
        "" if bars else "the venue returned no candles for this month",
    )


def _when(text: str, name: str) -> int:
    from fractald.backtest import BacktestError, parse_when

    try:
        value = parse_when(text, name)
    except BacktestError as exc:
        raise DownloadError(str(exc)) from None
    assert value is not None
    return value


def add_download_arguments(p: Any) -> None:
    p.add_argument("--venue", required=True, choices=VENUES)
    p.add_argument(
        "--symbol",
        required=True,
        action="append",
        help="Binance symbol (BTCUSDT) or Hyperliquid coin (BTC); repeatable",
    )
    p.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="WHEN",
        help="UTC date (2024-01-01) or epoch ms",
    )
    p.add_argument(
        "--to", dest="end", default=None, metavar="WHEN", help="stop before this time (default now)"
    )
    p.add_argument(
        "--catalog", default="catalog", metavar="DIR", help="catalog root (default ./catalog)"
    )
    p.add_argument("--no-funding", action="store_true", help="candles only")
    p.add_argument("--rest-url", default=None, help="REST base URL override (default: the venue's)")
    p.add_argument(
        "--archive-url", default=ARCHIVE_URL, help=f"bulk archive base URL (default {ARCHIVE_URL})"
    )


def download_command(args: Any) -> int:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    try:
        start = _when(args.start, "from")
        end = now_ms if args.end is None else _when(args.end, "to")
        for symbol in args.symbol:
            validate_symbol(args.venue, symbol)
    except DownloadError as exc:
        print(f"fractald download: error: {exc}", file=sys.stderr)
        return 2
    catalog = Catalog(args.catalog)
    failed = 0
    for symbol in args.symbol:

        def show(r: MonthResult, symbol: str = symbol) -> None:
            extra = f", {r.gaps} gap(s), {r.missing_minutes} minute(s) missing" if r.gaps else ""
            src = f" from {r.source}" if r.source else ""
            print(
                f"{args.venue} {symbol} {r.month}: {r.status}{src}, {r.rows} candles{extra}"
                + (f" ({r.detail})" if r.detail else ""),
                file=sys.stderr,
                flush=True,
            )

        try:
            results = trio.run(
                functools.partial(
                    download,
                    catalog,
                    args.venue,
                    symbol,
                    start,
                    end,
                    now_ms,
                    rest_url=args.rest_url,
                    archive_url=args.archive_url,
                    funding=not args.no_funding,
                    progress=show,
                )
            )
        except DownloadError as exc:
            print(f"fractald download: error: {exc}", file=sys.stderr)
            return 2
        failed += sum(r.status == "failed" for r in results)
    print(
        f"catalog {catalog.root}: {'done' if not failed else f'{failed} month(s) failed, see above'}"
    )
    return 1 if failed else 0
