"""The intents outbox: every order intent, keyed by its client order id, and how far it got.

An intent is recorded before its order leaves the process and a submission
is claimed at most once, so a restart never sends an order twice nor
forgets one. The row functions run inside a caller's transaction (the
ledger's batch commits events and intents together); `IntentOutbox` is the
part of `Ledger` that works on the outbox alone, over the ledger's connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import structlog

from fractald.errors import InvariantViolation
from fractald.store import db
from fractald.store.values import check_int, check_text, dict_json

log = structlog.get_logger(__name__)

MAX_CLIENT_ORDER_ID_LEN = 128
IDS_PER_QUERY = 500  # client order ids looked up per query by `intents_by_id`
_INTENT_COLUMNS = "client_order_id, payload, recorded_ms, submitted_ms, outcome, outcome_ms"


@attrs.frozen
class IntentRecord:
    """An order intent in the outbox and how far it got."""

    client_order_id: str
    payload: dict[str, Any]
    recorded_ms: int
    submitted_ms: int | None
    outcome: str | None
    outcome_ms: int | None

    @property
    def submitted(self) -> bool:
        return self.submitted_ms is not None


def _intent(row: sqlite3.Row | tuple[Any, ...]) -> IntentRecord:
    cid, payload, recorded, submitted, outcome, outcome_ms = row
    return IntentRecord(cid, json.loads(payload), recorded, submitted, outcome, outcome_ms)


def check_client_order_id(value: object) -> str:
    return check_text(value, "client_order_id", MAX_CLIENT_ORDER_ID_LEN)


def intent_row(client_order_id: str, payload: Mapping[str, Any]) -> tuple[str, str]:
    """A checked `(client_order_id, payload JSON)`, before any write."""
    check_client_order_id(client_order_id)
    return client_order_id, dict_json(payload, f"payload of intent {client_order_id!r}")


def submission_rows(submissions: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Checked `(client_order_id, ts)` claims, before any write."""
    return [
        (check_client_order_id(cid), check_int(ts, "submission ts", 0)) for cid, ts in submissions
    ]


