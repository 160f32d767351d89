"""The state store: the SQLite ledger, its backups and its async single-writer wrapper.

Start-up: `AsyncLedger.open(path)` (trio) or `verify_and_open(path)` (sync)
checks the database, restores it from the newest good backup if it is
damaged, migrates it, and returns the ledger. See `ledger.Ledger` for the
record-keeping API.
"""

from fractald.store.backup import backup_database, list_backups, verify_and_open
from fractald.store.db import RUNBOOK, SCHEMA_VERSION
from fractald.store.ledger import DaemonEvent, Event, IntentRecord, Ledger, Snapshot
from fractald.store.writer import AsyncLedger

__all__ = [
    "RUNBOOK",
    "SCHEMA_VERSION",
    "AsyncLedger",
    "DaemonEvent",
    "Event",
    "IntentRecord",
    "Ledger",
    "Snapshot",
    "backup_database",
    "list_backups",
    "verify_and_open",
]
