"""Config hot reload: SIGHUP or ``POST /admin/reload`` re-reads the config file the gateway
was started with, validates it fully, builds a new generation beside the running one and
swaps it in (server/generation.py). A file that does not validate, or that changes what only
a restart can change, changes nothing and is answered with every reason.

What a reload changes: providers, models, ``routing``, ``health`` thresholds,
``billing.markup``, ``billing.fx`` and ``billing.default_max_output_tokens``. What needs a
restart is in ``RESTART_ONLY``: things built once at start (the database and Redis
connections, the listeners, the admin key, payment processors, the portal, the request
log and the reaper) or the wallet currency, which no running ledger may change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import field

from aiohttp import web

from tokenyard.config import Config, load_config
from tokenyard.errors import ConfigError, InvalidRequest
from tokenyard.immutable import immutable
from tokenyard.providers.registry import availability_problems
from tokenyard.server.admin_api import require_admin
from tokenyard.server.generation import Current, Lasting, build_generation, health_policy
from tokenyard.server.http import json_response

log = logging.getLogger(__name__)

RESTART_ONLY = (
    "database",
    "redis",
    "admin_key",
    "server",
    "payments",
    "portal",
    "logging",
    "billing.currency",
    "billing.reaper_interval_s",
    "billing.stale_after_s",
    "billing.signup_credit",
)
"""Dotted config paths a reload may not change: the running process cannot adopt them."""


def _at(config: Config, path: str) -> object:
    value: object = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def restart_problems(old: Config, new: Config) -> list[str]:
    """One line per restart-only field that ``new`` changes (a secret is never shown)."""
    return [
        f"{path}: changing it needs a restart"
        for path in RESTART_ONLY
        if _at(old, path) != _at(new, path)
    ]


def _changed(old: dict[str, object], new: dict[str, object]) -> tuple[list[str], ...]:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(name for name in set(old) & set(new) if old[name] != new[name])
    return added, removed, changed


def summary(old: Config, new: Config) -> dict[str, object]:
    """What a reload changes, by name only: for the log line and the admin answer."""
    out: dict[str, object] = {}
    for kind in ("models", "providers"):
        added, removed, changed = _changed(getattr(old, kind), getattr(new, kind))
        for verb, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                out[f"{kind}_{verb}"] = names
    others = [
        name
        for name in ("routing", "health", "billing")
        if getattr(old, name) != getattr(new, name)
    ]
    if others:
        out["changed"] = others
    return out


def read_config(path: str) -> Config:
    """The file as ``tokenyard serve`` would accept it; raises ConfigError otherwise."""
    config = load_config(path)
    problems = availability_problems(config.providers)
    if problems:
        raise ConfigError(problems)
    return config


@immutable
class Outcome:
    generation: int
    changes: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class Reloader:
    """Reloads one process, one reload at a time."""

    def __init__(self, current: Current, lasting: Lasting, path: str | None) -> None:
        self._current = current
        self._lasting = lasting
        self._path = path
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Outcome]] = set()

    def check(self) -> tuple[Config | None, list[str]]:
        """Read and validate the file against the running config, changing nothing."""
        if self._path is None:
            return None, ["this gateway was not started from a config file"]
        try:
            config = read_config(self._path)
        except ConfigError as exc:
            return None, exc.problems
        return config, restart_problems(self._current.generation.config, config)

    async def reload(self, trigger: str) -> Outcome:
        async with self._lock:
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> Outcome:
        old = self._current.generation
        config, problems = self.check()
        if config is not None and not problems and config == old.config:
            log.info(
                "config unchanged",
                extra={"fields": {"trigger": trigger, "generation": old.number}},
            )
            return Outcome(old.number)
        if config is not None and not problems:
            try:
                new = await build_generation(old.number + 1, config, self._lasting, old)
            except ConfigError as exc:
                problems = exc.problems
        if config is None or problems:
            log.warning(
                "config reload refused",
                extra={
                    "fields": {"trigger": trigger, "generation": old.number, "problems": problems}
                },
            )
            return Outcome(old.number, problems=problems)
        self._lasting.health.reconfigure(health_policy(config))
        self._current.swap(new)
        changes = summary(old.config, config)
        log.info(
            "config reloaded",
            extra={"fields": {"trigger": trigger, "generation": new.number, **changes}},
        )
        return Outcome(new.number, changes)

    def on_hangup(self) -> None:
        """The SIGHUP handler: reload in the background, keep the task referenced."""
        task = asyncio.get_running_loop().create_task(self.reload("SIGHUP"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


RELOADER = web.AppKey("reloader", Reloader)
WORKERS = web.AppKey("workers", int)
"""How many processes serve this port (``--workers N``); above 1 a reload is announced to
the parent, which passes SIGHUP on to every worker."""


async def reload_config(request: web.Request) -> web.Response:
    """``POST /admin/reload``: 400 with every problem and nothing changed, or 200 once this
    process serves the new file. With ``--workers N`` the parent is then sent SIGHUP and
    forwards it to every worker (this one finds nothing left to change); ``processes`` in
    the answer says how many processes were asked to reload."""
    require_admin(request)
    outcome = await request.app[RELOADER].reload("POST /admin/reload")
    if outcome.problems:
        raise InvalidRequest(
            "the config was not reloaded: " + "; ".join(outcome.problems), code="config_invalid"
        )
    workers = request.app[WORKERS]
    if workers > 1:
        os.kill(os.getppid(), signal.SIGHUP)
    return json_response(
        {
            "reloaded": True,
            "generation": outcome.generation,
            "changes": outcome.changes,
            "processes": workers,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/reload", reload_config)