def outcome_rows(outcomes: Iterable[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Checked `(client_order_id, outcome, ts)` ends, before any write."""
    return [
        (
            check_client_order_id(cid),
            check_text(outcome, "outcome"),
            check_int(ts, "outcome ts", 0),
        )
        for cid, outcome, ts in outcomes
    ]


def insert_intent(
    conn: sqlite3.Connection, client_order_id: str, payload_json: str
) -> tuple[Any, ...]:
    """Insert unless the id exists (never a second row); the stored row either way."""
    conn.execute(
        "INSERT INTO intents (client_order_id, payload, recorded_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (client_order_id) DO NOTHING",
        (client_order_id, payload_json, db.now_ms()),
    )
    return tuple(
        conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
    )


def warn_if_intent_differs(client_order_id: str, row: tuple[Any, ...], offered: str) -> None:
    if row[1] != offered:
        log.warning(
            "intent_payload_mismatch",
            client_order_id=client_order_id,
            stored=row[1],
            offered=offered,
        )


def claim(conn: sqlite3.Connection, client_order_id: str, ts: int) -> bool:
    """Set submitted_ms if unset; True when this call claimed the submission."""
    return (
        conn.execute(
            "UPDATE intents SET submitted_ms = ? "
            "WHERE client_order_id = ? AND submitted_ms IS NULL",
            (ts, client_order_id),
        ).rowcount
        == 1
    )


def set_outcome(conn: sqlite3.Connection, client_order_id: str, outcome: str, ts: int) -> bool:
    """Set the outcome if unset; True when this call set it."""
    return (
        conn.execute(
            "UPDATE intents SET outcome = ?, outcome_ms = ? "
            "WHERE client_order_id = ? AND outcome IS NULL",
            (outcome, ts, client_order_id),
        ).rowcount
        == 1
    )


def claim_all_or_refuse(conn: sqlite3.Connection, claims: list[tuple[str, int]]) -> None:
    """Claim each submission; one already claimed (or never recorded) is an InvariantViolation.

    Raised inside the caller's transaction, so the whole batch is rolled back.
    """
    for cid, ts in claims:
        if not claim(conn, cid, ts):
            raise InvariantViolation(
                f"client order id {cid!r} was already submitted (or never recorded); "
                "refusing to record a second submission",
                client_order_id=cid,
            )


def set_outcomes(
    conn: sqlite3.Connection, ends: list[tuple[str, str, int]]
) -> list[tuple[str, str]]:
    """Set each outcome (first one wins); the `(client_order_id, outcome)` ones refused."""
    return [(cid, outcome) for cid, outcome, ts in ends if not set_outcome(conn, cid, outcome, ts)]


class IntentOutbox:
    """The outbox's own operations; part of `Ledger`, which owns `_conn`."""

    _conn: sqlite3.Connection

    def record_intent(self, client_order_id: str, payload: Mapping[str, Any]) -> IntentRecord:
        """Record an order intent BEFORE its order leaves the process; returns the stored row.

        Idempotent: recording an id that exists is a no-op returning the
        existing row (the first payload wins; a different payload is logged
        as `intent_payload_mismatch`, since ids derive from the intent).
        """
        cid, payload_json = intent_row(client_order_id, payload)
        with db.transaction(self._conn) as conn:
            row = insert_intent(conn, cid, payload_json)
        warn_if_intent_differs(cid, row, payload_json)
        return _intent(row)

    def record_and_claim(self, client_order_id: str, payload: Mapping[str, Any], ts: int) -> bool:
        """A venue router's step before sending: record the intent and claim it, one transaction.

        True: this call claimed it, send the order now. False: it was claimed
        before (a run that then crashed?): look it up at the venue by client
        order id, never send it again. Then commit the venue's answer with
        `commit_batch` (events and, once it ends, the outcome).
        """
        cid, payload_json = intent_row(client_order_id, payload)
        check_int(ts, "submission ts", 0)
        with db.transaction(self._conn) as conn:
            row = insert_intent(conn, cid, payload_json)
            claimed = claim(conn, cid, ts)
        warn_if_intent_differs(cid, row, payload_json)
        return claimed

    def get_intent(self, client_order_id: str) -> IntentRecord | None:
        """The stored intent for `client_order_id`, or None."""
        row = self._conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return None if row is None else _intent(row)

    def _require_intent(self, client_order_id: str, action: str) -> IntentRecord:
        record = self.get_intent(client_order_id)
        if record is None:
            raise InvariantViolation(
                f"cannot {action} client order id {client_order_id!r}: no intent was recorded "
                "for it",
                client_order_id=client_order_id,
            )
        return record

    def record_submission(self, client_order_id: str, ts: int) -> bool:
        """Claim the right to send this intent's order; True exactly once per client order id.

        Call it just before the order leaves the process and send only on
        True. False means it was claimed before (maybe by a run that then
        crashed): reconcile with the venue by client order id, never resend.
        An id with no recorded intent is an InvariantViolation.
        """
        [(cid, ts)] = submission_rows([(client_order_id, ts)])
        with db.transaction(self._conn) as conn:
            claimed = claim(conn, cid, ts)
        if not claimed:
            self._require_intent(cid, "submit")
        return claimed

    def mark_outcome(self, client_order_id: str, outcome: str, ts: int | None = None) -> bool:
        """Record how an intent ended (filled, canceled, rejected, denied...); first one wins.

        Returns True when this call set the outcome, False when the intent
        already had one (a different later outcome is logged as
        `intent_outcome_conflict` and ignored). Unknown ids raise
        InvariantViolation.
        """
        check_client_order_id(client_order_id)
        check_text(outcome, "outcome")
        ts = db.now_ms() if ts is None else check_int(ts, "outcome ts", 0)
        with db.transaction(self._conn) as conn:
            updated = set_outcome(conn, client_order_id, outcome, ts)
        if not updated:
            self._explain_outcome_refused(client_order_id, outcome)
        return updated

    def _explain_outcome_refused(self, client_order_id: str, outcome: str) -> None:
        existing = self._require_intent(client_order_id, "mark the outcome of")
        if existing.outcome != outcome:
            log.warning(
                "intent_outcome_conflict",
                client_order_id=client_order_id,
                stored=existing.outcome,
                offered=outcome,
            )

    def pending_intents(self) -> list[IntentRecord]:
        """Intents with no outcome yet, oldest first: the work crash recovery must finish."""
        rows = self._conn.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE outcome IS NULL ORDER BY id"
        ).fetchall()
        return [_intent(r) for r in rows]

    def intents_by_id(self, client_order_ids: Iterable[str]) -> dict[str, IntentRecord]:
        """The stored intents among `client_order_ids` (unknown ids are simply absent)."""
        found: dict[str, IntentRecord] = {}
        ids = list(dict.fromkeys(client_order_ids))
        for start in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[start : start + IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                f"SELECT {_INTENT_COLUMNS} FROM intents WHERE client_order_id IN ({marks})", chunk
            ):
                found[row[0]] = _intent(row)
        return found

    def _after_batch(
        self,
        intent_rows: list[tuple[str, str]],
        stored: list[tuple[Any, ...]],
        refused: list[tuple[str, str]],
    ) -> None:
        """Once a batch committed: log differing payloads and conflicting outcomes."""
        for (cid, offered), row in zip(intent_rows, stored, strict=True):
            warn_if_intent_differs(cid, row, offered)
        for cid, outcome in refused:
            self._explain_outcome_refused(cid, outcome)
