"""IB's historical-data pacing as a budget: how long a request must wait to break none of its rules.

IB answers a request that breaks one of these with error 162, "Historical
Market Data Service error message:Historical data request pacing violation",
instead of the bars (TWS API guide, "Historical Data Limitations"):

* no identical request (same contract, end, duration, bar size, what to show,
  RTH flag) within 15 seconds;
* no six or more requests for the same contract, exchange and tick type
  within two seconds;
* no more than 60 requests within any ten minutes.

IB enforces them strictly for bars of 30 s or less and throttles bigger ones
more loosely; the feed keeps to them for its 1-minute bars anyway, since a
refused backfill costs more than a delayed one. Sans-I/O: the caller gives the
time (trio's clock), asks `wait_s`, sleeps or gives up, then says `sent`.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Hashable
from typing import Any

import attrs


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen(slots=True)
class HistoryLimits:
    """IB's three pacing rules (the defaults are IB's), and the margin kept inside them."""

    requests: int = attrs.field(default=60, validator=_positive)  # at most this many ...
    window_s: float = attrs.field(default=600.0, validator=_positive)  # ... in any such span
    identical_s: float = attrs.field(default=15.0, validator=_positive)
    per_contract: int = attrs.field(default=5, validator=_positive)  # at most this many ...
    per_contract_s: float = attrs.field(default=2.0, validator=_positive)  # ... in any such span
    # Our clock and IB's differ a little: a request waits this much past the bare limit.
    margin_s: float = attrs.field(default=0.25, validator=attrs.validators.ge(0))


@attrs.frozen(slots=True)
class _Sent:
    at: float
    request: Hashable
    contract: Hashable


class HistoryPacing:
    """The requests sent in the last window, and what the next one must wait for."""

    def __init__(self, limits: HistoryLimits | None = None) -> None:
        self.limits = limits or HistoryLimits()
        self._sent: collections.deque[_Sent] = collections.deque()
        self._held_until = -math.inf
        self.waited = 0  # requests that had to wait (for status and the log)

    def wait_s(self, now: float, request: Hashable, contract: Hashable) -> float:
        """Seconds from `now` until `request` (of `contract`) breaks no rule; 0 when it may go."""
        lim = self.limits
        self._forget(now)
        sent = self._sent
        due = [self._held_until]
        if len(sent) >= lim.requests:
            due.append(sent[-lim.requests].at + lim.window_s)
        same = [s.at for s in sent if s.request == request]
        if same:
            due.append(same[-1] + lim.identical_s)
        mine = [s.at for s in sent if s.contract == contract]
        if len(mine) >= lim.per_contract:
            due.append(mine[-lim.per_contract] + lim.per_contract_s)
        latest = max(due)
        return 0.0 if latest == -math.inf else max(0.0, latest + lim.margin_s - now)

    def sent(self, now: float, request: Hashable, contract: Hashable) -> None:
        """`request` went out at `now`: it counts against every rule from here on."""
        self._sent.append(_Sent(now, request, contract))

    def refused(self, now: float, hold_s: float) -> None:
        """IB said "pacing violation" anyway (another client of this TWS spent the budget):
        nothing goes out for `hold_s`."""
        self._held_until = max(self._held_until, now + hold_s)

    def _forget(self, now: float) -> None:
        horizon = max(self.limits.window_s, self.limits.identical_s, self.limits.per_contract_s)
        while self._sent and self._sent[0].at <= now - horizon:
            self._sent.popleft()
