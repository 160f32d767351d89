"""The control socket server: a Unix stream socket speaking the JSON-lines protocol.

It knows the protocol, not the trading: the daemon registers its commands
in a CommandRegistry and hands it to ControlServer. The server provides
``ping`` and ``help`` itself.

Rules an operator can rely on:
- the socket is created mode 0660 (bound under a private name, chmod'ed,
  then renamed into place, so it is never reachable with looser modes);
  a stale socket file is replaced, a live daemon's socket is not;
- every peer is identified by the kernel (SO_PEERCRED, plus SO_PEERGROUPS
  for supplementary groups) and checked against the allowed uids/gids;
- one task per client, all in the server's nursery; a bounded number of
  clients; a line length cap; an idle timeout; a send timeout so a client
  that stops reading cannot wedge its task;
- the kill switch always gets through: when the command slots are full the
  client idle the longest is evicted, streams (`tail`) have slots of their
  own, and a reserve admits a few more when every slot is running a command;
- nothing a client sends can raise out of its own connection task.
"""

from __future__ import annotations

import inspect
import os
import socket
import stat
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from pathlib import Path
from typing import Any

import attrs
import structlog
import trio

from fractald.control.protocol import (
    DEFAULT_MAX_LINE_BYTES,
    Arg,
    CommandError,
    ErrorCode,
    LineBuffer,
    LineTooLong,
    PeerCred,
    encode,
    error_reply,
    event_reply,
    forbidden_error,
    ok_reply,
    parse_request,
    peer_allowed,
    request_id_of,
    validate_args,
)
from fractald.errors import ExitStatus, FatalError

# Linux's SO_PEERGROUPS (since 4.13); Python's socket module does not name it.
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_PEERCRED = struct.Struct("3i")
_MAX_PEER_GROUPS = 256
_RECV_BYTES = 16 * 1024
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

Send = Callable[[Any], Awaitable[None]]
Handler = Callable[..., Any]


class ControlSocketError(FatalError):
    """The control socket cannot be set up (path in use by a live daemon, not a socket, too long)."""

    code = "control_socket_unavailable"
    exit_status = ExitStatus.UNAVAILABLE


class _IdleTimeout(Exception):
    pass


class _ClientGone(Exception):
    """This client's connection broke or it stopped reading; nothing more can be said to it.

    Distinct from the trio errors it wraps, so a handler's own TooSlowError or
    BrokenResourceError is reported as an internal error, not mistaken for this.
    """


# --------------------------------------------------------------------------- registry


def _arg_tuple(args: Iterable[Arg]) -> tuple[Arg, ...]:
    return tuple(args)


@attrs.frozen
class Command:
    """A command the server dispatches.

    ``handler`` is ``async def (args, peer) -> result`` for plain commands.
    A streaming command is either an async generator function
    ``async def (args, peer)`` yielding events, or (``streaming=True``)
    ``async def (args, peer, send)`` calling ``await send(event)``; it runs
    until it returns or the client leaves. ``confirm=True`` adds a boolean
    argument ``yes`` that must be true (``halt``): refused server-side, not
    only by fractalctl.
    """

    handler: Handler
    args: tuple[Arg, ...] = attrs.field(default=(), converter=_arg_tuple)
    mutating: bool = False
    help: str = ""
    streaming: bool = False
    confirm: bool = False

    def __attrs_post_init__(self) -> None:
        if not callable(self.handler):
            raise TypeError(f"command handler must be callable, got {self.handler!r}")
        names = [a.name for a in self.args]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate argument names in {names}")
        if self.confirm and "yes" in names:
            raise ValueError("confirm=True adds the 'yes' argument itself")

    @property
    def is_generator(self) -> bool:
        return inspect.isasyncgenfunction(self.handler)

    @property
    def is_streaming(self) -> bool:
        return self.streaming or self.is_generator

    def spec(self) -> tuple[Arg, ...]:
        if self.confirm:
            return (
                *self.args,
                Arg("yes", bool, default=False, help="confirm; the command is refused without it"),
            )
        return self.args

    def summary(self, name: str) -> dict[str, Any]:
        return {
            "command": name,
            "mutating": self.mutating,
            "streaming": self.is_streaming,
            "args": ", ".join(f"{a.name}{'' if a.required else '?'}" for a in self.spec()),
            "help": self.help,
        }


