"""Structured logging: one JSON object per line on stdout (journald keeps it), console on a TTY.

Secrets are removed by a processor that runs last before rendering, so no
code path can log one by accident: values of secret-looking keys are
masked, and every registered secret string is masked wherever it appears.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"
SECRET_KEY_PARTS = ("secret", "password", "private_key", "api_key", "apikey", "token", "passphrase")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class SecretRedactor:
    """A structlog processor masking registered secret strings and secret-looking keys."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, secrets: Iterable[str]) -> None:
        # Short strings would mask ordinary words; real keys are long.
        fresh = {s for s in secrets if isinstance(s, str) and len(s) >= 6}
        with self._lock:
            self._secrets = self._secrets | fresh

    def clear(self) -> None:
        with self._lock:
            self._secrets = frozenset()

    def redact(self, value: Any, key: str = "") -> Any:
        if key and any(part in key.lower() for part in SECRET_KEY_PARTS) and value:
            return REDACTED
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.redact(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact(v) for v in value)
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        return {k: self.redact(v, k) for k, v in event_dict.items()}


redactor = SecretRedactor()


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog for the process. `fmt` is auto (JSON unless stdout is a TTY), json or console."""
    stream = stream or sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    if use_console:
        processors = shared + [redactor, structlog.dev.ConsoleRenderer(colors=False)]
    else:
        processors = shared + [
            structlog.processors.dict_tracebacks,
            redactor,
            structlog.processors.JSONRenderer(default=str),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(actor: str | None = None, **context: Any) -> Any:
    log = structlog.get_logger()
    if actor:
        context["actor"] = actor
    return log.bind(**context) if context else log
