"""Soak: the real daemon against a local fake Binance venue, with faults on a schedule.

    python bench/soak.py --duration 3600 [--fault-every 20] [--out DIR]

What runs: `fractald run` as a subprocess (restarted after every exit, as
systemd's Restart=always would, with a 1 s pause and a watchdog that
SIGKILLs it when WATCHDOG=1 stops for `--watchdog` seconds), fed by the fake
Binance USD-M venue from tests/fakevenue on 127.0.0.1, streaming the bundled
real BTC candles as trades at real time (four trades a minute: open, high,
low, close), with six hours of history behind "now" for backfills.

Time is compressed where the design allows: the market runs at real time
(bars are closed by the wall clock), but a week's worth of faults is packed
into the run: one every `--fault-every` seconds, drawn round-robin from
ws drop, ws abort (TCP reset), a stall (open, silent), a 429 spell on REST,
kill -9, SIGHUP with a changed [risk] value, control-socket load (idle and
`tail` connections past the client limit, with `status` asked meanwhile),
and a disk-full spell (the state directory is a small tmpfs when we are
root, filled to the last byte; otherwise skipped and said so). The
daemon's own intervals (snapshot, backup, reconcile) are shortened too.

It samples every `--sample-every` seconds: up (status answers, phase
ready), RSS, open fds, CPU, loop lag; and records restarts, exit statuses
and each fault's time to recover (until status says ready with a fresh
feed again). At the end it stops the daemon with SIGTERM and checks the
invariants on the ledger: no intent doubled or left without an outcome,
no fill doubled, every 1m bar the venue had in the daemon's chart history
with no hole. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import trio
from fakevenue.server import MIN, FakeBinance, Trade

from fractald.control.client import ClientError, ControlClient
from fractald.datasets import bundled_btc_1m_arrays

SYMBOL = "BTCUSDT"
HISTORY_MIN = 360
FAULTS = ("ws_drop", "sighup", "ws_abort", "control_load", "stall", "kill9", "rate_limit",
          "disk_full")


# --------------------------------------------------------------------------- the venue


def market(start_ms: int, minutes: int) -> list[Trade]:
    """Four trades a minute (open, high/low, low/high, close) from the bundled real candles."""
    a = bundled_btc_1m_arrays()
    trades: list[Trade] = []
    n = len(a["open"])
    for m in range(minutes):
        k = m % n
        o, h, lo, c, v = (float(a[x][k]) for x in ("open", "high", "low", "close", "volume"))
        path = (o, lo, h, c) if c >= o else (o, h, lo, c)
        base = start_ms + m * MIN
        for j, price in enumerate(path):
            trades.append(Trade(base + 1_000 + j * 14_000, round(price, 1),
                                round(max(v, 0.004) / 4, 3), j % 2 == 0))
    return trades


class SoakVenue(FakeBinance):
    """The fake Binance at real time, with faults switched on from another thread."""

    def __init__(self, truth: list[Trade], t0_ms: int) -> None:
        super().__init__(truth, t0_ms=t0_ms, symbol=SYMBOL)
        self._times = [t.ts for t in self.truth]
        self.live: set[Any] = set()
        self.stall_until = 0.0
        self.limited_until = 0.0
        self.status_429 = 0

    async def _script(self, ws: Any, subs: list[Any]) -> None:
        self.live.add(ws)
        try:
            i = bisect.bisect_left(self._times, self.venue_ms())
            while i < len(self.truth):
                trade = self.truth[i]
                await trio.sleep_until(self.at(trade.ts))
                if trio.current_time() >= self.stall_until:
                    await ws.send(self._agg(trade, i))
                    self.sent_trades += 1
                i += 1
            await trio.sleep_forever()
        finally:
            self.live.discard(ws)

    def _route(self, method: str, target: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if trio.current_time() < self.limited_until:
            self.status_429 += 1
            return 429, {"Retry-After": "5"}, {"code": -1003, "msg": "Too many requests"}
        return self._answer(*self._split(target), body)

    @staticmethod
    def _split(target: str) -> tuple[str, dict[str, str]]:
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(target)
        return url.path, {k: v[0] for k, v in parse_qs(url.query).items()}

    # faults, called in the venue's trio thread
    async def drop(self, abort: bool) -> int:
        n = 0
        for ws in list(self.live):
            n += 1
            if abort:
                await trio.aclose_forcefully(ws.stream)
            else:
                await ws.aclose(1001, "going away")
        return n

    def stall(self, seconds: float) -> None:
        self.stall_until = trio.current_time() + seconds

    def rate_limit(self, seconds: float) -> None:
        self.limited_until = trio.current_time() + seconds


class VenueThread:
    def __init__(self, minutes: int) -> None:
        now = time.time_ns() // 1_000_000
        start = now - now % MIN - HISTORY_MIN * MIN
        self.truth = market(start, HISTORY_MIN + minutes + 30)
        self.venue: SoakVenue | None = None
        self.token: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        # venue time = wall time: t0 is the wall clock at trio time 0.
        t0 = time.time_ns() // 1_000_000 - round(trio.current_time() * 1000)
        self.venue = SoakVenue(self.truth, t0)
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.venue.run)
            self._ready.set()

    def start(self) -> SoakVenue:
        self._thread.start()
        self._ready.wait(30)
        assert self.venue is not None
        return self.venue

    def call(self, fn: Any, *args: Any) -> Any:
        import inspect

        if inspect.iscoroutinefunction(fn):
            return trio.from_thread.run(fn, *args, trio_token=self.token)
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)


# --------------------------------------------------------------------------- control


def ctl(sock_path: Path, cmd: str, args: dict[str, Any] | None = None,
        timeout: float = 3.0) -> dict[str, Any] | None:
    """One request on the control socket, as fractalctl makes it; None when there is no answer."""
    try:
        with ControlClient(sock_path, timeout_s=timeout) as client:
            client.send(cmd, args or {})
            return client.read_message()
    except (ClientError, OSError, ValueError):
        return None


def trade_by_hand(sock_path: Path, i: int) -> dict[str, Any]:
    """Even turns enter a trade (long, short, ...) with a stop 0.5 % and a target 1 % away from
    the last close, through `enter` (the engine's sizing, gates and routing); odd turns flatten.
    So the ledger's order and fill invariants are checked on real orders, not vacuously."""
    out: dict[str, Any] = {"turn": i}
    if i % 2:
        reply = ctl(sock_path, "flatten", {}, timeout=10)
        out["action"] = "flatten"
    else:
        status = ctl(sock_path, "status", timeout=5) or {}
        bar = (((status.get("result") or {}).get("trading") or {}).get("last_bar") or {}).get(
            f"{SYMBOL}/1m") or {}
        price = bar.get("close")
        if not price:
            return {**out, "action": "enter", "ok": False, "code": "no_price"}
        long = (i // 2) % 2 == 0
        stop, target = (price * 0.995, price * 1.01) if long else (price * 1.005, price * 0.99)
        reply = ctl(sock_path, "enter", {"symbol": SYMBOL, "side": "long" if long else "short",
                                         "stop": round(stop, 1), "target": [f"{target:.1f}"]},
                    timeout=10)
        out["action"] = "enter"
    out["ok"] = bool(reply and reply.get("ok"))
    denied = ((reply or {}).get("result") or {}).get("denied") if out["ok"] else None
    if denied:  # answered, but the risk gates refused it: no order
        out["ok"], out["code"] = False, "denied:" + ",".join(d.get("code", "?") for d in denied)
    elif reply and not reply.get("ok"):
        out["code"] = (reply.get("error") or {}).get("code")
    elif reply is None:
        out["code"] = "no_reply"
    return out


def _trade_outcomes(trades: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in trades:
        key = f"{t.get('action')}:{'ok' if t.get('ok') else t.get('code')}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def ready_and_fresh(sock_path: Path, max_age_s: float = 120.0) -> tuple[bool, dict[str, Any]]:
    reply = ctl(sock_path, "status")
    if not reply or not reply.get("ok"):
        return False, {}
    st = reply["result"]
    return st["daemon"]["phase"] == "ready", st


# --------------------------------------------------------------------------- the daemon


class Notify:
    """The systemd side of sd_notify."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.address = str(path)
        self.last_watchdog = time.monotonic()
        self.ready_at: float | None = None

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096).decode(errors="replace")
            except BlockingIOError:
                return
            if "WATCHDOG=1" in data:
                self.last_watchdog = time.monotonic()
            if "READY=1" in data:
                self.ready_at = time.monotonic()
                self.last_watchdog = time.monotonic()


class Daemon:
    def __init__(self, cfg: Path, notify: Notify, logdir: Path, watchdog_s: float) -> None:
        self.cfg, self.notify, self.logdir, self.watchdog_s = cfg, notify, logdir, watchdog_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: list[int] = []
        self.watchdog_kills = 0
        self.started_at = 0.0
        self.wanted = True
        self.cpu_s_total = 0.0
        self._last_cpu = 0.0

    def start(self) -> None:
        env = {**os.environ, "NOTIFY_SOCKET": self.notify.address,
               "WATCHDOG_USEC": str(int(self.watchdog_s * 1e6))}
        env.pop("WATCHDOG_PID", None)
        log = (self.logdir / f"daemon-{self.starts:03d}.log").open("wb")
        self.proc = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "fractald.cli", "run", "--config",
             str(self.cfg)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
        log.close()
        self.starts += 1
        self.started_at = time.monotonic()
        self.notify.ready_at = None
        self.notify.last_watchdog = time.monotonic()
        self._last_cpu = 0.0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def supervise(self) -> None:
        """Restart after an exit (1 s pause), kill on watchdog timeout; what systemd does."""
        self.notify.drain()
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is not None:
            self.exits.append(rc)
            self.proc = None
            if rc == 78:
                print("daemon exited 78 (bad config): stopping the soak", file=sys.stderr)
                self.wanted = False
            if self.wanted:
                time.sleep(1.0)
                self.start()
            return
        if self.notify.ready_at is not None and \
                time.monotonic() - self.notify.last_watchdog > self.watchdog_s:
            self.watchdog_kills += 1
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            if self.proc.poll() is None:
                self.proc.kill()

    def sample(self) -> dict[str, float] | None:
        pid = self.pid
        if pid is None:
            return None
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss_kb = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, StopIteration, ValueError):
            return None
        self.cpu_s_total += max(0.0, cpu - self._last_cpu)
        self._last_cpu = cpu
        return {"rss_mb": rss_kb / 1024, "fds": fds, "cpu_s": cpu,
                "age_s": time.monotonic() - self.started_at}


# --------------------------------------------------------------------------- faults


class DiskFull:
    """A small tmpfs under the state directory (root only), filled on demand."""

    def __init__(self, state: Path, size_mb: int) -> None:
        self.state = state
        self.mounted = False
        state.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                                str(state)], check=False, capture_output=True, text=True)
            self.mounted = r.returncode == 0
            if not self.mounted:
                print(f"no tmpfs for disk-full spells ({r.stderr.strip()}); they are skipped")
        self.filler = state / "filler"

    def fill(self) -> int:
        """Write until ENOSPC, unbuffered (a buffered close would raise ENOSPC again)."""
        written = 0
        chunk = b"\0" * (1 << 16)
        try:
            fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            return 0  # already full
        try:
            while True:
                written += os.write(fd, chunk)
        except OSError:
            pass
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        self.free()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.state)], check=False)


def control_load(sock_path: Path, idle: int, tails: int, hold_s: float) -> dict[str, Any]:
    """Idle and `tail` connections past the limit; meanwhile ask `status` and `pause`/`resume`."""
    conns: list[socket.socket] = []
    for i in range(idle + tails):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(str(sock_path))
            if i >= idle:
                s.sendall(b'{"id":1,"cmd":"tail","args":{}}\n')
            conns.append(s)
        except OSError:
            s.close()
    asked = ok = 0
    worst = 0.0
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        t = time.monotonic()
        reply = ctl(sock_path, "status", timeout=5)
        worst = max(worst, time.monotonic() - t)
        asked += 1
        ok += bool(reply and reply.get("ok"))
        time.sleep(0.5)
    for s in conns:
        s.close()
    return {"connections": len(conns), "status_asked": asked, "status_ok": ok,
            "worst_reply_s": round(worst, 3)}


# --------------------------------------------------------------------------- the run


def write_config(path: Path, state: Path, run: Path, venue: SoakVenue, heat_cap: float) -> None:
    path.write_text(f"""
[daemon]
state_dir = "{state}"
runtime_dir = "{run}"
snapshot_interval_s = 10
backup_interval_s = 60
reconcile_interval_s = 30
restart_budget = 20
restart_window_s = 300
stall_limit_s = 20
[feed]
venue = "binance-futures"
symbols = ["{SYMBOL}"]
timeframes = ["1m", "5m", "15m", "1h"]
ws_url = "{venue.ws_url}"
rest_url = "{venue.rest_url}"
history_bars = 300
silence_timeout_s = 15
stale_after_s = 90
[strategies]
timeframe = "1m"
trend_timeframes = ["1m", "5m", "15m"]
[risk]
heat_cap = {heat_cap}
min_data_quality = 0.0
[log]
format = "json"
level = "info"
""")


def slope_mb_per_h(samples: list[dict[str, float]]) -> float | None:
    """RSS against process age, least squares, after each process's first 3 minutes of warm-up."""
    pts = [(s["age_s"], s["rss_mb"]) for s in samples if s["age_s"] > 180]
    if len(pts) < 3:
        return None
    xs, ys = zip(*pts)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return None if den == 0 else sum((x - mx) * (y - my) for x, y in pts) / den * 3600


def invariants(state: Path, bars: dict[str, Any]) -> dict[str, Any]:
    db = state / "fractald.db"
    if not db.exists():
        found = sorted(state.glob("*.db"))
        db = found[0] if found else db
    out: dict[str, Any] = {"db": str(db)}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        intents = con.execute(
            "select client_order_id, submitted_ms, outcome from intents").fetchall()
        ids = [r[0] for r in intents]
        out["intents"] = len(ids)
        out["intents_doubled"] = len(ids) - len(set(ids))
        out["intents_without_outcome"] = sum(1 for r in intents if r[2] is None)
        kinds = dict(con.execute("select kind, count(*) from events group by kind").fetchall())
        out["event_kinds"] = kinds
        fills = [json.loads(p) for (p,) in con.execute(
            "select payload from events where kind like '%fill%'").fetchall()]
        keys = [json.dumps([f.get("client_order_id"), f.get("fill_id", f.get("trade_id")),
                            f.get("ts"), f.get("qty", f.get("size"))], sort_keys=True)
                for f in fills]
        out["fills"] = len(fills)
        out["fills_doubled"] = len(keys) - len(set(keys))
        con.close()
    except sqlite3.Error as exc:
        out["ledger_error"] = str(exc)
    # Bars: the final process's 1m history (backfilled at start, then live) has no hole
    # and no double: its count equals the minutes it spans.
    out["bars"] = bars
    if "bars_1m" in bars:
        out["bars_holes_or_doubles"] = bars["expected"] - bars["bars_1m"]
    return out


def chart_span(sock_path: Path) -> dict[str, Any]:
    """The daemon's recent 1m bars (its chart history): count against the span they cover."""
    reply = ctl(sock_path, "chart", {"symbol": SYMBOL, "timeframes": ["5m"]}, timeout=60)
    if not reply or not reply.get("ok"):
        return {"error": (reply or {}).get("error", "no reply")}
    r = reply["result"]
    return {"bars_1m": r["bars_1m"], "from_ts": r["from_ts"], "to_ts": r["to_ts"],
            "expected": (r["to_ts"] - r["from_ts"]) // MIN + 1}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=3600, help="seconds to run (default 3600)")
    p.add_argument("--fault-every", type=float, default=20, help="seconds between faults")
    p.add_argument("--sample-every", type=float, default=2, help="seconds between samples")
    p.add_argument("--watchdog", type=float, default=30, help="WATCHDOG_USEC, in seconds")
    p.add_argument("--tmpfs-mb", type=int, default=48, help="size of the state tmpfs")
    p.add_argument("--out", default=None, help="directory for logs and the summary")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--trade-every", type=float, default=60,
                   help="seconds between hand trades (enter, then flatten; 0: none)")
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    out = Path(a.out or tempfile.mkdtemp(prefix="fractald-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    state, run = out / "state", out / "run"
    run.mkdir(exist_ok=True)
    disk = DiskFull(state, a.tmpfs_mb)
    vt = VenueThread(int(a.duration / 60) + 10)
    venue = vt.start()
    cfg = out / "fractald.toml"
    heat = [0.06, 0.05]
    write_config(cfg, state, run, venue, heat[0])
    notify = Notify(out / "notify.sock")
    daemon = Daemon(cfg, notify, out, a.watchdog)
    sock_path = run / "control.sock"
    print(f"soak: {a.duration:g} s, a fault every {a.fault_every:g} s, out {out}", flush=True)
    daemon.start()

    samples: list[dict[str, float]] = []
    up = total = 0
    lags: list[float] = []
    faults: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # faults waiting for recovery
    t_start = time.monotonic()
    next_fault = t_start + 60  # let it come up and backfill first
    next_sample = t_start
    fault_i = 0
    trades: list[dict[str, Any]] = []
    next_trade = t_start + 75 if a.trade_every > 0 else float("inf")
    disk_until = 0.0
    summary_path = out / "summary.json"
    try:
        while time.monotonic() - t_start < a.duration:
            daemon.supervise()
            now = time.monotonic()
            if disk_until and now >= disk_until:
                disk.free()
                disk_until = 0.0
            if now >= next_sample:
                next_sample = now + a.sample_every
                s = daemon.sample()
                ok, st = ready_and_fresh(sock_path)
                total += 1
                up += ok
                if s:
                    s["t"] = now - t_start
                    if st:
                        s["loop_lag_s"] = st["daemon"].get("loop_lag_s", 0.0)
                        lags.append(s["loop_lag_s"])
                    samples.append(s)
                if ok:
                    for f in pending:
                        f["recovered_s"] = round(now - f["at"], 2)
                    pending.clear()
            if now >= next_trade and not pending:
                next_trade = now + a.trade_every
                done = trade_by_hand(sock_path, len(trades))
                done["t"] = round(now - t_start, 1)
                trades.append(done)
                print(json.dumps({"trade": done}), flush=True)
            if now >= next_fault and not pending:
                kind = FAULTS[fault_i % len(FAULTS)]
                fault_i += 1
                next_fault = now + a.fault_every * rng.uniform(0.7, 1.3)
                f: dict[str, Any] = {"kind": kind, "at": now, "t": round(now - t_start, 1)}
                try:
                    if kind in ("ws_drop", "ws_abort"):
                        f["connections"] = vt.call(venue.drop, kind == "ws_abort")
                    elif kind == "stall":
                        vt.call(venue.stall, 30.0)
                    elif kind == "rate_limit":
                        vt.call(venue.rate_limit, 60.0)
                        f["then"] = "kill9"  # so the restart has to backfill through the 429s
                        if daemon.proc:
                            daemon.proc.kill()
                    elif kind == "kill9":
                        if daemon.proc:
                            daemon.proc.kill()
                    elif kind == "sighup":
                        heat.reverse()
                        write_config(cfg, state, run, venue, heat[0])
                        if daemon.proc:
                            daemon.proc.send_signal(signal.SIGHUP)
                    elif kind == "control_load":
                        f.update(control_load(sock_path, idle=70, tails=20, hold_s=10))
                    elif kind == "disk_full":
                        if disk.mounted:
                            f["filled_bytes"] = disk.fill()
                            disk_until = now + 20
                        else:
                            f["skipped"] = "no tmpfs (not root)"
                except Exception as exc:  # noqa: BLE001 - a fault that fails is recorded, not fatal
                    f["error"] = repr(exc)
                faults.append(f)
                pending.append(f)
                print(json.dumps({k: v for k, v in f.items() if k != "at"}), flush=True)
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("interrupted: summarising what ran", flush=True)
    elapsed = time.monotonic() - t_start
    disk.free()
    # Let it come back from the last fault, then read its bars and stop it cleanly.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not ready_and_fresh(sock_path)[0]:
        daemon.supervise()
        time.sleep(1)
    bars = chart_span(sock_path)
    last_status = ready_and_fresh(sock_path)[1]
    daemon.wanted = False
    final_status = None
    if daemon.proc:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            final_status = daemon.proc.wait(30)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
    inv = invariants(state, bars)
    disk.close()

    rec = [f["recovered_s"] for f in faults if "recovered_s" in f]
    by_kind: dict[str, list[float]] = {}
    for f in faults:
        if "recovered_s" in f:
            by_kind.setdefault(f["kind"], []).append(f["recovered_s"])
    rss = [s["rss_mb"] for s in samples if s["age_s"] > 10]  # after the interpreter is up
    summary = {
        "ran_s": round(elapsed, 1),
        "uptime_pct": round(100.0 * up / total, 3) if total else None,
        "samples": total,
        "daemon_starts": daemon.starts,
        "exit_statuses": {str(k): daemon.exits.count(k) for k in sorted(set(daemon.exits))},
        "watchdog_kills": daemon.watchdog_kills,
        "final_stop_status": final_status,
        "faults": {k: sum(1 for f in faults if f["kind"] == k) for k in FAULTS},
        "recover_s": {k: {"median": round(statistics.median(v), 1), "max": round(max(v), 1)}
                      for k, v in by_kind.items()},
        "recover_s_all_max": max(rec) if rec else None,
        "not_recovered": [f["kind"] for f in faults if "recovered_s" not in f],
        "rss_mb": {"min": round(min(rss), 1), "max": round(max(rss), 1)} if rss else None,
        "rss_slope_mb_per_h": _rounded(slope_mb_per_h(samples)),
        "fds_max": max((s["fds"] for s in samples), default=None),
        "cpu_s_total": round(daemon.cpu_s_total, 1),
        "cpu_pct_avg": round(100 * daemon.cpu_s_total / elapsed, 2) if elapsed else None,
        "loop_lag_s": {"p50": round(statistics.median(lags), 4),
                       "max": round(max(lags), 4)} if lags else None,
        "control_load": [{k: f[k] for k in ("connections", "status_asked", "status_ok",
                                            "worst_reply_s")}
                         for f in faults if f["kind"] == "control_load"],
        "venue": {"ws_connections": venue.connections, "rest_429": venue.status_429},
        "hand_trades": _trade_outcomes(trades),
        "invariants": inv,
        "final_feed": last_status.get("feed"),
        "final_trading": last_status.get("trading"),
    }
    summary_path.write_text(json.dumps({"summary": summary, "faults": [
        {k: v for k, v in f.items() if k != "at"} for f in faults],
        "samples": samples}, indent=1))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
