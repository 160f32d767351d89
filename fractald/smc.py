"""Smart Money Concepts detectors, drop-in compatible with smartmoneyconcepts 0.0.27.

Both spellings work::

    from fractald import smc
    smc.fvg(df)

    from fractald.smc import smc          # like `from smartmoneyconcepts import smc`
    smc.bos_choch(df, smc.swing_highs_lows(df, 20))

The functions are vectorised NumPy re-implementations (fractald.core.smc.offline) that
return the same columns and values as the reference library, much faster. They see the
whole frame (offline); do not feed them to live decisions bar by bar.
"""

from __future__ import annotations

from fractald.core.smc.offline import (
    MissingColumnError,
    SmcInputError,
    bos_choch,
    fvg,
    liquidity,
    ob,
    previous_high_low,
    retracements,
    sessions,
    swing_highs_lows,
)

__all__ = [
    "MissingColumnError",
    "SmcInputError",
    "bos_choch",
    "fvg",
    "liquidity",
    "ob",
    "previous_high_low",
    "retracements",
    "sessions",
    "smc",
    "swing_highs_lows",
]


class smc:  # lower case on purpose, like `from smartmoneyconcepts import smc`
    """Namespace mirroring the reference library's `smc` class (all static methods)."""

    __version__ = "0.0.27"  # the reference version whose behaviour this reproduces

    fvg = staticmethod(fvg)
    swing_highs_lows = staticmethod(swing_highs_lows)
    bos_choch = staticmethod(bos_choch)
    ob = staticmethod(ob)
    liquidity = staticmethod(liquidity)
    previous_high_low = staticmethod(previous_high_low)
    sessions = staticmethod(sessions)
    retracements = staticmethod(retracements)
