"""Position sizing: fixed-fractional risk from the entry-to-stop distance.

quantity = equity * risk_fraction * confidence_scale * strategy_scale / |entry - stop|,
rounded down to the lot size, clamped to the max notional. A size that
rounds to zero, or falls below the venue's minimums, is a coded Denial,
never a zero order. Rounding is always down: the risk taken never
exceeds the budget.
"""

from __future__ import annotations

import math

import attrs

from fractald.core.models import Side, Signal
from fractald.core.risk.denial import Denial, DenialCode, deny
from fractald.core.risk.params import SizingParams, in_range

_EPS = 1e-9


@attrs.frozen(slots=True)
class Instrument:
    """What the venue allows for one symbol."""

    symbol: str
    lot_size: float = attrs.field(default=0.001, validator=in_range(0, 1e9, lo_open=True))
    tick_size: float = attrs.field(default=0.1, validator=in_range(0, 1e9, lo_open=True))
    min_qty: float = attrs.field(default=0.0, validator=in_range(0, 1e12))

    def floor_qty(self, qty: float) -> float:
        """Round a quantity down to a whole number of lots (tolerant of float noise)."""
        lots = math.floor(qty / self.lot_size + _EPS)
        return round(lots * self.lot_size, 12)

    def round_price(self, price: float, direction: int = 0) -> float:
        """Round to the tick: direction -1 down, +1 up, 0 nearest."""
        ticks = price / self.tick_size
        if direction < 0:
            n = math.floor(ticks + _EPS)
        elif direction > 0:
            n = math.ceil(ticks - _EPS)
        else:
            n = round(ticks)
        return round(n * self.tick_size, 12)


@attrs.frozen(slots=True)
class SizedOrder:
    """The result of sizing: how much, at what prices, and the money at risk."""

    quantity: float
    entry: float
    stop: float
    risk_amount: float
    notional: float
    confidence_scale: float


def confidence_scale(confidence: float, p: SizingParams) -> float:
    """Linear from min_scale at confidence_low to max_scale at confidence_high, clamped."""
    t = (confidence - p.confidence_low) / (p.confidence_high - p.confidence_low)
    t = min(1.0, max(0.0, t))
    return p.min_scale + (p.max_scale - p.min_scale) * t


def size_signal(
    signal: Signal,
    equity: float,
    instrument: Instrument,
    params: SizingParams,
    strategy_scale: float = 1.0,
    entry: float | None = None,
) -> SizedOrder | Denial:
    """Size a signal, or say why not. `strategy_scale` comes from the reliability loop.

    `entry` overrides the signal's entry: a market entry fills near the current
    price, and the risk to the stop must be measured from there.
    """
    if not (math.isfinite(equity) and equity > 0):
        return deny(
            DenialCode.NO_EQUITY,
            f"equity must be positive to size a trade, got {equity}",
            equity=equity,
        )
    if signal.confidence < params.min_confidence:
        return deny(
            DenialCode.CONFIDENCE_TOO_LOW,
            f"confidence {signal.confidence} is below the minimum {params.min_confidence}",
            value=signal.confidence,
            limit=params.min_confidence,
        )
    # Entry to the nearest tick; the stop rounds away from the entry so the
    # rounded risk per unit is never smaller than the signal's.
    entry = instrument.round_price(signal.entry if entry is None else entry)
    stop = instrument.round_price(signal.stop, -1 if signal.side is Side.BUY else 1)
    risk_per_unit = abs(entry - stop)
    if risk_per_unit <= 0 or (stop - entry) * signal.side.sign >= 0:
        return deny(
            DenialCode.BAD_SIGNAL,
            "stop is not on the losing side of entry after rounding",
            entry=entry,
            stop=stop,
        )
    if params.max_stop_ticks and risk_per_unit > params.max_stop_ticks * instrument.tick_size * (
        1 + _EPS
    ):
        return deny(
            DenialCode.STOP_TICKS,
            f"stop {risk_per_unit / instrument.tick_size:.6g} ticks from entry is over the limit "
            f"{params.max_stop_ticks}",
            value=risk_per_unit / instrument.tick_size,
            limit=params.max_stop_ticks,
        )
    scale = confidence_scale(signal.confidence, params) * strategy_scale
    fraction = params.risk_fraction if signal.risk_fraction is None else signal.risk_fraction
    budget = equity * fraction * scale
    if params.max_risk_money:
        if instrument.floor_qty(
            max(instrument.min_qty, instrument.lot_size)
        ) * risk_per_unit > params.max_risk_money * (1 + _EPS):
            smallest = max(instrument.min_qty, instrument.lot_size)
            return deny(
                DenialCode.RISK_MONEY,
                f"the smallest size ({smallest}) risks {smallest * risk_per_unit:.6g}, over the "
                f"limit {params.max_risk_money} per trade",
                value=smallest * risk_per_unit,
                limit=params.max_risk_money,
            )
        budget = min(budget, params.max_risk_money)
    qty = instrument.floor_qty(budget / risk_per_unit)
    if qty * entry > params.max_notional:
        qty = instrument.floor_qty(params.max_notional / entry)
    if qty <= 0 or qty < instrument.min_qty:
        return deny(
            DenialCode.SIZE_ROUNDS_TO_ZERO,
            f"risk budget {budget:.6g} over {risk_per_unit:.6g} per unit rounds to "
            f"{qty} (lot {instrument.lot_size}, min qty {instrument.min_qty})",
            budget=budget,
            risk_per_unit=risk_per_unit,
            quantity=qty,
            lot_size=instrument.lot_size,
            min_qty=instrument.min_qty,
        )
    notional = qty * entry
    if notional < params.min_notional:
        # Raising the size to the minimum would risk more than the budget: deny instead.
        return deny(
            DenialCode.BELOW_MIN_NOTIONAL,
            f"notional {notional:.6g} is below the minimum {params.min_notional}",
            value=notional,
            limit=params.min_notional,
        )
    return SizedOrder(
        quantity=qty,
        entry=entry,
        stop=stop,
        risk_amount=qty * risk_per_unit,
        notional=notional,
        confidence_scale=scale,
    )
