"""What IBKR's error codes mean to fractald: pure, one table.

TWS sends informational notices, connectivity events, order rejections and
real failures through the same `error` callback; each code gets one category:

* INFO: nothing to do (farms OK, order status notices).
* TRANSIENT: the link is down or unusable for now: reconnect / retry with backoff.
* RESTORED: the link is back; with 1101 market data subscriptions were lost.
* REJECT: one order was refused: a REJECT VenueReport with the code, never an exception.
* FATAL: configuration or permission trouble a retry will not fix.
"""

from __future__ import annotations

import enum


class IBCategory(enum.Enum):
    INFO = "info"
    TRANSIENT = "transient"
    RESTORED = "restored"
    REJECT = "reject"
    CANCEL_REJECT = "cancel_reject"
    FATAL = "fatal"


CODES: dict[int, IBCategory] = {
    # connectivity between TWS/Gateway and IB's servers
    1100: IBCategory.TRANSIENT,  # connectivity lost
    1101: IBCategory.RESTORED,  # restored, data lost: resubscribe
    1102: IBCategory.RESTORED,  # restored, data maintained
    1300: IBCategory.TRANSIENT,  # socket port reset
    # the API socket
    502: IBCategory.TRANSIENT,  # couldn't connect to TWS
    504: IBCategory.TRANSIENT,  # not connected
    507: IBCategory.TRANSIENT,  # bad message length / socket exception
    326: IBCategory.FATAL,  # client id already in use
    # farms
    2103: IBCategory.TRANSIENT,
    2105: IBCategory.TRANSIENT,
    2157: IBCategory.TRANSIENT,  # farm broken
    2104: IBCategory.INFO,
    2106: IBCategory.INFO,
    2107: IBCategory.INFO,
    2108: IBCategory.INFO,
    2158: IBCategory.INFO,
    2119: IBCategory.INFO,
    # orders
    201: IBCategory.REJECT,  # order rejected (margin, permissions, ...)
    202: IBCategory.INFO,  # order cancelled (the status message carries it)
    103: IBCategory.REJECT,  # duplicate order id
    110: IBCategory.REJECT,  # price does not conform to the tick
    387: IBCategory.REJECT,  # unsupported order type
    399: IBCategory.INFO,  # order message: warning only
    10147: IBCategory.CANCEL_REJECT,  # cancel of an unknown order
    10148: IBCategory.CANCEL_REJECT,  # cancel of an order that cannot be cancelled
    # contracts and permissions
    200: IBCategory.REJECT,  # no security definition
    354: IBCategory.FATAL,  # market data not subscribed
    10197: IBCategory.TRANSIENT,  # competing live session
}


def categorize(code: int) -> IBCategory:
    """The category of an IB error code; an unknown code below 2000 is a reject, above it a notice."""
    if code in CODES:
        return CODES[code]
    return IBCategory.INFO if code >= 2000 else IBCategory.REJECT
