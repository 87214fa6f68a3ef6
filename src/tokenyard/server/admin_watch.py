"""What an operator watches through the admin API: providers' keys and deployments' health
(``GET /admin/providers``) and the request log (``GET /admin/requests``)."""

from __future__ import annotations

from aiohttp import web

from tokenyard.billing.money import format_nano
from tokenyard.errors import InvalidRequest
from tokenyard.routing.health import Snapshot
from tokenyard.server.admin_api import parse_when, require_admin
from tokenyard.server.generation import generation_of
from tokenyard.server.http import json_response
from tokenyard.server.state import DATABASE
from tokenyard.store.request_log import RequestFilter, RequestRow, SqlRequestLog
from tokenyard.wire.json import JSONObject


async def providers(request: web.Request) -> web.Response:
    """Health, latency and limits per provider key and deployment; never a secret."""
    require_admin(request)
    config = generation_of(request).config
    gateway = generation_of(request).gateway
    pools = generation_of(request).pools
    return json_response(
        {
            "providers": [
                {
                    "name": name,
                    "api": provider.api,
                    "region": provider.region,
                    "keys": pools[name].status(),
                }
                for name, provider in config.providers.items()
            ],
            "deployments": [
                _deployment_json(
                    model.name,
                    deployment.provider,
                    deployment.upstream_model,
                    gateway.health.snapshot(deployment.key),
                )
                for model in gateway.catalog.models.values()
                for deployment in model.deployments
            ],
        }
    )


def _deployment_json(model: str, provider: str, upstream: str, health: Snapshot) -> JSONObject:
    return {
        "model": model,
        "provider": provider,
        "upstream_model": upstream,
        "circuit": health.circuit.value,
        "latency_ms": health.latency_ms,
        "ttft_ms": health.ttft_ms,
        "tokens_per_s": health.tokens_per_s,
        "requests": health.requests,
        "failures": health.failures,
        "error_rate": health.error_rate,
    }


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    if not value.isdigit() or not 1 <= int(value) <= 500:
        raise InvalidRequest("limit must be an integer from 1 to 500", param="limit")
    return int(value)


def _request_json(row: RequestRow) -> JSONObject:
    entry: JSONObject = {
        "id": row.id,
        "started": row.started.isoformat(),
        "account_id": row.account_id,
        "key_id": row.key_id,
        "key_prefix": row.key_prefix,
        "operation": row.operation,
        "requested_model": row.requested_model,
        "model": row.model,
        "provider": row.provider,
        "stream": row.stream,
        "status": row.status,
        "input_tokens": row.input_tokens,
        "cached_tokens": row.cached_tokens,
        "output_tokens": row.output_tokens,
        "cost": format_nano(row.cost_nano),
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "attempts": row.attempts,
        "attempt_log": row.attempt_log or [],
        "error": {"type": row.error_type, "code": row.error_code} if row.error_type else None,
    }
    if row.prompt is not None or row.completion is not None:  # only with logging.prompts
        entry.update(prompt=row.prompt, completion=row.completion)
    return entry


async def requests_log(request: web.Request) -> web.Response:
    """The request log, newest first, a page at a time: pass ``next_cursor`` back as
    ``cursor`` for the next page (None on the last)."""
    require_admin(request)
    query = request.query
    status = query.get("status")
    if status is not None and not (status.isdigit() and 100 <= int(status) <= 599):
        raise InvalidRequest("status must be an HTTP status code", param="status")
    where = RequestFilter(
        account_id=query.get("account_id"),
        key_id=query.get("key_id"),
        model=query.get("model"),
        provider=query.get("provider"),
        status=int(status) if status is not None else None,
        error=query.get("error") or None,
        since=parse_when(query.get("since"), "since"),
        until=parse_when(query.get("until"), "until"),
    )
    log = SqlRequestLog(request.app[DATABASE].engine)
    try:
        rows, cursor = await log.page(where, _limit(query.get("limit")), query.get("cursor"))
    except ValueError:
        raise InvalidRequest("cursor is not valid", param="cursor") from None
    return json_response({"requests": [_request_json(row) for row in rows], "next_cursor": cursor})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/providers", providers)
    app.router.add_get("/admin/requests", requests_log)
