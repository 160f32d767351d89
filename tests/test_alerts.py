"""Webhook alerts against a real HTTP server on 127.0.0.1 that fails, then succeeds."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
import trio

from fractald import alerts as al
from fractald.core.models import ClosedTrade, Side
from fractald.errors import ConfigError
from fractald.reporting.report import build_report

TOKEN = "123456:SECRET-telegram-token-abcdef"
FAST = al.RetryPolicy(max_attempts=4, base_s=0.01, max_s=0.05)
TS = 1_704_067_200_000


class FakeServer:
    """Answers each POST with the next scripted status (then 200s), recording what it got."""

    def __init__(self, statuses: list[int], bodies: dict[int, dict[str, Any]] | None = None) -> None:
        self.statuses = list(statuses)
        self.bodies = bodies or {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                with owner.lock:
                    owner.requests.append((self.path, payload))
                    status = owner.statuses.pop(0) if owner.statuses else 200
                body = json.dumps(owner.bodies.get(status, {"ok": status == 200})).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FakeServer:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server_factory() -> Iterator[Any]:
    servers: list[FakeServer] = []

    def make(statuses: list[int], bodies: dict[int, dict[str, Any]] | None = None) -> FakeServer:
        server = FakeServer(statuses, bodies).__enter__()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.__exit__()


def sender(*targets: al.WebhookTarget, **kw: Any) -> al.AlertSender:
    kw.setdefault("retry", FAST)
    return al.AlertSender(targets, instance="vps1", rng=random.Random(7), trust_env=False, **kw)


async def run_until(s: al.AlertSender, done: Any, timeout_s: float = 5.0) -> None:
    with trio.fail_after(timeout_s):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(s.run)
            while not done():
                await trio.sleep(0.005)
            nursery.cancel_scope.cancel()


async def test_generic_webhook_retries_until_the_server_recovers(server_factory: Any) -> None:
    server = server_factory([500, 503])
    s = sender(al.WebhookTarget(al.WebhookKind.GENERIC, server.url + "/hook"))
    s.notify(al.breaker_trip("daily_loss", "lost 3.1% today", TS, loss_pct=3.1))
    await run_until(s, lambda: s.counters().sent == 1)
    assert [path for path, _ in server.requests] == ["/hook"] * 3
    body = server.requests[-1][1]
    assert body["kind"] == "breaker_trip" and body["severity"] == "warning"
    assert body["title"] == "Circuit breaker tripped: daily_loss"
    assert body["fields"] == {"breaker": "daily_loss", "loss_pct": 3.1}
    assert (body["instance"], body["ts_ms"], body["time"]) == ("vps1", TS, "2024-01-01 00:00:00 UTC")
    assert s.lane_counters()["generic:127.0.0.1"]["retries"] == 2


async def test_telegram_format_and_token_never_logged(server_factory: Any) -> None:
    server = server_factory([429], {429: {"ok": False, "error_code": 429,
                                          "parameters": {"retry_after": 0}}})
    target = al.WebhookTarget(al.WebhookKind.TELEGRAM, server.url, chat_id="-100777", token=TOKEN)
    s = sender(target)
    with structlog.testing.capture_logs() as logs:
        s.notify(al.kill_switch("operator ran fractalctl halt --yes", TS, by="uid 1000"))
        await run_until(s, lambda: s.counters().sent == 1)
    assert [path for path, _ in server.requests] == [f"/bot{TOKEN}/sendMessage"] * 2
    body = server.requests[-1][1]
    assert body["chat_id"] == "-100777" and body["disable_notification"] is False
    assert body["text"].splitlines()[0].endswith("Kill switch: trading halted, flattening [vps1]")
    assert "by: uid 1000" in body["text"]
    assert [e["event"] for e in logs] == ["alert_retry", "alert_sent"]
    assert TOKEN not in repr(logs) and "SECRET" not in repr(target) and server.url not in repr(logs)


async def test_client_error_is_not_retried(server_factory: Any) -> None:
    server = server_factory([400])
    s = sender(al.WebhookTarget(al.WebhookKind.GENERIC, server.url))
    s.notify(al.feed_stale("BTC-PERP", 130.0, 120.0, TS))
    await run_until(s, lambda: s.counters().failed == 1)
    assert len(server.requests) == 1 and s.counters().sent == 0


async def test_unreachable_webhook_gives_up_after_max_attempts(server_factory: Any) -> None:
    dead = server_factory([])
    url = dead.url
    dead.__exit__()  # nothing listens there any more: connection refused
    s = sender(al.WebhookTarget(al.WebhookKind.GENERIC, url))
    with structlog.testing.capture_logs() as logs:
        s.notify(al.fatal_error(ConfigError("risk.max_heat must be <= 1"), TS))
        await run_until(s, lambda: s.counters().failed == 1)
    problems = [e["problem"] for e in logs if e["event"] == "alert_retry"]
    assert len(problems) == FAST.max_attempts - 1
    assert all("ConnectError" in p for p in problems)


async def test_full_queue_drops_the_oldest(server_factory: Any) -> None:
    server = server_factory([])
    s = sender(al.WebhookTarget(al.WebhookKind.GENERIC, server.url), queue_size=3)
    for i in range(5):  # nothing runs yet: notify must not block, the queue holds 3
        s.notify(al.breaker_trip(f"b{i}", "test", TS + i))
    assert s.counters().dropped == 2
    await run_until(s, lambda: s.counters().sent == 3)
    assert [b["fields"]["breaker"] for _, b in server.requests] == ["b2", "b3", "b4"]


async def test_one_dead_target_does_not_hold_up_another(server_factory: Any) -> None:
    slow, good = server_factory([500] * 20), server_factory([])
    s = sender(al.WebhookTarget(al.WebhookKind.GENERIC, slow.url, name="slow"),
               al.WebhookTarget(al.WebhookKind.GENERIC, good.url, name="good"),
               retry=al.RetryPolicy(max_attempts=50, base_s=0.5, max_s=0.5))
    s.notify(al.breaker_trip("a", "x", TS))
    s.notify(al.breaker_trip("b", "x", TS))
    await run_until(s, lambda: s.lane_counters()["good"]["sent"] == 2)
    assert s.lane_counters()["slow"]["sent"] == 0


async def test_flush_delivers_what_is_queued(server_factory: Any) -> None:
    server = server_factory([503])
    s = sender(al.WebhookTarget(al.WebhookKind.GENERIC, server.url))
    s.notify(al.fatal_error(RuntimeError("boom"), TS))
    assert await s.flush(timeout_s=5) == 0
    assert server.requests[-1][1]["fields"] == {"code": "fatal", "category": "fatal"}


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    policy = al.RetryPolicy(base_s=1.0, factor=2.0, max_s=10.0)
    rng = random.Random(1)
    for attempt, cap in enumerate([1, 2, 4, 8, 10, 10]):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap / 4  # jittered, not constant


def test_response_classes() -> None:
    assert [al.classify_response(c) for c in (200, 204, 400, 401, 404, 408, 429, 500, 502)] == [
        al.Outcome.SENT, al.Outcome.SENT, al.Outcome.FAILED, al.Outcome.FAILED, al.Outcome.FAILED,
        al.Outcome.RETRY, al.Outcome.RETRY, al.Outcome.RETRY, al.Outcome.RETRY]


def test_targets_from_config_and_validation() -> None:
    targets = al.targets_from_config(["https://hooks.example.org/T0/B1/secretpath"], "42", TOKEN)
    assert [(t.kind, t.name) for t in targets] == [
        (al.WebhookKind.GENERIC, "webhook1"), (al.WebhookKind.TELEGRAM, "telegram")]
    assert "secretpath" not in repr(targets) and TOKEN not in repr(targets)
    with pytest.raises(ValueError, match="needs both a bot token and a chat_id"):
        al.targets_from_config([], telegram_chat_id="42")
    with pytest.raises(ValueError, match="http\\(s\\) URL") as err:
        al.WebhookTarget(al.WebhookKind.GENERIC, "ftp://user:pw@host/x")
    assert "pw" not in str(err.value)


def test_feed_stale_watch_fires_once_per_episode() -> None:
    watch = al.FeedStaleWatch(limit_s=60)
    fired = [watch.check("BTC", age, TS) for age in (10, 61, 90, 200, 5, 75)]
    assert [a is not None for a in fired] == [False, True, False, False, False, True]
    assert fired[1] is not None and fired[1].text == "no message for 61 s (limit 60 s)"


def test_daily_summary_and_its_schedule() -> None:
    trades = [ClosedTrade("T1", "BTC", "A", Side.BUY, 1, 100, 110, TS, TS + 1000, 10.0, 0.5),
              ClosedTrade("T2", "BTC", "A", Side.SELL, 1, 100, 105, TS, TS + 2000, -5.0, 0.5)]
    alert = al.daily_summary(build_report(trades, [], 1000.0), TS + 3000)
    assert alert.text == "P&L +5.00 (+0.50%), 2 trades, win rate 50.0%, max drawdown 0.50%"
    assert dict(alert.fields)["profit_factor"] == pytest.approx(2.0)
    assert al.next_daily_summary_ms(TS - 1) == TS
    assert al.next_daily_summary_ms(TS) == TS + 86_400_000
    assert al.next_daily_summary_ms(TS + 5, hour_utc=7) == TS + 7 * 3_600_000


def test_repeats_are_suppressed_but_critical_alerts_never() -> None:
    s = al.AlertSender([al.WebhookTarget(al.WebhookKind.GENERIC, "http://127.0.0.1:9/x")],
                       repeat_after_s=300)
    minute = 60_000
    for t in (0, 1, 4, 5, 6):  # minutes: a breaker flapping
        s.notify(al.breaker_trip("daily_loss", "lost 3%", TS + t * minute))
    for t in (0, 1):
        s.notify(al.kill_switch("halt", TS + t * minute))
    s.notify(al.breaker_trip("drawdown", "dd 10%", TS + 2 * minute))  # another title: sent
    # Sent at 0 and 5 (5 min after the first one sent); 1, 4 and 6 suppressed.
    assert s.lane_counters()["generic:127.0.0.1"]["queued"] == 5
    assert s.counters().suppressed == 3
