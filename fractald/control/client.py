"""fractalctl: the operator's command line for a running fractald.

    fractalctl [--socket PATH] [--json] [--timeout S] COMMAND [ARGS...]

Every sub-command becomes one request ``{"cmd": name, "args": {...}}``: the
arguments an operator gives are sent under their own names (``--last 5``
-> ``{"last": 5}``), options not given are left out so the daemon applies
its defaults. The daemon validates everything again; the client only
saves a round trip on obvious mistakes.

The wire contract (what the daemon's handlers receive; options not given are
absent, so declare them with defaults in the command's Arg spec):

    ping version status config positions pause resume reload
    breakers strategies metrics backup          {}
    help [COMMAND]                               {"command"?: str}
    tail [--kind K ...]                          {"kind"?: [str]}         (streaming)
    orders [--all]                               {"all"?: true}
    trades [--since S] [--strategy S] [--symbol S]  {"since"?, "strategy"?, "symbol"?: str}
    signals [--last N]                           {"last"?: int >= 1}
    flatten [SYMBOL]                             {"symbol"?: str}
    halt --yes                                   {"yes": true}     (register with confirm=True)
    risk set KEY VALUE                 cmd "risk_set" {"key": str, "value": str}
    report [--period P] [--from W] [--to W] [--plot F]
                                                 {"period"?, "from"?, "to"?: str, "plot"?: true}
    chart SYMBOL [--timeframes a,b] [--swing-lengths TF=N,..] [--plot F]
                                                 {"symbol": str, "timeframes"?: [str],
                                                  "swing_lengths"?: str, "plot": true}

With ``"plot": true`` the result must carry the PNG base64-encoded in
``"plot_png"``; fractalctl writes it to the file and shows the rest.
``report --format table|json|csv`` and ``--output`` are handled here.
A string result (``metrics``) is printed as it is.

Exit statuses: 0 ok; 1 the daemon answered with an error; 2 bad command
line (or a refused ``halt`` without ``--yes``); 3 the daemon is not running
(no socket, connection refused); 4 no reply in time or a broken reply;
77 permission denied on the socket.

A plain blocking socket: this is a short-lived CLI, not part of the daemon.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TextIO

from fractald.control import render

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_NO_REPLY = 4
EXIT_NOPERM = 77

DEFAULT_TIMEOUT_S = 10.0
# Commands that draw, compute over the whole history or copy the database get longer.
SLOW_TIMEOUT_S = 120.0
_SLOW_COMMANDS = {"report", "chart", "backup", "flatten", "halt"}
_MAX_REPLY_BYTES = 256 * 1024 * 1024  # reports and plots can be large; this only stops a runaway
# Options that shape the output on this side and are never sent to the daemon.
_LOCAL_OPTIONS = {"output", "format", "plot", "wide"}
_PLOT_FIELD = "plot_png"  # base64 PNG in a result, when the request asked for "plot": true
_START_HINT = (
    "Start it with `sudo systemctl start fractald` (or `fractald run` in the "
    "foreground), or point fractalctl at its socket with --socket PATH or "
    "$FRACTALD_SOCKET"
)


class ClientError(Exception):
    """A failure fractalctl reports and exits on."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status


class ReplyError(ClientError):
    """The daemon answered with ``ok: false``."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        self.error = dict(error)
        self.code = str(error.get("code", "error"))
        # A refused peer is "permission denied" whichever side said it (documented: 77).
        status = EXIT_NOPERM if self.code == "forbidden" else EXIT_ERROR
        super().__init__(f"[{self.code}] {error.get('message', '(no message)')}", status)


# --------------------------------------------------------------------------- socket path


def socket_candidates(env: Mapping[str, str]) -> list[Path]:
    """Where a daemon's socket may be, in the order fractalctl looks."""
    out: list[Path] = []
    if env.get("RUNTIME_DIRECTORY"):
        # systemd may list several directories separated by ':'; ours is the first.
        out.append(Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "control.sock")
    out.append(Path("/run/fractald/control.sock"))
    out.append(Path("state/control.sock"))
    return out


