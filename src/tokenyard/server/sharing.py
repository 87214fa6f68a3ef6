"""What gateway processes share through Redis, and how it is applied.

Shared: upstream key cool-downs and refusals (pool), circuit opens and closes (health), and
key revocations (identity). The RPM/TPM windows of upstream keys are shared differently:
they are counted in Redis itself, by the pool's limiter. Without Redis every process keeps
its own state, which is correct, only less well informed (docs/decisions/0009).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tokenyard.identity.revocation import AnnouncedEpoch, RevocationEpoch
from tokenyard.pool.keys import CoolListener, KeyPool
from tokenyard.routing.health import Circuit, HealthBook
from tokenyard.store.redis_bus import Event, RedisBus


def share(
    bus: RedisBus,
    pools: Callable[[], Mapping[str, KeyPool]],
    health: HealthBook,
    epoch: RevocationEpoch,
) -> tuple[RevocationEpoch, CoolListener]:
    """Announce this process's moves on ``bus``, apply those of the others, and return the
    revocation epoch to authenticate with and the listener every key pool must be given.
    ``pools`` is read per event: a config reload replaces the pools."""

    def cooled(key_id: str, seconds: float, refused: bool) -> None:
        event = {"t": "cool", "key": key_id, "s": seconds, "refused": refused}
        bus.publish(event, state_key=f"cool:{key_id}", ttl_s=seconds)

    def moved(deployment: str, circuit: Circuit, open_s: float) -> None:
        event = {"t": "circuit", "d": deployment, "state": circuit.value, "s": open_s}
        ttl_s = open_s if circuit is Circuit.OPEN else 0.0
        bus.publish(event, state_key=f"circuit:{deployment}", ttl_s=ttl_s)

    def apply(event: Event) -> None:
        kind = event.get("t")
        seconds = float(event.get("ttl_s") or event.get("s") or 0.0)
        if kind == "cool":
            for pool in pools().values():
                pool.cool(str(event["key"]), seconds, refused=bool(event.get("refused")))
        elif kind == "circuit":
            health.apply(str(event["d"]), Circuit(event["state"]), seconds)
        elif kind == "revoke":
            epoch.bump()

    health.on_change = moved
    bus.listen(apply)
    return AnnouncedEpoch(epoch, lambda: bus.publish({"t": "revoke"})), cooled
