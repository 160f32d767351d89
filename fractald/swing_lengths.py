"""`TF=N,...`: the detectors' swing length per timeframe, as `fractald chart` and
`fractalctl chart` take it (a leaf module: fractalctl parses it without pandas)."""

from __future__ import annotations

from fractald.core.models import TIMEFRAME_MS


def parse_swing_lengths(text: str) -> dict[str, int]:
    """`15m=4,1h=5` as {timeframe: swing length}; a bad item is a ValueError naming it."""
    out: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        tf, sep, value = item.partition("=")
        tf = tf.strip()
        if not sep or tf not in TIMEFRAME_MS:
            raise ValueError(
                f"swing length {item!r}: want TIMEFRAME=N with TIMEFRAME one of "
                f"{', '.join(TIMEFRAME_MS)}"
            )
        try:
            n = int(value)
        except ValueError:
            n = 0
        if not 1 <= n <= 500:
            raise ValueError(f"swing length {item!r}: N must be a whole number in 1..500")
        out[tf] = n
    if not out:
        raise ValueError("swing lengths: none given (want e.g. 15m=4,1h=5)")
    return out