def choose_socket(explicit: str | None, env: Mapping[str, str]) -> tuple[Path, list[Path]]:
    """The socket to use and every path considered (for the not-running message).

    --socket, then $FRACTALD_SOCKET, are taken as given; otherwise the first
    candidate that exists, or the first candidate when none does.
    """
    if explicit:
        return Path(explicit), [Path(explicit)]
    if env.get("FRACTALD_SOCKET"):
        path = Path(env["FRACTALD_SOCKET"])
        return path, [path]
    candidates = socket_candidates(env)
    for path in candidates:
        try:
            if path.exists():
                return path, candidates
        except PermissionError:  # there, in a directory we may not enter: connect() says 77
            return path, candidates
    return candidates[0], candidates


# --------------------------------------------------------------------------- connection


class ControlClient:
    """One connection to the control socket; requests go one at a time."""

    def __init__(
        self, path: Path, timeout_s: float = DEFAULT_TIMEOUT_S, tried: Sequence[Path] = ()
    ) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.tried = list(tried) or [path]
        self.sock: socket.socket | None = None
        self._buf = bytearray()
        self._next_id = 1

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        pause = 0.005
        while True:
            try:
                self._connect_once()
                return
            except BlockingIOError:
                # The daemon's listen queue is full for a moment (a burst of clients, or its
                # loop busy): it is alive, so wait for a place within the timeout.
                if time.monotonic() + pause > deadline:
                    raise ClientError(
                        f"the daemon at {self.path} is busy: its connection queue "
                        f"stayed full for {self.timeout_s:g} s",
                        EXIT_NO_REPLY,
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    def _connect_once(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(str(self.path))
        except BlockingIOError:
            sock.close()
            raise
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            sock.close()
            raise ClientError(self._not_running(exc), EXIT_NOT_RUNNING) from None
        except PermissionError:
            sock.close()
            raise ClientError(
                f"permission denied on {self.path}: your user must be allowed by the daemon "
                "(its group, or control.allowed_uids / allowed_gids)",
                EXIT_NOPERM,
            ) from None
        except TimeoutError:
            sock.close()
            raise ClientError(
                f"the daemon at {self.path} did not accept a connection within "
                f"{self.timeout_s:g} s",
                EXIT_NO_REPLY,
            ) from None
        except OSError as exc:
            sock.close()
            raise ClientError(f"cannot connect to {self.path}: {exc}", EXIT_NOT_RUNNING) from None
        self.sock = sock

    def _not_running(self, exc: OSError) -> str:
        why = (
            "no socket there"
            if isinstance(exc, (FileNotFoundError, NotADirectoryError))
            else "connection refused (a stale socket)"
        )
        tried = ", ".join(str(p) for p in self.tried)
        return (
            f"fractald is not running: cannot connect to {self.path} ({why}).\n"
            f"Tried: {tried}.\n{_START_HINT}."
        )

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, cmd: str, args: Mapping[str, Any]) -> int:
        assert self.sock is not None, "connect() first"
        request_id = self._next_id
        self._next_id += 1
        line = (
            json.dumps({"id": request_id, "cmd": cmd, "args": dict(args)}, separators=(",", ":"))
            + "\n"
        )
        try:
            self.sock.sendall(line.encode("utf-8"))
        except OSError as exc:
            # A refused peer is closed at once, maybe before it sends; the daemon's
            # reason (forbidden, busy) is still waiting to be read.
            message = self._try_read()
            if message is not None and not message["ok"]:
                raise ReplyError(message.get("error") or {}) from None
            raise ClientError(f"the daemon closed the connection: {exc}", EXIT_NO_REPLY) from None
        return request_id

    def read_message(self) -> dict[str, Any]:
        """The next reply line, decoded. Raises ClientError on timeout, EOF or garbage."""
        assert self.sock is not None, "connect() first"
        while b"\n" not in self._buf:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise ClientError(
                    f"no reply from the daemon within {self.timeout_s:g} s "
                    "(--timeout to wait longer)",
                    EXIT_NO_REPLY,
                ) from None
            except OSError as exc:
                raise ClientError(
                    f"connection to the daemon failed: {exc}", EXIT_NO_REPLY
                ) from None
            if not data:
                raise ClientError("the daemon closed the connection without a reply", EXIT_NO_REPLY)
            self._buf += data
            if len(self._buf) > _MAX_REPLY_BYTES:
                raise ClientError("reply too large", EXIT_NO_REPLY)
        end = self._buf.index(b"\n")
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        try:
            message = json.loads(line)
        except ValueError:
            raise ClientError(
                f"unreadable reply from the daemon: {line[:200]!r}", EXIT_NO_REPLY
            ) from None
        if not isinstance(message, dict) or "ok" not in message:
            raise ClientError(f"unexpected reply from the daemon: {line[:200]!r}", EXIT_NO_REPLY)
        return message

    def _try_read(self) -> dict[str, Any] | None:
        try:
            return self.read_message()
        except ClientError:
            return None

    def _reply_for(self, request_id: int) -> dict[str, Any]:
        message = self.read_message()
        if not message["ok"]:
            raise ReplyError(message.get("error") or {})
        if message.get("id") not in (request_id, None):
            raise ClientError(
                f"reply for request {message.get('id')!r}, expected {request_id}", EXIT_NO_REPLY
            )
        return message

    def request(self, cmd: str, args: Mapping[str, Any] | None = None) -> Any:
        """Send one request, return its result. Raises ReplyError for an error reply."""
        message = self._reply_for(self.send(cmd, args or {}))
        return message.get("result")

    def stream(self, cmd: str, args: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Yield the events of a streaming command until the daemon ends it.

        The timeout covers connecting and sending only: events may be minutes apart.
        """
        request_id = self.send(cmd, args or {})
        assert self.sock is not None
        self.sock.settimeout(None)
        while True:
            message = self._reply_for(request_id)
            if "event" in message:
                yield message["event"]
            else:
                return


# --------------------------------------------------------------------------- command line


def _csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. 4h,1h,15m")
    return items


def _swing_lengths_text(text: str) -> str:
    """`TF=N,...` checked here (a clear message before anything is sent), sent as given."""
    from fractald.swing_lengths import parse_swing_lengths

    try:
        lengths = parse_swing_lengths(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return ",".join(f"{tf}={n}" for tf, n in lengths.items())


def _positive(kind: type, what: str, minimum: float) -> Any:
    """An argparse type: a number of ``kind`` of at least ``minimum`` (seconds, counts)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not minimum <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what} >= {minimum:g}, got {text!r}")
        return value

    return parse


_count = _positive(int, "a whole number", 1)
_seconds = _positive(float, "seconds", 0.001)


def _flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    # store_const with default None: an option not given is not sent at all.
    parser.add_argument(name, action="store_const", const=True, default=None, help=help)


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--socket/--json/--timeout, before COMMAND and (suppress=True) after it as well:
    `fractalctl status --json` is what people type."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help="control socket (default: $FRACTALD_SOCKET, else "
        "$RUNTIME_DIRECTORY/control.sock, /run/fractald/control.sock, "
        "./state/control.sock, the first that exists)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the raw JSON result"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=default(None),
        metavar="S",
        help=f"seconds to wait for a reply (default {DEFAULT_TIMEOUT_S:g}; "
        f"{SLOW_TIMEOUT_S:g} for {', '.join(sorted(_SLOW_COMMANDS))})",
    )


def _command(sub: Any, name: str, help: str, cmd: str | None = None) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help)
    _global_options(parser, suppress=True)
    parser.set_defaults(cmd=cmd or name)
    return parser


