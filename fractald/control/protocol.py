"""The control protocol, sans I/O: JSON lines in, JSON lines out.

One request per line::

    {"id": 7, "cmd": "status", "args": {}}

and one reply per request::

    {"id": 7, "ok": true, "result": {...}}
    {"id": 7, "ok": false, "error": {"code": "bad_args", "message": "...", ...}}

A streaming command (``tail``) answers with any number of event lines
``{"id": 7, "ok": true, "event": {...}}`` and, if the stream ever ends on the
daemon's side, one final ``result`` line.

Nothing here touches a socket or a clock, so every rule (line framing, the
length cap, request validation, argument specs, the peer check) is tested
with plain values; server.py and client.py only move bytes.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

DEFAULT_MAX_LINE_BYTES = 64 * 1024
# Request ids are echoed back verbatim; keep them small scalars so a client cannot
# make the daemon echo a megabyte or a structure.
_ID_TYPES = (str, int, type(None))
_MAX_ID_CHARS = 128
_MAX_CMD_CHARS = 64


class ErrorCode(str, enum.Enum):
    """Every error a client can receive from the server itself.

    Handlers may raise CommandError with codes of their own (``halted``,
    ``not_found``...); these are the ones the protocol layer uses.
    """

    BAD_JSON = "bad_json"  # the line is not JSON (or not UTF-8)
    BAD_REQUEST = "bad_request"  # JSON, but not a request object
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGS = "bad_args"
    CONFIRMATION_REQUIRED = "confirmation_required"
    FORBIDDEN = "forbidden"
    LINE_TOO_LONG = "line_too_long"
    IDLE_TIMEOUT = "idle_timeout"
    BUSY = "busy"  # too many clients at once
    INTERNAL = "internal"  # a handler failed in a way it did not name


class CommandError(Exception):
    """An error with a stable machine-readable code; becomes one error reply.

    ``details`` are extra JSON-able fields in the reply's ``error`` object
    (for bad_args: ``argument`` and ``allowed``).
    """

    def __init__(self, code: str | ErrorCode, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code.value if isinstance(code, ErrorCode) else str(code)
        self.message = message
        self.details = details

    def as_error(self) -> dict[str, Any]:
        return {**self.details, "code": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"CommandError({self.code!r}, {self.message!r})"


# --------------------------------------------------------------------------- framing


class LineTooLong(CommandError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            ErrorCode.LINE_TOO_LONG,
            f"request line longer than {limit} bytes; the connection is closed",
            limit=limit,
        )


class LineBuffer:
    """Splits a byte stream into lines, refusing any line longer than ``max_line_bytes``.

    The cap is checked as bytes arrive, so a client that never sends a
    newline cannot make the daemon buffer more than the cap. Lines that
    were complete before the offending one are still returned (they get
    their answers); after that ``overflowed`` is set and the buffer is dead.
    """

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be >= 1, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self.overflowed = False
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete lines (without their newline)."""
        if self.overflowed:
            return []
        self._buf += data
        lines: list[bytes] = []
        start = 0
        while (end := self._buf.find(b"\n", start)) >= 0:
            if end - start > self.max_line_bytes:
                break
            lines.append(bytes(self._buf[start:end]))
            start = end + 1
        del self._buf[:start]
        first_end = self._buf.find(b"\n")
        if len(self._buf) > self.max_line_bytes and not 0 <= first_end <= self.max_line_bytes:
            self.overflowed = True
            self._buf.clear()
        return lines

    def check(self) -> None:
        """Raise LineTooLong once the buffer has overflowed."""
        if self.overflowed:
            raise LineTooLong(self.max_line_bytes)

    def tail(self) -> bytes:
        """Whatever arrived after the last newline (a last request the client sent before EOF)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def encode(message: Mapping[str, Any]) -> bytes:
    """One JSON line. NaN/inf are not JSON; they are sent as null rather than breaking clients."""
    return (
        json.dumps(
            _finite(message), separators=(",", ":"), ensure_ascii=False, default=_json_default
        )
        + "\n"
    ).encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    """Results may carry enums, attrs classes, sets and paths; render them plainly."""
    if isinstance(value, enum.Enum):
        return value.value
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=True)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# --------------------------------------------------------------------------- messages


@attrs.frozen
class Request:
    id: str | int | None
    cmd: str
    args: dict[str, Any]


class RequestError(CommandError):
    """A CommandError that still knows the id of the request it answers."""

    def __init__(
        self, request_id: str | int | None, code: str | ErrorCode, message: str, **details: Any
    ) -> None:
        super().__init__(code, message, **details)
        self.request_id = request_id


def parse_request(line: bytes) -> Request:
    """Decode and check one request line. Raises CommandError (bad_json / bad_request).

    The id is recovered whenever the line is a JSON object, so even a
    rejected request gets a reply the client can match.
    """
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CommandError(
            ErrorCode.BAD_JSON, f"request is not a JSON line: {_short(exc)}"
        ) from None
    if not isinstance(obj, dict):
        raise CommandError(
            ErrorCode.BAD_REQUEST,
            f'a request is a JSON object {{"id", "cmd", "args"}}, got {type(obj).__name__}',
        )
    req_id = obj.get("id")
    if (
        not isinstance(req_id, _ID_TYPES)
        or isinstance(req_id, bool)
        or (isinstance(req_id, str) and len(req_id) > _MAX_ID_CHARS)
    ):
        raise CommandError(
            ErrorCode.BAD_REQUEST,
            f'"id" must be a string (at most {_MAX_ID_CHARS} characters), an integer or null',
        )
    unknown = sorted(set(obj) - {"id", "cmd", "args"})
    if unknown:
        raise RequestError(
            req_id,
            ErrorCode.BAD_REQUEST,
            f"unknown request field(s) {unknown}; allowed: id, cmd, args",
        )
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd or len(cmd) > _MAX_CMD_CHARS:
        raise RequestError(
            req_id,
            ErrorCode.BAD_REQUEST,
            f'"cmd" must be a non-empty string of at most {_MAX_CMD_CHARS} characters',
        )
    args = obj.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError(
            req_id,
            ErrorCode.BAD_REQUEST,
            f'"args" must be a JSON object, got {type(args).__name__}',
        )
    return Request(id=req_id, cmd=cmd, args=args)


def request_id_of(exc: CommandError) -> str | int | None:
    return exc.request_id if isinstance(exc, RequestError) else None


def make_request(
    cmd: str, args: Mapping[str, Any] | None = None, request_id: str | int | None = 1
) -> bytes:
    return encode({"id": request_id, "cmd": cmd, "args": dict(args or {})})


def ok_reply(request_id: str | int | None, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def event_reply(request_id: str | int | None, event: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "event": event}


def error_reply(request_id: str | int | None, error: CommandError) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": error.as_error()}


def _short(exc: BaseException, limit: int = 120) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- arguments


_TYPE_NAMES: dict[type[Any], str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list of strings",
}
_ARG_TYPES: tuple[type[Any], ...] = tuple(_TYPE_NAMES)


def _optional_tuple(values: Iterable[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


@attrs.frozen
class Arg:
    """One argument of a command: its JSON type, whether it is required, what values are allowed.

    ``type`` is one of str, int, float, bool, list (a list of strings).
    ``minimum``/``maximum`` bound numbers; ``choices`` bounds strings (and
    every element of a list).
    """

    name: str
    type: type[Any] = attrs.field(default=str, validator=attrs.validators.in_(_ARG_TYPES))
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = attrs.field(default=None, converter=_optional_tuple)
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""

    def describe(self) -> str:
        """What is allowed, in words: used in every bad_args message."""
        text = _TYPE_NAMES[self.type]
        if self.choices is not None:
            text += " (one of: " + ", ".join(map(str, self.choices)) + ")"
        if self.minimum is not None or self.maximum is not None:
            low = "-inf" if self.minimum is None else f"{self.minimum:g}"
            high = "inf" if self.maximum is None else f"{self.maximum:g}"
            text += f" in [{low}, {high}]"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": _TYPE_NAMES[self.type],
            "required": self.required,
            "default": self.default,
            "allowed": self.describe(),
            "help": self.help,
        }


def _bad_arg(cmd: str, arg: Arg, value: Any, why: str) -> CommandError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return CommandError(
        ErrorCode.BAD_ARGS,
        f"{cmd}: argument {arg.name!r} {why} (got {shown}); allowed: {arg.describe()}",
        argument=arg.name,
        allowed=arg.describe(),
    )


def _type_ok(expected: type, value: Any) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if expected is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, expected)


def _check_value(cmd: str, arg: Arg, value: Any) -> Any:
    if not _type_ok(arg.type, value):
        name = _TYPE_NAMES[arg.type]
        raise _bad_arg(cmd, arg, value, f"must be {'an' if name[0] in 'aeiou' else 'a'} {name}")
    if arg.choices is not None:
        items = value if arg.type is list else [value]
        for item in items:
            if item not in arg.choices:
                raise _bad_arg(cmd, arg, item, "has a value that is not allowed")
    if arg.type in (int, float):
        if (arg.minimum is not None and value < arg.minimum) or (
            arg.maximum is not None and value > arg.maximum
        ):
            raise _bad_arg(cmd, arg, value, "is out of range")
        if arg.type is float:
            value = float(value)
    return value


def validate_args(cmd: str, spec: Iterable[Arg], args: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``args`` against ``spec``; return them with defaults filled in. Raises bad_args.

    Unknown arguments are refused (a typo must not silently do the default).
    """
    spec = tuple(spec)
    known = {a.name: a for a in spec}
    unknown = sorted(set(args) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise CommandError(
            ErrorCode.BAD_ARGS,
            f"{cmd}: unknown argument(s) {', '.join(map(repr, unknown))}; allowed: {allowed}",
            argument=unknown[0],
            allowed=list(known),
        )
    out: dict[str, Any] = {}
    for arg in spec:
        if arg.name not in args or args[arg.name] is None:
            if arg.required:
                raise CommandError(
                    ErrorCode.BAD_ARGS,
                    f"{cmd}: argument {arg.name!r} is required; allowed: {arg.describe()}",
                    argument=arg.name,
                    allowed=arg.describe(),
                )
            out[arg.name] = arg.default
            continue
        out[arg.name] = _check_value(cmd, arg, args[arg.name])
    return out


# --------------------------------------------------------------------------- peers


@attrs.frozen
class PeerCred:
    """Who is on the other end of a Unix socket, as the kernel says (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int
    # Supplementary groups (SO_PEERGROUPS) when the kernel tells us; lets an operator
    # whose membership of the daemon's group is supplementary be recognised.
    groups: frozenset[int] = attrs.field(factory=frozenset, converter=frozenset)

    def as_log(self) -> dict[str, int]:
        return {"peer_pid": self.pid, "peer_uid": self.uid, "peer_gid": self.gid}


def peer_allowed(
    peer: PeerCred, allowed_uids: Iterable[int], allowed_gids: Iterable[int], own_uid: int
) -> bool:
    """Root and the daemon's own user always; else a listed uid, or a listed primary or
    supplementary gid."""
    if peer.uid in (0, own_uid) or peer.uid in set(allowed_uids):
        return True
    gids = set(allowed_gids)
    return peer.gid in gids or bool(peer.groups & gids)


def forbidden_error(peer: PeerCred) -> CommandError:
    return CommandError(
        ErrorCode.FORBIDDEN,
        f"uid {peer.uid} (gid {peer.gid}) may not use this control socket; "
        "add it to control.allowed_uids or control.allowed_gids",
        uid=peer.uid,
        gid=peer.gid,
    )
