"""The telegram actor: the Bot API long-poll loop around `fractald.control.telegram.TelegramBot`.

Runs only with `[telegram] enabled = true`. A missing token or chat list
stops the daemon at start (exit 77 / 78), like any credential or config
mistake; a token the Bot API refuses later is logged and retried slowly
without touching trading (a phone front end must never stop the bot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from fractald.actors.alerts import _telegram_token
from fractald.control.telegram import BotApi, BotApiError, TelegramBot, registry_invoker
from fractald.errors import AuthError, ConfigError, NetworkError

if TYPE_CHECKING:
    from fractald.actors.supervisor import ActorContext
    from fractald.control.server import CommandRegistry
    from fractald.shell_deps import LiveConfig

REFUSED_RETRY_S = 300.0


class TelegramActor:
    def __init__(self, config: LiveConfig, registry: CommandRegistry) -> None:
        self.config = config
        self.registry = registry
        self.bot: TelegramBot | None = None

    def _chats(self) -> list[str]:
        cfg, alerts = self.config.current.telegram, self.config.current.alerts
        chats = [str(c) for c in cfg.allowed_chat_ids] or (
            [alerts.telegram_chat_id] if alerts.telegram_chat_id else []
        )
        if not chats:
            raise ConfigError(
                "telegram.allowed_chat_ids: empty, and no alerts.telegram_chat_id to "
                "fall back on; name the chats the bot may answer"
            )
        return chats

    def _token(self) -> str:
        cfg, alerts = self.config.current.telegram, self.config.current.alerts
        name = cfg.token_credential or alerts.telegram_token_credential
        token = _telegram_token(name)
        if not token:
            raise AuthError(
                f"telegram: no bot token in the credential {name or '(none named)'!r} "
                "(telegram.token_credential or alerts.telegram_token_credential, "
                "read from $CREDENTIALS_DIRECTORY)"
            )
        return token

    def _is_mutating(self, name: str) -> bool:
        command = self.registry.get(name)
        return command is not None and command.mutating

    async def run(self, ctx: ActorContext) -> None:
        cfg = self.config.current.telegram
        chats, token = self._chats(), self._token()
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
            self.bot = bot = TelegramBot(
                BotApi(client, cfg.api_url, token),
                registry_invoker(self.registry),
                self._is_mutating,
                chats,
                ctx.log,
                poll_timeout_s=cfg.poll_timeout_s,
                confirm_timeout_s=cfg.confirm_timeout_s,
            )
            ctx.log.info("telegram_polling", chats=len(chats))
            while True:
                ctx.beat()
                # A long poll shorter than the stall limit keeps the supervisor's beat honest.
                timeout = max(1.0, min(cfg.poll_timeout_s, ctx.beat_interval_s))
                try:
                    await bot.poll_once(timeout)
                except BotApiError as exc:
                    await self._api_error(ctx, exc)
                except httpx.HTTPError as exc:
                    raise NetworkError(f"telegram getUpdates: {type(exc).__name__}: {exc}") from exc

    async def _api_error(self, ctx: ActorContext, exc: BotApiError) -> None:
        if exc.code in (401, 403, 404):
            ctx.log.error(
                "telegram_token_refused", code=exc.code, error=str(exc), retry_in_s=REFUSED_RETRY_S
            )
            await ctx.sleep(REFUSED_RETRY_S)
        elif exc.code in (409, 429):  # another poller with this token, or slow down
            ctx.log.warning("telegram_backoff", code=exc.code, error=str(exc))
            await ctx.sleep(float(exc.retry_after or 5.0))
        else:
            raise NetworkError(str(exc)) from exc
