"""What a futures roll costs the trading session: back-adjusting the stored candles and rebuilding
the symbol's detection over them (TradingSession.on_contract_roll).

    python bench/bench_ibkr_roll.py [--candles 45000] [--repeat 3]

The bundled 1m candles (up to `--candles`) go through a session with the default config into a
SQLite ledger in a temporary directory (the detection timeframes' candles are stored), then a
roll of +1500 is applied at the last candle: wall time of the roll (the ledger UPDATE, the
snapshot, the detection rebuild), the stored candles it moved and replayed. The trading loop
is paused meanwhile: this is how long the roll holds up the next bar.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import structlog
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_session_recovery import feed

from fractald.actors.events import EventBus
from fractald.config import Config
from fractald.core.continuous import ContractRolled
from fractald.session import TradingSession
from fractald.store.writer import AsyncLedger
from fractald.venues.replay import bundled_candles


class _Bus(EventBus):
    def __init__(self) -> None:
        super().__init__()
        self.rolls: list[dict[str, object]] = []

    def publish(self, kind: str, data: dict[str, object] | None = None, /) -> object:  # type: ignore[override]
        if kind == "contract_rolled" and data is not None:
            self.rolls.append(data)
        return super().publish(kind, data)


async def one(candles: int) -> tuple[float, dict[str, object]]:
    config = Config()
    bars = list(feed(bundled_candles()[:candles], config))
    with tempfile.TemporaryDirectory() as tmp:
        ledger = await AsyncLedger.open(Path(tmp) / "bench.db")
        bus = _Bus()
        session = await TradingSession.recover(config, ledger, structlog.get_logger("bench"), bus)
        for bar in bars:
            await session.on_bar(bar)
        roll = ContractRolled("BTC-PERP", bars[-1].ts_open + 60_000, "MESZ5", "MESH6", 1500.0)
        start = time.perf_counter()
        await session.on_contract_roll(roll)
        took = time.perf_counter() - start
        await ledger.aclose()
    return took, bus.rolls[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=45_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    runs = [trio.run(one, args.candles) for _ in range(args.repeat)]
    times = [t for t, _ in runs]
    detail = runs[-1][1]
    print(
        f"roll over {args.candles} 1m candles: {statistics.median(times) * 1000:.0f} ms median "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; {args.repeat} runs); "
        f"{detail['candles_adjusted']} stored candles moved, {detail['candles_replayed']} replayed"
    )


if __name__ == "__main__":
    main()