class CommandRegistry:
    """Command name -> Command. Comes with ``ping`` and ``help``."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self.register("ping", _ping, help='liveness check; answers "pong"')
        self.register(
            "help",
            self._help,
            args=[Arg("command", str, help="one command's details")],
            help="list the commands, or describe one",
        )

    def register(
        self,
        name: str,
        handler: Handler | Command,
        *,
        args: Iterable[Arg] = (),
        mutating: bool = False,
        help: str = "",
        streaming: bool = False,
        confirm: bool = False,
    ) -> Command:
        if not name or not isinstance(name, str):
            raise ValueError(f"command name must be a non-empty string, got {name!r}")
        if name in self._commands:
            raise ValueError(f"command {name!r} is already registered")
        command = (
            handler
            if isinstance(handler, Command)
            else Command(
                handler, args, mutating=mutating, help=help, streaming=streaming, confirm=confirm
            )
        )
        self._commands[name] = command
        return command

    def command(self, name: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator form of register()."""

        def decorate(handler: Handler) -> Handler:
            self.register(name, handler, **options)
            return handler

        return decorate

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def names(self) -> list[str]:
        return sorted(self._commands)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def unknown(self, name: str) -> CommandError:
        valid = self.names()
        return CommandError(
            ErrorCode.UNKNOWN_COMMAND,
            f"unknown command {name!r}; valid commands: {', '.join(valid)}",
            valid=valid,
        )

    async def _help(self, args: dict[str, Any], peer: PeerCred) -> Any:
        name = args.get("command")
        if name is None:
            return [self._commands[n].summary(n) for n in self.names()]
        command = self.get(name)
        if command is None:
            raise self.unknown(name)
        return {**command.summary(name), "args": [a.as_dict() for a in command.spec()]}


async def _ping(args: dict[str, Any], peer: PeerCred) -> str:
    return "pong"


# --------------------------------------------------------------------------- peers


def read_peer(sock: Any) -> PeerCred:
    """The kernel's word on who is connected (SO_PEERCRED; SO_PEERGROUPS when available)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    groups: tuple[Any, ...] = ()
    try:
        raw_groups = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * _MAX_PEER_GROUPS)
        groups = struct.unpack(f"{len(raw_groups) // 4}I", raw_groups[: len(raw_groups) // 4 * 4])
    except OSError:
        pass  # old kernel or more groups than we asked for: the primary gid still counts
    return PeerCred(pid=pid, uid=uid, gid=gid, groups=frozenset(groups))


# --------------------------------------------------------------------------- connection


class _Connection:
    """One client's byte stream as request lines in and JSON messages out."""

    def __init__(
        self,
        stream: trio.SocketStream,
        max_line_bytes: int,
        idle_timeout_s: float,
        send_timeout_s: float,
    ) -> None:
        self.stream = stream
        self.lines = LineBuffer(max_line_bytes)
        self.pending: deque[bytes] = deque()
        self.eof = False
        self.idle_timeout_s = idle_timeout_s
        self.send_timeout_s = send_timeout_s

    async def next_line(self) -> bytes | None:
        """The next request line; None at end of input. Raises LineTooLong / _IdleTimeout."""
        while True:
            while self.pending:
                line = self.pending.popleft()
                if line.strip():  # blank lines (an operator pressing Enter) get no answer
                    return line
            self.lines.check()  # only after the lines before the long one are answered
            if self.eof:
                return None
            data = b""
            with trio.move_on_after(self.idle_timeout_s) as scope:
                try:
                    data = await self.stream.receive_some(_RECV_BYTES)
                except _TRANSPORT_ERRORS as exc:
                    raise _ClientGone from exc
            if scope.cancelled_caught:
                raise _IdleTimeout
            if not data:
                # A half-closed client still gets answers to what it sent, including
                # a last request it did not end with a newline.
                self.eof = True
                self.pending.append(self.lines.tail())
            else:
                self.pending.extend(self.lines.feed(data))

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_bytes(encode(message))

    async def send_bytes(self, data: bytes) -> None:
        try:
            # A client that stops reading must not hold its task (and a stream) forever.
            with trio.fail_after(self.send_timeout_s):
                await self.stream.send_all(data)
        except (*_TRANSPORT_ERRORS, trio.TooSlowError) as exc:
            raise _ClientGone from exc

    async def wait_until_gone(self) -> None:
        """Return when the client closes (or half-closes) its side. Input meanwhile is dropped."""
        try:
            while await self.stream.receive_some(_RECV_BYTES):
                pass
        except _TRANSPORT_ERRORS:
            pass


