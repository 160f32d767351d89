"""Webhook alerts: breaker trips, kill switch, fatal errors, stale feeds, a daily summary.

`AlertSender.notify(alert)` is synchronous and never blocks trading: it
appends to a bounded queue per webhook (when full, the oldest alert is
dropped and counted). `AlertSender.run()`, started in the daemon's
nursery, delivers each queue in order with httpx, retrying transient
failures (network errors, 408, 429, 5xx) with jittered exponential
backoff; other 4xx answers (a wrong token or chat) are not retried.

Two formats: a generic JSON POST (any webhook receiver) and Telegram's
Bot API `sendMessage`. Tokens and webhook URLs are secrets (a Slack or
Discord webhook URL *is* its credential): they are never logged, and a
target's repr shows only its name.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import json
import math
import random
import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
import structlog
import trio

from fractald.errors import classify, parse_retry_after
from fractald.metrics import AlertCounters
from fractald.reporting.report import Report

log = structlog.get_logger("fractald.alerts")

TELEGRAM_API_URL = "https://api.telegram.org"
TELEGRAM_MAX_CHARS = 4096
Scalar = str | int | float | bool | None


class AlertKind(enum.Enum):
    BREAKER_TRIP = "breaker_trip"
    KILL_SWITCH = "kill_switch"
    FATAL_ERROR = "fatal_error"
    FEED_STALE = "feed_stale"
    DAILY_SUMMARY = "daily_summary"
    TEST = "test"


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_ICONS = {
    Severity.INFO: "\u2139\ufe0f",
    Severity.WARNING: "\u26a0\ufe0f",
    Severity.CRITICAL: "\U0001f6a8",
}


@attrs.frozen(slots=True)
class Alert:
    """One notification. `fields` are the figures behind it, in display order."""

    kind: AlertKind
    severity: Severity
    title: str
    text: str
    ts_ms: int
    fields: tuple[tuple[str, Scalar], ...] = ()

    def to_json(self, instance: str = "") -> dict[str, Any]:
        return {
            "source": "fractald",
            "instance": instance,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "title": self.title,
            "text": self.text,
            "ts_ms": self.ts_ms,
            "time": _iso(self.ts_ms),
            "fields": dict(self.fields),
        }

    def to_text(self, instance: str = "") -> str:
        """Plain text for chat apps (no markup, so nothing needs escaping)."""
        head = f"{_ICONS[self.severity]} {self.title}" + (f" [{instance}]" if instance else "")
        lines = [head, self.text] + [f"{k}: {_fmt(v)}" for k, v in self.fields]
        lines.append(_iso(self.ts_ms))
        text = "\n".join(line for line in lines if line)
        return (
            text if len(text) <= TELEGRAM_MAX_CHARS else text[: TELEGRAM_MAX_CHARS - 1] + "\u2026"
        )


def _iso(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: Scalar) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    return "-" if value is None else str(value)


# --- the events --------------------------------------------------------------------------------


def breaker_trip(breaker: str, reason: str, ts_ms: int, **figures: Scalar) -> Alert:
    return Alert(
        AlertKind.BREAKER_TRIP,
        Severity.WARNING,
        f"Circuit breaker tripped: {breaker}",
        reason,
        ts_ms,
        (("breaker", breaker), *figures.items()),
    )


def kill_switch(reason: str, ts_ms: int, by: str = "", **figures: Scalar) -> Alert:
    return Alert(
        AlertKind.KILL_SWITCH,
        Severity.CRITICAL,
        "Kill switch: trading halted, flattening",
        reason,
        ts_ms,
        (("by", by or "-"), *figures.items()),
    )


def fatal_error(error: BaseException, ts_ms: int) -> Alert:
    """The daemon is stopping on a fatal error; the text is the error's code and message."""
    err = classify(error)
    return Alert(
        AlertKind.FATAL_ERROR,
        Severity.CRITICAL,
        "fractald stopped on a fatal error",
        err.message,
        ts_ms,
        (("code", err.code), ("category", err.category.value)),
    )


