"""Prometheus metrics: a snapshot of the daemon rendered as text, written for node_exporter.

The daemon builds a `MetricsSnapshot` (plain data) every few seconds,
`render_metrics` turns it into the Prometheus text exposition format
with prometheus_client (which writes HELP/TYPE lines and escapes label
values), and `write_textfile` puts it where node_exporter's textfile
collector reads it, atomically, so a scrape never sees half a file.
`fractalctl metrics` prints the same text.

Every series carries a `bot` label (the bot's name: "main", or the
instance of fractald@NAME), so several bots on one host never write the
same series; Prometheus keeps `instance` for the scrape target, hence
`bot`. `fractald_up` is 1 while the daemon runs; on a stop the daemon
writes a last file with `fractald_up 0` and every actor down, so a
stopped bot never looks alive.

`LoopLagProbe` measures event-loop lag: how late a periodic trio sleep
wakes up. A loop that is blocked (a sync call that takes 300 ms) shows up
here long before the watchdog fires.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from fractald.core.models import FeedHealth

PREFIX = "fractald"
TRADING_STATES = ("ACTIVE", "REDUCING", "HALTED")


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be >= 0 and finite, got {value!r}")


def _finite(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")


@attrs.frozen(slots=True)
class ActorStatus:
    name: str
    up: bool
    restarts: int = 0


@attrs.frozen(slots=True)
class AlertCounters:
    """What the alert sender did, so a dead webhook is itself visible on the dashboard."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    suppressed: int = 0  # repeats of a recent alert, deliberately not sent


@attrs.frozen(slots=True)
class MetricsSnapshot:
    """Everything the dashboard shows, at one moment. Money is in the account currency.

    `drawdown` is the fall from peak equity as a fraction (0.05 = 5 %);
    `open_risk` is what the open positions lose if every stop is hit and
    `heat_cap` the most the risk gate allows; `positions` maps a symbol
    to its signed quantity (long > 0).
    """

    ts_ms: int
    equity: float = attrs.field(validator=_finite)
    drawdown: float = attrs.field(validator=_non_negative)
    open_risk: float = attrs.field(validator=_non_negative)
    heat_cap: float = attrs.field(validator=_non_negative)
    trading_state: str = "ACTIVE"
    positions: Mapping[str, float] = attrs.field(factory=dict)
    orders_by_state: Mapping[str, int] = attrs.field(factory=dict)
    fills_total: int = 0
    feeds: tuple[FeedHealth, ...] = ()
    actors: tuple[ActorStatus, ...] = ()
    breakers: Mapping[str, bool] = attrs.field(factory=dict)  # name -> tripped
    loop_lag_s: float = attrs.field(default=0.0, validator=_non_negative)
    loop_lag_max_s: float = attrs.field(default=0.0, validator=_non_negative)
    alerts: AlertCounters = AlertCounters()
    # The deepest drawdown of the whole run, as `fractalctl report` computes it (core.figures).
    max_drawdown: float = attrs.field(default=0.0, validator=_non_negative)
    drawdown_limit: float = attrs.field(default=0.0, validator=_non_negative)  # 0 = none
    bot: str = attrs.field(default="main", validator=lambda _i, _a, v: _bot_name(v))
    version: str = ""
    up: bool = True


def _bot_name(value: str) -> None:
    if not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError(f"bot must be 1-64 letters, digits, '-', '_' or '.', got {value!r}")


def _gauge(name: str, doc: str, labels: tuple[str, ...] = (), unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels), unit=unit)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def _single(family: GaugeMetricFamily | CounterMetricFamily, value: float) -> Metric:
    family.add_metric([], value)
    return family


def _build(s: MetricsSnapshot) -> Iterator[Metric]:
    info = _gauge("build_info", "Always 1; the labels say which fractald runs.", ("version",))
    info.add_metric([s.version], 1.0)
    yield info
    yield _single(
        _gauge("up", "1 while the daemon runs; 0 in the last file it writes on stop."),
        1.0 if s.up else 0.0,
    )


def _account(s: MetricsSnapshot) -> Iterator[Metric]:
    yield _single(_gauge("equity", "Account equity (mark to market), account currency."), s.equity)
    yield _single(
        _gauge("drawdown_ratio", "Fall of equity from its peak, fraction of the peak."), s.drawdown
    )
    yield _single(
        _gauge(
            "max_drawdown_ratio",
            "Deepest fall of equity from its peak over the run "
            "(bar-close marks, as `fractalctl report`), fraction of the peak.",
        ),
        s.max_drawdown,
    )
    yield _single(
        _gauge(
            "drawdown_limit_ratio",
            "Drawdown at which the risk gate halts "
            "(risk.max_drawdown), fraction of the peak; 0 when none.",
        ),
        s.drawdown_limit,
    )
    yield _single(
        _gauge("open_risk", "Loss if every open position hit its stop, account currency."),
        s.open_risk,
    )
    yield _single(
        _gauge("heat_cap", "Most open risk the risk gate allows, account currency."), s.heat_cap
    )
    state = _gauge(
        "trading_state", "1 for the current trading state, 0 for the others.", ("state",)
    )
    for name in sorted(set(TRADING_STATES) | {s.trading_state}):
        state.add_metric([name], 1.0 if name == s.trading_state else 0.0)
    yield state
    yield _single(
        _gauge("snapshot_timestamp_seconds", "When this snapshot was taken (Unix time)."),
        s.ts_ms / 1000.0,
    )


