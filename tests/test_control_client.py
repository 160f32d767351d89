"""fractalctl as a real subprocess against a real ControlServer (in a thread) on a Unix socket."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from test_control_support import ThreadServer

from fractald.control.client import choose_socket, socket_candidates
from fractald.control.protocol import Arg, CommandError, PeerCred
from fractald.control.server import CommandRegistry

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # bytes only: the client must copy them exactly

# What a daemon registers for each fractalctl sub-command (the wire contract).
SPECS: dict[str, list[Arg]] = {
    "orders": [Arg("all", bool, default=False)],
    "trades": [Arg("since", str), Arg("strategy", str), Arg("symbol", str)],
    "signals": [Arg("last", int, default=20, minimum=1)],
    "flatten": [Arg("symbol", str)],
    "tail": [Arg("kind", list)],
    "risk_set": [Arg("key", str, required=True), Arg("value", str, required=True)],
    "report": [Arg("period", str, choices=["day", "week", "month", "all"]), Arg("from", str),
               Arg("to", str), Arg("plot", bool, default=False)],
    "chart": [Arg("symbol", str, required=True), Arg("timeframes", list),
              Arg("swing_lengths", str), Arg("plot", bool, default=False)],
}
ECHOED = ["version", "config", "pause", "resume", "reload", "breakers", "strategies",
          "backup", "orders", "trades", "signals", "flatten", "risk_set"]


class Daemon:
    """The handlers a test daemon serves, recording what reached them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tail_stopped = threading.Event()

    def registry(self) -> CommandRegistry:
        reg = CommandRegistry()
        for name in ECHOED:
            reg.register(name, self._echo(name), args=SPECS.get(name, []),
                         mutating=name in {"pause", "resume", "flatten", "risk_set"})
        reg.register("halt", self._echo("halt"), mutating=True, confirm=True)
        reg.register("status", self.status)
        reg.register("positions", self.positions)
        reg.register("metrics", self.metrics)
        reg.register("report", self.report, args=SPECS["report"])
        reg.register("chart", self.chart, args=SPECS["chart"])
        reg.register("tail", self.tail, args=SPECS["tail"])
        return reg

    def _echo(self, name: str) -> Any:
        async def handler(args: dict[str, Any], peer: PeerCred) -> Any:
            self.calls.append((name, args))
            return {"cmd": name, "args": args}
        return handler

    async def status(self, args: dict[str, Any], peer: PeerCred) -> Any:
        return {"state": "ACTIVE", "uptime_s": 61.5, "equity": 10123.456,
                "actors": [{"name": "market_data", "state": "running", "restarts": 0},
                           {"name": "router", "state": "backoff", "restarts": 3}],
                "gates": {"store": True, "feeds": False}}

    async def positions(self, args: dict[str, Any], peer: PeerCred) -> Any:
        raise CommandError("not_ready", "trading state is still being recovered; try again")

    async def metrics(self, args: dict[str, Any], peer: PeerCred) -> Any:
        return "# TYPE fractald_equity gauge\nfractald_equity 10123.5\n"

    async def report(self, args: dict[str, Any], peer: PeerCred) -> Any:
        self.calls.append(("report", args))
        result: dict[str, Any] = {"period": args["period"], "trades": 4, "win_rate": 0.5,
                                  "by_symbol": [{"symbol": "BTC", "pnl": 12.5},
                                                {"symbol": "ETH", "pnl": -3.0}]}
        if args["plot"]:
            result["plot_png"] = base64.b64encode(PNG).decode()
        return result

    async def chart(self, args: dict[str, Any], peer: PeerCred) -> Any:
        self.calls.append(("chart", args))
        return {"symbol": args["symbol"], "plot_png": base64.b64encode(PNG).decode()}

    async def tail(self, args: dict[str, Any], peer: PeerCred) -> Any:
        try:
            seq = 0
            while True:
                yield {"kind": "bar", "seq": seq}
                seq += 1
                await trio.sleep(0.01)
        finally:
            self.tail_stopped.set()


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


