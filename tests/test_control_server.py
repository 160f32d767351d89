"""The control server through a real Unix socket, with the server running in the test's nursery."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_control_support import ThreadServer, blocking_exchange, blocking_ping

from fractald.control.protocol import Arg, CommandError, PeerCred
from fractald.control.server import (
    CommandRegistry,
    ControlServer,
    ControlSocketError,
    read_peer,
)

REPLY_TIMEOUT_S = 5


class LineClient:
    """A test client on a real socket: raw bytes out, JSON lines in."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""
        self.next_id = 1

    @classmethod
    async def open(cls, path: Path) -> LineClient:
        return cls(await trio.open_unix_socket(str(path)))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send(self, cmd: str, args: dict[str, Any] | None = None, **extra: Any) -> int:
        request_id = self.next_id
        self.next_id += 1
        body = {"id": request_id, "cmd": cmd, **({"args": args} if args is not None else {}),
                **extra}
        await self.send_raw(json.dumps(body).encode() + b"\n")
        return request_id

    async def read(self, timeout_s: float = REPLY_TIMEOUT_S) -> dict[str, Any] | None:
        """The next message, or None at EOF."""
        with trio.fail_after(timeout_s):
            while b"\n" not in self.buf:
                try:
                    data = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    assert self.buf == b"", f"partial line before EOF: {self.buf[:100]!r}"
                    return None
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    async def call(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = await self.send(cmd, args)
        reply = await self.read()
        assert reply is not None and reply["id"] == request_id
        return reply

    async def half_close(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class Recorder:
    """Handlers for the tests, with what they saw."""

    def __init__(self) -> None:
        self.peers: list[PeerCred] = []
        self.stream_stopped = trio.Event()
        self.stream_sent = 0
        self.arrived = 0
        self.all_arrived = trio.Event()
        self.gate_size = 0

    def registry(self) -> CommandRegistry:
        reg = CommandRegistry()
        reg.register("echo", self.echo, args=[Arg("text", str, required=True),
                                              Arg("n", int, default=1, minimum=0, maximum=10),
                                              Arg("mode", str, choices=["a", "b"])],
                     help="returns its arguments")
        reg.register("whoami", self.whoami)
        reg.register("boom", self.boom)
        reg.register("coded", self.coded)
        reg.register("mutate", self.whoami, mutating=True, args=[Arg("value", str)])
        reg.register("halt", self.whoami, mutating=True, confirm=True)
        reg.register("gate", self.gate)
        reg.register("tail", self.tail, args=[Arg("size", int, default=10)])
        reg.register("burst", self.burst, streaming=True, args=[Arg("count", int, default=3)])
        reg.register("unjsonable", self.unjsonable)
        reg.register("own_timeout", self.own_timeout)
        return reg

    async def echo(self, args: dict[str, Any], peer: PeerCred) -> Any:
        return args

    async def whoami(self, args: dict[str, Any], peer: PeerCred) -> Any:
        self.peers.append(peer)
        return {"pid": peer.pid, "uid": peer.uid, "gid": peer.gid}

    async def boom(self, args: dict[str, Any], peer: PeerCred) -> Any:
        raise ValueError("the handler broke")

    async def coded(self, args: dict[str, Any], peer: PeerCred) -> Any:
        raise CommandError("not_found", "no position in XRP", symbol="XRP")

    async def gate(self, args: dict[str, Any], peer: PeerCred) -> Any:
        # Answers only once gate_size clients are inside at the same time.
        self.arrived += 1
        if self.arrived >= self.gate_size:
            self.all_arrived.set()
        await self.all_arrived.wait()
        return self.arrived

    async def tail(self, args: dict[str, Any], peer: PeerCred) -> Any:
        try:
            i = 0
            while True:
                yield {"seq": i, "pad": "x" * args["size"]}
                self.stream_sent += 1
                i += 1
                await trio.sleep(0.001)
        finally:
            self.stream_stopped.set()

    async def burst(self, args: dict[str, Any], peer: PeerCred, send: Any) -> Any:
        for i in range(args["count"]):
            await send({"seq": i})
        return {"sent": args["count"]}

    async def own_timeout(self, args: dict[str, Any], peer: PeerCred) -> Any:
        with trio.fail_after(0.001):  # the handler's own deadline, not the client's
            await trio.sleep(1)

    async def unjsonable(self, args: dict[str, Any], peer: PeerCred) -> Any:
        loop: dict[str, Any] = {}
        loop["self"] = loop
        return loop


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def start_server(nursery: trio.Nursery, path: Path, recorder: Recorder,
                       **options: Any) -> ControlServer:
    server = ControlServer(path, [], [], recorder.registry(), **options)
    await nursery.start(server.serve)
    return server


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path, recorder: Recorder) -> ControlServer:
    return await start_server(nursery, tmp_path / "c.sock", recorder)


async def ping_ok(path: Path) -> None:
    client = await LineClient.open(path)
    assert (await client.call("ping"))["result"] == "pong"
    await client.aclose()


# --------------------------------------------------------------------------- basics


async def test_ping_and_help(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    assert await client.call("ping") == {"id": 1, "ok": True, "result": "pong"}
    listing = (await client.call("help"))["result"]
    names = [c["command"] for c in listing]
    assert names == sorted(names) and {"ping", "help", "echo", "tail", "halt"} <= set(names)
    tail = next(c for c in listing if c["command"] == "tail")
    assert tail["streaming"] is True
    detail = (await client.call("help", {"command": "echo"}))["result"]
    assert detail["help"] == "returns its arguments"
    assert [a["name"] for a in detail["args"]] == ["text", "n", "mode"]
    assert detail["args"][2]["allowed"] == "string (one of: a, b)"
    await client.aclose()


async def test_unknown_command_lists_valid_ones(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    reply = await client.call("stauts")
    assert reply["ok"] is False and reply["id"] == 1
    assert reply["error"]["code"] == "unknown_command"
    assert "'stauts'" in reply["error"]["message"]
    assert "echo" in reply["error"]["valid"] and "ping" in reply["error"]["message"]
    bad = await client.call("help", {"command": "nope"})
    assert bad["error"]["code"] == "unknown_command"


async def test_bad_args_name_the_argument(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    assert (await client.call("echo", {"text": "hi", "n": 2}))["result"] == {
        "text": "hi", "n": 2, "mode": None}
    for args, argument in [({}, "text"), ({"text": "hi", "n": 11}, "n"),
                           ({"text": "hi", "mode": "c"}, "mode"), ({"text": 1}, "text"),
                           ({"text": "hi", "colour": "red"}, "colour")]:
        reply = await client.call("echo", args)
        assert reply["error"]["code"] == "bad_args", args
        assert reply["error"]["argument"] == argument
        assert "allowed" in reply["error"]["message"]


async def test_request_shape_errors_keep_the_id(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    await client.send_raw(b'{"id": "r1", "cmd": "echo", "args": "text"}\n')
    reply = await client.read()
    assert reply is not None
    assert (reply["id"], reply["error"]["code"]) == ("r1", "bad_request")
    await client.send_raw(b"[1,2,3]\n")
    reply = await client.read()
    assert reply is not None
    assert (reply["id"], reply["error"]["code"]) == (None, "bad_request")


async def test_handler_errors_are_replies_and_the_connection_survives(
        server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    reply = await client.call("coded")
    assert reply["error"] == {"code": "not_found", "message": "no position in XRP",
                              "symbol": "XRP"}
    with structlog.testing.capture_logs() as logs:
        reply = await client.call("boom")
    assert reply["error"]["code"] == "internal"
    assert "ValueError: the handler broke" in reply["error"]["message"]
    assert any(e["event"] == "control_command_failed" for e in logs)
    assert (await client.call("unjsonable"))["error"]["code"] == "internal"
    reply = await client.call("own_timeout")
    assert reply["error"]["code"] == "internal" and "TooSlowError" in reply["error"]["message"]
    assert (await client.call("ping"))["result"] == "pong"


async def test_confirmation_is_required_server_side(server: ControlServer,
                                                    recorder: Recorder) -> None:
    client = await LineClient.open(server.path)
    for args in ({}, {"yes": False}):
        reply = await client.call("halt", args)
        assert reply["error"]["code"] == "confirmation_required"
    assert recorder.peers == []
    assert (await client.call("halt", {"yes": "yes"}))["error"]["code"] == "bad_args"
    assert (await client.call("halt", {"yes": True}))["ok"] is True
    assert len(recorder.peers) == 1


async def test_mutating_commands_are_logged_with_the_peer(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    with structlog.testing.capture_logs() as logs:
        await client.call("mutate", {"value": "v"})
        await client.call("mutate", {"value": 3})
        await client.call("whoami")
        deep: Any = "x"
        for _ in range(500):
            deep = [deep]
        await client.call("mutate", {"value": deep, "other": 1})
    audit = [e for e in logs if e["event"] == "control_command"]
    assert [(e["cmd"], e["outcome"]) for e in audit] == [
        ("mutate", "ok"), ("mutate", "bad_args"), ("mutate", "bad_args")]
    assert audit[0]["peer_uid"] == os.getuid() and audit[0]["peer_pid"] == os.getpid()
    assert audit[0]["args"] == {"value": "v"}
    assert audit[2]["args"] == ["other", "value"]  # a rejected request: names only
    json.dumps(audit)  # every audit entry can be rendered as a JSON log line


# --------------------------------------------------------------------------- peers


async def test_real_peer_credentials(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    reply = await client.call("whoami")
    assert reply["result"] == {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}


def test_read_peer_on_a_socketpair() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        peer = read_peer(a)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())
    assert os.getgid() in peer.groups or set(os.getgroups()) <= peer.groups


_PEER_SCRIPT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"id": 1, "cmd": "ping"}\\n')
except BrokenPipeError:
    pass  # a refused peer may be closed before it sends; its error reply is still readable
data = b""
while chunk := s.recv(4096):
    data += chunk
    if b"\\n" in data:
        break
print(data.decode().strip())
"""


# The peer runs as nobody, who cannot reach the venv's interpreter (under /root); the
# script needs only the standard library, so the system Python does.
_SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


@pytest.mark.skipif(os.geteuid() != 0 or _SYSTEM_PYTHON is None,
                    reason="needs root (to connect as another user) and /usr/bin/python3")
@pytest.mark.parametrize(("uids", "gids", "extra_groups", "allowed"), [
    ([], [], [], False),
    ([65534], [], [], True),  # by uid
    ([], [4242], [4242], True),  # by a supplementary group (SO_PEERGROUPS)
    ([], [4242], [4343], False),
])
async def test_another_user_is_refused_unless_allowed(
        nursery: trio.Nursery, recorder: Recorder, uids: list[int], gids: list[int],
        extra_groups: list[int], allowed: bool) -> None:
    nobody = 65534
    directory = Path(tempfile.mkdtemp(prefix="fctl"))
    try:
        directory.chmod(0o755)
        path = directory / "c.sock"
        server = ControlServer(path, uids, gids, recorder.registry(), mode=0o666)
        await nursery.start(server.serve)
        with structlog.testing.capture_logs() as logs:
            done = await trio.run_process(
                [_SYSTEM_PYTHON, "-c", _PEER_SCRIPT, str(path)], user=nobody, group=nobody,
                extra_groups=extra_groups, capture_stdout=True, capture_stderr=True,
                check=False)
        assert done.returncode == 0, done.stderr
        reply = json.loads(done.stdout)
        if allowed:
            assert reply == {"id": 1, "ok": True, "result": "pong"}
        else:
            assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
            assert f"uid {nobody}" in reply["error"]["message"]
            refused = [e for e in logs if e["event"] == "control_peer_refused"]
            assert refused and refused[0]["peer_uid"] == nobody
        await ping_ok(path)
    finally:
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


# --------------------------------------------------------------------------- the socket file


async def test_socket_file_mode_is_0660(server: ControlServer) -> None:
    st_ = os.stat(server.path)
    assert stat.S_ISSOCK(st_.st_mode)
    assert stat.S_IMODE(st_.st_mode) == 0o660
    # Nothing left behind from binding under a private name.
    assert sorted(p.name for p in server.path.parent.iterdir()) == ["c.sock"]


async def test_socket_is_removed_when_the_server_stops(tmp_path: Path,
                                                       recorder: Recorder) -> None:
    path = tmp_path / "c.sock"
    async with trio.open_nursery() as nursery:
        await start_server(nursery, path, recorder)
        await ping_ok(path)
        nursery.cancel_scope.cancel()
    assert not path.exists()


async def test_stale_socket_is_replaced(nursery: trio.Nursery, tmp_path: Path,
                                        recorder: Recorder) -> None:
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays; nobody listens: what a kill -9 leaves behind
    await start_server(nursery, path, recorder)
    await ping_ok(path)


async def test_live_daemon_socket_is_not_taken(server: ControlServer,
                                               recorder: Recorder) -> None:
    second = ControlServer(server.path, [], [], recorder.registry())
    with trio.fail_after(5), pytest.raises(ControlSocketError, match="listening on"):
        await second.serve()
    await ping_ok(server.path)


async def test_non_socket_file_is_not_replaced(tmp_path: Path, recorder: Recorder) -> None:
    path = tmp_path / "c.sock"
    path.write_text("precious")
    with trio.fail_after(5), pytest.raises(ControlSocketError, match="not a socket"):
        await ControlServer(path, [], [], recorder.registry()).serve()
    assert path.read_text() == "precious"


async def test_too_long_path_is_a_clear_error(tmp_path: Path, recorder: Recorder) -> None:
    path = tmp_path / ("d" * 120) / "c.sock"
    with trio.fail_after(5), pytest.raises(ControlSocketError, match="AF_UNIX limit"):
        await ControlServer(path, [], [], recorder.registry()).serve()


# --------------------------------------------------------------------------- many clients


async def test_many_concurrent_clients(nursery: trio.Nursery, tmp_path: Path,
                                       recorder: Recorder) -> None:
    count = 50
    recorder.gate_size = count
    path = (await start_server(nursery, tmp_path / "c.sock", recorder)).path
    results: list[Any] = []

    async def one(i: int) -> None:
        client = await LineClient.open(path)
        # Every client waits at the gate until all are inside: served one by one, they would hang.
        reply = await client.call("gate")
        assert (await client.call("echo", {"text": str(i)}))["result"]["text"] == str(i)
        results.append(reply["result"])
        await client.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as clients:
            for i in range(count):
                clients.start_soon(one, i)
    assert len(results) == count and min(results) >= count


async def test_a_full_socket_evicts_the_client_idle_longest(nursery: trio.Nursery, tmp_path: Path,
                                                            recorder: Recorder) -> None:
    server = await start_server(nursery, tmp_path / "c.sock", recorder, max_clients=2, reserve=0)
    first, second = await LineClient.open(server.path), await LineClient.open(server.path)
    await first.call("ping")
    await second.call("ping")
    third = await LineClient.open(server.path)
    assert (await third.call("ping"))["result"] == "pong"
    reply = await first.read()
    assert reply is not None and reply["error"]["code"] == "busy"
    assert "idle longest" in reply["error"]["message"]
    assert await first.read() is None
    assert (await second.call("ping"))["result"] == "pong"
    assert server.evictions == 1


async def test_busy_only_when_every_slot_runs_a_command_and_the_reserve_is_used(
        nursery: trio.Nursery, tmp_path: Path, recorder: Recorder) -> None:
    recorder.gate_size = 100  # `gate` holds its slot until the test ends
    server = await start_server(nursery, tmp_path / "c.sock", recorder, max_clients=2, reserve=1)
    for n in range(1, 4):  # two slots and the reserve, each running a command
        client = await LineClient.open(server.path)
        await client.send("gate")
        with trio.fail_after(5):
            while recorder.arrived < n:
                await trio.sleep(0.01)
    late = await LineClient.open(server.path)
    reply = await late.read()
    assert reply is not None and reply["error"]["code"] == "busy"
    assert await late.read() is None


async def test_streams_have_their_own_slots(nursery: trio.Nursery, tmp_path: Path,
                                            recorder: Recorder) -> None:
    server = await start_server(nursery, tmp_path / "c.sock", recorder, max_clients=1,
                                max_streams=2, reserve=0)
    tails = []
    for _ in range(2):  # one at a time: a client that has not asked yet is idle
        tails.append(await LineClient.open(server.path))
        await tails[-1].send("tail")
        assert "event" in (await tails[-1].read() or {})
    extra = await LineClient.open(server.path)
    await extra.send("tail")
    reply = await extra.read()
    assert reply is not None and reply["error"]["code"] == "busy"
    # The two streams hold no command slot: a command client still gets in.
    assert (await (await LineClient.open(server.path)).call("ping"))["result"] == "pong"


# --------------------------------------------------------------------------- hostile input


async def test_line_too_long_gets_a_reply_and_a_close(nursery: trio.Nursery, tmp_path: Path,
                                                      recorder: Recorder) -> None:
    server = await start_server(nursery, tmp_path / "c.sock", recorder, max_line_bytes=1024)
    client = await LineClient.open(server.path)
    await client.send_raw(b'{"id":1,"cmd":"ping"}\n' + b"a" * 2000)  # no newline at all
    assert (await client.read())["result"] == "pong"  # type: ignore[index]
    reply = await client.read()
    assert reply is not None and reply["error"]["code"] == "line_too_long"
    assert reply["error"]["limit"] == 1024
    assert await client.read() is None
    await ping_ok(server.path)


async def test_default_line_cap_is_64_kib(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    text = "x" * (60 * 1024)
    assert (await client.call("echo", {"text": text}))["result"]["text"] == text
    await client.send_raw(b" " * (64 * 1024 + 1) + b"\n")
    reply = await client.read()
    assert reply is not None and reply["error"]["code"] == "line_too_long"


async def test_idle_client_is_disconnected(nursery: trio.Nursery, tmp_path: Path,
                                           recorder: Recorder) -> None:
    server = await start_server(nursery, tmp_path / "c.sock", recorder, idle_timeout_s=0.3)
    busy = await LineClient.open(server.path)
    idle = await LineClient.open(server.path)
    start = trio.current_time()
    for _ in range(6):  # a client that keeps talking stays connected past the timeout
        await busy.call("ping")
        await trio.sleep(0.1)
    reply = await idle.read()
    assert reply is not None and reply["error"]["code"] == "idle_timeout"
    assert await idle.read() is None
    assert trio.current_time() - start >= 0.3
    assert (await busy.call("ping"))["result"] == "pong"


async def test_default_idle_timeout_under_a_mock_clock(autojump_clock: trio.testing.MockClock,
                                                      server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    assert (await client.call("ping"))["result"] == "pong"
    start = trio.current_time()
    reply = await client.read(timeout_s=3600)
    assert reply is not None and reply["error"]["code"] == "idle_timeout"
    assert "600 s" in reply["error"]["message"]
    assert 600 <= trio.current_time() - start < 601
    assert await client.read() is None


async def test_half_closed_client_gets_its_answers(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    # two requests, the last without its newline, then the client shuts its sending side
    await client.send_raw(b'{"id":1,"cmd":"ping"}\n{"id":2,"cmd":"echo","args":{"text":"z"}}')
    await client.half_close()
    assert (await client.read())["result"] == "pong"  # type: ignore[index]
    assert (await client.read())["result"]["text"] == "z"  # type: ignore[index]
    assert await client.read() is None


async def test_half_closed_mid_request_gets_bad_json(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    await client.send_raw(b'{"id":1,"cmd":"pi')
    await client.half_close()
    reply = await client.read()
    assert reply is not None and reply["error"]["code"] == "bad_json"
    assert await client.read() is None


async def test_garbage_bytes_get_errors_and_the_connection_goes_on(
        server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    await client.send_raw(b"\x00\xff\xfe garbage \x1b[31m\n\r\n   \n{\n")
    codes = [(await client.read())["error"]["code"] for _ in range(2)]  # type: ignore[index]
    assert codes == ["bad_json", "bad_json"]  # blank lines are skipped, not answered
    assert (await client.call("ping"))["result"] == "pong"


async def test_client_vanishing_mid_request_does_not_disturb_others(
        server: ControlServer) -> None:
    for _ in range(20):
        rude = await LineClient.open(server.path)
        await rude.send_raw(b'{"id":1,"cmd":"help"}\n{"id":2,"cmd":"help"}\n')
        await rude.aclose()  # leaves before reading: the server's send fails
    await ping_ok(server.path)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
_requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from(["ping", "echo", "help", "halt", "nope", "boom", "tail", ""])
     | st.text(max_size=10),
     "args": st.dictionaries(st.sampled_from(["text", "n", "mode", "yes", "command", "x"]),
                             _json, max_size=3) | _json},
    optional={"id": _json})
_payloads = st.one_of(
    st.binary(max_size=3000),
    _json.map(lambda v: json.dumps(v).encode()),
    _requests.map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def thread_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # One server for every hypothesis example: the point is that it survives them all.
    path = tmp_path_factory.mktemp("hyp") / "c.sock"
    with ThreadServer(path, Recorder().registry(), max_line_bytes=2048) as server:
        yield server


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(_payloads, min_size=1, max_size=4), newline=st.booleans(),
       half_close=st.booleans())
@pytest.mark.slow  # over a second: out of the fast suite (issue 16)
def test_random_input_never_stops_ping(thread_server: ThreadServer, payloads: list[bytes],
                                       newline: bool, half_close: bool) -> None:
    data = (b"\n" if newline else b"").join(payloads) + b"\n" * newline
    if half_close:
        # The server answers every line (or closes on an oversized one), then closes.
        for reply in blocking_exchange(thread_server.path, data):
            assert isinstance(reply["ok"], bool) and "id" in reply
            assert reply["ok"] or {"code", "message"} <= set(reply["error"])
    else:
        with socket.socket(socket.AF_UNIX) as sock:  # say it and vanish
            sock.connect(str(thread_server.path))
            sock.sendall(data)
    blocking_ping(thread_server.path)


# --------------------------------------------------------------------------- streaming


async def test_stream_stops_when_the_client_leaves(server: ControlServer,
                                                   recorder: Recorder) -> None:
    client = await LineClient.open(server.path)
    request_id = await client.send("tail")
    for seq in range(3):
        assert await client.read() == {"id": request_id, "ok": True,
                                       "event": {"seq": seq, "pad": "x" * 10}}
    await client.aclose()
    with trio.fail_after(2):
        await recorder.stream_stopped.wait()
    sent = recorder.stream_sent
    await trio.sleep(0.05)
    assert recorder.stream_sent == sent  # and it stays stopped
    await ping_ok(server.path)


async def test_stream_stops_when_the_client_half_closes(server: ControlServer,
                                                        recorder: Recorder) -> None:
    client = await LineClient.open(server.path)
    await client.send("tail")
    assert (await client.read())["event"]["seq"] == 0  # type: ignore[index]
    await client.half_close()
    with trio.fail_after(2):
        await recorder.stream_stopped.wait()


async def test_stream_to_a_client_that_stops_reading_is_cut_off(
        nursery: trio.Nursery, tmp_path: Path, recorder: Recorder) -> None:
    server = await start_server(nursery, tmp_path / "c.sock", recorder, send_timeout_s=0.2)
    client = await LineClient.open(server.path)
    await client.send("tail", {"size": 10_000})  # and never read: the socket buffer fills
    with trio.fail_after(5):
        await recorder.stream_stopped.wait()
    assert recorder.stream_sent > 0
    await ping_ok(server.path)
    await client.aclose()


async def test_send_callback_stream_ends_with_a_result(server: ControlServer) -> None:
    client = await LineClient.open(server.path)
    request_id = await client.send("burst", {"count": 4})
    events = [await client.read() for _ in range(4)]
    assert [e["event"]["seq"] for e in events] == [0, 1, 2, 3]  # type: ignore[index]
    assert await client.read() == {"id": request_id, "ok": True, "result": {"sent": 4}}
    assert (await client.call("ping"))["result"] == "pong"  # the connection goes on
    bad = await client.call("burst", {"count": "x"})
    assert bad["error"]["code"] == "bad_args"


def test_registry_refuses_duplicates_and_bad_specs() -> None:
    reg = CommandRegistry()

    async def handler(args: dict[str, Any], peer: PeerCred) -> None:
        return None

    with pytest.raises(ValueError, match="already registered"):
        reg.register("ping", handler)
    with pytest.raises(ValueError, match="duplicate argument"):
        reg.register("x", handler, args=[Arg("a"), Arg("a")])
    with pytest.raises(ValueError, match="adds the 'yes'"):
        reg.register("y", handler, confirm=True, args=[Arg("yes", bool)])
    assert "x" not in reg and "y" not in reg
