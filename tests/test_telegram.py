"""Telegram commands through a fake Bot API on 127.0.0.1, over the control socket's command table."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from fake_telegram import FakeBotApi

from fractald.control.protocol import Arg, PeerCred
from fractald.control.server import CommandRegistry
from fractald.control.telegram import (
    BotApi,
    BotApiError,
    TelegramBot,
    parse_update,
    registry_invoker,
    split_command,
)
from fractald.reporting.report import build_report

OPERATOR_CHAT, OPERATOR = 111, 7001
STRANGER_CHAT, STRANGER = 999, 6666


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def _add(self, event: str, **kw: Any) -> None:
        self.lines.append((event, kw))

    info = warning = error = exception = _add

    def events(self, name: str) -> list[dict[str, Any]]:
        return [kw for event, kw in self.lines if event == name]


class Handlers:
    """The control socket's commands, as stubs that record what they were asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.registry = CommandRegistry()
        r = self.registry
        r.register("status", self._answer("status", {
            "daemon": {"phase": "ready"},
            "feed": {"BTC-PERP": {"symbol": "BTC-PERP", "last_message_age_s": 3.2, "quality": 1.0,
                                  "stale": False}},
            "account": {"trading_state": "ACTIVE", "paused": False, "equity": 10_123.45,
                        "peak_equity": 10_300.0, "drawdown": 0.0171, "open_risk": 50.0,
                        "heat": 0.005, "heat_cap": 0.06, "positions": 1, "working_orders": 2,
                        "trips": []}}))
        r.register("positions", self._answer("positions", [
            {"symbol": "BTC-PERP", "strategy": "fvg_fill", "side": "SHORT", "quantity": -0.25,
             "avg_price": 46_000.0, "mark_price": 45_900.0, "unrealized_pnl": 25.0, "stop": 46_400.0}]))
        r.register("trades", self._answer("trades", []), args=[Arg("since", str)])
        r.register("report", self._answer("report", None), args=[
            Arg("period", str, default="all", choices=("day", "week", "month", "all")),
            Arg("plot", bool, default=False)])
        r.register("pause", self._answer("pause", {"paused": True}), mutating=True)
        r.register("resume", self._answer("resume", {"paused": False}), mutating=True)
        r.register("flatten", self._answer("flatten", {"symbol": "all"}), mutating=True,
                   args=[Arg("symbol", str)])
        r.register("halt", self._answer("halt", {"trading_state": "HALTED"}), mutating=True,
                   confirm=True)
        r.register("breakers", self._answer("breakers", {"trading_state": "ACTIVE", "breakers": []}))
        r.register("risk_set", self._answer("risk_set", {"key": "heat_cap", "new": 0.04}),
                   mutating=True, args=[Arg("key", str, required=True), Arg("value", str, required=True)])

    def _answer(self, name: str, result: Any) -> Any:
        async def handler(args: dict[str, Any], peer: PeerCred) -> Any:
            self.calls.append((name, args))
            if name == "report":
                rep = build_report([], [(0, 10_000.0), (86_400_000, 10_100.0)], 10_000.0).to_dict()
                return {**rep, "open": {}, "plot_png": base64.b64encode(tiny_png()).decode()}
            return result
        return handler

    def called(self, name: str) -> list[dict[str, Any]]:
        return [args for n, args in self.calls if n == name]


@pytest.fixture
def fake() -> Any:
    with FakeBotApi() as api:
        yield api


@pytest.fixture
async def bot(fake: FakeBotApi) -> AsyncIterator[tuple[TelegramBot, Handlers, Log]]:
    handlers, log = Handlers(), Log()
    async with httpx.AsyncClient(timeout=10) as client:
        bot = TelegramBot(BotApi(client, fake.url, fake.token), registry_invoker(handlers.registry),
                          lambda n: bool(handlers.registry.get(n) and handlers.registry.get(n).mutating),
                          [str(OPERATOR_CHAT)], log, poll_timeout_s=1, confirm_timeout_s=60)
        async with trio.open_nursery() as nursery:
            async def poll_forever() -> None:
                while True:
                    await bot.poll_once()
            nursery.start_soon(poll_forever)
            yield bot, handlers, log
            nursery.cancel_scope.cancel()


