"""What the SMC detectors found on one timeframe, as frames a chart draws.

Its own module so the chart and the live detectors' overlays
(`fractald.reporting.live_overlays`) both use it without importing each other.
"""

from __future__ import annotations

import attrs
import pandas as pd


@attrs.frozen(slots=True)
class SmcOverlays:
    """The detector outputs for one timeframe, row-aligned with its OHLC frame.

    Columns as smartmoneyconcepts 0.0.27 returns them; indices such as
    BrokenIndex or MitigatedIndex are bar positions in the frame.
    """

    swings: pd.DataFrame
    fvg: pd.DataFrame
    bos_choch: pd.DataFrame
    ob: pd.DataFrame
    liquidity: pd.DataFrame