@pytest.fixture
def sock(tmp_path: Path, daemon: Daemon) -> Iterator[Path]:
    with ThreadServer(tmp_path / "c.sock", daemon.registry()) as server:
        yield server.path


def fractalctl(*argv: str, env: dict[str, str] | None = None, cwd: Path = REPO,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("FRACTALD_SOCKET",
                                                             "RUNTIME_DIRECTORY")}
    clean["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "fractald.control.client", *argv],
                          capture_output=True, text=True, env={**clean, **(env or {})},
                          cwd=cwd, timeout=timeout, check=False)


def test_ping(sock: Path) -> None:
    done = fractalctl("--socket", str(sock), "ping")
    assert (done.returncode, done.stdout, done.stderr) == (0, "pong\n", "")


def test_installed_script_runs(sock: Path) -> None:
    script = Path(sys.executable).parent / "fractalctl"
    if not script.exists():
        pytest.skip("fractalctl is not installed in this environment")
    done = subprocess.run([str(script), "--socket", str(sock), "--json", "ping"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, json.loads(done.stdout)) == (0, "pong")


def test_status_is_a_readable_table_and_json_is_raw(sock: Path) -> None:
    table = fractalctl("--socket", str(sock), "status")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["state", "ACTIVE"]
    assert lines[2].split() == ["equity", "10123.46"]
    assert "actors" in lines and "gates" in lines
    assert lines[lines.index("actors") + 1].split() == ["name", "state", "restarts"]
    assert lines[lines.index("actors") + 4].split() == ["router", "backoff", "3"]
    raw = fractalctl("--socket", str(sock), "--json", "status")
    assert json.loads(raw.stdout)["actors"][1] == {"name": "router", "state": "backoff",
                                                  "restarts": 3}


@pytest.mark.parametrize(("argv", "cmd", "args"), [
    (["version"], "version", {}),
    (["pause"], "pause", {}),
    (["orders"], "orders", {"all": False}),
    (["orders", "--all"], "orders", {"all": True}),
    (["trades", "--since", "1d", "--symbol", "BTC"], "trades",
     {"since": "1d", "strategy": None, "symbol": "BTC"}),
    (["signals", "--last", "5"], "signals", {"last": 5}),
    (["signals"], "signals", {"last": 20}),
    (["flatten"], "flatten", {"symbol": None}),
    (["flatten", "ETH"], "flatten", {"symbol": "ETH"}),
    (["risk", "set", "max_heat", "0.05"], "risk_set", {"key": "max_heat", "value": "0.05"}),
    (["halt", "--yes"], "halt", {"yes": True}),
])
def test_sub_commands_map_to_requests(sock: Path, daemon: Daemon, argv: list[str], cmd: str,
                                      args: dict[str, Any]) -> None:
    done = fractalctl("--socket", str(sock), "--json", *argv)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cmd": cmd, "args": args}
    assert daemon.calls == [(cmd, args)]


def test_halt_without_yes_is_refused_before_sending(sock: Path, daemon: Daemon) -> None:
    done = fractalctl("--socket", str(sock), "halt")
    assert done.returncode == 2
    assert "--yes" in done.stderr
    assert daemon.calls == []


def test_error_reply_exits_1_with_the_code(sock: Path) -> None:
    done = fractalctl("--socket", str(sock), "positions")
    assert done.returncode == 1
    assert done.stderr == ("fractalctl: positions: [not_ready] trading state is still being "
                           "recovered; try again\n")


def test_command_the_daemon_lacks_lists_the_valid_ones(tmp_path: Path) -> None:
    with ThreadServer(tmp_path / "c.sock", CommandRegistry()) as server:
        done = fractalctl("--socket", str(server.path), "breakers")
    assert done.returncode == 1
    assert "[unknown_command]" in done.stderr and "valid commands: help, ping" in done.stderr


def test_client_side_usage_errors_exit_2(sock: Path, daemon: Daemon) -> None:
    for argv in (["signals", "--last", "0"], ["report", "--period", "year"],
                 ["nosuch"], ["--timeout", "nan", "ping"]):
        done = fractalctl("--socket", str(sock), *argv)
        assert done.returncode == 2, argv
        assert "usage: fractalctl" in done.stderr
    assert daemon.calls == []


def test_metrics_text_is_printed_verbatim(sock: Path) -> None:
    done = fractalctl("--socket", str(sock), "metrics")
    assert done.stdout == "# TYPE fractald_equity gauge\nfractald_equity 10123.5\n"


def test_report_csv_to_a_file_and_plot(sock: Path, daemon: Daemon, tmp_path: Path) -> None:
    out, png = tmp_path / "r.csv", tmp_path / "r.png"
    done = fractalctl("--socket", str(sock), "report", "--period", "week", "--format", "csv",
                      "--output", str(out), "--plot", str(png))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert png.read_bytes() == PNG
    rows = dict(csv.reader(io.StringIO(out.read_text())))
    assert rows["period"] == "week" and rows["by_symbol.1.pnl"] == "-3.0"
    assert "plot_png" not in out.read_text()
    assert daemon.calls == [("report", {"period": "week", "from": None, "to": None,
                                        "plot": True})]


def test_report_table_and_chart(sock: Path, daemon: Daemon, tmp_path: Path) -> None:
    done = fractalctl("--socket", str(sock), "report", "--from", "2026-01-01")
    assert done.returncode == 0, done.stderr
    assert "by_symbol" in done.stdout.splitlines()
    png = tmp_path / "c.png"
    done = fractalctl("--socket", str(sock), "chart", "BTC", "--timeframes", "4h, 1h,15m",
                      "--plot", str(png))
    assert done.returncode == 0, done.stderr
    assert png.read_bytes() == PNG
    assert daemon.calls[-1] == ("chart", {"symbol": "BTC", "timeframes": ["4h", "1h", "15m"],
                                          "swing_lengths": None, "plot": True})
    done = fractalctl("--socket", str(sock), "chart", "BTC", "--swing-lengths", "15m=4, 1h=7",
                      "--plot", str(png))
    assert done.returncode == 0, done.stderr
    assert daemon.calls[-1][1]["swing_lengths"] == "15m=4,1h=7"
    bad = fractalctl("--socket", str(sock), "chart", "BTC", "--swing-lengths", "15m=0")
    assert bad.returncode == 2 and "1..500" in bad.stderr


def test_tail_prints_json_lines_until_ctrl_c(sock: Path, daemon: Daemon) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FRACTALD_SOCKET"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fractald.control.client", "--socket", str(sock), "tail",
         "--kind", "bar", "fill"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        # As from a terminal: a test run started in the background (`cmd &` in a script)
        # ignores SIGINT, and a child that inherits SIG_IGN never sees Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert lines == [{"kind": "bar", "seq": i} for i in range(3)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
    assert daemon.tail_stopped.wait(5), "the stream kept running after the client left"


def test_no_reply_in_time_exits_4(tmp_path: Path) -> None:
    reg = CommandRegistry()

    async def hang(args: dict[str, Any], peer: PeerCred) -> Any:
        await trio.sleep_forever()

    reg.register("status", hang)
    with ThreadServer(tmp_path / "c.sock", reg) as server:
        start = time.monotonic()
        done = fractalctl("--socket", str(server.path), "--timeout", "0.5", "status")
        waited = time.monotonic() - start
    assert done.returncode == 4
    assert "no reply from the daemon within 0.5 s" in done.stderr
    assert waited >= 0.5


# --------------------------------------------------------------------------- not running


def test_not_running_exits_3_naming_the_socket(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "control.sock"
    done = fractalctl("--socket", str(missing), "status")
    assert done.returncode == 3
    assert done.stdout == ""
    assert f"fractald is not running: cannot connect to {missing} (no socket there)" \
        in done.stderr
    assert "systemctl start fractald" in done.stderr and "fractald run" in done.stderr


def test_stale_socket_is_connection_refused_exit_3(tmp_path: Path) -> None:
    stale = tmp_path / "control.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()
    done = fractalctl("--socket", str(stale), "ping")
    assert done.returncode == 3
    assert "connection refused" in done.stderr


def test_default_socket_from_the_environment_and_working_directory(
        tmp_path: Path, daemon: Daemon) -> None:
    if Path("/run/fractald/control.sock").exists():
        pytest.skip("a real fractald socket exists on this machine")
    runtime = tmp_path / "run"
    with ThreadServer(runtime / "control.sock", daemon.registry()):
        assert fractalctl("ping", env={"RUNTIME_DIRECTORY": str(runtime)}).stdout == "pong\n"
        assert fractalctl("ping", env={"FRACTALD_SOCKET": str(runtime / "control.sock")}
                          ).stdout == "pong\n"
    with ThreadServer(tmp_path / "state" / "control.sock", daemon.registry()):
        assert fractalctl("ping", cwd=tmp_path).stdout == "pong\n"
    done = fractalctl("ping", cwd=tmp_path, env={"RUNTIME_DIRECTORY": str(runtime)})
    assert done.returncode == 3
    assert (f"Tried: {runtime / 'control.sock'}, /run/fractald/control.sock, "
            "state/control.sock.") in done.stderr


def test_choose_socket_order() -> None:
    env = {"RUNTIME_DIRECTORY": "/nonexistent/rt:/other"}
    assert socket_candidates(env) == [Path("/nonexistent/rt/control.sock"),
                                      Path("/run/fractald/control.sock"),
                                      Path("state/control.sock")]
    assert choose_socket("/x.sock", {"FRACTALD_SOCKET": "/y.sock"}) == (Path("/x.sock"),
                                                                        [Path("/x.sock")])
    assert choose_socket(None, {**env, "FRACTALD_SOCKET": "/y.sock"})[0] == Path("/y.sock")


def test_help_lists_commands_and_describes_one(sock: Path) -> None:
    listing = fractalctl("--socket", str(sock), "help")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0] for line in listing.stdout.splitlines()[2:]}
    assert {"ping", "help", "halt", "orders", "tail"} <= rows
    one = fractalctl("--socket", str(sock), "--json", "help", "orders")
    detail = json.loads(one.stdout)
    assert detail["command"] == "orders" and [a["name"] for a in detail["args"]] == ["all"]
    table = fractalctl("--socket", str(sock), "help", "orders").stdout.splitlines()
    assert table[table.index("args") + 1].split()[:3] == ["name", "type", "required"]


