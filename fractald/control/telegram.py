"""Telegram commands: steer the daemon from a phone through a Telegram bot.

The bot long-polls the Bot API (`getUpdates`) with httpx on trio and maps
each chat command onto the control socket's own command table
(`CommandRegistry`): the handler that answers `fractalctl pause` answers
`/pause`, so the two front ends never disagree. This module only knows
how a chat command names a registry command and how to show its result.

| chat | registry command |
|---|---|
| /status | status (a short summary) |
| /positions | positions |
| /trades [SPAN] | trades (since SPAN back, default 1d) |
| /report [day, week, month, all] | report, with the equity PNG |
| /pause, /resume | pause, resume |
| /flatten [SYMBOL] | flatten |
| /halt | halt, after an inline "confirm" button |
| /risk, /risk set KEY VALUE | breakers; risk_set |
| /help | this list |

Only chats listed in `[telegram] allowed_chat_ids` are answered; any other
chat gets no answer at all (it is logged, with its ids, and nothing runs).
Every mutating command is logged with the chat id and the user id.
"""

from __future__ import annotations

import html
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import httpx
import trio

from fractald.control.protocol import CommandError, ErrorCode, PeerCred, validate_args
from fractald.control.render import render

if TYPE_CHECKING:
    from fractald.control.server import CommandRegistry

MAX_TEXT = 4096  # the Bot API's limit for one message
CONFIRM_HALT = "halt"
CANCEL = "cancel"

# --------------------------------------------------------------------------- chat commands


@attrs.frozen(slots=True)
class ChatCommand:
    """What one chat command runs: a registry command and its arguments from the words after it."""

    command: str
    help: str
    args: Callable[[Sequence[str]], dict[str, Any]] = attrs.field(default=lambda words: {})
    confirm: bool = False  # asks first, with an inline button


def _no_words(name: str) -> Callable[[Sequence[str]], dict[str, Any]]:
    def parse(words: Sequence[str]) -> dict[str, Any]:
        if words:
            raise CommandError(ErrorCode.BAD_ARGS, f"/{name} takes no arguments")
        return {}

    return parse


def _one_word(
    name: str, key: str, default: str | None = None
) -> Callable[[Sequence[str]], dict[str, Any]]:
    def parse(words: Sequence[str]) -> dict[str, Any]:
        if len(words) > 1:
            raise CommandError(ErrorCode.BAD_ARGS, f"/{name} takes at most one argument ({key})")
        value = words[0] if words else default
        return {} if value is None else {key: value}

    return parse


def _risk(words: Sequence[str]) -> dict[str, Any]:
    if words and (words[0] != "set" or len(words) != 3):
        raise CommandError(ErrorCode.BAD_ARGS, "usage: /risk (show), or /risk set KEY VALUE")
    return {"key": words[1], "value": words[2]} if words else {}


CHAT_COMMANDS: dict[str, ChatCommand] = {
    "status": ChatCommand(
        "status", "is it alive, ready, trading; equity and risk", _no_words("status")
    ),
    "positions": ChatCommand("positions", "open positions with stops", _no_words("positions")),
    "trades": ChatCommand(
        "trades",
        "closed trades since a span back (default 1d): /trades 12h",
        _one_word("trades", "since", "1d"),
    ),
    "report": ChatCommand(
        "report",
        "performance and the equity plot: /report [day|week|month|all]",
        lambda words: {**_one_word("report", "period", "day")(words), "plot": True},
    ),
    "pause": ChatCommand("pause", "stop new entries; open trades stay managed", _no_words("pause")),
    "resume": ChatCommand("resume", "trade again (clears tripped breakers)", _no_words("resume")),
    "flatten": ChatCommand(
        "flatten", "close positions at market: /flatten [SYMBOL]", _one_word("flatten", "symbol")
    ),
    "halt": ChatCommand(
        "halt",
        "kill switch: halt and flatten everything (asks first)",
        _no_words("halt"),
        confirm=True,
    ),
    "risk": ChatCommand("breakers", "breakers and risk; /risk set KEY VALUE changes one", _risk),
}


