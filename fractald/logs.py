"""Structured logging: one JSON object per line on stdout (journald keeps it), console on a TTY.

Secrets are removed by a processor that runs last before rendering, so no
code path can log one by accident: values of secret-looking keys are
masked, and every registered secret string is masked wherever it appears.

When stdout is the journal (systemd sets $JOURNAL_STREAM to its
device:inode), each JSON line starts with its syslog priority (`<3>` for
an error, `<4>` warning, `<6>` info, `<7>` debug): journald strips the
prefix and files the line at that priority, so `journalctl -p warning`
works and `-o cat` still shows plain JSON.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from fractald.term import colors_wanted

REDACTED = "***"
SECRET_KEY_PARTS = ("secret", "password", "private_key", "api_key", "apikey", "token", "passphrase")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return {k: self.redact(v, k) for k, v in event_dict.items()}


redactor = SecretRedactor()

# scheme://[userinfo@]host[:port][/path][?query][#fragment], as far as a URL can be told in text.
_URL = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s'\"]*@)?"
    r"(?P<host>[^/?#\s'\"]*)(?P<path>/[^?#\s'\"]*)?(?P<query>\?[^#\s'\"]*)?"
    r"(?P<fragment>#[^\s'\"]*)?"
)


def redact_url(url: str, *, hide_path: bool = False) -> str:
    """A URL safe to show: user:password and every query value masked; the path too if asked.

    Webhook URLs carry their secret in the path (Slack, Discord, Telegram's
    /bot<token>/), so they are shown as scheme://host/*** only.
    """

    def one(m: re.Match[str]) -> str:
        out = m["scheme"] + (REDACTED + "@" if m["userinfo"] else "") + m["host"]
        path = m["path"] or ""
        if path and hide_path and path != "/":
            path = "/" + REDACTED
        out += path
        if m["query"]:
            pairs = m["query"][1:].split("&")
            out += "?" + "&".join(
                p.split("=", 1)[0] + "=" + REDACTED if "=" in p else REDACTED for p in pairs if p
            )
        if m["fragment"]:
            out += "#" + REDACTED
        return out

    return _URL.sub(one, url)


def url_secrets(url: str, *, with_path: bool = False) -> list[str]:
    """The parts of a URL that may be secret: the whole URL, password, query values (and path)."""
    m = _URL.search(url)
    if not m:
        return []
    found = [url]
    if m["userinfo"]:
        user, _, password = m["userinfo"][:-1].partition(":")
        found += [password or user]
    if m["query"]:
        found += [p.split("=", 1)[1] for p in m["query"][1:].split("&") if "=" in p]
    if with_path and m["path"] and m["path"] != "/":
        found.append(m["path"])
    return [s for s in found if s]


# syslog(3) priorities by structlog method name; journald reads them from a "<N>" prefix.
SYSLOG_PRIORITY = {
    "critical": 2,
    "exception": 3,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "info": 6,
    "msg": 6,
    "debug": 7,
}


def stream_is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal stream systemd named in $JOURNAL_STREAM ("dev:inode")."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
        return bool(dev and ino) and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):  # no fileno (StringIO), or a malformed variable
        return False


def syslog_prefix(_logger: Any, method: str, rendered: str) -> str:
    """A processor after the renderer: the line's syslog priority as journald expects it."""
    return f"<{SYSLOG_PRIORITY.get(method, 6)}>{rendered}"


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
        processors = shared + [
            redactor,
            structlog.dev.ConsoleRenderer(
                colors=colors_wanted(stream), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    else:
        processors = shared + [
            # No frame locals: a traceback must never carry a config's bytes or a key.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redactor,
            structlog.processors.JSONRenderer(default=str),
        ]
        if stream_is_journal(stream):
            processors.append(syslog_prefix)
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
