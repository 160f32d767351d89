"""Read-model queries over the ledger's event log: closed trades and signals.

A leaf module: the control commands, Telegram and the alerts actor's daily
summary all read history through here, from whoever holds the ledger (a
`LedgerSource`), on the ledger's worker thread, never on the trio loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import cattrs

from fractald.control.protocol import CommandError
from fractald.core.models import ClosedTrade, Signal

if TYPE_CHECKING:
    from fractald.shell_deps import LedgerSource
    from fractald.store.ledger import Ledger

MAX_TRADES = 100_000  # a report reads at most this many closed trades (newest first)
_converter = cattrs.Converter()


def _rows(
    ledger: Ledger, kinds: Sequence[str], limit: int, since_ts: int | None = None, min_seq: int = 0
) -> list[tuple[int, str, int, dict[str, Any]]]:
    """Events of `kinds`, newest first (walks the rowid backwards, so LIMIT stops early)."""
    marks = ",".join("?" for _ in kinds)
    sql = f"SELECT seq, kind, ts_event, payload FROM events WHERE kind IN ({marks}) AND seq > ?"
    params: list[Any] = [*kinds, min_seq]
    if since_ts is not None:
        sql += " AND ts_event >= ?"
        params.append(since_ts)
    sql += " ORDER BY seq DESC LIMIT ?"
    params.append(limit)
    rows = ledger.connection.execute(sql, params).fetchall()
    return [(seq, kind, ts, json.loads(payload)) for seq, kind, ts, payload in rows]


async def read_ledger(ledgers: LedgerSource, fn: Callable[[Ledger], Any]) -> Any:
    ledger = ledgers.ledger
    if ledger is None:
        raise CommandError("not_ready", "the state database is not open yet; try again")
    return await ledger.run(fn)


def _trade(payload: dict[str, Any]) -> ClosedTrade:
    return _converter.structure(payload["trade"], ClosedTrade)


async def closed_trades(
    ledgers: LedgerSource,
    since_ms: int | None = None,
    strategy: str | None = None,
    symbol: str | None = None,
    limit: int = MAX_TRADES,
) -> list[ClosedTrade]:
    """Closed trades from the ledger, oldest first, filtered by exit time, strategy and symbol."""
    rows = await read_ledger(ledgers, lambda led: _rows(led, ["trade_closed"], limit, since_ms))
    trades = [_trade(p) for _, _, _, p in reversed(rows)]
    return [
        t
        for t in trades
        if (since_ms is None or t.ts_exit >= since_ms)
        and (strategy is None or t.strategy == strategy)
        and (symbol is None or t.symbol == symbol)
    ]


def _signal_outcomes(ledger: Ledger, last: int) -> list[dict[str, Any]]:
    signals = _rows(ledger, ["signal"], last)
    if not signals:
        return []
    oldest = min(seq for seq, _, _, _ in signals) - 1
    answers = _rows(ledger, ["bracket_opened", "signal_denied"], 10 * last + 100, min_seq=oldest)
    outcome: dict[str, str] = {}
    for _, kind, _, p in answers:
        outcome.setdefault(
            p.get("signal_id", ""),
            "taken" if kind == "bracket_opened" else f"denied: {p.get('code', '')}",
        )
    out = []
    for _, _, _, p in reversed(signals):
        s = p["signal"]
        sid = f"{s['strategy']}:{s['symbol']}:{s['timeframe']}:{s['side']}:{s['ts_event']}"
        out.append(
            {
                "ts": s["ts_event"],
                "symbol": s["symbol"],
                "strategy": s["strategy"],
                "timeframe": s["timeframe"],
                "side": s["side"],
                "entry": s["entry"],
                "stop": s["stop"],
                "targets": s["targets"],
                "confidence": s["confidence"],
                "outcome": outcome.get(sid, "taken" if p.get("sent", True) else "not sent: paused"),
                "signal_id": sid,
            }
        )
    return out


async def recent_signals(ledgers: LedgerSource, last: int) -> list[dict[str, Any]]:
    """The last `last` signals from the ledger, oldest first, each with what became of it."""
    return await read_ledger(ledgers, lambda led: _signal_outcomes(led, last))  # type: ignore[no-any-return]


async def signal_objects(ledgers: LedgerSource, limit: int) -> list[Signal]:
    rows = await read_ledger(ledgers, lambda led: _rows(led, ["signal"], limit))
    return [_converter.structure(p["signal"], Signal) for _, _, _, p in reversed(rows)]
