"""L2 book and the Binance snapshot/delta sync: real capture, properties, gaps."""

from __future__ import annotations

import json

from fakevenue.data import FUTURES_HTTP, FUTURES_WS, SPOT_HTTP, SPOT_WS
from hypothesis import given, settings
from hypothesis import strategies as st

from fractald.core.book import (
    SYNC_TRANSITIONS,
    BinanceBookSync,
    BookDelta,
    BookSnapshot,
    L2Book,
    SyncState,
)
from fractald.venues import binance
from fractald.venues.replay import read_capture, read_rest_capture


def _replay_capture(ws_path, http_path, futures: bool) -> dict[str, BinanceBookSync]:
    """Deltas in capture order, each snapshot delivered when it was received."""
    _, lines = read_capture(ws_path)
    snaps = sorted(read_rest_capture(http_path), key=lambda r: r.received_s)
    syncs: dict[str, BinanceBookSync] = {}
    for line in lines:
        while snaps and snaps[0].received_s <= line.received_s:
            rest = snaps.pop(0)
            symbol = rest.url.split("symbol=")[1].split("&")[0]
            snap = binance.parse_depth_snapshot(symbol, json.loads(rest.body))
            syncs.setdefault(symbol, BinanceBookSync(symbol, futures=futures)).on_snapshot(snap)
        for event in binance.parse_message(line.raw):
            if isinstance(event, BookDelta):
                sync = syncs.setdefault(event.symbol, BinanceBookSync(event.symbol, futures=futures))
                result = sync.on_delta(event)
                assert not result.crossed, f"{event.symbol} crossed at {event.final_update_id}"
    return syncs


