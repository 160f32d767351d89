"""A spot account fully in coins is not out of margin: the money checks that apply to spot."""

from __future__ import annotations

from fractald.config import config_from_dict
from fractald.routing.reconciliation import AccountLimits, MismatchCode, account_mismatches
from fractald.session import _account_limits
from fractald.venues.interface import VenueAccount, VenuePosition

ALL_IN_COINS = VenueAccount(equity=10_000.0, available=0.0, margin_used=0.0, currency="USDT")
HELD = [VenuePosition("BTCUSDT", 0.2)]


def test_no_free_quote_is_a_margin_mismatch_on_margin_and_nothing_on_spot() -> None:
    margin = account_mismatches(10_000.0, ALL_IN_COINS, HELD, AccountLimits())
    assert [(m.code, m.figures["why"]) for m in margin] == [(MismatchCode.MARGIN, "no_free_margin")]
    assert account_mismatches(10_000.0, ALL_IN_COINS, HELD, AccountLimits(holds_coins=True)) == []


def test_spot_still_has_its_equity_compared() -> None:
    short = account_mismatches(20_000.0, ALL_IN_COINS, HELD, AccountLimits(holds_coins=True))
    assert [m.code for m in short] == [MismatchCode.ACCOUNT]


def test_the_daemon_knows_a_binance_spot_broker_holds_coins() -> None:
    doc = {"feed": {"venue": "binance", "symbols": ["BTCUSDT"]}, "risk": {"mode": "live"},
           "broker": {"kind": "binance-spot", "api_key_credential": "k",
                      "api_secret_credential": "s"}}
    assert _account_limits(config_from_dict(doc)).holds_coins
    doc["broker"]["kind"] = "binance-futures"  # type: ignore[index]
    doc["feed"]["venue"] = "binance-futures"  # type: ignore[index]
    assert not _account_limits(config_from_dict(doc)).holds_coins
