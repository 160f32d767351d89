"""What the K1-K5 templates share: session settings, a tick-based stop, and one setup builder.

The original v1 bot sized every template by a stop in ticks; here a template
either takes its stop from structure (the bar, the range, the sweep) or, with
`stop_ticks > 0`, exactly that many ticks from entry, and a stop farther than
the portfolio's tick limit is denied by risk (see fractald.core.risk).
"""

from __future__ import annotations

from typing import Any

import attrs

from fractald.core.models import Side
from fractald.core.smc._live_validate import float_in, int_in
from fractald.core.strategies.base import BarContext, Setup, Strategy, StrategyParams
from fractald.core.strategies.sessions import MINUTE_MS, in_session, session_start


@attrs.frozen(slots=True)
class KParams(StrategyParams):
    session_start_minute: int = attrs.field(default=0, validator=int_in(0, 1439))  # UTC
    session_minutes: int = attrs.field(default=1440, validator=int_in(1, 1440))
    skip_first_minutes: int = attrs.field(default=0, validator=int_in(0, 1440))
    no_entry_last_minutes: int = attrs.field(default=0, validator=int_in(0, 1440))
    tick_size: float = attrs.field(default=0.1, validator=float_in(1e-9, 1e6))
    stop_ticks: int = attrs.field(default=0, validator=int_in(0, 100_000))  # 0: stop from structure
    min_confidence: float = attrs.field(default=0.0, validator=float_in(0.0, 100.0))


class KTemplate(Strategy):
    """Base of the K templates: entries only inside the session's entry window."""

    params: KParams

    def entry_window_open(self, ts_ms: int) -> bool:
        p = self.params
        # A bar closing at `ts_ms` belongs to the session its last millisecond is in.
        if not in_session(ts_ms - 1, p.session_start_minute, p.session_minutes):
            return False
        into_ms = ts_ms - session_start(ts_ms - 1, p.session_start_minute)
        return (
            p.skip_first_minutes * MINUTE_MS
            < into_ms
            <= (p.session_minutes - p.no_entry_last_minutes) * MINUTE_MS
        )

    def k_setup(
        self,
        ctx: BarContext,
        side: Side,
        structural_stop: float,
        reasons: tuple[dict[str, Any], ...],
        *,
        invalidation: float | None = None,
        **factors: Any,
    ) -> Setup | None:
        p = self.params
        if p.stop_ticks:
            structural_stop = ctx.bar.close - side.sign * p.stop_ticks * p.tick_size
            setup = self.make_setup(
                ctx, side, structural_stop, reasons, invalidation=invalidation, **factors
            )
            # make_setup widens to min_risk_atr; a tick stop is exact by design
            return None if setup is None else attrs.evolve(setup, stop=structural_stop)
        return self.make_setup(
            ctx, side, structural_stop, reasons, invalidation=invalidation, **factors
        )