def test_real_futures_capture_syncs_every_symbol_without_gaps() -> None:
    syncs = _replay_capture(FUTURES_WS, FUTURES_HTTP, futures=True)
    assert set(syncs) == {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"}
    for symbol, sync in syncs.items():
        assert sync.live, symbol
        assert sync.gaps == 0, symbol
        assert sync.dropped_stale > 0 or sync.book.last_update_id is not None
        quote = sync.book.quote()
        assert quote is not None and quote.bid < quote.ask


def test_real_spot_capture_syncs_the_busy_symbol() -> None:
    syncs = _replay_capture(SPOT_WS, SPOT_HTTP, futures=False)
    nkn = syncs["NKNUSDT"]
    assert nkn.live and nkn.gaps == 0
    assert nkn.book.best_bid()[0] < nkn.book.best_ask()[0]


def test_a_missing_delta_forces_a_resync() -> None:
    _, lines = read_capture(FUTURES_WS)
    deltas = [e for line in lines for e in binance.parse_message(line.raw)
              if isinstance(e, BookDelta) and e.symbol == "SUSHIUSDT"]
    sync = BinanceBookSync("SUSHIUSDT", futures=True)
    first = read_rest_capture(FUTURES_HTTP)[0]
    snap = binance.parse_depth_snapshot("SUSHIUSDT", json.loads(first.body))
    start = next(i for i, d in enumerate(deltas) if d.final_update_id >= snap.last_update_id)
    sync.on_snapshot(snap)
    for d in deltas[start:start + 5]:
        assert not sync.on_delta(d).gap
    assert sync.live
    result = sync.on_delta(deltas[start + 6])  # skipped start + 5
    assert result.gap and result.need_snapshot and sync.gaps == 1
    assert sync.state is SyncState.AWAITING_SNAPSHOT and not sync.book.bids


def test_every_transition_lands_in_a_known_state() -> None:
    assert all(isinstance(v[0], SyncState) for v in SYNC_TRANSITIONS.values())
    assert {s for s, _ in SYNC_TRANSITIONS} == set(SyncState)


# -- property: applying deltas to a snapshot equals the later snapshot -----------------

prices = st.integers(min_value=1, max_value=60)
sizes = st.integers(min_value=0, max_value=5)
changes = st.lists(st.tuples(st.booleans(), prices, sizes), min_size=1, max_size=8)


def _books_and_deltas(steps: list[list[tuple[bool, int, int]]], futures: bool, start_id: int):
    """A sequence of books (as snapshots) and the deltas between consecutive ones."""
    book = L2Book("T")
    book.last_update_id = start_id
    snaps = [book.as_snapshot()]
    deltas = []
    for change in steps:
        bids = [(float(p), float(s)) for is_bid, p, s in change if is_bid]
        # Asks sit above bids so the book never crosses.
        asks = [(float(p + 100), float(s)) for is_bid, p, s in change if not is_bid]
        first = book.last_update_id + 1
        final = first + len(change) - 1
        delta = BookDelta("T", bids, asks, ts_event=final, first_update_id=first,
                          final_update_id=final,
                          prev_final_update_id=book.last_update_id if futures else None)
        book.apply(delta)
        deltas.append(delta)
        snaps.append(book.as_snapshot())
    return snaps, deltas


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(changes, min_size=1, max_size=30), futures=st.booleans(), data=st.data())
def test_snapshot_plus_buffered_and_live_deltas_equals_the_final_snapshot(steps, futures, data) -> None:
    snaps, deltas = _books_and_deltas(steps, futures, start_id=1000)
    # The snapshot is taken at some point j while deltas are buffered up to k >= j.
    j = data.draw(st.integers(0, len(deltas)), label="snapshot after delta")
    k = data.draw(st.integers(j, len(deltas)), label="deltas buffered before it arrives")
    sync = BinanceBookSync("T", futures=futures)
    for d in deltas[:k]:
        assert not sync.on_delta(d).gap
    result = sync.on_snapshot(snaps[j])
    assert not result.gap
    for d in deltas[k:]:
        assert not sync.on_delta(d).gap
    final = sync.book.as_snapshot()
    assert (final.bids, final.asks) == (snaps[-1].bids, snaps[-1].asks)
    assert final.last_update_id == snaps[-1].last_update_id
    assert sync.live or not deltas[k:] and j == len(deltas)


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(changes, min_size=3, max_size=20), futures=st.booleans(), data=st.data())
def test_a_hole_in_the_deltas_is_always_detected_and_a_resync_recovers(steps, futures, data) -> None:
    snaps, deltas = _books_and_deltas(steps, futures, start_id=50)
    lost = data.draw(st.integers(1, len(deltas) - 2), label="lost delta")
    sync = BinanceBookSync("T", futures=futures)
    sync.on_snapshot(snaps[0])
    gaps = [sync.on_delta(d).gap for i, d in enumerate(deltas) if i != lost]
    assert gaps.count(True) >= 1 and sync.gaps >= 1
    # Recovery: a fresh snapshot of the current book brings it back, exactly.
    sync.on_snapshot(snaps[-1])
    assert (sync.book.as_snapshot().bids, sync.book.as_snapshot().asks) == (snaps[-1].bids, snaps[-1].asks)


def test_a_snapshot_older_than_the_buffer_is_refused() -> None:
    sync = BinanceBookSync("T", futures=False)
    assert sync.on_delta(BookDelta("T", [(1, 1)], [], 1, 200, 205)).need_snapshot
    result = sync.on_snapshot(BookSnapshot("T", [(1, 2)], [(3, 1)], 0, last_update_id=100))
    assert result.gap and result.need_snapshot and sync.state is SyncState.AWAITING_SNAPSHOT


def test_the_buffer_is_bounded_while_no_snapshot_comes() -> None:
    sync = BinanceBookSync("T", futures=False, max_buffer=10)
    results = [sync.on_delta(BookDelta("T", [(1, 1)], [], i, i, i)) for i in range(1, 12)]
    assert results[-1].gap and results[-1].need_snapshot and len(sync.buffer) == 0
    assert sum(r.need_snapshot for r in results[:-1]) == 1  # asked once, not on every delta
