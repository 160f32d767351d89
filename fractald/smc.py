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

from fractald.core.smc import offline
from fractald.core.smc.offline import *  # noqa: F403 - this module IS the public face of it
from fractald.core.smc.offline import (
    bos_choch,
    fvg,
    liquidity,
    ob,
    previous_high_low,
    retracements,
    sessions,
    swing_highs_lows,
)

__all__ = [*offline.__all__, "smc"]


class smc:  # noqa: N801 - lower case on purpose, to mirror `from smartmoneyconcepts import smc`
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
