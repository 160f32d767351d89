"""Every performance figure, computed in one place.

The backtest, `fractalctl report`, the equity plot, the metrics and the
circuit breakers all take their drawdown, return, ratios, win rate and
profit factor from here, so the same run gives the same numbers in each.

Units (one convention, everywhere in data and JSON): a ratio of two
amounts is a *fraction* (0.05 means 5 %), whatever the field's name
(`pnl_pct`, `max_pct`, `win_rate`, `drawdown`); money is in the account
currency; times are epoch milliseconds. Only text meant for people shows
percent (`format_pct`).

Definitions:
- drawdown at a point: (running peak - equity) / running peak, >= 0;
  the maximum drawdown is its largest value over the curve, taken at the
  curve's full resolution (an intraday dip is real risk).
- return: (end - start) / start.
- daily returns: from one UTC day's last equity to the next's, the first
  from the equity the period started with.
- Sharpe: mean / sample standard deviation of daily returns x sqrt(365);
  Sortino: mean x 365 / (root-mean-square of the negative daily returns x
  sqrt(365)) (empyrical-reloaded's definitions, computed here with NumPy so
  a report does not import SciPy; tests/test_figures.py checks them against
  empyrical); Calmar: the compounded
  annual return over the maximum drawdown above (the same drawdown the
  report shows). Crypto trades every day, hence 365 periods a year.
- Ratios need `MIN_RATIO_RETURNS` daily returns: fewer give None and a note
  saying why (two returns can give a Sharpe of 10 that means nothing).
- win rate: winning trades / all trades (breakeven trades count as not
  winning); profit factor: gross profit / |gross loss|, None without losses.

By design, the circuit breakers watch the *current* drawdown from the peak
since the last resume, with equity read at every intrabar price the paper
broker walks, while reports use the recorded equity curve (one mark per
base bar); a breaker's drawdown can therefore be a little deeper than the
report's over the same stretch. Both use `drawdown_fraction`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np

MS_PER_DAY = 86_400_000
PERIODS_PER_YEAR = 365
MIN_RATIO_RETURNS = 20


def format_pct(fraction: float | None, digits: int = 2, sign: bool = False) -> str:
    """A fraction as a percent for people: 0.0512 -> '5.12%' ('-' when undefined)."""
    if fraction is None or not math.isfinite(fraction):
        return "-"
    return f"{fraction * 100:{'+' if sign else ''}.{digits}f}%"


def drawdown_fraction(peak: float, equity: float) -> float:
    """How far `equity` is below `peak`, as a fraction of the peak (0 at or above it)."""
    if peak <= 0:
        return 0.0
    return max(0.0, (peak - equity) / peak)


def total_return(start: float, end: float) -> float:
    """(end - start) / start; `start` must be positive."""
    if not start > 0:
        raise ValueError(f"a return needs a positive starting equity, got {start!r}")
    return (end - start) / start


# --------------------------------------------------------------------------- drawdown


@attrs.frozen(slots=True)
class Drawdown:
    """The deepest peak-to-trough fall of an equity curve and how long it lasted.

    `duration_ms` runs from the peak to the recovery (equity back at the
    peak), or to the end of the curve when `recovered` is False.
    """

    max_pct: float  # fraction of the peak, >= 0 (0.12 = 12 %)
    max_abs: float  # currency, >= 0
    peak_ms: int | None
    trough_ms: int | None
    recovery_ms: int | None
    recovered: bool
    duration_ms: int


NO_DRAWDOWN = Drawdown(0.0, 0.0, None, None, None, True, 0)


def drawdown_series(values: np.ndarray) -> np.ndarray:
    """The drawdown (fraction of the running peak, >= 0) at every point of `values`."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    peak = np.maximum.accumulate(values)
    return np.where(peak > 0, (peak - values) / np.where(peak > 0, peak, 1.0), 0.0)


def max_drawdown(ts: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray) -> Drawdown:
    """The maximum drawdown of the curve (ts_ms[i], values[i]), with its peak, trough and recovery."""
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    if len(values) != len(ts):
        raise ValueError(f"{len(ts)} timestamps for {len(values)} equity values")
    if len(values) < 2:
        return NO_DRAWDOWN
    dd = drawdown_series(values)
    trough = int(np.argmax(dd))
    if dd[trough] <= 0:
        return NO_DRAWDOWN
    peak = int(np.argmax(values[: trough + 1]))
    after = np.nonzero(values[trough:] >= values[peak])[0]
    recovery = trough + int(after[0]) if len(after) else None
    end = recovery if recovery is not None else len(values) - 1
    return Drawdown(
        max_pct=float(dd[trough]),
        max_abs=float(values[peak] - values[trough]),
        peak_ms=int(ts[peak]),
        trough_ms=int(ts[trough]),
        recovery_ms=int(ts[recovery]) if recovery is not None else None,
        recovered=recovery is not None,
        duration_ms=int(ts[end] - ts[peak]),
    )


# --------------------------------------------------------------------------- returns and ratios