def feed_stale(symbol: str, age_s: float, limit_s: float, ts_ms: int) -> Alert:
    return Alert(
        AlertKind.FEED_STALE,
        Severity.WARNING,
        f"Market data stale: {symbol}",
        f"no message for {age_s:.0f} s (limit {limit_s:.0f} s)",
        ts_ms,
        (("symbol", symbol), ("age_s", float(age_s)), ("limit_s", float(limit_s))),
    )


def daily_summary(report: Report, ts_ms: int) -> Alert:
    """A summary of a performance report (usually the last 24 hours)."""
    s, d = report.stats, report.drawdown
    win_rate = "-" if s.win_rate is None else f"{s.win_rate * 100:.1f}%"
    text = (
        f"P&L {report.pnl_abs:+,.2f} ({report.pnl_pct * 100:+.2f}%), {s.trades} trades, "
        f"win rate {win_rate}, max drawdown {d.max_pct * 100:.2f}%"
    )
    return Alert(
        AlertKind.DAILY_SUMMARY,
        Severity.INFO,
        "Daily summary",
        text,
        ts_ms,
        (
            ("equity", report.ending_equity),
            ("pnl", report.pnl_abs),
            ("trades", s.trades),
            ("profit_factor", s.profit_factor),
            ("fees", s.fees),
        ),
    )


def next_daily_summary_ms(now_ms: int, hour_utc: int = 0) -> int:
    """When the next daily summary is due: the next `hour_utc`:00 UTC strictly after now."""
    if not 0 <= hour_utc <= 23:
        raise ValueError(f"hour_utc must be within 0..23, got {hour_utc!r}")
    day = 86_400_000
    due = now_ms - now_ms % day + hour_utc * 3_600_000
    return due if due > now_ms else due + day


class FeedStaleWatch:
    """Turns per-symbol FeedHealth into one alert per stale episode (not one per check)."""

    def __init__(self, limit_s: float) -> None:
        if not (math.isfinite(limit_s) and limit_s > 0):
            raise ValueError(f"feed stale limit must be positive, got {limit_s!r}")
        self.limit_s = limit_s
        self._alerted: set[str] = set()

    def check(self, symbol: str, age_s: float, ts_ms: int) -> Alert | None:
        if age_s <= self.limit_s:
            self._alerted.discard(symbol)
            return None
        if symbol in self._alerted:
            return None
        self._alerted.add(symbol)
        return feed_stale(symbol, age_s, self.limit_s, ts_ms)


# --- targets -----------------------------------------------------------------------------------


class WebhookKind(enum.Enum):
    GENERIC = "generic"
    TELEGRAM = "telegram"