def test_global_options_also_work_after_the_command(sock: Path) -> None:
    done = fractalctl("status", "--json", "--socket", str(sock), "--timeout", "5")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "ACTIVE"
    done = fractalctl("--socket", "/nonexistent.sock", "ping", "--socket", str(sock))
    assert done.stdout == "pong\n"  # the later one wins, as usual


def test_unwritable_output_is_a_clear_error(sock: Path, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "r.png"
    done = fractalctl("--socket", str(sock), "chart", "BTC", "--plot", str(target))
    assert done.returncode == 1
    assert f"cannot write {target}: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- another user
# The venv's interpreter lives under /root, out of nobody's reach; the client needs only
# the standard library and this package, so the system Python runs it with PYTHONPATH.
_SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


@pytest.mark.skipif(os.geteuid() != 0 or _SYSTEM_PYTHON is None,
                    reason="needs root (to run as another user) and /usr/bin/python3")
@pytest.mark.parametrize(("mode", "status", "message"), [
    (0o660, 77, "permission denied on "),  # the file mode keeps nobody out
    (0o666, 77, "[forbidden] uid 65534"),  # the file lets it in; the peer check does not
])
def test_another_user_is_kept_out(mode: int, status: int, message: str) -> None:
    directory = Path(tempfile.mkdtemp(prefix="fctl"))
    try:
        directory.chmod(0o755)
        with ThreadServer(directory / "c.sock", CommandRegistry(), mode=mode) as server:
            done = subprocess.run(
                [_SYSTEM_PYTHON, "-m", "fractald.control.client", "--socket", str(server.path),
                 "status"], user=65534, group=65534, extra_groups=[], capture_output=True,
                text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                cwd="/", timeout=30, check=False)
    finally:
        shutil.rmtree(directory)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
