"""Error taxonomy: every failure is transient (restart the actor) or fatal (stop the daemon).

The core raises these too (InvariantViolation, for one), so this module
imports no I/O library at module level; `classify` looks third-party
exception types up lazily.
"""

from __future__ import annotations

import enum
import errno
import json
from typing import Any


class ExitStatus(enum.IntEnum):
    """Process exit statuses; the systemd unit and the runbooks rely on them."""

    OK = 0
    FATAL = 1  # any other fatal error (restart budget exhausted, broken invariant)
    USAGE = 2  # bad command line
    STATE_CORRUPT = 65  # EX_DATAERR: state database corrupt and no good backup
    UNAVAILABLE = 69  # EX_UNAVAILABLE: a required resource (state dir, socket) cannot be used
    AUTH = 77  # EX_NOPERM: credentials refused or missing
    CONFIG = 78  # EX_CONFIG: invalid configuration
    STATE_TOO_NEW = 79  # trading state written by a newer release (a rollback): not loaded


class Category(enum.Enum):
    TRANSIENT = "transient"
    FATAL = "fatal"


class FractalError(Exception):
    """Base of every error fractald raises on purpose. `code` is stable and machine-readable."""

    code = "error"
    category = Category.FATAL

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.context}


class TransientError(FractalError):
    """Worth retrying: the actor restarts with backoff, within its budget."""

    code = "transient"
    category = Category.TRANSIENT


class FeedDisconnected(TransientError):
    code = "feed_disconnected"


class FeedStalled(TransientError):
    code = "feed_stalled"


class NetworkError(TransientError):
    code = "network"


class RateLimited(TransientError):
    """The venue asked us to slow down; `retry_after_s` is how long it asked for."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float | None = None, **context: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **context)
        self.retry_after_s = retry_after_s


class VenueUnavailable(TransientError):
    code = "venue_unavailable"


class BadMessage(TransientError):
    code = "bad_message"


class VenueRefused(TransientError):
    """A public (unauthenticated) endpoint said no: Binance's WAF 403, a 400 for a symbol it
    does not know, a 404. No credential is involved, so it is never an auth failure: market
    data retries later with backoff and the feed reports itself unhealthy meanwhile."""

    code = "venue_refused"


class FatalError(FractalError):
    """Not worth retrying: the daemon stops cleanly with `exit_status`."""

    code = "fatal"
    category = Category.FATAL
    exit_status = ExitStatus.FATAL


class ConfigError(FatalError):
    """Invalid configuration. `problems` lists every mistake found, each naming its key."""

    code = "config_invalid"
    exit_status = ExitStatus.CONFIG

    def __init__(self, message: str, problems: list[str] | None = None, **context: Any) -> None:
        self.problems = list(problems or [message])
        super().__init__(message, problems=self.problems, **context)


class AuthError(FatalError):
    code = "auth_refused"
    exit_status = ExitStatus.AUTH


class StateCorrupt(FatalError):
    code = "state_corrupt"
    exit_status = ExitStatus.STATE_CORRUPT


class StateUnavailable(FatalError):
    code = "state_unavailable"
    exit_status = ExitStatus.UNAVAILABLE


class StateTooNew(FatalError):
    """The trading state has a schema this release cannot read (a rollback); nothing was loaded."""

    code = "state_too_new"
    exit_status = ExitStatus.STATE_TOO_NEW


class InvariantViolation(FatalError):
    """Something that must never happen did (an overfill, a negative balance)."""

    code = "invariant_violation"


class RestartBudgetExhausted(FatalError):
    code = "restart_budget_exhausted"


class StartupGateFailed(FatalError):
    code = "startup_gate_failed"


def _http_status_error(
    status: int, headers: Any, message: str, public: bool = False
) -> FractalError:
    if status in (429, 418):
        return RateLimited(message, retry_after_s=parse_retry_after(headers), status=status)
    if public and 400 <= status < 500 and status != 408:
        return VenueRefused(message, status=status)
    if status in (401, 403):
        return AuthError(message, status=status)
    if status >= 500 or status == 408:
        return VenueUnavailable(message, status=status)
    # Other 4xx: our request is wrong; retrying the same request will not help.
    return FatalError(message, status=status)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or unreadable."""
    if headers is None:
        return None
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None


_RESOURCE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def classify(exc: BaseException, *, public: bool = False) -> FractalError:
    """Map any exception to a FractalError of the right category (returned, not raised).

    Known transport failures are transient; authentication refusals,
    programming errors and anything unknown are fatal, since restarting
    cannot fix them and hiding them would be worse. `public` says the call
    carried no credentials (market data): then no HTTP status is an auth
    failure, and a 4xx is `VenueRefused` (transient).
    """
    if isinstance(exc, FractalError):
        return exc
    text = f"{type(exc).__name__}: {exc}"

    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency
        httpx = None  # type: ignore[assignment]
    if httpx is not None:
        if isinstance(exc, httpx.HTTPStatusError):
            return _http_status_error(exc.response.status_code, exc.response.headers, text, public)
        if isinstance(exc, httpx.TransportError):  # connect, read, timeouts, protocol errors
            return NetworkError(text)

    try:
        import websockets.exceptions as wsx
    except ImportError:  # pragma: no cover
        wsx = None  # type: ignore[assignment]
    if wsx is not None:
        if isinstance(exc, wsx.InvalidStatus):
            return _http_status_error(exc.response.status_code, exc.response.headers, text, public)
        if isinstance(exc, (wsx.ConnectionClosed, wsx.InvalidHandshake, wsx.ProtocolError)):
            return FeedDisconnected(text)

    try:
        import trio
    except ImportError:  # pragma: no cover
        trio = None  # type: ignore[assignment]
    if trio is not None and isinstance(
        exc, (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError)
    ):
        return NetworkError(text)

    if isinstance(exc, json.JSONDecodeError):
        return BadMessage(text)
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return NetworkError(text)
    if isinstance(exc, PermissionError):
        return StateUnavailable(text)
    if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
        # A full disk or a read-only file system: retrying will not help; exit 69, with the path.
        return StateUnavailable(text, path=exc.filename)
    if isinstance(exc, OSError):
        return NetworkError(text)
    return FatalError(text)
