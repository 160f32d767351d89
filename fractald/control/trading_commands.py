"""Control commands that read or steer trading: positions, orders, pause, resume, halt..."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fractald.control.protocol import CommandError, PeerCred

if TYPE_CHECKING:
    from fractald.actors.trading import TradingActor
    from fractald.control.server import CommandRegistry


def register_trading_commands(registry: CommandRegistry, actor: TradingActor) -> None:
    def session() -> Any:
        if actor.session is None:
            raise CommandError("not_ready", "trading state is still being recovered; try again")
        return actor.session

    async def pause(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        actor.accepting = False
        actor.daemon.bus.publish("paused", {"by_uid": peer.uid})
        return {"accepting": False, "note": "no new entries; open trades are still managed"}

    async def resume(args: dict[str, Any], peer: PeerCred) -> dict[str, Any]:
        s = session()
        actor.accepting = True
        result: dict[str, Any] = {"accepting": True}
        if s.pipeline is not None and hasattr(s.pipeline, "resume"):
            result["events"] = [str(e) for e in s.pipeline.resume()]
        actor.daemon.bus.publish("resumed", {"by_uid": peer.uid})
        return result

    registry.register("pause", pause, mutating=True, help="stop new entries; manage open trades")
    registry.register("resume", resume, mutating=True,
                      help="allow new entries again; clears tripped breakers")
