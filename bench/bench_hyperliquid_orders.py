"""Signal -> signed Hyperliquid request on the wire, p50/p99 (goal: p99 < 2 ms).

Two figures:

* build+sign, in-process, thread CPU time per call: OrderIntent -> order wire
  (rounded to the asset's grid) -> action -> msgpack hash -> EIP-712 signature
  (eth-account on coincurve) -> JSON body;
* on the wire, wall time: `HyperliquidVenue.submit(intent)` until a loopback
  HTTP server has the whole request (nonce, signing, httpx on trio over a
  kept-alive connection, as to the venue's HTTPS endpoint; TLS not included).

    .venv/bin/python bench/bench_hyperliquid_orders.py [--n 2000]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable

import trio

from fractald.core.execution.events import OrderIntent
from fractald.core.execution.orders import OrderType, client_order_id
from fractald.core.models import Side
from fractald.venues import hyperliquid_orders as hl
from fractald.venues.hyperliquid_signing import AgentSigner, NonceClock
from fractald.venues.hyperliquid_venue import HyperliquidSettings, HyperliquidVenue

KEY = "0x" + "4f" * 32
USER = "0x" + "ab" * 20
BTC = hl.Asset("BTC", 0, 5, 50)
META = json.dumps({"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 50}]}).encode()
RESTING = json.dumps({"status": "ok", "response": {"type": "order", "data": {"statuses": [
    {"resting": {"oid": 1}}]}}}).encode()


def intent(i: int) -> OrderIntent:
    return OrderIntent(ts=i, client_order_id=client_order_id(f"sig-{i}", "entry"), symbol="BTC",
                       side=Side.BUY, order_type=OrderType.LIMIT, quantity=0.0123, price=50_000.0 + i % 7)


def report(name: str, us: list[float]) -> None:
    us.sort()
    p99 = us[int(len(us) * 0.99) - 1]
    print(f"{name:<28} p50 {statistics.median(us):8.1f} us   p99 {p99:8.1f} us   ({len(us)} calls)")


def build_and_sign(n: int) -> list[float]:
    signer, nonces = AgentSigner(KEY, mainnet=False), NonceClock(None)
    out = []
    for i in range(n):
        t0 = time.thread_time_ns()
        action = hl.order_action([hl.order_wire(intent(i), BTC)])
        nonce = nonces.next(1_760_000_000_000 + i)
        json.dumps(hl.exchange_body(action, nonce, signer.sign_l1(action, nonce))).encode()
        out.append((time.thread_time_ns() - t0) / 1000.0)
    return out


async def on_the_wire(n: int) -> list[float]:
    arrived: list[int] = []

    async def serve(stream: trio.SocketStream) -> None:
        data = b""
        while True:  # keep-alive, as the venue's HTTPS endpoint
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += await stream.receive_some(65536)
            body, data = body[:length], body[length:]
            arrived.append(time.perf_counter_ns())
            reply = META if b'"meta"' in body else RESTING
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  b"Content-Length: %d\r\n\r\n" % len(reply) + reply)

    out: list[float] = []
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        settings = HyperliquidSettings(USER, "testnet", rest_url=f"http://127.0.0.1:{port}",
                                       ws_url=f"ws://127.0.0.1:{port}/ws")
        venue = HyperliquidVenue(settings, AgentSigner(KEY, mainnet=False), NonceClock(None))
        budget = venue.exchange_rest.budget
        budget.capacity = budget.tokens = 1e12  # measuring our path, not the venue's rate limit
        await venue.load_assets()
        for i in range(n):
            arrived.clear()
            t0 = time.perf_counter_ns()
            await venue.submit(intent(i))
            out.append((arrived[0] - t0) / 1000.0)
        await venue.aclose()
        nursery.cancel_scope.cancel()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    runs: list[tuple[str, Callable[[], list[float]]]] = [
        ("build+sign (CPU)", lambda: build_and_sign(args.n)),
        ("submit -> on the wire", lambda: trio.run(on_the_wire, args.n)),
    ]
    for name, run in runs:
        report(name, run())


if __name__ == "__main__":
    main()