def daily_returns(
    ts: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Returns between UTC-day closes (last equity of each day), starting from `values[0]`.

    `values[0]` is the anchor (the equity the period started with); days
    without a point carry the last close forward (a 0 return).
    """
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.array([], dtype=float)
    days = ts[1:] // MS_PER_DAY
    last_of_day = np.nonzero(np.diff(np.append(days, days[-1] + 1)))[0]
    day_numbers, closes = days[last_of_day], values[1:][last_of_day]
    filled = np.empty(int(day_numbers[-1] - day_numbers[0]) + 1, dtype=float)
    filled[day_numbers - day_numbers[0]] = closes
    present = np.zeros(filled.size, dtype=bool)
    present[day_numbers - day_numbers[0]] = True
    index = np.maximum.accumulate(np.where(present, np.arange(filled.size), 0))
    chain = np.concatenate([[values[0]], filled[index]])
    return np.diff(chain) / chain[:-1]


def annual_return(daily: np.ndarray, periods_per_year: int = PERIODS_PER_YEAR) -> float | None:
    """The compounded return per year the daily returns imply."""
    if len(daily) == 0:
        return None
    growth = float(np.prod(1.0 + np.asarray(daily, dtype=float)))
    if growth <= 0:
        return -1.0
    return growth ** (periods_per_year / len(daily)) - 1.0


@attrs.frozen(slots=True)
class Ratios:
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    returns: int  # how many daily returns they come from
    note: str | None  # why they are None, when they are


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def sharpe_ratio(daily: np.ndarray, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Mean over sample standard deviation of the returns (NaNs left out) x sqrt(periods a year).

    empyrical's definition: NaN below two returns; equal returns have no
    dispersion (0, not the ~1e-18 residue of the mean), so their ratio is +-inf
    or NaN, never an arbitrary large number.
    """
    r = np.asarray(daily, dtype=float)
    r = r[~np.isnan(r)]
    if len(r) < 2:
        return math.nan
    std = 0.0 if bool((r == r[0]).all()) else float(np.std(r, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.mean(r), std) * math.sqrt(periods_per_year))


def sortino_ratio(daily: np.ndarray, periods_per_year: int = PERIODS_PER_YEAR) -> float:
    """Annualised mean return over annualised downside risk (root-mean-square of the losses, gains as 0).

    empyrical's definition (required return 0): NaN below two returns.
    """
    r = np.asarray(daily, dtype=float)
    if len(r) < 2:
        return math.nan
    downside = np.clip(r, -np.inf, 0)
    risk = math.sqrt(float(np.nanmean(np.square(downside)))) * math.sqrt(periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.divide(np.nanmean(r) * periods_per_year, risk))


def ratios(
    daily: np.ndarray,
    max_drawdown_fraction: float,
    periods_per_year: int = PERIODS_PER_YEAR,
    min_returns: int = MIN_RATIO_RETURNS,
) -> Ratios:
    """Sharpe, Sortino and Calmar of `daily` returns, or None for each with a note when too few."""
    daily = np.asarray(daily, dtype=float)
    n = len(daily)
    if n < max(2, min_returns):
        return Ratios(
            None,
            None,
            None,
            n,
            f"ratios need at least {max(2, min_returns)} daily returns; this period has {n}",
        )
    annual = annual_return(daily, periods_per_year)
    calmar = (
        annual / max_drawdown_fraction if annual is not None and max_drawdown_fraction > 0 else None
    )
    return Ratios(
        sharpe=_finite_or_none(sharpe_ratio(daily, periods_per_year)),
        sortino=_finite_or_none(sortino_ratio(daily, periods_per_year)),
        calmar=_finite_or_none(calmar),
        returns=n,
        note=None,
    )


# --------------------------------------------------------------------------- trades


@attrs.frozen(slots=True)
class TradeStats:
    """Figures over a set of closed trades. Money is in the account currency, net of fees."""

    trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate: float | None  # wins / trades, a fraction
    gross_profit: float
    gross_loss: float  # sum of losing P&L, <= 0
    net_pnl: float
    fees: float
    avg_win: float | None
    avg_loss: float | None  # <= 0
    profit_factor: float | None  # gross profit / |gross loss|; None without losses
    expectancy: float | None  # mean P&L per trade
    avg_r: float | None  # mean R multiple


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if len(values) else None


def trade_stats(
    pnls: Sequence[float], fees: Sequence[float] = (), r_multiples: Sequence[float] = ()
) -> TradeStats:
    """Win rate, averages, profit factor and expectancy of trades with net P&L `pnls`."""
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    gross_profit = float(sum(wins))
    gross_loss = float(sum(losses))
    n = len(pnls)
    return TradeStats(
        trades=n,
        wins=len(wins),
        losses=len(losses),
        breakeven=n - len(wins) - len(losses),
        win_rate=len(wins) / n if n else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=float(sum(pnls)),
        fees=float(sum(fees)),
        avg_win=_mean(wins),
        avg_loss=_mean(losses),
        profit_factor=gross_profit / -gross_loss if losses else None,
        expectancy=_mean(pnls),
        avg_r=_mean(r_multiples),
    )
