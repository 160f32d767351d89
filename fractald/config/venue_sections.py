"""The sections that name venues: [feed] (market data) and [broker] (where orders go)."""

from __future__ import annotations

import attrs

from fractald.config.field_checks import between, non_empty, one_of, timeframe_names

# fractald.research.catalog.VENUES (tests/test_replay_catalog.py keeps them equal; not imported: numpy)
CATALOG_VENUES = ("binance-futures", "binance-spot", "hyperliquid")
VENUES = ("replay", "hyperliquid", "hyperliquid-testnet", "binance", "binance-futures", "ibkr")
BROKERS = ("paper", "binance-futures", "binance-spot", "hyperliquid", "ibkr")
REAL_BROKERS = BROKERS[1:]


@attrs.frozen
class FeedConfig:
    venue: str = attrs.field(default="replay", validator=one_of(*VENUES))
    symbols: list[str] = attrs.field(factory=lambda: ["BTC-PERP"], validator=non_empty)
    timeframes: list[str] = attrs.field(
        factory=lambda: ["1m", "15m", "1h", "4h"], validator=timeframe_names
    )
    ws_url: str = ""  # "" = the venue's default
    rest_url: str = ""
    replay_path: str = ""  # "" = the bundled BTC 1m candles
    replay_speed: float = attrs.field(default=3000.0, validator=between(0, 1_000_000))
    # Replay from a `fractald download` catalog instead: feed.symbols[0]'s 1m candles of
    # replay_catalog_venue from replay_from (UTC date/time) up to replay_to ("" = the last stored).
    replay_catalog: str = ""
    replay_catalog_venue: str = attrs.field(
        default="binance-futures", validator=one_of(*CATALOG_VENUES)
    )
    replay_from: str = ""
    replay_to: str = ""
    # A replay candle file with bad rows (out of order, repeated times, bad prices) is refused;
    # true drops the bad rows, sorts the rest, keeps the first of each time, and logs it.
    replay_repair: bool = False
    stale_after_s: float = attrs.field(default=30.0, validator=between(0.1, 86400))
    silence_timeout_s: float = attrs.field(default=20.0, validator=between(0.1, 3600))
    late_grace_s: float = attrs.field(default=2.0, validator=between(0, 59))
    # 1m candles fetched from the venue at start, so the first bars of every timeframe are whole.
    history_bars: int = attrs.field(default=0, validator=between(0, 5000))
    # Live feeds only: an L2 book (Binance depth synced against REST snapshots, Hyperliquid l2Book).
    book: bool = False
    max_frame_bytes: int = attrs.field(
        default=4 * 1024 * 1024, validator=between(1024, 64 * 1024 * 1024)
    )
    reconnect_backoff_base_s: float = attrs.field(default=0.5, validator=between(0.01, 60))
    reconnect_backoff_cap_s: float = attrs.field(default=30.0, validator=between(0.1, 3600))
    max_failures: int = attrs.field(default=8, validator=between(1, 1000))  # connects in a row
    health_interval_s: float = attrs.field(default=1.0, validator=between(0.1, 60))
    backfill_timeout_s: float = attrs.field(default=15.0, validator=between(1, 600))
    # venue = "ibkr" (fractald/venues/feed_ibkr.py): TWS / IB Gateway, the feed's own client id
    # (TWS takes one connection per id: not [broker] ib_client_id), futures roots as symbols.
    ib_host: str = "127.0.0.1"
    ib_port: int = attrs.field(default=4002, validator=between(1, 65535))
    ib_client_id: int = attrs.field(default=18, validator=between(0, 2**31 - 1))
    ib_exchange: str = "CME"
    ib_roll_days: int = attrs.field(default=5, validator=between(0, 60))
    # Trading hours past the few days IB's contract details cover (holidays, early closes):
    # an exchange_calendars name (CMES: CME equity futures); "" = unknown there.
    ib_calendar: str = "CMES"
    # The feed quality score's factor per tick of bid/ask spread beyond one, and while the
    # latest bar lies outside regular trading hours (venues that report them: ibkr).
    quality_spread_factor: float = attrs.field(default=0.9, validator=between(0, 1, lo_open=True))
    quality_outside_rth_factor: float = attrs.field(
        default=0.9, validator=between(0, 1, lo_open=True)
    )
    # A futures roll (venue ibkr) with trades open on the symbol: "close" them on the old
    # month first (exit reason contract_roll), so no trade's levels ever meet the new month's
    # prices; "keep" leaves them as they are (their levels stay in the old month's prices).
    roll_open_trades: str = attrs.field(default="close", validator=one_of("close", "keep"))


@attrs.frozen
class BrokerConfig:
    kind: str = attrs.field(default="paper", validator=one_of(*BROKERS))
    starting_equity: float = attrs.field(default=10_000.0, validator=between(0, 1e12, lo_open=True))
    taker_fee_bps: float = attrs.field(default=4.5, validator=between(0, 100))
    maker_fee_bps: float = attrs.field(default=1.5, validator=between(-10, 100))
    slippage_bps: float = attrs.field(default=1.0, validator=between(0, 500))
    latency_ms: int = attrs.field(default=50, validator=between(0, 60_000))
    tick_size: float = attrs.field(default=0.5, validator=between(0, 1e9, lo_open=True))
    lot_size: float = attrs.field(default=0.001, validator=between(0, 1e9, lo_open=True))
    # Names of credential files under $CREDENTIALS_DIRECTORY (systemd LoadCredential=).
    api_key_credential: str = ""
    api_secret_credential: str = ""
    # Real venues (fractald/venues/binance_config.py): testnet unless told otherwise.
    network: str = attrs.field(default="testnet", validator=one_of("testnet", "mainnet"))
    rest_url: str = ""  # "" = the network's default
    ws_url: str = ""
    recv_window_ms: int = attrs.field(default=5000, validator=between(1, 60_000))
    leverage: dict[str, int] = attrs.field(factory=dict)  # per symbol, set at start (futures)
    margin_type: dict[str, str] = attrs.field(factory=dict)  # per symbol: isolated | cross
    # Binance spot: coins per asset held apart from the bot (there before it started, or the
    # operator's): not the bot's position, not in its equity. E.g. {BTC = 0.5}.
    spot_reserved: dict[str, float] = attrs.field(factory=dict)
    # Hyperliquid: the account's address, and its API-wallet (agent) key in a credential file.
    account_address: str = ""
    private_key_credential: str = ""
    # IBKR (fractald/venues/ibkr_config.py): TWS / IB Gateway on this host; a CME future by its root.
    ib_host: str = "127.0.0.1"
    ib_port: int = attrs.field(
        default=4002, validator=between(1, 65535)
    )  # Gateway paper; TWS paper 7497
    ib_client_id: int = attrs.field(default=17, validator=between(0, 2**31 - 1))
    ib_account: str = ""
    ib_symbol: str = "MES"
    ib_exchange: str = "CME"
    ib_roll_days: int = attrs.field(default=5, validator=between(0, 60))
    ib_entry_ttl_s: float = attrs.field(default=90.0, validator=between(1, 86_400))
