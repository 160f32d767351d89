"""The shape of the trading state a snapshot holds: its version, and the migrations between versions.

A snapshot is one JSON object (the ledger's `snapshots.state` column, so
`sqlite3 fractald.db "select state from snapshots order by id desc limit 1" | jq`
reads it) with these keys:

* ``schema_version``: the shape of everything below; `SCHEMA_VERSION` here;
* ``code_version``: the fractald release that wrote it (for people, not checks);
* ``cursor``, ``bars_processed``: how far the market data it covers goes;
* ``engine``: `TradingEngine.snapshot()`;
* ``pipelines``: per symbol, `Pipeline.export_state()` (counters and the
  strategies' learning). Since schema 3 the trades' management plans are
  the engine's (`engine.brackets[*].plan`); schema 2 kept them here
  (`pipelines[*].trades`), and `MIGRATIONS[2]` moves them. Since schema 4
  the equity history (`engine.accounting.equity_curve`) is kept exactly, as
  its buckets, and its closed points live in the ledger's `equity_points`
  table, not in the snapshot (``closed_in_ledger`` says how many it covers;
  `fractald.store.equity_store`); schema 3 held every point inline, and
  `MIGRATIONS[3]` turns those into buckets as restoring them always did.
  Since schema 5 a position has no ``mark_price``: every position of a
  symbol is marked at ``engine.accounting.marks[symbol]`` (schema 4 kept a
  copy in each position; `MIGRATIONS[4]` drops it).

What is derived from market data alone (live SMC state, slow ATR and volume
means, strategies' armed setups) is not in it: it is rebuilt at start-up by
running detection over the candles the ledger keeps (`candles` table), so it
is always what the *current* code and config would have made of them.

Start-up reads a snapshot through `migrate`: an older schema is brought
forward one step at a time by `MIGRATIONS[v]` (v -> v + 1, each a pure
function of plain data); a newer one is refused with `StateTooNew` before
anything is loaded. Release 0.1.0 wrote schema 1 (a pickle inside the JSON);
no dict migration can read that, so `fractald.session` rebuilds that state
by folding the ledger's event log instead, once (`LEGACY_PICKLE_SCHEMA`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fractald import __version__
from fractald.errors import StateCorrupt, StateTooNew

SCHEMA_VERSION = 5
CODE_VERSION = __version__
LEGACY_PICKLE_SCHEMA = 1  # release 0.1.0: {"format": 1, "pipeline": <base64 pickle>, "cursor": ...}
RUNBOOK = "runbooks/daemon-will-not-start.md"

# MIGRATIONS[v]: a schema-v state (plain JSON data) -> the same state in schema v + 1.
# Append a step when the shape changes; never edit a released one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

# The fields of schema 2's strategy-side plan that schema 3's `ManagementPlan` keeps
# (the rest, signal_id, strategy, side and targets, were copies of the bracket's).
_PLAN_FIELDS = (
    "timeframe",
    "entry",
    "stop",
    "atr",
    "break_even_at_r",
    "trail_atr",
    "trail_from_r",
    "time_exit_ms",
    "invalidation",
)


def _trades_into_brackets(state: dict[str, Any]) -> dict[str, Any]:
    """2 -> 3: each pipeline's managed trade becomes its engine bracket's plan.

    A schema-2 trade is {"strategy", "plan", "state"}; its plan goes onto the
    bracket of the same signal id, and its state (None until the entry filled)
    gives the bracket the best price so far, so break-even and trailing carry
    on where they were (judged from the bracket's average entry, which the
    schema-2 state's first-fill price equals unless the entry filled in parts). A trade whose bracket is
    gone was already over and is dropped.
    """
    brackets = {b["signal_id"]: b for b in state.get("engine", {}).get("brackets", [])}
    for pipeline in state.get("pipelines", {}).values():
        for trade in pipeline.pop("trades", []):
            plan = trade["plan"]
            bracket = brackets.get(plan["signal_id"])
            if bracket is None:
                continue
            bracket["plan"] = {k: plan[k] for k in _PLAN_FIELDS}
            held = trade.get("state")
            if held is not None:
                bracket["plan_best"] = held["best"]
    return state


MIGRATIONS[2] = _trades_into_brackets


def _equity_as_buckets(state: dict[str, Any]) -> dict[str, Any]:
    """3 -> 4: the equity curve's points become the history's exact state (buckets and level).

    Schema 3 stored the points and the bucket width; restoring recorded them
    again at that width, which is what this does, once.
    """
    from fractald.core.equity_history import EquityHistory

    accounting = (state.get("engine") or {}).get("accounting")
    if accounting is None or not isinstance(accounting.get("equity_curve"), list):
        return state
    history = EquityHistory()
    history.extend(
        ((int(t), float(e)) for t, e in accounting.pop("equity_curve")),
        accounting.pop("equity_curve_width_ms", None),
    )
    accounting["equity_curve"] = history.state()
    return state


MIGRATIONS[3] = _equity_as_buckets


def _marks_out_of_positions(state: dict[str, Any]) -> dict[str, Any]:
    """4 -> 5: a position's ``mark_price`` goes; the account's ``marks`` per symbol stay.

    Schema-4 code set both from the same price, so they agree; a mark that only
    a position held (none should) is kept as its symbol's mark.
    """
    accounting = (state.get("engine") or {}).get("accounting")
    if accounting is None:
        return state
    marks = accounting.setdefault("marks", {})
    for position in accounting.get("positions", []):
        mark = position.pop("mark_price", 0.0)
        if mark and position["symbol"] not in marks:
            marks[position["symbol"]] = mark
    return state


MIGRATIONS[4] = _marks_out_of_positions


def schema_of(state: dict[str, Any]) -> int:
    """The schema version a stored state says it has (0.1.0's `format` key counts as 1)."""
    version = state.get("schema_version", state.get("format"))
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateCorrupt(
            f"snapshot has no valid schema_version (got {version!r}); "
            "see runbooks/state-database-corrupt.md"
        )
    return version


def refuse_if_newer(state: dict[str, Any], where: str) -> int:
    """The state's schema version; StateTooNew when this code cannot read it."""
    version = schema_of(state)
    if version > SCHEMA_VERSION:
        raise StateTooNew(
            f"{where} holds trading state of schema {version}, written by fractald "
            f"{state.get('code_version', '?')}; this fractald {CODE_VERSION} reads schema "
            f"{SCHEMA_VERSION} and older. Run that release (or newer) again, or restore a backup "
            f"made before the upgrade; see {RUNBOOK}",
            schema_version=version,
            readable=SCHEMA_VERSION,
            written_by=state.get("code_version", "?"),
        )
    return version


def migrate(state: dict[str, Any], where: str) -> dict[str, Any]:
    """`state` brought to SCHEMA_VERSION (StateTooNew if newer; never half-loaded)."""
    version = refuse_if_newer(state, where)
    if version == LEGACY_PICKLE_SCHEMA:
        raise ValueError("a 0.1.0 snapshot is rebuilt from the event log, not migrated")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StateCorrupt(
                f"{where}: no migration from state schema {version} to "
                f"{version + 1}; see runbooks/state-database-corrupt.md"
            )
        state = step(state)
        version += 1
        state["schema_version"] = version
    return state


def stamp(body: dict[str, Any]) -> dict[str, Any]:
    """A state to store: `body` with this code's schema and version first."""
    return {"schema_version": SCHEMA_VERSION, "code_version": CODE_VERSION, **body}
