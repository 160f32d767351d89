"""Level-2 order book and the Binance snapshot/delta synchronisation state machine.

Pure: no I/O, no clock. The shell feeds depth deltas and REST snapshots in
and acts on what comes out (fetch a snapshot, publish a quote, count a gap).

Binance's rule (spot and USD-M futures differ only in how continuity is
checked): buffer the stream, fetch a snapshot, drop buffered deltas whose
final id `u` is not newer than the snapshot's `lastUpdateId`, the first
applied delta must straddle `lastUpdateId`, and every later delta must
follow the previous one without a hole. A hole means the local book is
wrong, so the only safe move is to throw it away and resync.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

import attrs

from fractald.core.models import Quote

Level = tuple[float, float]  # (price, size); size 0 in a delta removes the level


def _levels(value: Iterable[Sequence[float]]) -> tuple[Level, ...]:
    return tuple((float(p), float(s)) for p, s in value)


@attrs.frozen(slots=True)
class BookSnapshot:
    """A full book. `last_update_id` is the venue's sequence number (None if it has none)."""

    symbol: str
    bids: tuple[Level, ...] = attrs.field(converter=_levels)
    asks: tuple[Level, ...] = attrs.field(converter=_levels)
    ts_event: int
    last_update_id: int | None = None


@attrs.frozen(slots=True)
class BookDelta:
    """Changed levels with Binance's ids: first `U`, final `u`, previous final `pu` (futures only)."""

    symbol: str
    bids: tuple[Level, ...] = attrs.field(converter=_levels)
    asks: tuple[Level, ...] = attrs.field(converter=_levels)
    ts_event: int
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.final_update_id < self.first_update_id:
            raise ValueError(
                f"delta final id {self.final_update_id} < first id {self.first_update_id}"
            )


class L2Book:
    """Price -> size on each side. Mutable on purpose: it is rebuilt thousands of times a second."""

    __slots__ = ("asks", "bids", "last_update_id", "symbol", "ts_event")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.ts_event = 0
        self.last_update_id: int | None = None

    def load(self, snapshot: BookSnapshot) -> None:
        self.bids = {p: s for p, s in snapshot.bids if s > 0}
        self.asks = {p: s for p, s in snapshot.asks if s > 0}
        self.ts_event = snapshot.ts_event
        self.last_update_id = snapshot.last_update_id

    def apply(self, delta: BookDelta) -> None:
        for side, levels in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for price, size in levels:
                if size > 0:
                    side[price] = size
                else:
                    side.pop(price, None)
        self.ts_event = delta.ts_event
        self.last_update_id = delta.final_update_id

    def best_bid(self) -> Level | None:
        if not self.bids:
            return None
        p = max(self.bids)
        return p, self.bids[p]

    def best_ask(self) -> Level | None:
        if not self.asks:
            return None
        p = min(self.asks)
        return p, self.asks[p]

    @property
    def crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def quote(self) -> Quote | None:
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return Quote(self.symbol, bid[0], bid[1], ask[0], ask[1], self.ts_event)

    def as_snapshot(self) -> BookSnapshot:
        return BookSnapshot(
            symbol=self.symbol,
            bids=sorted(self.bids.items(), reverse=True),
            asks=sorted(self.asks.items()),
            ts_event=self.ts_event,
            last_update_id=self.last_update_id,
        )


