"""A fake Telegram Bot API on 127.0.0.1: the methods the bot uses, with the real shapes.

`https://core.telegram.org/bots/api`: every answer is {"ok": true, "result": ...}
or {"ok": false, "error_code": N, "description": "..."}; the token is the
path segment after /bot; getUpdates long-polls until an update at or
after `offset` exists or `timeout` seconds pass, and an `offset` confirms
every update before it. Tests play the phone: `user_sends`, `user_presses`.
"""

from __future__ import annotations

import email.parser
import email.policy
import html.parser
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                "tg-spoiler", "span", "blockquote"}


class _HtmlCheck(html.parser.HTMLParser):
    """Telegram's HTML parse mode: only its tags, every tag closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problem = ""
        self.text = ""

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in ALLOWED_TAGS:
            self.problem = f"Unsupported start tag \"{tag}\""
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.problem = f"Unexpected end tag \"{tag}\""

    def handle_data(self, data: str) -> None:
        self.text += data


class ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class FakeBotApi:
    def __init__(self, token: str = "123456:TEST-token") -> None:
        self.token = token
        self.lock = threading.Condition()
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 1000
        self.next_message_id = 1
        self.calls: list[tuple[str, dict[str, Any]]] = []  # every accepted call, in order
        self.photos: list[tuple[str, bytes]] = []  # (chat_id, png bytes)
        self.callbacks: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.closed = False
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.closed = True  # waiting polls answer now
            self.lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- the phone ----------------------------------------------------------------------
    def _push(self, update: dict[str, Any]) -> None:
        with self.lock:
            update["update_id"] = self.next_update_id
            self.next_update_id += 1
            self.updates.append(update)
            self.lock.notify_all()

    def user_sends(self, chat_id: int, user_id: int, text: str) -> None:
        self._push({"message": {"message_id": 0, "date": int(time.time()), "text": text,
                                "chat": {"id": chat_id, "type": "private"},
                                "from": {"id": user_id, "is_bot": False, "first_name": "op"}}})

    def user_presses(self, chat_id: int, user_id: int, message_id: int, data: str) -> str:
        query_id = f"cb{self.next_update_id}"
        with self.lock:
            self.callbacks.add(query_id)
        self._push({"callback_query": {
            "id": query_id, "data": data, "chat_instance": "1",
            "from": {"id": user_id, "is_bot": False, "first_name": "op"},
            "message": {"message_id": message_id, "date": 0, "chat": {"id": chat_id, "type": "private"}}}})
        return query_id

    def sent(self, method: str, chat_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [p for m, p in self.calls if m == method
                    and (chat_id is None or str(p.get("chat_id")) == str(chat_id))]

    def wait_for(self, method: str, count: int, chat_id: int | None = None, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.sent(method, chat_id)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count} {method} calls within {timeout}s: {self.calls}")
                self.lock.wait(left)
            return self.sent(method, chat_id)

    def polled_past(self, update_id: int, timeout: float = 20) -> None:
        """Wait until the bot confirmed `update_id` (asked for a later offset)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not any(m == "getUpdates" and int(p.get("offset", 0)) > update_id for m, p in self.calls):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"update {update_id} was never confirmed")
                self.lock.wait(left)

    # -- the methods --------------------------------------------------------------------
    def _message(self, chat_id: Any, text: str = "") -> dict[str, Any]:
        self.next_message_id += 1
        return {"message_id": self.next_message_id, "date": int(time.time()), "text": text,
                "chat": {"id": int(chat_id), "type": "private"}}

    def get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(p.get("offset", 0))
        deadline = time.monotonic() + float(p.get("timeout", 0))
        with self.lock:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and not self.closed and time.monotonic() < deadline:
                self.lock.wait(deadline - time.monotonic())
            return list(self.updates[:100])

    def send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        if "chat_id" not in p:
            raise ApiError(400, "Bad Request: chat_id is empty")
        text = str(p.get("text", ""))
        if p.get("parse_mode") == "HTML":
            check = _HtmlCheck()
            check.feed(text)
            check.close()
            if check.problem or check.open:
                raise ApiError(400, f"Bad Request: can't parse entities: {check.problem or 'unclosed tag'}")
            text = check.text
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return self._message(p["chat_id"], text)

    def answer_callback(self, p: dict[str, Any]) -> bool:
        if p.get("callback_query_id") not in self.callbacks:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.callbacks.discard(p["callback_query_id"])
        return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    result = api.dispatch(self.path, self.headers.get("Content-Type", ""), body)
                    answer, status = {"ok": True, "result": result}, 200
                except ApiError as exc:
                    answer, status = {"ok": False, "error_code": exc.code, "description": exc.description}, exc.code
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bot stopped polling (a test ended) while this poll waited

        return Handler

    def dispatch(self, path: str, content_type: str, body: bytes) -> Any:
        prefix, _, method = path.lstrip("/").partition("/")
        if prefix != f"bot{self.token}":
            raise ApiError(401, "Unauthorized")
        files: dict[str, bytes] = {}
        if content_type.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body)
            payload: dict[str, Any] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    files[name] = part.get_payload(decode=True)
                else:
                    payload[name] = part.get_content().strip()
        else:
            payload = json.loads(body or b"{}")
        if method == "getUpdates":
            with self.lock:  # recorded when asked (its offset confirms), before the long wait
                self.calls.append((method, payload))
                self.lock.notify_all()
            return self.get_updates(payload)
        elif method == "sendMessage":
            result = self.send_message(payload)
        elif method == "sendPhoto":
            photo = files.get("photo", b"")
            if not photo.startswith(b"\x89PNG\r\n\x1a\n"):
                raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
            with self.lock:
                self.photos.append((str(payload.get("chat_id")), photo))
            result = self._message(payload.get("chat_id", 0))
        elif method == "answerCallbackQuery":
            result = self.answer_callback(payload)
        elif method == "editMessageText":
            result = self._message(payload.get("chat_id", 0), str(payload.get("text", "")))
        else:
            raise ApiError(404, "Not Found")
        with self.lock:
            self.calls.append((method, payload))
            self.lock.notify_all()
        return result