_SIMPLE = {
    "ping": "check that the daemon answers",
    "version": "daemon version, build and Python",
    "status": "daemon, actors, gates, feeds, trading state, equity and risk",
    "config": "the running configuration (secrets redacted)",
    "positions": "open positions",
    "pause": "stop opening new positions (open ones are still managed)",
    "resume": "allow new positions again",
    "reload": "re-read the configuration file (like SIGHUP)",
    "breakers": "circuit breakers and their state",
    "strategies": "strategies: reliability, throttle, quarantine",
    "metrics": "the Prometheus metrics the daemon exports",
    "backup": "take an online backup of the state database now",
    "reconcile": "compare the ledger with the broker now (orders, fills, positions)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fractalctl",
        description="Control a running fractald over its Unix socket.",
        epilog="Exit status: 0 ok, 1 error reply, 2 usage, 3 daemon not running, "
        "4 no reply, 77 permission denied.",
    )
    _global_options(parser, suppress=False)
    from fractald import __version__

    parser.add_argument("--version", action="version", version=f"fractalctl {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for name, help in _SIMPLE.items():
        _command(sub, name, help)
    _flag(sub.choices["positions"], "--wide", "every field, however wide")

    p = _command(sub, "help", "the commands the daemon knows, or one command's arguments")
    p.add_argument("command", nargs="?", help="describe this command")
    p = _command(sub, "tail", "stream the daemon's events as JSON lines until Ctrl-C")
    p.add_argument(
        "--kind",
        nargs="+",
        action="extend",
        metavar="K",
        help="only these event kinds (repeatable)",
    )
    p = _command(sub, "orders", "working orders")
    _flag(p, "--all", "include finished orders")
    p = _command(sub, "trades", "closed trades")
    _flag(p, "--wide", "every field, however wide")
    p.add_argument("--since", help="only trades closed since (ISO time or e.g. 1d, 12h)")
    p.add_argument("--strategy", help="only this strategy")
    p.add_argument("--symbol", help="only this symbol")
    p = _command(sub, "signals", "recent signals")
    _flag(p, "--wide", "every field, however wide")
    p.add_argument("--last", type=_count, metavar="N", help="how many")
    p = _command(sub, "flatten", "close positions at market (all, or one symbol)")
    p.add_argument("symbol", nargs="?", help="only this symbol")
    p = _command(
        sub, "enter", "enter a trade by hand (strategy manual): same sizing, gates, routing"
    )
    p.add_argument("symbol")
    p.add_argument("side", choices=["long", "short"])
    p.add_argument("--stop", type=float, required=True, metavar="PRICE", help="protective stop")
    p.add_argument("--target", action="append", metavar="PRICE", help="a take-profit (repeatable)")
    p.add_argument(
        "--risk",
        type=float,
        metavar="FRACTION",
        help="share of equity this trade risks (0.01 = 1 %%), instead of [risk] risk_fraction",
    )
    _flag(p, "--post-only", "enter with a maker-only limit (rejected, never filled, if it crosses)")
    p.add_argument(
        "--limit",
        type=float,
        metavar="PRICE",
        help="limit price of a --post-only entry (default: last)",
    )
    p = _command(sub, "exit", "close one trade (its id from `positions`)")
    p.add_argument("trade_id")
    p = _command(sub, "halt", "kill switch: halt trading and flatten everything")
    _flag(p, "--yes", "confirm: without it, halt is refused")

    risk = sub.add_parser("risk", help="risk settings").add_subparsers(
        dest="risk_action", metavar="ACTION", required=True
    )
    p = _command(
        risk, "set", "change a risk setting (validated, logged, persisted)", cmd="risk_set"
    )
    p.add_argument("key", help="setting name, e.g. max_heat")
    p.add_argument("value", help="new value")

    p = _command(sub, "report", "performance report")
    p.add_argument("--period", choices=["day", "week", "month", "all"])
    p.add_argument("--from", metavar="WHEN", help="start (ISO date or time)")
    p.add_argument("--to", metavar="WHEN", help="end (ISO date or time)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--output", metavar="FILE", help="write the report to FILE")
    p.add_argument("--plot", metavar="FILE", help="also draw the equity curve to FILE (PNG)")
    p = _command(sub, "chart", "multi-timeframe chart with SMC structure and the bot's trades")
    p.add_argument("symbol")
    p.add_argument("--timeframes", type=_csv_list, metavar="TF,TF,...", help="e.g. 4h,1h,15m")
    p.add_argument(
        "--swing-lengths",
        type=_swing_lengths_text,
        metavar="TF=N,...",
        help="override the detectors' swing length per timeframe, e.g. 15m=4,1h=5 "
        "(default: what the daemon's strategies trade on; as `fractald chart`)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE",
        default="chart.png",
        help="PNG file to write (default chart.png; the path written is printed)",
    )
    return parser


_NOT_SENT = {"socket", "json", "timeout", "subcommand", "cmd", "risk_action"} | _LOCAL_OPTIONS


def request_args(ns: argparse.Namespace) -> dict[str, Any]:
    """The request's args: every sub-command option given, under its own name."""
    args = {k: v for k, v in vars(ns).items() if k not in _NOT_SENT and v is not None}
    if getattr(ns, "plot", None):
        args["plot"] = True  # the daemon draws; the PNG comes back base64 in "plot_png"
    return args


# --------------------------------------------------------------------------- output


def _emit(text: str, output: str | None, out: TextIO, err: TextIO) -> None:
    if not text.endswith("\n"):
        text += "\n"
    if output:
        _write(Path(output), text.encode("utf-8"))
        print(f"wrote {output}", file=err)
    else:
        out.write(text)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ClientError(f"cannot write {path}: {exc.strerror or exc}", EXIT_ERROR) from None


def _save_plot(result: Any, path: str, err: TextIO) -> Any:
    if not isinstance(result, dict) or not isinstance(result.get(_PLOT_FIELD), str):
        raise ClientError(
            f"the daemon sent no plot (expected a base64 {_PLOT_FIELD!r} field)", EXIT_ERROR
        )
    try:
        png = base64.b64decode(result[_PLOT_FIELD], validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(f"the daemon's {_PLOT_FIELD!r} is not base64", EXIT_ERROR) from None
    _write(Path(path), png)
    print(f"wrote {path} ({len(png)} bytes)", file=err)
    return {k: v for k, v in result.items() if k != _PLOT_FIELD}


def format_result(result: Any, ns: argparse.Namespace) -> str:
    fmt = "json" if ns.json else getattr(ns, "format", "table")
    if fmt == "json":
        return json.dumps(result, indent=2, ensure_ascii=False)
    if isinstance(result, str):
        return result  # already text (metrics, "pong")
    if fmt == "csv":
        return render.to_csv(result)
    from fractald.control.views import table_for
    from fractald.term import colors_wanted

    colour = not getattr(ns, "output", None) and colors_wanted(sys.stdout)
    view = table_for(ns.cmd, result, getattr(ns, "wide", False), colour)
    if view is None and colour and ns.cmd == "status":
        from fractald.control.views import colour_status

        return colour_status(render.render(result))
    return view if view is not None else render.render(result)


def run_tail(client: ControlClient, args: dict[str, Any], out: TextIO) -> int:
    try:
        for event in client.stream("tail", args):
            out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a tail ends
    return EXIT_OK


def run(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    env = os.environ if env is None else env
    ns = build_parser().parse_args(argv)
    args = request_args(ns)
    if ns.cmd == "halt" and not ns.yes:
        print(
            "fractalctl: halt stops trading and flattens every position; "
            "re-run with --yes to confirm",
            file=err,
        )
        return EXIT_USAGE
    path, tried = choose_socket(ns.socket, env)
    try:
        timeout = ns.timeout or (SLOW_TIMEOUT_S if ns.cmd in _SLOW_COMMANDS else DEFAULT_TIMEOUT_S)
        with ControlClient(path, timeout, tried) as client:
            if ns.cmd == "tail":
                return run_tail(client, args, out)
            result = client.request(ns.cmd, args)
            if getattr(ns, "plot", None):
                result = _save_plot(result, ns.plot, err)
            _emit(format_result(result, ns), getattr(ns, "output", None), out, err)
    except ClientError as exc:
        print(f"fractalctl: {ns.subcommand}: {exc.message}", file=err)
        return exc.exit_status
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    try:
        status = run(argv)
    except KeyboardInterrupt:
        status = 130
    except BrokenPipeError:
        # `fractalctl tail | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_OK
    sys.exit(status)


if __name__ == "__main__":
    main()
