"""One request through the upstreams: the plan's attempts in order, failing over only
before the first byte reached the client and only for failures another upstream could fix.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from tokenyard.billing.price import cost_nano
from tokenyard.errors import (
    InvalidRequest,
    ModelNotFound,
    NoUpstreamAvailable,
    UpstreamError,
    UpstreamTimeout,
)
from tokenyard.gateway.relay import OpenedStream, Served, StreamRelay
from tokenyard.gateway.request import ChatRequest, check_fit, model_name, parse_chat
from tokenyard.identity.service import Principal
from tokenyard.pool.keys import KeyPool
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult, Provider
from tokenyard.routing.catalog import Catalog, PublicModel
from tokenyard.routing.plan import Attempt, plan
from tokenyard.wire.json import JSONObject
from tokenyard.wire.usage import Usage

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Completed:
    body: JSONObject
    served: Served


class Gateway:
    def __init__(
        self,
        *,
        catalog: Catalog,
        providers: Mapping[str, Provider],
        pools: Mapping[str, KeyPool],
        markup: Decimal,
    ):
        self.catalog = catalog
        self._providers = providers
        self._pools = pools
        self._markup = markup

    def resolve(self, principal: Principal, name: str, kind: str) -> PublicModel:
        model = self.catalog.get(name)
        if model is None or model.kind != kind:
            raise ModelNotFound(f"the model {name!r} does not exist", param="model")
        principal.check_model(name)
        return model

    async def _first_success(
        self,
        model: PublicModel,
        body: JSONObject,
        call: Callable[[Provider, Call], Awaitable[T]],
    ) -> tuple[Attempt, T, int]:
        """Try each attempt of the plan until one succeeds; returns it, its result and the
        number of upstream calls made."""
        calls = 0
        last: UpstreamError | None = None
        for attempt in plan(self.catalog, model):
            key = self._pools[attempt.deployment.provider].choose()
            upstream_call = Call(
                body=body,
                upstream_model=attempt.deployment.upstream_model,
                api_key=key.secret if key else None,
            )
            calls += 1
            try:
                result = await call(self._providers[attempt.deployment.provider], upstream_call)
            except UpstreamError as exc:
                log.warning(
                    "upstream attempt failed",
                    extra={
                        "fields": {
                            "provider": attempt.deployment.provider,
                            "key": key.label if key else None,
                            "model": attempt.model.name,
                            "error": exc.code,
                            "status": exc.status,
                            "retryable": exc.retryable,
                        }
                    },
                )
                if not exc.retryable:
                    raise
                last = exc
                continue
            return attempt, result, calls
        if last is None:
            raise NoUpstreamAvailable(f"no deployment of {model.name!r} can serve this request")
        if isinstance(last, UpstreamTimeout):
            raise UpstreamTimeout(f"every upstream for {model.name!r} timed out ({calls} tried)")
        raise UpstreamError(
            f"every upstream for {model.name!r} failed ({calls} tried); last: {last.message}",
            retryable=False,
            status=502,
            code=last.code,
        )

    def _cost(self, attempt: Attempt, usage: Usage) -> int:
        return cost_nano(attempt.deployment.price, usage, self._markup)

    # -- embeddings ------------------------------------------------------------------

    async def embed(self, principal: Principal, body: JSONObject) -> Completed:
        model = self.resolve(principal, model_name(body), "embedding")
        if "input" not in body:
            raise InvalidRequest("input is required", param="input")

        async def call(provider: Provider, upstream: Call) -> EmbeddingResult:
            return await provider.embed(upstream)

        attempt, result, calls = await self._first_success(model, body, call)
        served = Served(
            attempt.model.name,
            attempt.deployment.provider,
            calls,
            self._cost(attempt, result.usage),
        )
        usage = result.body.setdefault("usage", {})
        usage["cost"] = float(served.cost)
        return Completed(result.body, served)

    # -- chat ------------------------------------------------------------------------

    def parse_chat(self, principal: Principal, body: JSONObject) -> tuple[ChatRequest, PublicModel]:
        request = parse_chat(body)
        model = self.resolve(principal, request.model, "chat")
        check_fit(request, model)
        return request, model

    async def complete(self, request: ChatRequest, model: PublicModel) -> Completed:
        async def call(provider: Provider, upstream: Call) -> ChatResult:
            return await provider.chat(upstream)

        attempt, result, calls = await self._first_success(model, request.body, call)
        served = Served(
            attempt.model.name,
            attempt.deployment.provider,
            calls,
            self._cost(attempt, result.usage),
        )
        result.body["usage"]["cost"] = float(served.cost)
        return Completed(result.body, served)

    async def stream(self, request: ChatRequest, model: PublicModel) -> StreamRelay:
        """Open the first upstream stream that delivers a first chunk; the relay then owns it."""

        async def call(provider: Provider, upstream: Call) -> OpenedStream:
            return await OpenedStream.open(provider, upstream)

        attempt, opened, calls = await self._first_success(model, request.body, call)
        return StreamRelay(
            opened=opened,
            served=Served(attempt.model.name, attempt.deployment.provider, calls),
            price=lambda usage: self._cost(attempt, usage),
            prompt_estimate=request.prompt_estimate,
            include_usage=request.include_usage,
        )