_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.define(eq=False)
class _Slot:
    """One admitted client: how to close it, and since when it has been waiting idle."""

    cancel: trio.CancelScope
    idle_since: float | None  # trio time; None while a command of it runs
    streaming: bool = False
    evicted: bool = False


# --------------------------------------------------------------------------- server


class ControlServer:
    """Serves a CommandRegistry on a Unix socket until cancelled."""

    def __init__(
        self,
        path: Path | str,
        allowed_uids: Iterable[int],
        allowed_gids: Iterable[int],
        handlers: CommandRegistry,
        log: Any = None,
        *,
        idle_timeout_s: float = 600.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_clients: int = 64,
        send_timeout_s: float = 10.0,
        mode: int = 0o660,
        backlog: int = 512,
        max_streams: int = 16,
        reserve: int = 8,
    ) -> None:
        self.path = Path(path)
        self.allowed_uids = frozenset(allowed_uids)
        self.allowed_gids = frozenset(allowed_gids)
        self.registry = handlers
        self.log = log if log is not None else structlog.get_logger("control")
        self.idle_timeout_s = idle_timeout_s
        self.max_line_bytes = max_line_bytes
        self.max_clients = max_clients
        self.send_timeout_s = send_timeout_s
        self.mode = mode
        # Deep enough for a burst of clients: past it a Unix-socket connect() fails at once
        # (EAGAIN); fractalctl then waits for a place, but other clients may not.
        self.backlog = backlog
        self.own_uid = os.getuid()
        self.max_streams = max_streams
        self.reserve = reserve
        self._slots: set[_Slot] = set()
        self.evictions = 0
        self._inode: int | None = None

    @property
    def active_clients(self) -> int:
        return len(self._slots)

    def _command_slots(self) -> list[_Slot]:
        return [s for s in self._slots if not s.streaming and not s.evicted]

    def _admit(self) -> bool:
        """Room for one more client? When full, the client idle the longest makes room.

        Streams (`tail`) are counted apart (max_streams), so they can never fill
        the command slots; idle clients are evicted first; when every slot is
        busy with a command, `reserve` more are let in, so `halt` gets through.
        """
        commands = self._command_slots()
        if len(commands) < self.max_clients:
            return True
        idle = [s for s in commands if s.idle_since is not None]
        if idle:
            victim = min(idle, key=lambda s: s.idle_since or 0.0)
            victim.evicted = True
            victim.cancel.cancel()
            self.evictions += 1
            return True
        return len(commands) < self.max_clients + self.reserve

    # ---- socket life cycle

    async def serve(self, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
        sock = await self._bind()
        try:
            async with trio.open_nursery() as nursery:
                listener = trio.SocketListener(sock)
                self.log.info("control_listening", path=str(self.path), mode=oct(self.mode))
                task_status.started(self.path)
                await trio.serve_listeners(self._handle, [listener], handler_nursery=nursery)
        finally:
            sock.close()
            self._unlink_own_socket()

    async def _bind(self) -> trio.socket.SocketType:
        if len(os.fsencode(self.path)) > _UNIX_PATH_MAX:
            raise ControlSocketError(
                f"control socket path {self.path} is longer than {_UNIX_PATH_MAX} bytes "
                "(the AF_UNIX limit); choose a shorter control.socket_path",
                path=str(self.path),
            )
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlSocketError(
                f"cannot create {self.path.parent}: {exc}", path=str(self.path)
            ) from exc
        await self._remove_stale_socket()
        # Bind under a private name, set the mode, then rename into place: the socket
        # is never reachable under its public name with the umask's looser mode.
        private = self.path.parent / f".ctl{os.getpid()}"
        if len(os.fsencode(private)) > _UNIX_PATH_MAX:
            private = self.path
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if private != self.path:
                private.unlink(missing_ok=True)
            await sock.bind(str(private))
            os.chmod(private, self.mode)
            if private != self.path:
                os.rename(private, self.path)
            self._inode = os.stat(self.path).st_ino
            sock.listen(self.backlog)
        except OSError as exc:
            sock.close()
            raise ControlSocketError(
                f"cannot listen on {self.path}: {exc}", path=str(self.path)
            ) from exc
        return sock

    async def _remove_stale_socket(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(
                f"{self.path} exists and is not a socket; refusing to replace it",
                path=str(self.path),
            )
        if await _socket_answers(self.path):
            raise ControlSocketError(
                f"another process (a running fractald?) is listening on "
                f"{self.path}; refusing to take its socket",
                path=str(self.path),
            )
        self.log.info("control_stale_socket_removed", path=str(self.path))
        self.path.unlink(missing_ok=True)

    def _unlink_own_socket(self) -> None:
        # Only our own inode: a newer daemon may already have replaced the file.
        try:
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        except OSError:
            pass

    # ---- one client

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            conn = _Connection(
                stream, self.max_line_bytes, self.idle_timeout_s, self.send_timeout_s
            )
            try:
                peer = read_peer(stream.socket)
            except OSError as exc:
                self.log.warning("control_peer_unknown", error=str(exc))
                return
            if not peer_allowed(peer, self.allowed_uids, self.allowed_gids, self.own_uid):
                self.log.warning("control_peer_refused", **peer.as_log())
                await self._refuse(conn, forbidden_error(peer))
                return
            if not self._admit():
                await self._refuse(
                    conn,
                    CommandError(
                        ErrorCode.BUSY,
                        f"too many control clients (limit {self.max_clients}, all "
                        "busy with a command); try again shortly",
                    ),
                )
                return
            slot = _Slot(trio.CancelScope(), trio.current_time())
            self._slots.add(slot)
            try:
                with slot.cancel:
                    await self._converse(conn, peer, slot)
            except _ClientGone:
                pass  # the client went away or stopped reading: nothing to answer
            except Exception as exc:  # never let one client take the server down
                self.log.exception("control_connection_failed", error=repr(exc), **peer.as_log())
            finally:
                self._slots.discard(slot)
            if slot.evicted:
                self.log.info("control_idle_client_evicted", **peer.as_log())
                with trio.move_on_after(1.0):
                    await self._refuse(
                        conn,
                        CommandError(
                            ErrorCode.BUSY,
                            "the control socket is full and this connection was "
                            "the one idle longest; it is closed",
                        ),
                    )

    async def _refuse(self, conn: _Connection, error: CommandError) -> None:
        try:
            await conn.send(error_reply(None, error))
        except _ClientGone:
            pass

    async def _converse(self, conn: _Connection, peer: PeerCred, slot: _Slot) -> None:
        while True:
            slot.idle_since = trio.current_time()
            try:
                line = await conn.next_line()
            except LineTooLong as exc:
                self.log.warning(
                    "control_line_too_long", limit=self.max_line_bytes, **peer.as_log()
                )
                await conn.send(error_reply(None, exc))
                return
            except _IdleTimeout:
                await conn.send(
                    error_reply(
                        None,
                        CommandError(
                            ErrorCode.IDLE_TIMEOUT,
                            f"no request for {self.idle_timeout_s:g} s; the connection is closed",
                        ),
                    )
                )
                return
            slot.idle_since = None  # no checkpoint since the line came: it cannot be evicted now
            if line is None or slot.evicted:
                return
            await self._dispatch(conn, line, peer, slot)

    async def _dispatch(
        self, conn: _Connection, line: bytes, peer: PeerCred, slot: _Slot | None = None
    ) -> None:
        try:
            request = parse_request(line)
        except CommandError as exc:
            await conn.send(error_reply(request_id_of(exc), exc))
            return
        command = self.registry.get(request.cmd)
        if command is None:
            await conn.send(error_reply(request.id, self.registry.unknown(request.cmd)))
            return
        outcome = "ok"
        args: dict[str, Any] | None = None
        reply: bytes | None = None
        try:
            args = validate_args(request.cmd, command.spec(), request.args)
            if command.confirm and args.get("yes") is not True:
                raise CommandError(
                    ErrorCode.CONFIRMATION_REQUIRED,
                    f"{request.cmd} needs confirmation: send args "
                    '{"yes": true} (fractalctl: --yes)',
                    argument="yes",
                )
            if command.is_streaming:
                outcome = await self._stream_in_slot(
                    conn, request.id, request.cmd, command, args, peer, slot
                )
            else:
                result = await command.handler(args, peer)
                reply = encode(ok_reply(request.id, result))  # here: an unencodable result is ours
        except CommandError as exc:
            outcome = exc.code
            reply = encode(error_reply(request.id, exc))
        except _ClientGone:
            outcome = "client_gone"
            raise
        except Exception as exc:
            outcome = ErrorCode.INTERNAL.value
            self.log.exception(
                "control_command_failed", cmd=request.cmd, error=repr(exc), **peer.as_log()
            )
            reply = encode(
                error_reply(
                    request.id,
                    CommandError(
                        ErrorCode.INTERNAL, f"{request.cmd} failed: {type(exc).__name__}: {exc}"
                    ),
                )
            )
        finally:
            if command.mutating:
                # The audit trail, written before the client hears back: who changed the
                # daemon's behaviour, and how it went. Only validated args are logged
                # whole: a rejected request could carry anything (deep nesting, megabytes).
                self.log.info(
                    "control_command",
                    cmd=request.cmd,
                    args=args if args is not None else sorted(request.args)[:20],
                    outcome=outcome,
                    **peer.as_log(),
                )
        if reply is not None:
            await conn.send_bytes(reply)

    async def _stream_in_slot(
        self,
        conn: _Connection,
        request_id: Any,
        name: str,
        command: Command,
        args: dict[str, Any],
        peer: PeerCred,
        slot: _Slot | None,
    ) -> str:
        """A stream leaves the command slots for the stream slots, which have their own cap."""
        if slot is None:
            return await self._stream(conn, request_id, name, command, args, peer)
        if sum(s.streaming for s in self._slots) >= self.max_streams:
            raise CommandError(
                ErrorCode.BUSY,
                f"too many streams ({name}) at once (limit {self.max_streams}); try again shortly",
            )
        slot.streaming = True
        try:
            return await self._stream(conn, request_id, name, command, args, peer)
        finally:
            slot.streaming = False

    async def _stream(
        self,
        conn: _Connection,
        request_id: Any,
        name: str,
        command: Command,
        args: dict[str, Any],
        peer: PeerCred,
    ) -> str:
        """Run a streaming handler until it ends or the client leaves.

        The handler runs in this task; a sibling watches the client's side of
        the socket and cancels the handler as soon as the client closes it.
        Exceptions are caught inside the nursery body so they are never
        wrapped in an exception group.
        """
        left = False
        done: list[Any] = []
        failure: list[BaseException] = []

        async def send(event: Any) -> None:
            nonlocal left
            try:
                await conn.send(event_reply(request_id, event))
            except _ClientGone:
                left = True
                nursery.cancel_scope.cancel()
                await trio.lowlevel.checkpoint()  # raises Cancelled into the handler

        async def watch() -> None:
            nonlocal left
            await conn.wait_until_gone()
            left = True
            nursery.cancel_scope.cancel()

        if conn.eof:
            return "client_gone"  # it closed its side already: nobody to stream to
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            try:
                done.append(await self._run_stream_handler(command, args, peer, send))
            except Exception as exc:  # noqa: BLE001 - re-raised below, outside the nursery
                failure.append(exc)
            finally:
                nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]
        if left:
            return "client_gone"
        await conn.send(ok_reply(request_id, done[0] if done else None))
        return "ok"

    async def _run_stream_handler(
        self, command: Command, args: dict[str, Any], peer: PeerCred, send: Send
    ) -> Any:
        if command.is_generator:
            agen: AsyncIterator[Any] = command.handler(args, peer)
            async with aclosing(agen):  # type: ignore[type-var]
                async for event in agen:
                    await send(event)
            return None
        return await command.handler(args, peer, send)


async def _socket_answers(path: Path) -> bool:
    """True when something accepts connections at ``path`` (a live daemon)."""
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(1.0):
            await probe.connect(str(path))
            return True
        return True  # a listener too busy to accept within a second is still alive
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except BlockingIOError:
        return True  # backlog full: alive
    finally:
        probe.close()
