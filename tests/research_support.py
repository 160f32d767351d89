"""Helpers for the research tests: the toy plug-in laid out as an installed package, synthetic candles."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fractald.core.models import Bar
from fractald.core.strategies import registry

TOY = Path(__file__).parent / "plugin_pkg" / "fractald_toy"
T0 = 1_640_995_200_000  # 2022-01-01 00:00 UTC
MIN = 60_000


def install_toy(site: Path, entries: Mapping[str, str]) -> Path:
    """Lay the toy package out in `site` as pip would install it, with `entries` as its strategies."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copytree(TOY, site / "fractald_toy", dirs_exist_ok=True)
    info = site / "fractald_toy-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fractald-toy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[fractald.strategies]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    return site


@contextmanager
def toy_on_path(site: Path) -> Iterator[None]:
    """The toy distribution importable in this process; its strategies unregistered afterwards."""
    from fractald import strategy_plugins

    before = dict(registry.STRATEGIES)
    sys.path.insert(0, str(site))
    try:
        yield
    finally:
        sys.path.remove(str(site))
        registry.STRATEGIES.clear()
        registry.STRATEGIES.update(before)
        for name in [m for m in sys.modules if m.startswith("fractald_toy")]:
            del sys.modules[name]
        strategy_plugins._loaded = False


def jump_series(n: int, period: int = 20, jump_after: int = 7, jump: float = 2.0,
                symbol: str = "TOY") -> list[Bar]:
    """Drifts down every bar except the one after phase `jump_after`, which jumps up by `jump`.

    Buying the close of phase `jump_after` catches the jump; buying any other
    bar buys the drift down. 1-minute bars with small wicks, always positive.
    """
    bars, close = [], 100.0
    drift = jump / (period - 1)
    for i in range(n):
        phase = (i - 1) % period
        opened = close
        close = opened + (jump if phase == jump_after else -drift)
        wick = drift * 0.1
        bars.append(Bar(symbol, "1m", T0 + i * MIN, opened, max(opened, close) + wick,
                        min(opened, close) - wick, close, 10.0))
    return bars


def write_csv(bars: list[Bar], path: Path) -> Path:
    from datetime import UTC, datetime

    lines = ["timestamp,open,high,low,close,volume"]
    for b in bars:
        when = datetime.fromtimestamp(b.ts_open / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{when},{b.open},{b.high},{b.low},{b.close},{b.volume}")
    path.write_text("\n".join(lines) + "\n")
    return path
