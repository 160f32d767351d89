"""Shared by the operator tests: a webhook receiver on 127.0.0.1 (no tests here)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any


class HookServer:
    """Records the JSON bodies POSTed to it; answers 503 to its first `fail_first` requests."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.refused < fail_first:
                    outer.refused += 1
                    self.send_response(503)
                else:
                    outer.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, kind: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [b for b in self.bodies if b["kind"] == kind]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {kind} alert within {timeout}s; got {self.bodies}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
