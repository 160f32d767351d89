"""The confidence factor model: how sure a setup is, 0..100, and why.

Each factor scores 0..1; confidence is 100 x the weighted mean of the
factors that apply to the setup (a gap has no sweep depth, so that factor
is left out and the other weights share its part), times the strategy's
learned reliability multiplier, clipped to 0..100. The weights are
`ConfidenceWeights` (config: [strategies.confidence]); the breakdown goes
into the signal's reasons so an operator sees what drove the number.

Factors (inputs in `Factors`; scores are piecewise linear, so they are easy
to reason about and test):

* htf_alignment: the trend (last BOS/CHoCH direction) on each configured
  timeframe, weighted by timeframe length, agreeing with the trade side:
  agree 1, no trend yet 0.5, against 0. H4, H1 and M15 all agreeing = 1.
* sweep_depth: how far the sweep went beyond the pool, in ATR. A stop hunt
  that takes the stops and comes back is shallow but real: 0 at 0 ATR,
  rising to 1 at `sweep_sweet_atr`, flat to 2x that, then falling to 0 at
  5x (a deep push through is a breakout, not a hunt).
* gap_size: gap height over ATR, 0 at 0, 1 at `gap_full_atr` and above.
* ob_volume: the order block's volume over the mean volume of recent bars:
  0 at <= 0.5, 1 at >= 2.
* opposing_liquidity: room to the nearest opposing liquidity (pool or
  swing) in units of the trade's risk: 0 at 0 R, 1 at >= 3 R. Unknown room
  (nothing opposing in sight) scores 0.75.
* volatility_regime: ATR over its slow average; 1 at a ratio of 1,
  falling linearly in log terms to 0 at 1/3 or 3 (dead or wild markets).
* session: the UTC hour: the London/New York overlap (13-16) 1.0, London
  (07-13) or New York (16-21) 0.8, the rest (Asia, late US) 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs

from fractald.core.models import TIMEFRAME_MS, Side
from fractald.core.smc._live_validate import float_in

MS_PER_HOUR = 3_600_000


def _w(default: float) -> float:
    return attrs.field(default=default, validator=float_in(0.0, 100.0))  # type: ignore[no-any-return]


@attrs.frozen(slots=True)
class ConfidenceWeights:
    """Weights (>= 0) of each factor, and the shape constants of their scores."""

    htf_alignment: float = _w(3.0)
    sweep_depth: float = _w(1.5)
    gap_size: float = _w(1.0)
    ob_volume: float = _w(1.0)
    opposing_liquidity: float = _w(1.5)
    volatility_regime: float = _w(1.0)
    session: float = _w(0.5)
    sweep_sweet_atr: float = attrs.field(default=0.3, validator=float_in(0.01, 10.0))
    gap_full_atr: float = attrs.field(default=1.0, validator=float_in(0.01, 10.0))


@attrs.frozen(slots=True)
class Factors:
    """Raw inputs to the model; None = the factor does not apply to this setup."""

    side: Side
    trends: Mapping[str, int] = attrs.field(factory=dict)  # timeframe -> +1 / -1 / 0
    sweep_depth_atr: float | None = None
    gap_atr: float | None = None
    ob_volume_ratio: float | None = None
    room_r: float | None = None  # None: no opposing liquidity known
    atr_ratio: float | None = None
    ts_event: int | None = None


def _clip01(x: float) -> float:
    return 0.0 if x < 0.0 else min(x, 1.0)


def score_htf_alignment(side: Side, trends: Mapping[str, int]) -> float:
    if not trends:
        return 0.5
    total = weight = 0.0
    for tf, trend in trends.items():
        w = math.log2(TIMEFRAME_MS[tf] / 60_000 + 1.0)  # longer timeframes count more, gently
        agree = 0.5 if trend == 0 else (1.0 if trend == side.sign else 0.0)
        total += w * agree
        weight += w
    return total / weight


def score_sweep_depth(depth_atr: float, sweet: float) -> float:
    if depth_atr <= sweet:
        return _clip01(depth_atr / sweet)
    if depth_atr <= 2 * sweet:
        return 1.0
    return _clip01(1.0 - (depth_atr - 2 * sweet) / (3 * sweet))


def score_gap_size(gap_atr: float, full: float) -> float:
    return _clip01(gap_atr / full)


def score_ob_volume(ratio: float) -> float:
    return _clip01((ratio - 0.5) / 1.5)


def score_room(room_r: float | None) -> float:
    return 0.75 if room_r is None else _clip01(room_r / 3.0)


def score_volatility(atr_ratio: float) -> float:
    if atr_ratio <= 0:
        return 0.0
    return _clip01(1.0 - abs(math.log(atr_ratio)) / math.log(3.0))


def score_session(ts_event: int) -> float:
    hour = (ts_event // MS_PER_HOUR) % 24
    if 13 <= hour < 16:
        return 1.0
    if 7 <= hour < 21:
        return 0.8
    return 0.5


@attrs.frozen(slots=True)
class Confidence:
    value: float  # 0..100
    scores: Mapping[str, float]  # factor -> 0..1, only the factors that applied
    multiplier: float

    def as_reason(self) -> dict[str, object]:
        return {
            "kind": "confidence",
            "value": round(self.value, 2),
            "multiplier": round(self.multiplier, 3),
            "factors": {k: round(v, 3) for k, v in self.scores.items()},
        }


@attrs.frozen(slots=True)
class ConfidenceModel:
    weights: ConfidenceWeights = attrs.Factory(ConfidenceWeights)

    def scores(self, f: Factors) -> dict[str, float]:
        w = self.weights
        out = {
            "htf_alignment": score_htf_alignment(f.side, f.trends),
            "opposing_liquidity": score_room(f.room_r),
        }
        if f.sweep_depth_atr is not None:
            out["sweep_depth"] = score_sweep_depth(f.sweep_depth_atr, w.sweep_sweet_atr)
        if f.gap_atr is not None:
            out["gap_size"] = score_gap_size(f.gap_atr, w.gap_full_atr)
        if f.ob_volume_ratio is not None:
            out["ob_volume"] = score_ob_volume(f.ob_volume_ratio)
        if f.atr_ratio is not None:
            out["volatility_regime"] = score_volatility(f.atr_ratio)
        if f.ts_event is not None:
            out["session"] = score_session(f.ts_event)
        return out

    def score(self, f: Factors, multiplier: float = 1.0) -> Confidence:
        scores = self.scores(f)
        total = weight = 0.0
        for name, s in scores.items():
            w = getattr(self.weights, name)
            total += w * s
            weight += w
        base = total / weight if weight > 0 else 0.5
        return Confidence(max(0.0, min(100.0, 100.0 * base * multiplier)), scores, multiplier)
