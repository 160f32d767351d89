"""A fake TWS / IB Gateway on 127.0.0.1 speaking the TWS API socket protocol (server version 157).

Enough of the protocol that ib_async's real client runs against it: the
`API\\0` handshake with version negotiation, startApi -> nextValidId and
managedAccounts, positions, account values, contract details, executions with
commission reports, open and completed orders, real-time 5 s bars, and
placeOrder / cancelOrder with openOrder, orderStatus, execDetails and
commissionReport. Messages are length-prefixed, fields NUL-terminated, laid
out as ib_async's decoder reads them at this server version.

Each contract has a price the test moves (`set_price`, the default contract's
unless a conId is given); orders trade the contract they name (by conId, else
symbol and month; an unknown one gets error 200): market orders fill at its
price, marketable limits at their limit, resting stops and limits when the
price crosses them; positions are kept per contract. Order ids are per client
id, as TWS keeps them (two clients may both use id 1; a client cancels only
its own), and nextValidId is per client. `fill_parts` splits a fill into that
many executions (`hold_remainder`: the rest waits for the next price move); a bracket (parent + children with transmit=False until the last)
is held until its last leg arrives; an OCA group cancels its siblings when one
fills. Misbehaviour on command: `drop_all()` closes every connection,
`send_error(code, msg)` pushes an error to every client, `ack_delay_s` delays
order acks.

Threads, not trio: ib_async runs on asyncio in another thread, and the venue
under test on trio; a threaded server serves both without sharing a loop.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterable
from typing import Any

import attrs

SERVER_VERSION = 157
ACCOUNT = "DU1234567"


@attrs.define
class FakeContract:
    con_id: int = 711280073
    symbol: str = "MES"
    sec_type: str = "FUT"
    expiry: str = "20250321"
    multiplier: str = "5"
    exchange: str = "CME"
    currency: str = "USD"
    local_symbol: str = "MESH5"
    trading_class: str = "MES"
    min_tick: float = 0.25
    trading_hours: str = "20250101:1700-20250102:1600"
    liquid_hours: str = ""  # "" = the trading hours (regular trading hours the whole session)
    time_zone: str = "US/Central"

    def fields(self, with_exchange: bool = True) -> list[Any]:
        out: list[Any] = [self.con_id, self.symbol, self.sec_type, self.expiry, 0.0, "", self.multiplier]
        if with_exchange:
            out.append(self.exchange)
        return out + [self.currency, self.local_symbol, self.trading_class]


@attrs.define
class FakeOrder:
    order_id: int
    client_id: int
    perm_id: int
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    order_ref: str
    transmit: bool
    parent_id: int
    account: str
    contract: FakeContract = attrs.field(factory=lambda: FakeContract())  # what it trades
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_price: float = 0.0

    @property
    def key(self) -> tuple[int, int]:
        """TWS keeps order ids per client id: two clients may both use order id 1."""
        return (self.client_id, self.order_id)

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled

    @property
    def working(self) -> bool:
        return self.status in ("PreSubmitted", "Submitted")


@attrs.define
class FakeFill:
    exec_id: str
    order: FakeOrder
    shares: float
    price: float
    ts: float
    commission: float


@attrs.define
class PacingRules:
    """IB's rules as TWS applies them (the defaults are IB's); `enabled=False` turns them off."""

    requests: int = 60  # more than this many in any window_s is a violation
    window_s: float = 600.0
    identical_s: float = 15.0  # an identical request within this
    per_contract: int = 6  # this many or more for one contract, exchange and tick type ...
    per_contract_s: float = 2.0  # ... within this
    enabled: bool = True

    def broken(self, now: float, sent: list[tuple[float, tuple[str, ...], tuple[str, ...]]],
               request: tuple[str, ...], contract: tuple[str, ...]) -> str | None:
        """Which rule a request at `now` breaks, given those sent before; None: none."""
        if not self.enabled:
            return None
        if any(r == request and now - t < self.identical_s for t, r, _ in sent):
            return "identical request within 15 seconds"
        if sum(1 for t, _, c in sent if c == contract and now - t < self.per_contract_s) + 1 >= self.per_contract:
            return "six or more requests for one contract within two seconds"
        if sum(1 for t, _, _ in sent if now - t < self.window_s) + 1 > self.requests:
            return "more than 60 requests within ten minutes"
        return None


def _num(text: str) -> float | None:
    if text in ("", "1.7976931348623157e+308"):
        return None
    return float(text)


def _ib_time(text: str) -> int:
    """An endDateTime as clients send it: "yyyymmdd HH:MM:SS UTC" or "yyyymmdd-HH:MM:SS" (UTC)."""
    import calendar

    for fmt, cut in (("%Y%m%d %H:%M:%S", " UTC"), ("%Y%m%d-%H:%M:%S", "")):
        try:
            return calendar.timegm(time.strptime(text.removesuffix(cut), fmt))
        except ValueError:
            continue
    raise ValueError(f"endDateTime {text!r} is not in a UTC form TWS reads")


def _duration_s(text: str) -> int:
    """A durationStr: "N S", "N D" (calendar days here) or "N W"."""
    number, unit = text.split(" ")
    seconds = {"S": 1, "D": 86_400, "W": 7 * 86_400}.get(unit)
    if seconds is None or not number.isdigit():
        raise ValueError(f"durationStr {text!r}: expected 'N S', 'N D' or 'N W'")
    return int(number) * seconds


def encode(fields: Iterable[Any]) -> bytes:
    parts = []
    for f in fields:
        if f is None:
            parts.append("")
        elif isinstance(f, bool):
            parts.append("1" if f else "0")
        else:
            parts.append(str(f))
    body = "".join(p + "\0" for p in parts).encode()
    return struct.pack(">I", len(body)) + body


class FakeTWS:
    """The fake; `start()` listens on 127.0.0.1 at a free port (`port`)."""

    def __init__(self, price: float = 5000.0, contract: FakeContract | None = None,
                 commission_per_contract: float = 0.62, listed: list[FakeContract] | None = None) -> None:
        self.contract = contract or FakeContract()
        # Further contracts IB lists (other months, other roots): details, bars, quotes, history,
        # and orders that name them. Each has its own tape and price.
        self.listed = list(listed or [])
        self.tapes: dict[int, list[tuple[int, float, float, float, float, float]]] = {}
        self.subscribed_con: dict[tuple[int, int], int] = {}  # (session, req id) -> conId asked for
        self.prices: dict[int, float] = {self.contract.con_id: price}  # conId -> its price
        self.commission = commission_per_contract
        self.orders: dict[tuple[int, int], FakeOrder] = {}  # (client id, order id) -> order
        self.fills: list[FakeFill] = []
        self.positions: dict[int, tuple[float, float]] = {}  # conId -> (position, average cost)
        self.next_ids: dict[int, int] = {}  # client id -> its next valid order id
        # Fills "when asked": a marketable order fills in this many executions (partial fills), and
        # with hold_remainder only the first goes at once, the rest with the next price move.
        self.fill_parts = 1
        self.hold_remainder = False
        self.next_perm = 900_000_000
        self.next_exec = 1
        self.ack_delay_s = 0.0
        self.refuse_connections = False  # TWS restarting: a new socket is closed at once
        self.received: list[list[str]] = []  # every message a client sent, for assertions
        self.lock = threading.RLock()
        self.sessions: list[_Session] = []
        self._held: dict[tuple[int, int], list[FakeOrder]] = {}  # (client, parent id) -> legs held
        self.bar_subscriptions: list[tuple[_Session, int]] = []
        self.quote_subscriptions: list[tuple[_Session, int]] = []
        # The tape: every 5 s bar the market made (ts in seconds, o, h, l, c, volume), delivered or
        # not; reqHistoricalData answers from it, as IB's servers keep what a client missed.
        self.tape: list[tuple[int, float, float, float, float, float]] = []
        self.quote: tuple[float, float, float, float] | None = None  # bid, bid size, ask, ask size
        self.market_link_up = True  # False: TWS lost IB's servers (1100); nothing streams
        self.history_requests: list[tuple[str, str, str, bool]] = []  # end, duration, bar size, RTH only
        # IB's historical-data pacing ("Historical Data Limitations"): a request breaking a rule is
        # answered with error 162 "...Historical data request pacing violation", not with bars.
        self.pacing = PacingRules()
        self.history_sent: list[tuple[float, tuple[str, ...], tuple[str, ...]]] = []  # at, request, contract
        self.pacing_violations = 0
        self.server: socketserver.ThreadingTCPServer | None = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> FakeTWS:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if fake.refuse_connections:
                    self.request.close()
                    return
                _Session(fake, self.request).run()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.drop_all()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- misbehaviour and market ---------------------------------------------------------
    @property
    def price(self) -> float:
        """The price of `contract` (the default one)."""
        return self.prices[self.contract.con_id]

    @property
    def position(self) -> float:
        return self.positions.get(self.contract.con_id, (0.0, 0.0))[0]

    @property
    def avg_cost(self) -> float:
        return self.positions.get(self.contract.con_id, (0.0, 0.0))[1]

    def next_order_id(self, client_id: int) -> int:
        return self.next_ids.get(client_id, 1)

    def contract_of(self, con_id: int) -> FakeContract | None:
        return next((c for c in (self.contract, *self.listed) if c.con_id == con_id), None)

    def drop_all(self) -> None:
        with self.lock:
            for s in list(self.sessions):
                s.close()

    def send_error(self, code: int, message: str, req_id: int = -1) -> None:
        with self.lock:
            for s in self.sessions:
                s.send([4, 2, req_id, code, message])

    def set_price(self, price: float, con_id: int | None = None) -> None:
        """One contract's price (default `contract`); its working orders fill when it crosses them."""
        with self.lock:
            self.prices[con_id or self.contract.con_id] = price
            for order in list(self.orders.values()):
                if order.contract.con_id == (con_id or self.contract.con_id) and order.working \
                        and self._triggered(order):
                    self._fill(order, self._fill_price(order))

    def push_bar(self, ts: int, o: float, h: float, lo: float, c: float, volume: float = 10.0,
                 con_id: int | None = None) -> None:
        """A 5-second bar (ts: its start, epoch seconds) of one contract (default `contract`) to its
        real-time-bar subscribers, and onto its tape; the price moves to its close. While the market
        link is down only the tape gets it."""
        if ts % 5:
            raise ValueError(f"a 5 s bar starts on a 5 s boundary, not {ts}")
        con = con_id or self.contract.con_id
        with self.lock:
            self._tape(con).append((ts, o, h, lo, c, volume))
            if self.market_link_up:
                for session, req_id in self.bar_subscriptions:
                    if self.subscribed_con.get((id(session), req_id), self.contract.con_id) == con:
                        session.send([50, 3, req_id, ts, o, h, lo, c, volume, c, 5])
        if con == self.contract.con_id or any(o.contract.con_id == con for o in self.orders.values()):
            self.set_price(c, con)

    def _tape(self, con_id: int) -> list[tuple[int, float, float, float, float, float]]:
        return self.tape if con_id == self.contract.con_id else self.tapes.setdefault(con_id, [])

    def contracts(self, symbol: str) -> list[FakeContract]:
        return [c for c in (self.contract, *self.listed) if c.symbol == symbol]

    def set_quote(self, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
        """Top of book to every market-data subscriber (tickPrice bid/ask with their sizes)."""
        with self.lock:
            self.quote = (bid, bid_size, ask, ask_size)
            if self.market_link_up:
                for session, req_id in self.quote_subscriptions:
                    session.send_quote(req_id, self.quote)

    def lose_market_link(self) -> None:
        """TWS loses IB's servers: error 1100 to every client, then nothing streams."""
        with self.lock:
            self.market_link_up = False
        self.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")

    def restore_market_link(self, data_lost: bool = False) -> None:
        """Back: 1102 (subscriptions kept) or 1101 (data lost: TWS dropped every subscription)."""
        with self.lock:
            self.market_link_up = True
            if data_lost:
                self.bar_subscriptions.clear()
                self.quote_subscriptions.clear()
        if data_lost:
            self.send_error(1101, "Connectivity between IB and TWS has been restored- data lost.")
        else:
            self.send_error(1102, "Connectivity between IB and TWS has been restored- data maintained.")

    def minute_bars(self, start_s: int, end_s: int,
                    con_id: int | None = None) -> list[tuple[int, float, float, float, float, float, int]]:
        """1-minute TRADES bars from a contract's tape, [start_s, end_s): (start, o, h, l, c, volume, 5 s bars)."""
        minutes: dict[int, list[tuple[int, float, float, float, float, float]]] = {}
        with self.lock:
            for bar in sorted(set(self._tape(con_id or self.contract.con_id))):
                if start_s <= bar[0] < end_s:
                    minutes.setdefault(bar[0] - bar[0] % 60, []).append(bar)
        return [(m, b[0][1], max(x[2] for x in b), min(x[3] for x in b), b[-1][4], sum(x[5] for x in b), len(b))
                for m, b in sorted(minutes.items())]

    # -- order book -----------------------------------------------------------------
    def _triggered(self, o: FakeOrder) -> bool:
        buy, price = o.action == "BUY", self.prices.get(o.contract.con_id)
        if price is None:
            return False  # no trade in that contract yet: nothing to fill against
        if o.order_type == "MKT":
            return True
        if o.order_type == "LMT":
            assert o.lmt_price is not None
            return price <= o.lmt_price if buy else price >= o.lmt_price
        if o.order_type == "STP":
            assert o.aux_price is not None
            return price >= o.aux_price if buy else price <= o.aux_price
        return False

    def _fill_price(self, o: FakeOrder) -> float:
        price = self.prices[o.contract.con_id]
        if o.order_type == "LMT" and o.lmt_price is not None:
            return min(price, o.lmt_price) if o.action == "BUY" else max(price, o.lmt_price)
        return price

    def _fill(self, o: FakeOrder, price: float) -> None:
        """Fill what remains: in `fill_parts` executions (the rest held for the next price move
        with `hold_remainder`); a bracket's children and OCA siblings follow the full fill."""
        part = max(1.0, float(int(o.quantity / self.fill_parts + 0.999999)))
        while o.remaining > 0:
            self._execute(o, price, min(part, o.remaining))
            if self.hold_remainder and o.remaining > 0:
                return
        self._filled(o)

    def _execute(self, o: FakeOrder, price: float, qty: float) -> None:
        o.avg_price = (o.avg_price * o.filled + price * qty) / (o.filled + qty)
        o.filled += qty
        o.status = "Filled" if o.remaining <= 0 else "Submitted"
        signed = qty if o.action == "BUY" else -qty
        position, avg_cost = self.positions.get(o.contract.con_id, (0.0, 0.0))
        new = position + signed
        if position == 0 or (position > 0) == (signed > 0):
            avg_cost = (avg_cost * abs(position) + price * abs(signed)) / abs(new) if new else 0.0
        elif new == 0:
            avg_cost = 0.0
        elif (new > 0) != (position > 0):
            avg_cost = price
        self.positions[o.contract.con_id] = (new, avg_cost)
        fill = FakeFill(f"0000e0d5.{self.next_exec:08x}.01.01", o, qty, price, time.time(),
                        round(self.commission * qty, 2))
        self.next_exec += 1
        self.fills.append(fill)
        for s in self.sessions:
            s.send_exec(fill, -1)
            s.send_commission(fill)
            s.send_status(o)

    def _filled(self, o: FakeOrder) -> None:
        for other in self.orders.values():  # an OCA group, and a bracket's children, are one-cancels-other
            same_oca = bool(o.oca_group) and other.oca_group == o.oca_group
            siblings = bool(o.parent_id) and other.parent_id == o.parent_id and other.client_id == o.client_id
            if other is not o and (same_oca or siblings) and (other.working or other.status == "PreSubmitted"):
                    other.status = "Cancelled"
                    for s in self.sessions:
                        s.send_status(other)
        for child in self.orders.values():  # a filled parent activates its children
            if child.client_id == o.client_id and child.parent_id == o.order_id \
                    and child.status == "PreSubmitted":
                child.status = "Submitted"
                for s in self.sessions:
                    s.send_status(child)
                if self._triggered(child):
                    self._fill(child, self._fill_price(child))

    def place(self, session: _Session, order: FakeOrder) -> None:
        with self.lock:
            known = self.orders.get(order.key)
            if known is not None and not known.working:
                session.send([4, 2, order.order_id, 103, "Duplicate order id"])
                return
            if known is not None:  # a modify: the same order, new terms
                order = attrs.evolve(order, perm_id=known.perm_id, filled=known.filled,
                                     avg_price=known.avg_price)
            self.orders[order.key] = order
            self.next_ids[order.client_id] = max(self.next_order_id(order.client_id), order.order_id + 1)
            group = (order.client_id, order.parent_id or order.order_id)
            if not order.transmit:
                self._held.setdefault(group, []).append(order)
                return
            legs = [*self._held.pop(group, []), order]
        if self.ack_delay_s:
            time.sleep(self.ack_delay_s)
        with self.lock:
            for leg in legs:
                parent = self.orders.get((leg.client_id, leg.parent_id)) if leg.parent_id else None
                leg.status = "PreSubmitted" if parent is not None and parent.filled < parent.quantity \
                    else "Submitted"
                for s in self.sessions:
                    s.send_open_order(leg)
                    s.send_status(leg)
            for leg in legs:
                if leg.status == "Submitted" and self._triggered(leg):
                    self._fill(leg, self._fill_price(leg))

    def cancel(self, session: _Session, order_id: int) -> None:
        with self.lock:
            o = self.orders.get((session.client_id, order_id))
            if o is None or not (o.working or o.status == "PreSubmitted"):
                session.send([4, 2, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."])
                return
            o.status = "Cancelled"
            for s in self.sessions:
                s.send_status(o)


class _Session:
    """One client connection: the handshake, then one message at a time."""

    def __init__(self, fake: FakeTWS, sock: socket.socket) -> None:
        self.fake = fake
        self.sock = sock
        self.client_id = 0
        self.closed = False
        self.send_lock = threading.Lock()

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def send(self, fields: list[Any]) -> None:
        if self.closed:
            return
        with self.send_lock:
            try:
                self.sock.sendall(encode(fields))
            except OSError:
                self.closed = True

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("client closed")
            buf += chunk
        return buf

    def _read_msg(self) -> list[str]:
        size = struct.unpack(">I", self._read_exact(4))[0]
        return self._read_exact(size).decode().split("\0")[:-1]

    def run(self) -> None:
        try:
            if self._read_exact(4) != b"API\0":
                return
            size = struct.unpack(">I", self._read_exact(4))[0]
            versions = self._read_exact(size).decode()  # "v157..178" (+ " options"), no NUL
            lo, hi = (int(v) for v in versions.split()[0].lstrip("v").split(".."))
            if not lo <= SERVER_VERSION <= hi:
                return
            self.send([SERVER_VERSION, time.strftime("%Y%m%d %H:%M:%S") + " UTC"])
            with self.fake.lock:
                self.fake.sessions.append(self)
            while not self.closed:
                msg = self._read_msg()
                self.fake.received.append(msg)
                self.dispatch(msg)
        except (ConnectionError, OSError, ValueError, IndexError, struct.error):
            pass
        finally:
            with self.fake.lock:
                if self in self.fake.sessions:
                    self.fake.sessions.remove(self)
                self.fake.bar_subscriptions = [b for b in self.fake.bar_subscriptions if b[0] is not self]
                self.fake.quote_subscriptions = [b for b in self.fake.quote_subscriptions if b[0] is not self]
            self.closed = True

    # -- requests -------------------------------------------------------------------
    def dispatch(self, m: list[str]) -> None:
        msg_id = int(m[0])
        handler = getattr(self, f"_msg_{msg_id}", None)
        if handler is not None:
            handler(m)

    def _msg_71(self, m: list[str]) -> None:  # startApi
        self.client_id = int(m[2])
        self.send([9, 1, self.fake.next_order_id(self.client_id)])
        self.send([15, 1, ACCOUNT])
        self.send([4, 2, -1, 2104, "Market data farm connection is OK:usfarm"])
        self.send([4, 2, -1, 2106, "HMDS data farm connection is OK:ushmds"])

    def _msg_8(self, m: list[str]) -> None:  # reqIds
        self.send([9, 1, self.fake.next_order_id(self.client_id)])

    def _msg_49(self, m: list[str]) -> None:  # reqCurrentTime
        self.send([49, 1, int(time.time())])

    def _msg_61(self, m: list[str]) -> None:  # reqPositions
        f = self.fake
        with f.lock:
            held = [(f.contract_of(con), pos, cost) for con, (pos, cost) in f.positions.items() if pos]
        for c, pos, cost in held:
            if c is not None:
                self.send([61, 3, ACCOUNT, *c.fields(), pos, cost * float(c.multiplier)])
        self.send([62, 1])

    def _msg_6(self, m: list[str]) -> None:  # reqAccountUpdates
        f = self.fake
        for key, value in (("NetLiquidation", "25000.00"), ("AvailableFunds", "23000.00"),
                           ("UnrealizedPnL", "0.00"), ("RealizedPnL", "0.00")):
            self.send([6, 2, key, value, "USD", ACCOUNT])
        with f.lock:
            held = [(f.contract_of(con), pos, cost, f.prices.get(con, cost))
                    for con, (pos, cost) in f.positions.items() if pos]
        for c, pos, cost, price in held:
            if c is None:
                continue
            mult = float(c.multiplier)
            self.send([7, 8, *c.fields(with_exchange=False)[:7], "", *c.fields()[-3:],
                       pos, price, pos * price * mult, cost * mult, (price - cost) * pos * mult, 0.0, ACCOUNT])
        self.send([8, 1, time.strftime("%H:%M")])
        self.send([54, 1, ACCOUNT])

    def _msg_76(self, m: list[str]) -> None:  # reqAccountUpdatesMulti
        req_id = int(m[2])
        self.send([73, 1, req_id, ACCOUNT, "", "NetLiquidation", "25000.00", "USD"])
        self.send([74, 1, req_id])

    def _msg_5(self, m: list[str]) -> None:  # reqOpenOrders
        with self.fake.lock:
            for o in self.fake.orders.values():
                if o.working or o.status == "PreSubmitted":
                    self.send_open_order(o)
                    self.send_status(o)
        self.send([53, 1])

    def _msg_16(self, m: list[str]) -> None:  # reqAllOpenOrders
        self._msg_5(m)

    def _msg_15(self, m: list[str]) -> None:  # reqAutoOpenOrders
        pass

    def _msg_99(self, m: list[str]) -> None:  # reqCompletedOrders
        self.send([102])

    def _msg_7(self, m: list[str]) -> None:  # reqExecutions
        req_id = int(m[2])
        with self.fake.lock:
            for fill in self.fake.fills:
                self.send_exec(fill, req_id)
                self.send_commission(fill)
        self.send([55, 1, req_id])

    def _msg_9(self, m: list[str]) -> None:  # reqContractDetails
        req_id = int(m[2])
        symbol = m[4]
        found = self.fake.contracts(symbol) if symbol else [self.fake.contract]
        if not found:
            self.send([4, 2, req_id, 200, "No security definition has been found for the request"])
            return
        for c in found:
            self.send([10, 8, req_id, c.symbol, c.sec_type, c.expiry, 0.0, "", c.exchange, c.currency,
                       c.local_symbol, c.trading_class, c.trading_class, c.con_id, c.min_tick, 1,
                       c.multiplier, "ACTIVETIM,LMT,MKT,STP,OCA", "CME", 1, 0, "Micro E-Mini S&P 500", "",
                       c.expiry[:6], "", "", "", c.time_zone, c.trading_hours, c.liquid_hours or c.trading_hours,
                       "", "", 0, 1, "ES", "IND", "67,67", c.expiry, ""])
        self.send([52, 1, req_id])

    def _msg_3(self, m: list[str]) -> None:  # placeOrder: orderId, contract (conId, symbol, ...), order
        contract = self._traded(m)
        if contract is None:
            self.send([4, 2, int(m[1]), 200, "No security definition has been found for the request"])
            return
        o = FakeOrder(order_id=int(m[1]), client_id=self.client_id, perm_id=self.fake.next_perm,
                      action=m[16], quantity=float(m[17]), order_type=m[18], lmt_price=_num(m[19]),
                      aux_price=_num(m[20]), tif=m[21], oca_group=m[22], account=m[23] or ACCOUNT,
                      order_ref=m[26], transmit=m[27] == "1", parent_id=int(m[28] or 0), contract=contract)
        self.fake.next_perm += 1
        if o.order_type not in ("MKT", "LMT", "STP"):
            self.send([4, 2, o.order_id, 387, f"Unsupported order type {o.order_type}"])
            return
        if o.quantity <= 0:
            self.send([4, 2, o.order_id, 201, "Order rejected - reason:quantity must be positive"])
            return
        self.fake.place(self, o)

    def _traded(self, m: list[str]) -> FakeContract | None:
        """The contract an order names: by conId, else by symbol (and local symbol or month)."""
        con_id, symbol, month, local = int(m[2] or 0), m[3], m[5], m[12]
        with self.fake.lock:
            if con_id:
                return self.fake.contract_of(con_id)
            for c in self.fake.contracts(symbol):
                if (not local or c.local_symbol == local) and (not month or c.expiry.startswith(month)):
                    return c
        return None

    def _msg_4(self, m: list[str]) -> None:  # cancelOrder
        self.fake.cancel(self, int(m[2]))

    def _msg_50(self, m: list[str]) -> None:  # reqRealTimeBars
        with self.fake.lock:
            self.fake.bar_subscriptions.append((self, int(m[2])))
            self.fake.subscribed_con[(id(self), int(m[2]))] = int(m[3] or 0) or self.fake.contract.con_id

    def _msg_51(self, m: list[str]) -> None:  # cancelRealTimeBars
        with self.fake.lock:
            self.fake.bar_subscriptions = [b for b in self.fake.bar_subscriptions
                                           if not (b[0] is self and b[1] == int(m[2]))]

    def _msg_1(self, m: list[str]) -> None:  # reqMktData: version, reqId, contract (12 fields), ...
        req_id, symbol = int(m[2]), m[4]
        if not self.fake.contracts(symbol):
            self.send([4, 2, req_id, 200, "No security definition has been found for the request"])
            return
        self.send([81, req_id, self.fake.contract.min_tick, "9c0001", 3])  # tickReqParams
        with self.fake.lock:
            self.fake.quote_subscriptions.append((self, req_id))
            self.fake.subscribed_con[(id(self), req_id)] = int(m[3] or 0) or self.fake.contract.con_id
            if self.fake.quote is not None and self.fake.market_link_up:
                self.send_quote(req_id, self.fake.quote)

    def _msg_2(self, m: list[str]) -> None:  # cancelMktData
        with self.fake.lock:
            self.fake.quote_subscriptions = [q for q in self.fake.quote_subscriptions
                                             if not (q[0] is self and q[1] == int(m[2]))]

    def _msg_20(self, m: list[str]) -> None:  # reqHistoricalData: reqId, contract (12), includeExpired, ...
        req_id, symbol = int(m[1]), m[3]
        end_text, bar_size, duration, use_rth, what, fmt = m[15], m[16], m[17], m[18] == "1", m[19], m[20]
        self.fake.history_requests.append((end_text, duration, bar_size, use_rth))
        with self.fake.lock:
            now, fake = time.monotonic(), self.fake
            request, contract = (m[2], m[3], *m[15:20]), (m[2] or m[3], m[9], what)
            broken = fake.pacing.broken(now, fake.history_sent, request, contract)
            fake.history_sent.append((now, request, contract))
            if broken is not None:
                fake.pacing_violations += 1
        if broken is not None:
            self.send([4, 2, req_id, 162, "Historical Market Data Service error message:"
                       "Historical data request pacing violation"])
            return
        if not self.fake.contracts(symbol):
            self.send([4, 2, req_id, 200, "No security definition has been found for the request"])
            return
        if bar_size != "1 min" or what != "TRADES":
            self.send([4, 2, req_id, 321, (f"Error validating request:-'bP' : cause - {bar_size} {what} "
                       "is not supported by this fake")])
            return
        try:
            end_s = _ib_time(end_text) if end_text else int(time.time())
            span_s = _duration_s(duration)
        except ValueError as exc:
            self.send([4, 2, req_id, 321, f"Error validating request:-'bX' : cause - {exc}"])
            return
        bars = self.fake.minute_bars(end_s - span_s, end_s, int(m[2] or 0) or None)
        if not bars:
            c = self.fake.contract
            self.send([4, 2, req_id, 162, ("Historical Market Data Service error message:HMDS query returned "
                       f"no data: {c.local_symbol}@{c.exchange} Trades")])
            return
        when = (lambda t: t) if fmt == "2" else (lambda t: time.strftime("%Y%m%d  %H:%M:%S", time.gmtime(t)))
        fields: list[Any] = [17, req_id, time.strftime("%Y%m%d  %H:%M:%S", time.gmtime(end_s - span_s)),
                             time.strftime("%Y%m%d  %H:%M:%S", time.gmtime(end_s)), len(bars)]
        for start, o, h, lo, c_, volume, count in bars:
            fields += [when(start), o, h, lo, c_, volume, c_, count]
        self.send(fields)

    # -- replies ------------------------------------------------------------------------
    def send_quote(self, req_id: int, quote: tuple[float, float, float, float]) -> None:
        bid, bid_size, ask, ask_size = quote
        self.send([1, 6, req_id, 1, bid, bid_size, 0])  # tickPrice BID (with its size)
        self.send([1, 6, req_id, 2, ask, ask_size, 0])  # tickPrice ASK

    def send_status(self, o: FakeOrder) -> None:
        self.send([3, o.order_id, o.status, o.filled, o.remaining, o.avg_price, o.perm_id, o.parent_id,
                   o.avg_price if o.filled else 0.0, o.client_id, "", 0.0])

    def send_exec(self, fill: FakeFill, req_id: int) -> None:
        o, c = fill.order, fill.order.contract
        when = time.strftime("%Y%m%d %H:%M:%S", time.gmtime(fill.ts)) + " UTC"
        self.send([11, req_id, o.order_id, *c.fields(), fill.exec_id, when, o.account, c.exchange,
                   "BOT" if o.action == "BUY" else "SLD", fill.shares, fill.price, o.perm_id, o.client_id, 0,
                   o.filled, o.avg_price, o.order_ref, "", "", "", 2])

    def send_commission(self, fill: FakeFill) -> None:
        self.send([59, 1, fill.exec_id, fill.commission, "USD", "", "", ""])

    def send_open_order(self, o: FakeOrder) -> None:
        c = o.contract
        fields: list[Any] = [5, o.order_id, *c.fields(), o.action, o.quantity, o.order_type,
                             o.lmt_price, o.aux_price, o.tif, o.oca_group, o.account, "", 0, o.order_ref,
                             o.client_id, o.perm_id, 0, 0, 0.0, "", "", "", "", "", ""]  # .. faProfile (<177)
        fields += ["", "", "", "", "", 0, "", 0, "", "", "", "", "", "",  # modelCode .. stockRangeUpper
                   0, 0, 0, 0, 0, 0, 0, 0, 0,  # displaySize .. nbboPriceCap
                   o.parent_id, 0, "", "", "", ""]  # parentId .. deltaNeutralAuxPrice (no delta neutral)
        fields += [0, "", "", "", "", "", ""]  # continuousUpdate .. comboLegsDescrip
        fields += [0, 0, 0]  # combo legs, order combo legs, smart routing params
        fields += ["", "", ""]  # scale: init, subs, increment (none)
        fields += [""]  # hedgeType
        fields += [0, "", "", 0, 0]  # optOutSmartRouting, clearing account/intent, notHeld, no DNC
        fields += [""]  # algoStrategy
        fields += [0, 0, o.status, "", "", "", "", "", "", "", "", "", "", "", "", "USD", "", 0, 0]
        fields += [0]  # conditions
        fields += ["", "", "", "", "", "", "", "", "", "", "", "", 0, 0, "", 0]
        self.send(fields)