class SyncState(enum.Enum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"  # buffering deltas until a REST snapshot arrives
    SYNCING = "syncing"  # snapshot loaded, waiting for the delta that straddles it
    LIVE = "live"  # every delta applied in sequence


class SyncInput(enum.Enum):
    DELTA = "delta"
    SNAPSHOT = "snapshot"
    GAP = "gap"
    STALE_SNAPSHOT = "stale_snapshot"  # snapshot older than anything buffered: fetch again


class SyncAction(enum.Enum):
    BUFFER = "buffer"
    LOAD_AND_REPLAY = "load_and_replay"
    APPLY = "apply"
    RESYNC = "resync"  # drop the book and buffer, ask for a new snapshot


# The state machine as data: (state, input) -> (next state, action).
SYNC_TRANSITIONS: dict[tuple[SyncState, SyncInput], tuple[SyncState, SyncAction]] = {
    (SyncState.AWAITING_SNAPSHOT, SyncInput.DELTA): (
        SyncState.AWAITING_SNAPSHOT,
        SyncAction.BUFFER,
    ),
    (SyncState.AWAITING_SNAPSHOT, SyncInput.SNAPSHOT): (
        SyncState.SYNCING,
        SyncAction.LOAD_AND_REPLAY,
    ),
    (SyncState.SYNCING, SyncInput.DELTA): (SyncState.SYNCING, SyncAction.APPLY),
    (SyncState.SYNCING, SyncInput.SNAPSHOT): (SyncState.SYNCING, SyncAction.LOAD_AND_REPLAY),
    (SyncState.SYNCING, SyncInput.GAP): (SyncState.AWAITING_SNAPSHOT, SyncAction.RESYNC),
    (SyncState.SYNCING, SyncInput.STALE_SNAPSHOT): (SyncState.AWAITING_SNAPSHOT, SyncAction.RESYNC),
    (SyncState.LIVE, SyncInput.DELTA): (SyncState.LIVE, SyncAction.APPLY),
    (SyncState.LIVE, SyncInput.SNAPSHOT): (SyncState.SYNCING, SyncAction.LOAD_AND_REPLAY),
    (SyncState.LIVE, SyncInput.GAP): (SyncState.AWAITING_SNAPSHOT, SyncAction.RESYNC),
    (SyncState.AWAITING_SNAPSHOT, SyncInput.GAP): (SyncState.AWAITING_SNAPSHOT, SyncAction.RESYNC),
    (SyncState.AWAITING_SNAPSHOT, SyncInput.STALE_SNAPSHOT): (
        SyncState.AWAITING_SNAPSHOT,
        SyncAction.RESYNC,
    ),
}


@attrs.frozen(slots=True)
class SyncResult:
    """What the shell must do after one input: fetch a snapshot, publish a quote, count a gap."""

    need_snapshot: bool = False
    quote: Quote | None = None
    gap: bool = False
    crossed: bool = False


class BinanceBookSync:
    """Keeps one symbol's L2 book in step with Binance depth deltas and REST snapshots."""

    def __init__(self, symbol: str, *, futures: bool, max_buffer: int = 2000) -> None:
        self.symbol = symbol
        self.futures = futures
        self.max_buffer = max_buffer
        self.state = SyncState.AWAITING_SNAPSHOT
        self.book = L2Book(symbol)
        self.buffer: list[BookDelta] = []
        self.gaps = 0
        self.dropped_stale = 0
        self._snapshot_requested = False

    def _step(self, event: SyncInput) -> SyncAction:
        try:
            self.state, action = SYNC_TRANSITIONS[(self.state, event)]
        except KeyError:
            raise ValueError(
                f"book sync: no transition from {self.state.value} on {event.value}"
            ) from None
        return action

    def start(self) -> SyncResult:
        """Call once at subscribe time: the shell should fetch a snapshot."""
        self._snapshot_requested = True
        return SyncResult(need_snapshot=True)

    def _continues(self, delta: BookDelta, prev_final: int) -> bool:
        if self.futures and delta.prev_final_update_id is not None:
            return delta.prev_final_update_id == prev_final
        return delta.first_update_id == prev_final + 1

    def _straddles(self, delta: BookDelta, last_id: int) -> bool:
        if self.futures:
            # Futures ids are not consecutive: either the delta spans the snapshot's id,
            # or it is the very next event after it.
            return (
                delta.first_update_id <= last_id <= delta.final_update_id
                or delta.prev_final_update_id == last_id
            )
        return delta.first_update_id <= last_id + 1 <= delta.final_update_id

    def _older_than(self, last_id: int, first: BookDelta) -> bool:
        return last_id < first.first_update_id - (0 if self.futures else 1) and not self._straddles(
            first, last_id
        )

    def _resync(self) -> SyncResult:
        self.gaps += 1
        self.buffer.clear()
        self.book = L2Book(self.symbol)
        self._snapshot_requested = True
        return SyncResult(need_snapshot=True, gap=True)

    def _apply_one(self, delta: BookDelta) -> bool:
        """Apply in SYNCING/LIVE; False when the delta shows a hole."""
        last = self.book.last_update_id
        assert last is not None
        if delta.final_update_id <= last:
            self.dropped_stale += 1  # already contained in the snapshot
            return True
        if self.state is SyncState.SYNCING:
            if not self._straddles(delta, last):
                return False
            self.state = SyncState.LIVE
        elif not self._continues(delta, last):
            return False
        self.book.apply(delta)
        return True

    def _result(self) -> SyncResult:
        if self.state is not SyncState.LIVE:
            return SyncResult()
        return SyncResult(quote=self.book.quote(), crossed=self.book.crossed)

    def on_delta(self, delta: BookDelta) -> SyncResult:
        if delta.symbol != self.symbol:
            raise ValueError(f"book sync for {self.symbol} got a delta for {delta.symbol}")
        action = self._step(SyncInput.DELTA)
        if action is SyncAction.BUFFER:
            self.buffer.append(delta)
            if len(self.buffer) > self.max_buffer:
                # The snapshot is not coming; keep memory flat and ask again.
                self._step(SyncInput.GAP)
                return self._resync()
            need = not self._snapshot_requested
            self._snapshot_requested = True
            return SyncResult(need_snapshot=need)
        if not self._apply_one(delta):
            self._step(SyncInput.GAP)
            return self._resync()
        return self._result()

    def on_snapshot(self, snapshot: BookSnapshot) -> SyncResult:
        if snapshot.last_update_id is None:
            raise ValueError("a Binance depth snapshot needs lastUpdateId")
        self._snapshot_requested = False
        buffered, self.buffer = self.buffer, []
        if buffered and self._older_than(snapshot.last_update_id, buffered[0]):
            # Older than everything we buffered: the deltas in between are lost.
            self._step(SyncInput.STALE_SNAPSHOT)
            return self._resync()
        self._step(SyncInput.SNAPSHOT)
        self.book.load(snapshot)
        for delta in buffered:
            if not self._apply_one(delta):
                self._step(SyncInput.GAP)
                return self._resync()
        return self._result()

    @property
    def live(self) -> bool:
        return self.state is SyncState.LIVE
