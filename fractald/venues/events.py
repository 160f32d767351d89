"""Typed events the venue codecs produce, beyond the shared market models.

A codec turns one raw WebSocket message into a list of these (one message
may carry many trades). It never raises on bad input: anything it cannot
read becomes `Unparsed`, which the feed counts and logs.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from typing import Any

import attrs

from fractald.core.book import BookDelta, BookSnapshot
from fractald.core.models import Bar, Quote, TradeTick

RAW_KEEP = 200  # characters of a bad message kept for the log; frames can be megabytes


class UnparsedReason(enum.Enum):
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_CHANNEL = "unknown_channel"
    MISSING_FIELD = "missing_field"
    BAD_VALUE = "bad_value"
    BINARY = "binary"


def _clip(raw: str) -> str:
    return raw if len(raw) <= RAW_KEEP else raw[:RAW_KEEP] + f"...(+{len(raw) - RAW_KEEP} chars)"


@attrs.frozen(slots=True)
class Unparsed:
    """A message the codec could not read; `raw` is clipped for logging."""

    reason: UnparsedReason
    detail: str
    raw: str = attrs.field(converter=_clip, default="")


@attrs.frozen(slots=True)
class CandleUpdate:
    """A venue candle. `closed` says the venue has finished it (Binance `x`; REST history)."""

    bar: Bar
    closed: bool


@attrs.frozen(slots=True)
class SubscriptionAck:
    channel: str
    detail: str = ""


@attrs.frozen(slots=True)
class Pong:
    ts_event: int | None = None


@attrs.frozen(slots=True)
class VenueErrorMsg:
    """The venue said something went wrong (bad subscription, rate limit...)."""

    message: str
    code: int | None = None


@attrs.frozen(slots=True)
class Mids:
    """Hyperliquid allMids: mid price per coin."""

    mids: tuple[tuple[str, float], ...]
    ts_event: int | None = None


VenueEvent = (
    TradeTick
    | Quote
    | BookSnapshot
    | BookDelta
    | CandleUpdate
    | SubscriptionAck
    | Pong
    | VenueErrorMsg
    | Mids
    | Unparsed
)


class UnknownChannel(Exception):
    """Raised inside a codec for a well-formed message on a channel it does not know."""


def decode_object(raw: str | bytes) -> tuple[str, dict[str, Any] | Unparsed]:
    """The message text and its JSON object, or an `Unparsed` saying why not."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    try:
        msg = json.loads(text)
    except ValueError as exc:
        return text, Unparsed(UnparsedReason.NOT_JSON, str(exc), text)
    if not isinstance(msg, dict):
        return text, Unparsed(UnparsedReason.NOT_AN_OBJECT, type(msg).__name__, text)
    return text, msg


def guarded(parse: Callable[[], list[VenueEvent]], what: str, text: str) -> list[VenueEvent]:
    """Run one codec's parse step, turning any failure into an `Unparsed` naming the problem."""
    try:
        return parse()
    except UnknownChannel as exc:
        return [Unparsed(UnparsedReason.UNKNOWN_CHANNEL, f"unknown channel {exc}", text)]
    except KeyError as exc:
        return [Unparsed(UnparsedReason.MISSING_FIELD, f"{what}: missing {exc}", text)]
    except (TypeError, ValueError, AttributeError, IndexError) as exc:
        return [Unparsed(UnparsedReason.BAD_VALUE, f"{what}: {exc}", text)]


__all__ = [
    "RAW_KEEP",
    "BookDelta",
    "BookSnapshot",
    "CandleUpdate",
    "Mids",
    "Pong",
    "SubscriptionAck",
    "UnknownChannel",
    "Unparsed",
    "UnparsedReason",
    "VenueErrorMsg",
    "VenueEvent",
    "decode_object",
    "guarded",
]
