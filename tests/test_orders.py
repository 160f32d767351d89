"""Order state machine: the table, real-world edges, duplicates, overfills, and random sequences."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fractald.core.execution.orders import (
    TERMINAL,
    TRANSITIONS,
    Applied,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    TimeInForce,
    client_order_id,
)
from fractald.core.models import Side
from fractald.errors import InvariantViolation

E, S = OrderEvent, OrderStatus


class Held:
    """An order followed through its events: each `apply` keeps the value it returns (as evolve.py
    does with the engine's orders), and reads go to the current value."""

    def __init__(self, order: Order) -> None:
        self.order = order

    def apply(self, event: OrderEvent, ts: int, **kw: Any) -> Applied:
        result, self.order = self.order.apply(event, ts, **kw)
        return result

    def apply_fill(self, trade_id: str, qty: float, price: float, fee: float, ts: int) -> Applied:
        result, self.order = self.order.apply_fill(trade_id, qty, price, fee, ts)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.order, name)


def limit(qty: float = 1.0) -> Any:
    o = Held(Order("c1", "BTC", Side.BUY, OrderType.LIMIT, qty, price=100.0))
    assert o.apply(E.SUBMIT, 1) is Applied.APPLIED
    return o


def test_an_order_is_a_frozen_value_and_an_event_makes_the_next_one() -> None:
    o = Order("c1", "BTC", Side.BUY, OrderType.LIMIT, 1.0, price=100.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        o.status = S.SUBMITTED  # type: ignore[misc]
    result, sent = o.apply(E.SUBMIT, 1)
    assert result is Applied.APPLIED and (o.status, sent.status) == (S.INITIALIZED, S.SUBMITTED)
    result, filled = sent.apply_fill("t1", 1.0, 100.0, 0.0, 2)
    assert filled.trade_ids == ("t1",) and sent.trade_ids == () and filled.status is S.FILLED
    assert filled.apply_fill("t1", 1.0, 100.0, 0.0, 3) == (Applied.DUPLICATE, filled)


def test_happy_path_partial_then_full() -> None:
    o = limit(2.0)
    o.apply(E.ACCEPT, 2, venue_order_id="v1")
    assert o.apply_fill("t1", 0.5, 100.0, 0.01, 3) is Applied.APPLIED
    assert o.status is S.PARTIALLY_FILLED and o.leaves_qty == 1.5
    o.apply_fill("t2", 1.5, 99.0, 0.01, 4)
    assert o.status is S.FILLED and o.avg_fill_price == pytest.approx(99.25)
    assert o.fees == pytest.approx(0.02) and o.venue_order_id == "v1"


def test_fill_after_cancel_request_then_cancel() -> None:
    o = limit(2.0)
    o.apply(E.ACCEPT, 2)
    o.apply(E.CANCEL_REQUEST, 3)
    o.apply_fill("t1", 1.0, 100.0, 0.0, 4)
    assert o.status is S.PENDING_CANCEL and o.filled_qty == 1.0
    o.apply(E.CANCEL, 5)
    assert o.status is S.CANCELED and o.filled_qty == 1.0


def test_cancel_rejected_resumes_working_status() -> None:
    o = limit(2.0)
    o.apply(E.ACCEPT, 2)
    o.apply(E.CANCEL_REQUEST, 3)
    o.apply(E.CANCEL_REJECT, 4, reason="too late")
    assert o.status is S.ACCEPTED and o.reason == "too late"
    o.apply_fill("t1", 1.0, 100.0, 0.0, 5)
    o.apply(E.CANCEL_REQUEST, 6)
    o.apply(E.CANCEL_REJECT, 7)
    assert o.status is S.PARTIALLY_FILLED


def test_update_changes_fields_and_resumes() -> None:
    o = limit(2.0)
    o.apply(E.ACCEPT, 2)
    o.apply(E.UPDATE_REQUEST, 3)
    assert o.status is S.PENDING_UPDATE
    o.apply(E.UPDATE, 4, price=101.0, quantity=3.0)
    assert o.status is S.ACCEPTED and o.price == 101.0 and o.quantity == 3.0


def test_fill_beats_ack_and_late_ack_is_invalid_not_fatal() -> None:
    o = limit(1.0)
    o.apply_fill("t1", 1.0, 100.0, 0.0, 2)
    assert o.status is S.FILLED
    assert o.apply(E.ACCEPT, 3) is Applied.INVALID and o.status is S.FILLED


def test_duplicate_trade_id_ignored_and_overfill_raises() -> None:
    o = limit(1.0)
    o.apply_fill("t1", 0.6, 100.0, 0.0, 2)
    assert o.apply_fill("t1", 0.6, 100.0, 0.0, 3) is Applied.DUPLICATE
    assert o.filled_qty == 0.6
    with pytest.raises(InvariantViolation, match="overfill"):
        o.apply_fill("t2", 0.5, 100.0, 0.0, 4)


def test_late_fill_after_cancel_is_recorded() -> None:
    o = limit(1.0)
    o.apply(E.ACCEPT, 2)
    o.apply(E.CANCEL, 3)
    assert o.apply_fill("t1", 0.4, 100.0, 0.0, 4) is Applied.APPLIED
    assert o.status is S.CANCELED and o.filled_qty == 0.4


def test_order_validation_and_stop_trigger() -> None:
    with pytest.raises(ValueError, match="needs a positive price"):
        Order("c", "BTC", Side.BUY, OrderType.LIMIT, 1.0)
    with pytest.raises(ValueError, match="trigger_price"):
        Order("c", "BTC", Side.SELL, OrderType.STOP_MARKET, 1.0)
    with pytest.raises(ValueError, match="GTD"):
        Order("c", "BTC", Side.BUY, OrderType.MARKET, 1.0, tif=TimeInForce.GTD)
    o = Held(Order("c", "BTC", Side.SELL, OrderType.STOP_LIMIT, 1.0, price=95.0, trigger_price=96.0,
                   reduce_only=True))
    o.apply(E.SUBMIT, 1)
    o.apply(E.ACCEPT, 2)
    o.apply(E.TRIGGER, 3)
    o.apply(E.CANCEL_REQUEST, 4)
    o.apply(E.CANCEL_REJECT, 5)
    assert o.status is S.TRIGGERED


def test_client_order_id_is_deterministic_per_intent_and_leg() -> None:
    a = client_order_id("strat:BTC:1m:BUY:123", "entry")
    assert a == client_order_id("strat:BTC:1m:BUY:123", "entry")
    assert a != client_order_id("strat:BTC:1m:BUY:123", "tp1")
    assert a != client_order_id("strat:BTC:1m:BUY:124", "entry")
    assert len(a) == 32 and int(a, 16) >= 0


def test_terminal_states_have_no_exit_except_late_fills() -> None:
    for (status, event), _ in TRANSITIONS.items():
        if status in TERMINAL:
            assert event in (E.FILL, E.PARTIAL_FILL), (status, event)


VENUE_EVENTS = [E.ACCEPT, E.REJECT, E.TRIGGER, E.CANCEL_REQUEST, E.CANCEL, E.CANCEL_REJECT,
                E.UPDATE_REQUEST, E.UPDATE, E.UPDATE_REJECT, E.EXPIRE]
step = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(VENUE_EVENTS)),
    st.tuples(st.just("fill"), st.integers(0, 6), st.integers(1, 60)),  # trade id, qty in 1/100
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40))
def test_random_venue_sequences_never_leave_an_invalid_order(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    o = limit(1.0)
    applied: dict[str, float] = {}
    for s in steps:
        before = (o.status, o.filled_qty)
        if s[0] == "event":
            result = o.apply(s[1], 10)
        else:
            tid, qty = f"t{s[1]}", s[2] / 100
            if tid not in applied and sum(applied.values()) + qty > 1.0 + 1e-9:
                with pytest.raises(InvariantViolation):
                    o.apply_fill(tid, qty, 100.0, 0.0, 10)
                assert (o.status, o.filled_qty) == before
                continue
            result = o.apply_fill(tid, qty, 100.0, 0.0, 10)
            if result is Applied.APPLIED:
                applied[tid] = qty
        if result is not Applied.APPLIED:
            assert (o.status, o.filled_qty) == before
        # invariants after every step
        assert o.status in OrderStatus
        assert 0.0 <= o.filled_qty <= o.quantity + 1e-9
        assert o.filled_qty == pytest.approx(sum(applied.values()))
        assert (o.status is S.FILLED) == (o.filled_qty >= o.quantity - 1e-9)
        if o.status is S.PARTIALLY_FILLED:
            assert 0 < o.filled_qty < o.quantity
