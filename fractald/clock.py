"""Wall-clock time for the daemon's own record: a leaf module, so any shell module may import it.

Never used for trading decisions (the core takes event time from the data).
"""

from __future__ import annotations

import time


def wall_ms() -> int:
    """Milliseconds since the epoch, for the daemon's record (starts, stops, alerts, metrics)."""
    return time.time_ns() // 1_000_000