def _http_url(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value may hold a credential: name the scheme, not the URL.
        raise ValueError(
            f"{attribute.name} must be an http(s) URL with a host (got scheme {parts.scheme!r})"
        )


@attrs.frozen(slots=True)
class WebhookTarget:
    """Where alerts go. For Telegram, `url` is the Bot API base URL.

    `token` and `url` are kept out of repr (and so out of logs); `name` is
    what logs show, by default the kind and host.
    """

    kind: WebhookKind
    url: str = attrs.field(validator=_http_url, repr=False)
    chat_id: str = ""
    token: str = attrs.field(default="", repr=False)
    name: str = ""

    def __attrs_post_init__(self) -> None:
        if self.kind is WebhookKind.TELEGRAM and not (self.token and self.chat_id):
            raise ValueError("a telegram alert target needs both a bot token and a chat_id")
        if not self.name:
            host = urllib.parse.urlsplit(self.url).hostname
            object.__setattr__(self, "name", f"{self.kind.value}:{host}")

    def request(self, alert: Alert, instance: str = "") -> tuple[str, dict[str, Any]]:
        """The URL to POST to and the JSON body."""
        if self.kind is WebhookKind.TELEGRAM:
            url = f"{self.url.rstrip('/')}/bot{self.token}/sendMessage"
            return url, {
                "chat_id": self.chat_id,
                "text": alert.to_text(instance),
                "disable_web_page_preview": True,
                "disable_notification": alert.severity is Severity.INFO,
            }
        return self.url, alert.to_json(instance)


def targets_from_config(
    webhook_urls: Sequence[str],
    telegram_chat_id: str = "",
    telegram_token: str = "",
    telegram_api_url: str = TELEGRAM_API_URL,
) -> list[WebhookTarget]:
    """Targets from the [alerts] config: every URL as a generic webhook, plus Telegram if set."""
    targets = [
        WebhookTarget(WebhookKind.GENERIC, url, name=f"webhook{i + 1}")
        for i, url in enumerate(webhook_urls)
    ]
    if telegram_chat_id or telegram_token:
        targets.append(
            WebhookTarget(
                WebhookKind.TELEGRAM,
                telegram_api_url,
                chat_id=telegram_chat_id,
                token=telegram_token,
                name="telegram",
            )
        )
    return targets


# --- delivery ----------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": attempt n waits between d/2 and d, d = base * factor**n."""

    max_attempts: int = attrs.field(default=6, validator=attrs.validators.ge(1))
    base_s: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    factor: float = attrs.field(default=2.0, validator=attrs.validators.ge(1))
    max_s: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))

    def delay(self, attempt: int, rng: random.Random) -> float:
        cap = min(self.max_s, self.base_s * self.factor**attempt)
        return cap / 2 + rng.uniform(0, cap / 2)


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