async def wait_for(fake: FakeBotApi, method: str, count: int, chat: int | None = OPERATOR_CHAT
                   ) -> list[dict[str, Any]]:
    return await trio.to_thread.run_sync(lambda: fake.wait_for(method, count, chat))


async def settle(fake: FakeBotApi) -> None:
    """Until the bot has confirmed every update so far (it handles one before asking again)."""
    last = fake.next_update_id - 1
    await trio.to_thread.run_sync(lambda: fake.polled_past(last))


async def test_status_and_positions_answer_in_the_operators_chat(fake: FakeBotApi, bot: Any) -> None:
    _, handlers, _ = bot
    fake.user_sends(OPERATOR_CHAT, OPERATOR, "/status")
    fake.user_sends(OPERATOR_CHAT, OPERATOR, "/positions@fractald_bot")
    status, positions = await wait_for(fake, "sendMessage", 2)
    assert status["parse_mode"] == "HTML" and status["text"].startswith("<pre>")
    assert "equity     10,123.45" in status["text"] and "drawdown   1.71%" in status["text"]
    assert "feed       BTC-PERP ok, last message 3 s ago" in status["text"]
    assert "SHORT" in positions["text"] and "0.25" in positions["text"] and "-0.25" not in positions["text"]
    assert [n for n, _ in handlers.calls] == ["status", "positions"]


async def test_an_unconfigured_chat_is_never_answered_and_runs_nothing(fake: FakeBotApi, bot: Any) -> None:
    _, handlers, log = bot
    fake.user_sends(STRANGER_CHAT, STRANGER, "/pause")
    fake.user_sends(STRANGER_CHAT, STRANGER, "/status")
    await settle(fake)
    assert fake.sent("sendMessage", STRANGER_CHAT) == [] and handlers.calls == []
    refused = log.events("telegram_refused")
    assert [(r["chat_id"], r["user_id"]) for r in refused] == [(str(STRANGER_CHAT), str(STRANGER))] * 2
    # the operator's own pause runs, logged with the chat and the user
    fake.user_sends(OPERATOR_CHAT, OPERATOR, "/pause")
    await wait_for(fake, "sendMessage", 1)
    assert handlers.called("pause") == [{}]
    audit = log.events("telegram_command")
    assert audit == [{"cmd": "pause", "args": {}, "outcome": "ok", "chat_id": str(OPERATOR_CHAT),
                      "user_id": str(OPERATOR)}]


async def test_halt_asks_with_an_inline_button_and_runs_only_when_confirmed(fake: FakeBotApi, bot: Any) -> None:
    _, handlers, log = bot
    fake.user_sends(OPERATOR_CHAT, OPERATOR, "/halt")
    (ask,) = await wait_for(fake, "sendMessage", 1)
    buttons = ask["reply_markup"]["inline_keyboard"][0]
    confirm = next(b["callback_data"] for b in buttons if b["text"].startswith("HALT"))
    assert handlers.called("halt") == []  # nothing happens on the command alone
    # the same button pressed in a stranger's chat (a forwarded message) does nothing
    fake.user_presses(STRANGER_CHAT, STRANGER, 5, confirm)
    await settle(fake)
    assert handlers.called("halt") == [] and fake.sent("answerCallbackQuery") == []
    fake.user_presses(OPERATOR_CHAT, OPERATOR, 5, confirm)
    done = await wait_for(fake, "sendMessage", 2)
    assert handlers.called("halt") == [{"yes": True}] and "HALTED" in done[-1]["text"]
    assert fake.sent("answerCallbackQuery")[0]["text"] == "halting"
    assert fake.sent("editMessageText")[0]["text"] == "halt confirmed"
    assert log.events("telegram_command")[0]["cmd"] == "halt"
    # a second press of the same button is too late: the confirm is used up
    fake.user_presses(OPERATOR_CHAT, OPERATOR, 5, confirm)
    await settle(fake)
    assert handlers.called("halt") == [{"yes": True}]
    assert fake.sent("answerCallbackQuery")[-1]["text"] == "expired: send /halt again"


