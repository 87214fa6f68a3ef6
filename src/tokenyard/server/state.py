"""Typed keys of what the composition root puts into the application. What a config
reload replaces is not here but behind ``generation.CURRENT``."""

from __future__ import annotations

from aiohttp import web

from tokenyard.identity.portal import Portal
from tokenyard.identity.service import Identity
from tokenyard.obs.record import Sink
from tokenyard.payments import Processor
from tokenyard.server.limits import ServerLimits
from tokenyard.store import Database
from tokenyard.store.ledger import SqlLedger
from tokenyard.store.reports import SqlReports

DATABASE = web.AppKey("database", Database)
IDENTITY = web.AppKey("identity", Identity)
LEDGER = web.AppKey("ledger", SqlLedger)
REPORTS = web.AppKey("reports", SqlReports)
ADMIN_KEY = web.AppKey("admin_key", str)
LIMITS = web.AppKey("limits", ServerLimits)
"""What one request may send: body size and time, JSON depth, messages (``server:``)."""
PROCESSORS = web.AppKey("processors", dict[str, Processor])
SINKS = web.AppKey("sinks", list[Sink])
PORTAL = web.AppKey("portal", Portal)