def classify_response(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.SENT
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.FAILED  # our request is wrong (bad token, chat or URL): retrying cannot help


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After header, or Telegram's `parameters.retry_after` in the body."""
    seconds = parse_retry_after(response.headers)
    if seconds is not None:
        return seconds
    try:
        value = response.json().get("parameters", {}).get("retry_after")
        return float(value) if value is not None else None
    except (ValueError, AttributeError, TypeError, json.JSONDecodeError):
        return None


@attrs.define
class _Lane:
    """One target's queue and counters."""

    target: WebhookTarget
    queue: collections.deque[Alert]
    wakeup: trio.Event = attrs.Factory(trio.Event)
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0


class AlertSender:
    """Queues alerts per target and delivers them with retries; see the module docstring."""

    def __init__(
        self,
        targets: Sequence[WebhookTarget],
        *,
        instance: str = "",
        queue_size: int = 100,
        retry: RetryPolicy = RetryPolicy(),
        timeout_s: float = 10.0,
        rng: random.Random | None = None,
        trust_env: bool = True,
        repeat_after_s: float = 300.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size!r}")
        if not (math.isfinite(repeat_after_s) and repeat_after_s >= 0):
            raise ValueError(f"repeat_after_s must be >= 0, got {repeat_after_s!r}")
        self.instance = instance
        self.repeat_after_ms = int(repeat_after_s * 1000)
        self.suppressed = 0
        self._last_seen: dict[tuple[AlertKind, str], int] = {}
        self.retry = retry
        self.timeout_s = timeout_s
        self.trust_env = trust_env
        self._rng = rng or random.Random()
        self._lanes = [_Lane(t, collections.deque(maxlen=queue_size)) for t in targets]

    def notify(self, alert: Alert) -> None:
        """Queue `alert` for every target. Never blocks; drops the oldest when a queue is full.

        A warning or info alert with the same kind and title as one sent less
        than `repeat_after_s` earlier (by event time) is suppressed, so a
        flapping breaker does not page the operator fifty times. Critical
        alerts always go out.
        """
        if self._is_repeat(alert):
            self.suppressed += 1
            return
        for lane in self._lanes:
            if len(lane.queue) == lane.queue.maxlen:
                lane.dropped += 1
                log.warning("alert_dropped", target=lane.target.name, kind=lane.queue[0].kind.value)
            lane.queue.append(alert)
            lane.wakeup.set()

    def _is_repeat(self, alert: Alert) -> bool:
        if alert.severity is Severity.CRITICAL:
            return False
        key = (alert.kind, alert.title)
        last = self._last_seen.get(key)
        if last is not None and 0 <= alert.ts_ms - last < self.repeat_after_ms:
            return True
        if len(self._last_seen) >= 1024:  # bounded: forget the oldest key
            self._last_seen.pop(next(iter(self._last_seen)))
        self._last_seen[key] = alert.ts_ms
        return False

    def counters(self) -> AlertCounters:
        return AlertCounters(
            sent=sum(x.sent for x in self._lanes),
            failed=sum(x.failed for x in self._lanes),
            dropped=sum(x.dropped for x in self._lanes),
            suppressed=self.suppressed,
        )

    def lane_counters(self) -> dict[str, dict[str, int]]:
        """Per target: sent, failed, dropped, retries and queued."""
        return {
            x.target.name: {
                "sent": x.sent,
                "failed": x.failed,
                "dropped": x.dropped,
                "retries": x.retries,
                "queued": len(x.queue),
            }
            for x in self._lanes
        }

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout_s, trust_env=self.trust_env, follow_redirects=False
        )

    async def run(self) -> None:
        """Deliver forever; run it in the daemon's nursery. Cancelling it keeps what is queued."""
        async with self._client() as client, trio.open_nursery() as nursery:
            for lane in self._lanes:
                nursery.start_soon(self._serve, client, lane)

    async def flush(self, timeout_s: float = 10.0) -> int:
        """Deliver what is queued (e.g. the fatal-error alert at shutdown), within `timeout_s`.

        Returns how many alerts were still undelivered when it gave up.
        """
        with trio.move_on_after(timeout_s):
            async with self._client() as client, trio.open_nursery() as nursery:
                for lane in self._lanes:
                    nursery.start_soon(self._drain, client, lane)
        return sum(len(x.queue) for x in self._lanes)

    async def _serve(self, client: httpx.AsyncClient, lane: _Lane) -> None:
        while True:
            if not lane.queue:
                lane.wakeup = trio.Event()
                await lane.wakeup.wait()
            await self._drain(client, lane)

    async def _drain(self, client: httpx.AsyncClient, lane: _Lane) -> None:
        while lane.queue:
            alert = lane.queue.popleft()
            handled = False
            try:
                await self._deliver(client, lane, alert)
                handled = True
            finally:
                # Cancelled mid-delivery (shutdown): keep it for flush(), if there is room.
                if not handled and len(lane.queue) < (lane.queue.maxlen or 0):
                    lane.queue.appendleft(alert)

    async def _deliver(self, client: httpx.AsyncClient, lane: _Lane, alert: Alert) -> None:
        url, body = lane.target.request(alert, self.instance)
        for attempt in range(self.retry.max_attempts):
            outcome, detail, wait_hint = await self._post(client, url, body)
            if outcome is Outcome.SENT:
                lane.sent += 1
                log.info(
                    "alert_sent",
                    target=lane.target.name,
                    kind=alert.kind.value,
                    attempts=attempt + 1,
                )
                return
            if outcome is Outcome.FAILED or attempt + 1 == self.retry.max_attempts:
                break
            delay = max(
                self.retry.delay(attempt, self._rng), min(wait_hint or 0.0, self.retry.max_s)
            )
            lane.retries += 1
            log.warning(
                "alert_retry",
                target=lane.target.name,
                kind=alert.kind.value,
                attempt=attempt + 1,
                problem=detail,
                retry_in_s=round(delay, 3),
            )
            await trio.sleep(delay)
        lane.failed += 1
        log.error("alert_failed", target=lane.target.name, kind=alert.kind.value, problem=detail)

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any]
    ) -> tuple[Outcome, str, float | None]:
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            # Only the exception's type and category: its text may quote the URL (a secret).
            return Outcome.RETRY, f"{type(exc).__name__} ({classify(exc).code})", None
        outcome = classify_response(response.status_code)
        hint = _retry_after(response) if outcome is Outcome.RETRY else None
        return outcome, f"HTTP {response.status_code}", hint