async def test_halt_cancel_runs_nothing(fake: FakeBotApi, bot: Any) -> None:
    _, handlers, _ = bot
    fake.user_sends(OPERATOR_CHAT, OPERATOR, "/halt")
    (ask,) = await wait_for(fake, "sendMessage", 1)
    cancel = next(b["callback_data"] for b in ask["reply_markup"]["inline_keyboard"][0]
                  if b["text"] == "Cancel")
    fake.user_presses(OPERATOR_CHAT, OPERATOR, 5, cancel)
    await settle(fake)
    assert handlers.called("halt") == [] and fake.sent("editMessageText")[0]["text"] == "halt cancelled"


async def test_report_sends_the_table_and_the_equity_png(fake: FakeBotApi, bot: Any) -> None:
    _, handlers, _ = bot
    fake.user_sends(OPERATOR_CHAT, OPERATOR, "/report week")
    (table,) = await wait_for(fake, "sendMessage", 1)
    await trio.to_thread.run_sync(lambda: fake.wait_for("sendPhoto", 1, OPERATOR_CHAT))
    assert handlers.called("report") == [{"period": "week", "plot": True}]
    assert "Max drawdown" in table["text"] and "By signal confidence" not in table["text"]
    assert fake.photos == [(str(OPERATOR_CHAT), tiny_png())]


async def test_risk_flatten_and_bad_input(fake: FakeBotApi, bot: Any) -> None:
    _, handlers, _ = bot
    for text in ("/risk", "/risk set heat_cap 0.04", "/flatten BTC-PERP", "/report year",
                 "/pause now", "/nope", "/help", "just chatting"):
        fake.user_sends(OPERATOR_CHAT, OPERATOR, text)
    replies = await wait_for(fake, "sendMessage", 7)
    assert handlers.called("breakers") == [{}]
    assert handlers.called("risk_set") == [{"key": "heat_cap", "value": "0.04"}]
    assert handlers.called("flatten") == [{"symbol": "BTC-PERP"}]
    texts = [r["text"] for r in replies]
    assert "report: report: argument 'period'" in texts[3] and "day, week, month, all" in texts[3]
    assert texts[4] == "/pause takes no arguments"
    assert texts[5] == "unknown command /nope; try /help"
    assert texts[6].startswith("fractald commands:") and "/halt" in texts[6]
    assert handlers.called("report") == []


async def test_a_refused_token_is_the_bot_apis_401(fake: FakeBotApi) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        api = BotApi(client, fake.url, "123:wrong")
        with pytest.raises(BotApiError) as caught:
            await api.call("getUpdates", {"timeout": 0})
    assert caught.value.code == 401 and "Unauthorized" in str(caught.value)


def test_parsing_updates_and_commands() -> None:
    assert split_command("/Report@fractald_bot week") == ("report", ["week"])
    assert split_command("hello") is None
    assert parse_update({"update_id": 5, "edited_message": {}}) is None
    assert parse_update({"update_id": 6, "message": {"chat": {"id": 1}, "sticker": {}}}) is None
    cb = parse_update({"update_id": 7, "callback_query": {
        "id": "q", "data": "halt:ab", "from": {"id": 2}, "message": {"message_id": 9, "chat": {"id": -100}}}})
    assert cb is not None and (cb.chat_id, cb.user_id, cb.callback_data, cb.message_id) == ("-100", "2", "halt:ab", 9)


def test_replies_show_prices_on_the_tick_and_the_replay() -> None:
    from fractald.control.telegram import reply_text

    position = {"symbol": "ETH-PERP", "side": "LONG", "quantity": 2.0, "avg_price": 3021.4700000001,
                "unrealized_pnl": 17.26, "stop": 2990.0, "tick_size": 0.01}
    text = reply_text("positions", [position])
    assert "3021.47" in text and "2990.00" in text and "3021.4700000001" not in text
    trade = {"ts_exit": 1_641_564_900_000, "symbol": "BTC-PERP", "side": "SELL", "pnl": -16.6,
             "entry_price": 41_234.4999, "exit_price": 41_100.0, "r_multiple": -0.42,
             "exit_reason": "stop_loss", "tick_size": 0.5}
    text = reply_text("trades", [trade])
    assert "41234.5" in text and "41100.0" in text
    status = {"daemon": {"phase": "ready"}, "account": {},
              "replay": {"progress": "replay finished: run `fractalctl report` (3,000 candles replayed)"}}
    assert "replay     finished: run `fractalctl report`" in reply_text("status", status)
