"""What the daemon does with a BarCorrection from the feed: the ledger's candle and the operator.

A bar that went out short of trades (or as a placeholder) is followed by the
venue's true bar. The stored candle detection ran on is replaced, so the next
start rebuilds detection over the truth; the correction is logged and sent to
`fractalctl tail` (`bar_corrected`). The running strategies have acted on the
bar they saw: nothing they decided is redone.
"""

from __future__ import annotations

from typing import Any

from fractald.core.bars import BarCorrection
from fractald.session_state import candle_row


async def apply_correction(correction: BarCorrection, ledger: Any, bus: Any, log: Any) -> int:
    """Store the true bar over the one that went out; returns the ledger rows changed."""
    row = candle_row(correction.bar)
    changed: int = await ledger.run(lambda led: led.correct_candle(row))
    bar, was = correction.bar, correction.was
    detail = {
        "symbol": bar.symbol,
        "timeframe": bar.timeframe,
        "ts_open": bar.ts_open,
        "reason": correction.reason,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "ledger_rows": changed,
        "was": None
        if was is None
        else {
            "open": was.open,
            "high": was.high,
            "low": was.low,
            "close": was.close,
            "volume": was.volume,
            "complete": was.complete,
        },
    }
    log.info("bar_correction_applied", **detail)
    bus.publish("bar_corrected", detail)
    return changed
