"""The chart's SMC structure from the live (causal) detectors the daemon trades on.

`live_overlays(frame, timeframe, params)` feeds the frame's bars one at a
time through `LiveSMC`, exactly as a strategy's `MarketState` does, and
turns the events into the row-aligned tables the chart draws (the same
columns as the offline detectors, so one drawing code serves both):

* swings: the swings the detector reported, less those a later extreme of
  the same run superseded;
* BOS/CHoCH: each `StructureBreak`, drawn from the broken swing to the bar
  whose close broke it (the bar at which a strategy learnt of it);
* fair value gaps and order blocks: from the bar that made them until the
  bar that mitigated them or the bar at which the detector's cap dropped
  them (after that no strategy could see them);
* liquidity: each pool at its anchor swing with its latest level, until the
  sweep.

`swing_lengths(config)` says which swing length the daemon's detectors use
on each timeframe, so a chart shows the structure the strategies saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from fractald.core.models import Bar
from fractald.core.smc.live import (
    FairValueGap,
    FVGMitigated,
    LiquidityPool,
    LiquiditySwept,
    LiveSMC,
    LiveSMCParams,
    OrderBlock,
    OrderBlockMitigated,
    SMCEvent,
    StructureBreak,
    StructureKind,
    SwingPoint,
)
from fractald.core.strategies.base import TIMEFRAME_DEFAULTS
from fractald.reporting.overlays import SmcOverlays

NAN = math.nan


def frame_bars(frame: pd.DataFrame, symbol: str, timeframe: str) -> list[Bar]:
    """The frame's rows as closed bars of `timeframe` (what the detectors are fed)."""
    opens = frame.index.as_unit("ms").asi8
    cols = [frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")]
    volume = frame["volume"].to_numpy(dtype=float) if "volume" in frame else [0.0] * len(frame)
    return [
        Bar(
            symbol,
            timeframe,
            int(opens[i]),
            float(cols[0][i]),
            float(cols[1][i]),
            float(cols[2][i]),
            float(cols[3][i]),
            float(volume[i]),
        )
        for i in range(len(frame))
    ]


class _Collector:
    """Turns the detector's events, bar by bar, into the drawn structures."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.swings: dict[int, tuple[int, float]] = {}
        self.breaks: dict[int, StructureBreak] = {}
        self.fvgs: dict[int, list[Any]] = {}  # index -> [direction, top, bottom, end]
        self.obs: dict[int, list[Any]] = {}
        self.pools: dict[int, list[Any]] = {}  # anchor -> [direction, level, swept]

    def take(self, event: SMCEvent) -> None:
        if isinstance(event, SwingPoint):
            if event.supersedes is not None:
                self.swings.pop(event.supersedes, None)
            self.swings[event.index] = (int(event.direction), event.level)
        elif isinstance(event, StructureBreak):
            self.breaks[event.index] = event
        elif isinstance(event, FVGMitigated):
            self._end(self.fvgs, event.index, event.known_index)
        elif isinstance(event, FairValueGap):
            self.fvgs[event.index] = [int(event.direction), event.top, event.bottom, NAN]
        elif isinstance(event, OrderBlockMitigated):
            self._end(self.obs, event.index, event.known_index)
        elif isinstance(event, OrderBlock):
            self.obs[event.index] = [int(event.direction), event.top, event.bottom, NAN]
        elif isinstance(event, LiquidityPool):
            self.pools[event.index] = [int(event.direction), event.level, NAN]
        elif isinstance(event, LiquiditySwept):
            self.pools[event.index] = [int(event.direction), event.level, event.swept_index]

    @staticmethod
    def _end(zones: dict[int, list[Any]], index: int, at: int) -> None:
        zone = zones.get(index)
        if zone is not None and math.isnan(zone[3]):
            zone[3] = at

    def forget(self, zones: dict[int, list[Any]], alive: set[int], at: int) -> None:
        """Zones the detector no longer holds (mitigated or dropped by its cap) end at `at`."""
        for index, zone in zones.items():
            if math.isnan(zone[3]) and index not in alive:
                zone[3] = at

    def overlays(self) -> SmcOverlays:
        return SmcOverlays(
            swings=self._swing_table(),
            fvg=self._zone_table(self.fvgs, "FVG"),
            bos_choch=self._break_table(),
            ob=self._zone_table(self.obs, "OB"),
            liquidity=self._pool_table(),
        )

    def _column(self, rows: Mapping[int, float]) -> list[float]:
        return [rows.get(i, NAN) for i in range(self.n)]

    def _swing_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "HighLow": self._column({i: d for i, (d, _) in self.swings.items()}),
                "Level": self._column({i: lv for i, (_, lv) in self.swings.items()}),
            }
        )

    def _zone_table(self, zones: dict[int, list[Any]], name: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                name: self._column({i: z[0] for i, z in zones.items()}),
                "Top": self._column({i: z[1] for i, z in zones.items()}),
                "Bottom": self._column({i: z[2] for i, z in zones.items()}),
                "MitigatedIndex": self._column({i: z[3] for i, z in zones.items()}),
            }
        )

    def _break_table(self) -> pd.DataFrame:
        b = self.breaks
        return pd.DataFrame(
            {
                "BOS": self._column(
                    {i: int(e.direction) for i, e in b.items() if e.kind is StructureKind.BOS}
                ),
                "CHOCH": self._column(
                    {i: int(e.direction) for i, e in b.items() if e.kind is StructureKind.CHOCH}
                ),
                "Level": self._column({i: e.level for i, e in b.items()}),
                "BrokenIndex": self._column({i: e.broken_index for i, e in b.items()}),
            }
        )

    def _pool_table(self) -> pd.DataFrame:
        p = self.pools
        return pd.DataFrame(
            {
                "Liquidity": self._column({i: z[0] for i, z in p.items()}),
                "Level": self._column({i: z[1] for i, z in p.items()}),
                "Swept": self._column({i: z[2] for i, z in p.items()}),
            }
        )


def live_events(
    frame: pd.DataFrame, timeframe: str, params: LiveSMCParams, symbol: str = "CHART"
) -> list[tuple[SMCEvent, ...]]:
    """The events `LiveSMC(params)` reports at each bar of `frame` (one tuple per bar)."""
    smc = LiveSMC(params)
    return [smc.update(bar) for bar in frame_bars(frame, symbol, timeframe)]


def live_overlays(
    frame: pd.DataFrame, timeframe: str, params: LiveSMCParams, symbol: str = "CHART"
) -> SmcOverlays:
    """What the live detectors knew, bar by bar, as the chart's structure tables."""
    smc = LiveSMC(params)
    out = _Collector(len(frame))
    for bar in frame_bars(frame, symbol, timeframe):
        for event in smc.update(bar):
            out.take(event)
        at = smc.bars_seen - 1
        out.forget(out.fvgs, {g.index for g in smc.active_fvgs}, at)
        out.forget(out.obs, {b.index for b in smc.active_order_blocks}, at)
    return out.overlays()


def default_swing_length(timeframe: str) -> int:
    return int(TIMEFRAME_DEFAULTS.get(timeframe, {"swing_length": 5})["swing_length"])


def chart_settings(config: Any, symbol: str) -> tuple[dict[str, int], float]:
    """From `config`, as the daemon builds it: the swing length of the detectors trading runs per
    timeframe (a strategy's own on its timeframe, the defaults on the trend ones) and the
    instrument's tick size, so a chart shows the structure the strategies saw."""
    from fractald.core.execution.engine import TradingEngine
    from fractald.pipeline_factory import engine_params, pipeline_from_config

    symbols = list(config.feed.symbols)
    engine = TradingEngine(engine_params(config))
    portfolio = pipeline_from_config(config, [symbol] if symbol in symbols else symbols[:1], engine)
    pipeline = next(iter(portfolio.pipelines.values()))
    lengths = {tf: default_swing_length(tf) for tf in TIMEFRAME_DEFAULTS}
    lengths.update(pipeline.swing_lengths())
    return lengths, engine.instrument(symbol).tick_size