def _trading(s: MetricsSnapshot) -> Iterator[Metric]:
    yield _single(
        _gauge("positions_open", "Number of open positions."),
        sum(1 for q in s.positions.values() if q != 0),
    )
    size = _gauge(
        "position_quantity", "Signed position quantity per symbol (long > 0).", ("symbol",)
    )
    for symbol, qty in sorted(s.positions.items()):
        size.add_metric([symbol], qty)
    yield size
    orders = _gauge("orders", "Orders by state.", ("state",))
    for state, count in sorted(s.orders_by_state.items()):
        orders.add_metric([state], count)
    yield orders
    yield _single(_counter("fills", "Fills received since the daemon started."), s.fills_total)


def _feeds(s: MetricsSnapshot) -> Iterator[Metric]:
    age = _gauge(
        "feed_message_age_seconds", "Seconds since the last market data message.", ("symbol",)
    )
    quality = _gauge(
        "feed_quality", "Feed quality 0..1 (gaps, outliers, unparsed messages).", ("symbol",)
    )
    stale = _gauge("feed_stale", "1 while the feed is stale.", ("symbol",))
    reconnects = _counter("feed_reconnects", "Feed reconnections.", ("symbol",))
    gaps = _counter("feed_gaps", "Gaps found in the feed.", ("symbol",))
    for f in sorted(s.feeds, key=lambda f: f.symbol):
        age.add_metric([f.symbol], f.last_message_age_s)
        quality.add_metric([f.symbol], f.quality)
        stale.add_metric([f.symbol], 1.0 if f.stale else 0.0)
        reconnects.add_metric([f.symbol], f.reconnects)
        gaps.add_metric([f.symbol], f.gaps_found)
    yield from (age, quality, stale, reconnects, gaps)


def _health(s: MetricsSnapshot) -> Iterator[Metric]:
    up = _gauge("actor_up", "1 while the actor runs.", ("actor",))
    restarts = _counter("actor_restarts", "Actor restarts by the supervisor.", ("actor",))
    for a in sorted(s.actors, key=lambda a: a.name):
        up.add_metric([a.name], 1.0 if a.up and s.up else 0.0)
        restarts.add_metric([a.name], a.restarts)
    yield from (up, restarts)
    breakers = _gauge("breaker_tripped", "1 while the circuit breaker is tripped.", ("breaker",))
    for name, tripped in sorted(s.breakers.items()):
        breakers.add_metric([name], 1.0 if tripped else 0.0)
    yield breakers
    yield _single(
        _gauge("loop_lag_seconds", "Latest event-loop lag (late wake-up of a sleep)."), s.loop_lag_s
    )
    yield _single(
        _gauge("loop_lag_max_seconds", "Largest event-loop lag in the recent window."),
        s.loop_lag_max_s,
    )
    alerts = _counter("alerts", "Alert notifications by outcome.", ("outcome",))
    for outcome in ("sent", "failed", "dropped", "suppressed"):
        alerts.add_metric([outcome], getattr(s.alerts, outcome))
    yield alerts


class _SnapshotCollector:
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        bot = self.snapshot.bot
        for part in (_build, _account, _trading, _feeds, _health):
            for family in part(self.snapshot):
                family.samples = [
                    s._replace(labels={"bot": bot, **s.labels}) for s in family.samples
                ]
                yield family


def render_metrics(snapshot: MetricsSnapshot) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))  # type: ignore[arg-type]
    return generate_latest(registry).decode("utf-8")


def write_textfile(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` atomically and durably.

    Written to a temporary file in the same directory (named so the
    textfile collector, which reads only *.prom, ignores it), fsynced,
    renamed over the target, then the directory is fsynced. The file is
    world-readable: node_exporter runs as another user. This blocks; from
    trio call it with trio.to_thread.run_sync.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o644)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LoopLagProbe:
    """Measures how late a periodic `trio.sleep(interval_s)` wakes up.

    Time comes from `trio.current_time()`, so under MockClock the probe
    sees virtual time. `last_s` is the latest lag, `max_s` the largest in
    the last `window` samples.
    """

    def __init__(self, interval_s: float = 0.5, window: int = 120) -> None:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        self.interval_s = interval_s
        self.samples = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=window)

    @property
    def last_s(self) -> float:
        return self._recent[-1] if self._recent else 0.0

    @property
    def max_s(self) -> float:
        return max(self._recent, default=0.0)

    def record(self, lag_s: float) -> None:
        self._recent.append(max(0.0, lag_s))
        self.samples += 1

    async def run(self) -> None:
        """Sample forever; run it in the daemon's nursery."""
        while True:
            deadline = trio.current_time() + self.interval_s
            await trio.sleep_until(deadline)
            self.record(trio.current_time() - deadline)
