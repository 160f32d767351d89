"""The little HTTP/1.1 the fake venues need: read one request, write one response, hang up."""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio


@attrs.frozen
class Request:
    method: str
    target: str
    body: Any  # decoded JSON, or None


async def read_request(stream: trio.abc.Stream) -> Request | None:
    """One request from the stream; None if the client hung up first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                   if line.lower().startswith("content-length:")), 0)
    while len(body) < length:
        body += await stream.receive_some(65536)
    return Request(method, target, json.loads(body) if length else None)


async def respond(stream: trio.abc.Stream, status: int, headers: dict[str, str], body: bytes) -> None:
    headers = {"Content-Type": "application/json", **headers}
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
            "Connection: close"] + [f"{k}: {v}" for k, v in headers.items()]
    await stream.send_all(("\r\n".join(head) + "\r\n\r\n").encode() + body)