def registry_command(chat: str, words: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The registry command and arguments `/chat words...` stands for."""
    spec = CHAT_COMMANDS.get(chat)
    if spec is None:
        raise CommandError(ErrorCode.UNKNOWN_COMMAND, f"unknown command /{chat}; try /help")
    args = spec.args(words)
    if chat == "risk" and args:
        return "risk_set", args
    return spec.command, args


def help_text() -> str:
    lines = ["fractald commands:"] + [f"/{name} - {c.help}" for name, c in CHAT_COMMANDS.items()]
    return "\n".join(lines + ["/help - this list"])


# --------------------------------------------------------------------------- updates


@attrs.frozen(slots=True)
class Incoming:
    """A message or a button press from a chat."""

    update_id: int
    chat_id: str
    user_id: str
    text: str = ""  # a message's text
    callback_id: str = ""  # a button press's id
    callback_data: str = ""
    message_id: int = 0  # the message the pressed button belongs to


def parse_update(update: Mapping[str, Any]) -> Incoming | None:
    """One getUpdates entry as an Incoming; None for kinds the bot ignores (edits, joins...)."""
    update_id = int(update["update_id"])
    if "message" in update:
        m = update["message"]
        text = m.get("text")
        if not isinstance(text, str):
            return None
        return Incoming(
            update_id, str(m["chat"]["id"]), str(m.get("from", {}).get("id", "")), text=text
        )
    if "callback_query" in update:
        q = update["callback_query"]
        message = q.get("message") or {}
        chat = message.get("chat", {}).get("id")
        if chat is None:
            return None
        return Incoming(
            update_id,
            str(chat),
            str(q.get("from", {}).get("id", "")),
            callback_id=str(q["id"]),
            callback_data=str(q.get("data", "")),
            message_id=int(message.get("message_id", 0)),
        )
    return None


def split_command(text: str) -> tuple[str, list[str]] | None:
    """'/report@mybot week' -> ('report', ['week']); None when the text is not a command."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return None
    return words[0][1:].split("@", 1)[0].lower(), words[1:]


# --------------------------------------------------------------------------- replies


def pre(text: str) -> str:
    """Monospaced HTML for the Bot API, cut to fit one message."""
    room = MAX_TEXT - len("<pre></pre>") - 40
    if len(text) > room:
        text = text[:room] + "\n... (cut; fractalctl shows it all)"
    return f"<pre>{html.escape(text)}</pre>"


def _status_text(result: Mapping[str, Any]) -> str:
    from fractald.core.figures import format_pct

    daemon, account = result.get("daemon", {}), result.get("account", {})
    paused = " (paused)" if account.get("paused") else ""
    lines = [
        f"phase      {daemon.get('phase', '-')}",
        f"trading    {account.get('trading_state', '-')}{paused}",
    ]
    replay = result.get("replay")
    if isinstance(replay, dict) and replay.get("progress"):
        lines.append(f"replay     {replay['progress'].removeprefix('replay ')}")
    if "equity" in account:
        heat = f"heat {format_pct(account.get('heat'))}, cap {format_pct(account.get('heat_cap'))}"
        lines += [
            f"equity     {account['equity']:,.2f}",
            f"drawdown   {format_pct(account.get('drawdown'))} of peak {account.get('peak_equity', 0):,.2f}",
            f"open risk  {account.get('open_risk', 0):,.2f} ({heat})",
            f"positions  {account.get('positions', 0)}, working orders {account.get('working_orders', 0)}",
        ]
        for trip in account.get("trips", []):
            lines.append(f"TRIPPED    {trip['breaker']}: {trip['reason']}")
    feeds = result.get("feed") or {}
    for symbol, health in list(feeds.items())[:5] if isinstance(feeds, dict) else []:
        state = "STALE" if health.get("stale") else "ok"
        lines.append(
            f"feed       {symbol} {state}, last message {health.get('last_message_age_s', 0):.0f} s "
            f"ago, quality {health.get('quality', 1.0):.2f}"
        )
    return "\n".join(lines)


def _report_text(result: Mapping[str, Any]) -> str:
    from fractald.reporting.export import to_table
    from fractald.reporting.report import Report

    data = {k: v for k, v in result.items() if k not in ("open", "plot_png")}
    table = to_table(Report.from_dict(data))
    return table.split("\n\nBy signal confidence")[0]  # the calibration table is for the desk


def reply_text(command: str, result: Any) -> str:
    from fractald.control.views import price_cell

    if command == "status" and isinstance(result, dict):
        return _status_text(result)
    if command == "report" and isinstance(result, dict):
        return _report_text(result)
    if command == "trades" and isinstance(result, list):
        rows = [
            {
                "exit": r.get("ts_exit"),
                "symbol": r.get("symbol"),
                "side": r.get("side"),
                "entry": price_cell(r.get("entry_price"), r),
                "exit price": price_cell(r.get("exit_price"), r),
                "pnl": r.get("pnl"),
                "R": r.get("r_multiple"),
                "why": r.get("exit_reason"),
            }
            for r in result[-20:]
        ]
        return render(rows) if rows else "no closed trades in that span"
    if command == "positions" and isinstance(result, list):
        rows = [
            {
                "symbol": r["symbol"],
                "side": r["side"],
                "qty": abs(r["quantity"]),
                "avg": price_cell(r["avg_price"], r),
                "uPnL": r["unrealized_pnl"],
                "stop": price_cell(r["stop"], r),
            }
            for r in result
        ]
        return render(rows) if rows else "flat: no open positions"
    return render(result)


# --------------------------------------------------------------------------- the Bot API


class BotApiError(Exception):
    """The Bot API said ok=false; `code` is its error_code (401 bad token, 409 another poller...)."""

    def __init__(self, method: str, code: int, description: str, retry_after: float | None = None):
        super().__init__(f"Telegram {method}: {code} {description}")
        self.code = code
        self.retry_after = retry_after


class BotApi:
    """The few Bot API methods the bot uses, over one httpx client (the token is in the path)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str) -> None:
        self._client = client
        self._base = f"{base_url.rstrip('/')}/bot{token}"

    async def call(
        self,
        method: str,
        payload: Mapping[str, Any] | None = None,
        *,
        files: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = f"{self._base}/{method}"
        kwargs: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        if files:
            response = await self._client.post(
                url, data={k: str(v) for k, v in (payload or {}).items()}, files=files, **kwargs
            )
        else:
            response = await self._client.post(url, json=dict(payload or {}), **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise BotApiError(method, response.status_code, "not a JSON answer") from None
        if not body.get("ok"):
            params = body.get("parameters") or {}
            raise BotApiError(
                method,
                int(body.get("error_code", response.status_code)),
                str(body.get("description", "")),
                params.get("retry_after"),
            )
        return body.get("result")


# --------------------------------------------------------------------------- the bot


Invoke = Callable[[str, dict[str, Any], PeerCred], Awaitable[Any]]


def registry_invoker(registry: CommandRegistry) -> Invoke:
    """Run a registry command as the socket server does: validated args, confirm checked."""

    async def invoke(name: str, raw: dict[str, Any], peer: PeerCred) -> Any:
        command = registry.get(name)
        if command is None:
            raise registry.unknown(name)
        args = validate_args(name, command.spec(), raw)
        if command.confirm and args.get("yes") is not True:
            raise CommandError(ErrorCode.CONFIRMATION_REQUIRED, f"{name} needs confirmation")
        return await command.handler(args, peer)

    return invoke


@attrs.define
class PendingConfirm:
    chat_id: str
    nonce: str
    deadline: float  # trio time


class TelegramBot:
    """The long-polling loop and the chat side of every command (see the module doc)."""

    def __init__(
        self,
        api: BotApi,
        invoke: Invoke,
        registry_is_mutating: Callable[[str], bool],
        allowed_chat_ids: Sequence[str],
        log: Any,
        *,
        poll_timeout_s: float = 25.0,
        confirm_timeout_s: float = 120.0,
    ) -> None:
        if not allowed_chat_ids:
            raise ValueError("the Telegram bot needs at least one allowed chat id")
        self.api = api
        self.invoke = invoke
        self.is_mutating = registry_is_mutating
        self.allowed = frozenset(str(c) for c in allowed_chat_ids)
        self.log = log
        self.poll_timeout_s = poll_timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self.offset = 0
        self.pending: dict[str, PendingConfirm] = {}  # nonce -> what it confirms
        self.handled = 0
        self.refused = 0

    # -- polling ---------------------------------------------------------------------
    async def poll_once(self, timeout_s: float | None = None) -> int:
        """One getUpdates long poll; handles what it returns. Returns how many updates came."""
        timeout = int(self.poll_timeout_s if timeout_s is None else timeout_s)
        updates = await self.api.call(
            "getUpdates",
            {
                "offset": self.offset,
                "timeout": timeout,
                "allowed_updates": ["message", "callback_query"],
            },
            timeout=timeout + 10,
        )
        for update in updates:
            # Acknowledged before handling: a command that crashes the bot is not run again.
            self.offset = max(self.offset, int(update["update_id"]) + 1)
            try:
                incoming = parse_update(update)
                if incoming is not None:
                    await self.handle(incoming)
            except (BotApiError, httpx.HTTPError):
                raise  # the actor's business: back off or restart
            except Exception as exc:  # a bug in the chat front end must never stop the daemon
                self.log.exception(
                    "telegram_update_failed", update_id=update.get("update_id"), error=repr(exc)
                )
        return len(updates)

    # -- one update -------------------------------------------------------------------
    async def handle(self, incoming: Incoming) -> None:
        if incoming.chat_id not in self.allowed:
            self.refused += 1
            self.log.warning(
                "telegram_refused",
                chat_id=incoming.chat_id,
                user_id=incoming.user_id,
                text=incoming.text[:40],
                reason="chat id not in [telegram] allowed_chat_ids",
            )
            return  # no answer: a stranger learns nothing, not even that a bot listens
        self.handled += 1
        if incoming.callback_id:
            await self._on_button(incoming)
            return
        parsed = split_command(incoming.text)
        if parsed is None:
            return
        chat, words = parsed
        if chat in ("help", "start"):
            await self.send(incoming.chat_id, help_text(), formatted=False)
            return
        try:
            name, args = registry_command(chat, words)
        except CommandError as exc:
            await self.send(incoming.chat_id, f"{exc.message}", formatted=False)
            return
        if CHAT_COMMANDS[chat].confirm:
            await self._ask(incoming.chat_id, name)
            return
        await self._run(incoming, name, args)

    async def _run(self, incoming: Incoming, name: str, args: dict[str, Any]) -> None:
        peer = PeerCred(
            pid=0, uid=os.getuid(), gid=os.getgid()
        )  # the bot acts as the daemon's user
        outcome = "ok"
        try:
            result = await self.invoke(name, args, peer)
            text = reply_text(name, result)
        except CommandError as exc:
            outcome = exc.code
            await self.send(incoming.chat_id, f"{name}: {exc.message}", formatted=False)
            return
        except Exception as exc:  # as the socket server does: one bad command is not the bot's end
            outcome = ErrorCode.INTERNAL.value
            self.log.exception("telegram_command_failed", cmd=name, error=repr(exc))
            await self.send(
                incoming.chat_id, f"{name} failed: {type(exc).__name__}", formatted=False
            )
            return
        finally:
            if self.is_mutating(name):
                self.log.info(
                    "telegram_command",
                    cmd=name,
                    args=args,
                    outcome=outcome,
                    chat_id=incoming.chat_id,
                    user_id=incoming.user_id,
                )
        await self.send(incoming.chat_id, text)
        if name == "report" and isinstance(result, dict) and result.get("plot_png"):
            await self.send_photo(
                incoming.chat_id,
                result["plot_png"],
                f"equity ({result.get('period', {}).get('label', '')})",
            )

    # -- the inline confirm -------------------------------------------------------------
    async def _ask(self, chat_id: str, name: str) -> None:
        nonce = secrets.token_hex(8)
        self.pending = {k: p for k, p in self.pending.items() if p.deadline > trio.current_time()}
        self.pending[nonce] = PendingConfirm(
            chat_id, nonce, trio.current_time() + self.confirm_timeout_s
        )
        keyboard = {
            "inline_keyboard": [
                [
                    {
                        "text": "HALT and flatten everything",
                        "callback_data": f"{CONFIRM_HALT}:{nonce}",
                    },
                    {"text": "Cancel", "callback_data": f"{CANCEL}:{nonce}"},
                ]
            ]
        }
        await self.api.call(
            "sendMessage",
            {
                "chat_id": chat_id,
                "reply_markup": keyboard,
                "text": f"Kill switch: halt trading and close every position at market? "
                f"(expires in {self.confirm_timeout_s:g} s)",
            },
        )

    async def _on_button(self, incoming: Incoming) -> None:
        action, _, nonce = incoming.callback_data.partition(":")
        pending = self.pending.pop(nonce, None)
        valid = (
            pending is not None
            and pending.chat_id == incoming.chat_id
            and pending.deadline > trio.current_time()
        )
        if not valid:
            await self.api.call(
                "answerCallbackQuery",
                {"callback_query_id": incoming.callback_id, "text": "expired: send /halt again"},
            )
            return
        if action != CONFIRM_HALT:
            await self.api.call(
                "answerCallbackQuery",
                {"callback_query_id": incoming.callback_id, "text": "cancelled"},
            )
            await self._edit(incoming, "halt cancelled")
            return
        await self.api.call(
            "answerCallbackQuery", {"callback_query_id": incoming.callback_id, "text": "halting"}
        )
        await self._edit(incoming, "halt confirmed")
        await self._run(incoming, "halt", {"yes": True})

    async def _edit(self, incoming: Incoming, text: str) -> None:
        if incoming.message_id:
            await self.api.call(
                "editMessageText",
                {"chat_id": incoming.chat_id, "message_id": incoming.message_id, "text": text},
            )

    # -- sending ------------------------------------------------------------------------
    async def send(self, chat_id: str, text: str, *, formatted: bool = True) -> None:
        payload: dict[str, Any] = {
            "chat_id": chat_id,
            "text": pre(text) if formatted else text[:MAX_TEXT],
        }
        if formatted:
            payload["parse_mode"] = "HTML"
        await self.api.call("sendMessage", payload)

    async def send_photo(self, chat_id: str, png_base64: str, caption: str) -> None:
        import base64

        png = base64.b64decode(png_base64)
        await self.api.call(
            "sendPhoto",
            {"chat_id": chat_id, "caption": caption},
            files={"photo": ("equity.png", png, "image/png")},
        )
