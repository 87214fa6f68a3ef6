"""Typed keys of what the composition root puts into the application."""

from __future__ import annotations

from aiohttp import web

from tokenyard.config import Config
from tokenyard.gateway.flow import Gateway
from tokenyard.identity.portal import Portal
from tokenyard.identity.service import Identity
from tokenyard.obs.record import Sink
from tokenyard.payments import Processor
from tokenyard.pool.keys import KeyPool
from tokenyard.providers.registry import Upstreams
from tokenyard.store import Database
from tokenyard.store.ledger import SqlLedger
from tokenyard.store.reports import SqlReports

CONFIG = web.AppKey("config", Config)
DATABASE = web.AppKey("database", Database)
UPSTREAMS = web.AppKey("upstreams", Upstreams)
GATEWAY = web.AppKey("gateway", Gateway)
IDENTITY = web.AppKey("identity", Identity)
LEDGER = web.AppKey("ledger", SqlLedger)
REPORTS = web.AppKey("reports", SqlReports)
ADMIN_KEY = web.AppKey("admin_key", str)
MAX_BODY = web.AppKey("max_body_bytes", int)
PROCESSORS = web.AppKey("processors", dict[str, Processor])
POOLS = web.AppKey("pools", dict[str, KeyPool])
SINKS = web.AppKey("sinks", list[Sink])
PORTAL = web.AppKey("portal", Portal)
