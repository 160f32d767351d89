"""The ledger's ended orders: the engine's terminal orders, kept apart from the snapshots.

After the equity history went to its own table (`fractald.store.equity_store`),
terminal orders were most of every snapshot (97 of them 64 KB after 12,000
bars; the engine keeps up to `max_closed_orders`, 2,000 by default, so about
1.3 MB in a long run), rewritten whole at each one. A terminal order never
changes again, so its body is written here once, keyed by client order id,
in the same transaction as the first snapshot that covers it; the snapshot
keeps the working orders' bodies and every order's id in the engine's order
(`ended_orders_in_ledger`), so the restore is exact. An older snapshot (the
newest one damaged) still finds its orders: rows are only ever added.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from fractald.store.db import canonical_json

OrderRow = tuple[str, str]  # client order id, the order's JSON
MARK = "ended_orders_in_ledger"  # in the engine's state: every order's id, in the engine's order


def _engine(state: dict[str, Any]) -> dict[str, Any] | None:
    engine = state.get("engine")
    if not isinstance(engine, dict):
        return None
    if not isinstance(engine.get("orders"), list) or not isinstance(
        engine.get("closed_orders"), list
    ):
        return None
    return engine


def split_orders(
    state: dict[str, Any], stored: Mapping[str, Any]
) -> tuple[dict[str, Any], list[OrderRow], dict[str, Any]]:
    """The snapshot without its terminal orders' bodies, the rows the ledger lacks, what it holds.

    `stored` is what the ledger already holds, by client order id (from the
    last snapshot written or restored): only orders that ended since, or
    whose body is not the one stored (a venue's late fill on a cancelled
    order), are written.
    """
    engine = _engine(state)
    if engine is None:
        return state, [], dict(stored)
    ended = set(engine["closed_orders"])
    hot, rows, ids = [], [], []
    held = {}
    for order in engine["orders"]:
        cid = order["client_order_id"]
        ids.append(cid)
        if cid not in ended:
            hot.append(order)
            continue
        held[cid] = order
        if stored.get(cid) != order:
            rows.append((cid, canonical_json(order, "ended order")))
    engine = {**engine, "orders": hot, MARK: ids}
    return {**state, "engine": engine}, rows, held


def ended_orders(state: dict[str, Any]) -> dict[str, Any]:
    """A whole state's terminal orders by client order id (what the ledger holds once it is split)."""
    engine = _engine(state)
    if engine is None:
        return {}
    ended = set(engine["closed_orders"])
    return {o["client_order_id"]: o for o in engine["orders"] if o["client_order_id"] in ended}


def insert_orders(conn: sqlite3.Connection, rows: list[OrderRow]) -> None:
    """Store ended orders inside the caller's transaction (one written again replaces it)."""
    conn.executemany(
        "INSERT OR REPLACE INTO ended_orders (client_order_id, body) VALUES (?, ?)", rows
    )


def order_rows(rows: list[OrderRow]) -> list[OrderRow]:
    """Validate the rows before any write, so a bad one writes nothing."""
    for cid, body in rows:
        if not isinstance(cid, str) or not cid:
            raise ValueError(f"an ended order needs a client order id, got {cid!r}")
        if not isinstance(body, str) or not body.startswith("{"):
            raise ValueError(f"ended order {cid}: its body must be a JSON object")
    return list(rows)


def join_orders(conn: sqlite3.Connection, state: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with its ended orders back in place; ValueError if the ledger lacks one."""
    engine = state.get("engine")
    if not isinstance(engine, dict) or MARK not in engine:
        return state
    hot = {o["client_order_id"]: o for o in engine["orders"]}
    wanted = [cid for cid in engine[MARK] if cid not in hot]
    bodies: dict[str, Any] = {}
    for lo in range(0, len(wanted), 500):  # SQLite's bound on host parameters
        chunk = wanted[lo : lo + 500]
        marks = ",".join("?" * len(chunk))
        for cid, body in conn.execute(
            f"SELECT client_order_id, body FROM ended_orders WHERE client_order_id IN ({marks})",
            chunk,
        ):
            bodies[cid] = _loads(body, cid)
    missing = [cid for cid in wanted if cid not in bodies]
    if missing:
        raise ValueError(
            f"the ledger lacks {len(missing)} of the {len(wanted)} ended orders this snapshot "
            f"covers (first: {missing[0]})"
        )
    orders = [hot[cid] if cid in hot else bodies[cid] for cid in engine[MARK]]
    whole = {k: v for k, v in engine.items() if k != MARK}
    whole["orders"] = orders
    return {**state, "engine": whole}


def _loads(body: str, cid: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValueError(f"ended order {cid} in the ledger is not JSON: {exc}") from exc
