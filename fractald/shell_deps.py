"""The narrow dependencies the daemon (the composition root) hands its actors and commands.

An actor gets what it reads, not the daemon: the live configuration (one
holder, replaced whole by a reload or `fractalctl risk set`), the ledger
once the store has opened it, the event bus, a channel, or a function.
This module imports no actor, no control module and not the daemon, so
any of them may import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fractald.config import Config
    from fractald.store.writer import AsyncLedger


class LiveConfig:
    """The configuration in force now: read `.current` each time (a reload replaces it)."""

    def __init__(self, current: Config, path: str | None = None) -> None:
        self.current = current
        self.path = path  # the file it came from (None: the embedded default)

    def describe_path(self) -> str:
        return self.path or "(embedded default)"


class LedgerSource(Protocol):
    """Whoever holds the ledger (the store actor): None until the state database is open."""

    @property
    def ledger(self) -> AsyncLedger | None: ...
