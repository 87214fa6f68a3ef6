"""One request through the upstreams: hold the worst case, try the plan's attempts in order
(failing over only before the first byte reached the client, and only for failures another
upstream could fix), charge the real cost, release the rest."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Generic, TypeVar

from tokenyard.billing.price import Markup
from tokenyard.billing.wallet import Payer, Settled, Wallet
from tokenyard.config.schema import RoutingConfig
from tokenyard.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    NoUpstreamAvailable,
    RateLimited,
    TokenyardError,
)
from tokenyard.gateway.attempts import Attempter
from tokenyard.gateway.budget import Budget
from tokenyard.gateway.passthrough import (
    RawResponse,
    SpeaksMessages,
    message_usage,
    relay_stream,
)
from tokenyard.gateway.relay import OpenedStream, Served, StreamRelay, completion_text
from tokenyard.gateway.request import (
    ChatRequest,
    check_fit,
    check_regions,
    model_name,
    parse_chat,
)
from tokenyard.identity.service import Principal
from tokenyard.immutable import immutable
from tokenyard.obs.record import current
from tokenyard.pool.keys import KeyPool
from tokenyard.providers.base import Call, ChatResult, EmbeddingResult, Provider
from tokenyard.routing.auto import Ranking, explain, parse_auto, rank
from tokenyard.routing.catalog import Catalog, PublicModel
from tokenyard.routing.health import HealthBook
from tokenyard.routing.plan import Attempt, Wishes, plan
from tokenyard.routing.similarity import Embed, SimilarityClassifier
from tokenyard.routing.task import classify, user_text
from tokenyard.store.holds import HeldReservation
from tokenyard.store.limits import KeyLimiter
from tokenyard.wire.json import JSONObject, dumps
from tokenyard.wire.tokens import estimate_text_tokens
from tokenyard.wire.usage import Usage

log = logging.getLogger(__name__)
T = TypeVar("T")


@immutable
class Run(Generic[T]):
    """An admitted, paid-for request and the upstream that took it."""

    payer: Payer
    held: HeldReservation
    attempt: Attempt
    result: T
    calls: int
    answered_at: float = field(default_factory=time.monotonic)
    """When the upstream's answer began: a stream's first chunk, a whole unstreamed body."""


TYPICAL_OUTPUT = 256
"""Output tokens `auto` assumes, to price and fit a request that names no max_tokens."""


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
        wallet: Wallet,
        limiter: KeyLimiter,
        markup: Decimal,
        default_max_output: int,
        rng: random.Random | None = None,
        health: HealthBook | None = None,
        routing: RoutingConfig | None = None,
        log_prompts: bool = False,
    ):
        self.catalog = catalog
        self._regions = frozenset(
            d.region for m in catalog.models.values() for d in m.deployments if d.region
        )
        self._log_prompts = log_prompts  # logging.prompts: keys may still opt out
        self._providers = providers
        self._pools = pools
        self._wallet = wallet
        self._limiter = limiter
        self._markup = Markup.of(markup)
        self._default_max_output = default_max_output
        self._rng = rng or random.Random()  # noqa: S311 — load spreading, not security
        self.health = health or HealthBook()
        routing = routing or RoutingConfig()
        budget = Budget(deadline_s=routing.deadline_s, max_attempts=routing.max_attempts)
        self._attempter = Attempter(providers, pools, self.health, budget)
        self._classifier = (
            SimilarityClassifier(
                self._embed_texts(routing.classifier.embedding_model),
                routing.classifier.examples,
                routing.classifier.min_similarity,
            )
            if routing.classifier is not None
            else None
        )

    def resolve(self, principal: Principal, name: str, kind: str) -> PublicModel:
        model = self.catalog.get(name)
        if model is None or model.kind != kind:
            raise ModelNotFound(f"the model {name!r} does not exist", param="model")
        principal.check_model(name)
        return model

    def payer(self, principal: Principal) -> Payer:
        markup = self._markup if principal.markup is None else principal.markup
        return Payer(principal.account_id, principal.key_id, markup, principal.tpm)

    async def _admit(self, principal: Principal, tokens: int) -> None:
        wait = await self._limiter.admit(principal.key_id, principal.rpm, principal.tpm, tokens)
        if wait:
            raise RateLimited(
                "this key's rate limit is reached; retry later", retry_after_s=int(wait)
            )

    async def _run(
        self,
        request_id: str,
        principal: Principal,
        model: PublicModel,
        body: JSONObject,
        call: Callable[[Provider, Call], Awaitable[T]],
        *,
        wishes: Wishes,
    ) -> Run[T]:
        """Admit (rate limits), hold the worst case over every attempt of the plan, then
        find the first attempt that succeeds; the hold is released if none does."""
        prompt = wishes.prompt_tokens
        await self._admit(principal, prompt)
        payer = self.payer(principal)
        attempts = plan(self.catalog, model, wishes, self._rng, speed=self._speed)
        if not attempts:
            raise self._nothing_fits(model, wishes)
        prices = [a.deployment.price for a in attempts]
        amount = self._wallet.worst_case(prices, prompt, wishes.output_tokens, payer.markup)
        held = await self._wallet.hold(request_id, payer, amount)
        try:
            attempt, result, calls = await self._attempter.first_success(
                attempts, body, call, prompt
            )
        except BaseException:
            await self._wallet.release(held)
            raise
        return Run(payer, held, attempt, result, calls)

    def _speed(self, deployment: str) -> float | None:
        """What the ``fastest`` policy ranks by: the deployment's smoothed time to first
        token, else its latency; None when never measured; infinite when it has only failed
        lately (so that a broken deployment does not pass for an unmeasured one)."""
        seen = self.health.snapshot(deployment)
        speed = seen.ttft_ms if seen.ttft_ms is not None else seen.latency_ms
        if speed is None and seen.failures:
            return math.inf
        return speed

    async def _settle(
        self, held: HeldReservation, payer: Payer, attempt: Attempt, usage: Usage
    ) -> int:
        if payer.tpm is not None and usage.completion_tokens:
            await self._limiter.add_tokens(payer.key_id, usage.completion_tokens)
        record = current()

        def charged(settled: Settled) -> None:  # also when this request was cancelled
            assert record is not None
            record.model, record.provider = attempt.model.name, attempt.deployment.provider
            record.input_tokens, record.output_tokens = usage.prompt_tokens, usage.completion_tokens
            record.cached_tokens = usage.cached_tokens
            record.cost_nano, record.charged = settled.cost_nano, True

        settled = await self._wallet.settle(
            held,
            payer=payer,
            price=attempt.deployment.price,
            usage=usage,
            model=attempt.model.name,
            provider=attempt.deployment.provider,
            on_charged=charged if record is not None else None,
        )
        return settled.cost_nano

    # -- chat ------------------------------------------------------------------------

    async def parse_chat(
        self, principal: Principal, body: JSONObject
    ) -> tuple[ChatRequest, PublicModel]:
        request = self.read_chat(principal, body)
        self._keep_prompt(principal, body)
        fallbacks = tuple(self.resolve(principal, name, "chat") for name in request.fallback_models)
        tier = parse_auto(request.model)
        if tier is not False:
            ranking = await self.rank(principal, request, tier)
            if not ranking.candidates:
                reasons = "; ".join(f"{m}: {why}" for m, why in ranking.rejected.items())
                raise InvalidRequest(f"no model can serve this request ({reasons})", param="model")
            chosen = [self.resolve(principal, c.name, "chat") for c in ranking.candidates]
            return replace(
                request, fallback_models_resolved=(*chosen[1:4], *fallbacks), route=explain(ranking)
            ), chosen[0]
        model = self.resolve(principal, request.model, "chat")
        check_fit(request, model)
        if not fallbacks:  # the usual request: no copy on the hot path
            return request, model
        return replace(request, fallback_models_resolved=fallbacks), model

    def read_chat(self, principal: Principal, body: JSONObject) -> ChatRequest:
        """The chat request as the caller may have it: residency applied first, so that
        `auto`'s ranking and the plan see only the allowed regions."""
        request = parse_chat(body)
        check_regions(request, self._regions)
        if principal.regions is None:  # nothing to narrow: no copy on the hot path
            return request
        return replace(request, regions=principal.narrow_regions(request.regions))

    def _keep_prompt(self, principal: Principal, body: JSONObject) -> None:
        """Decide whether this request's text goes into the request log (the config allows
        it and the key did not opt out) and, if so, keep its messages."""
        record = current()
        if record is None or not self._log_prompts or principal.log_prompts is False:
            return
        record.capture = True
        record.keep_prompt(dumps(body.get("messages")).decode())

    async def rank(self, principal: Principal, request: ChatRequest, tier: str | None) -> Ranking:
        """The `auto` router's ranking of the catalogue for this request."""
        guess = classify(request.body)
        if self._classifier is not None:
            guess = await self._classifier.refine(guess, user_text(request.body))
        return rank(
            self.catalog,
            request.body,
            tier=tier,
            allowed=principal.may_use,
            regions=request.regions,
            sort=request.sort,
            max_price=request.max_price,
            prompt_tokens=request.prompt_estimate,
            output_tokens=request.max_output or TYPICAL_OUTPUT,
            health=self._model_health,
            guess=guess,
        )

    def _embed_texts(self, name: str) -> Embed:
        """Embeddings of texts from the catalogue model ``name``, for the task classifier:
        through its deployments like any request (pools, health, failover), but the
        operator's own cost, not charged to the caller."""

        async def call(provider: Provider, upstream: Call) -> EmbeddingResult:
            return await provider.embed(upstream)

        async def embed(texts: list[str]) -> list[list[float]]:
            model = self.catalog.get(name)
            assert model is not None  # checked with the config
            tokens = sum(estimate_text_tokens(t) for t in texts)
            _, result, _ = await self._attempter.first_success(
                plan(self.catalog, model, rng=self._rng), {"input": texts}, call, tokens
            )
            data = sorted(result.body["data"], key=lambda item: item["index"])
            return [item["embedding"] for item in data]

        return embed

    def _model_health(self, name: str) -> float:
        """The share of a model's deployments whose circuit lets requests through."""
        model = self.catalog.get(name)
        if model is None or not model.deployments:
            return 0.0
        up = sum(self.health.available(d.key) for d in model.deployments)
        return up / len(model.deployments)

    def _wishes(self, request: ChatRequest, model: PublicModel) -> Wishes:
        return Wishes(
            models=request.fallback_models_resolved,
            regions=request.regions,
            prompt_tokens=request.prompt_estimate,
            output_tokens=self._max_output(request, model),
        )

    @staticmethod
    def _nothing_fits(model: PublicModel, wishes: Wishes) -> TokenyardError:
        window = model.context_window
        if window is not None and wishes.prompt_tokens > window:
            return ContextLengthExceeded(
                f"the prompt (about {wishes.prompt_tokens} tokens) exceeds the context window "
                f"of {model.name!r} ({window} tokens) and of every fallback",
                param="messages",
            )
        return NoUpstreamAvailable(
            f"no deployment of {model.name!r} or its fallbacks is in the allowed regions"
        )

    def _max_output(self, request: ChatRequest, model: PublicModel) -> int:
        limit = request.max_output or model.max_output_tokens or self._default_max_output
        return limit * request.choices

    async def complete(
        self, request_id: str, principal: Principal, request: ChatRequest, model: PublicModel
    ) -> Completed:
        async def call(provider: Provider, upstream: Call) -> ChatResult:
            return await provider.chat(upstream)

        run = await self._run(
            request_id,
            principal,
            model,
            request.body,
            call,
            wishes=self._wishes(request, model),
        )
        result = run.result
        cost = await self._settle(run.held, run.payer, run.attempt, result.usage)
        served = Served(run.attempt.model.name, run.attempt.deployment.provider, run.calls, cost)
        result.body["usage"]["cost"] = float(served.cost)
        record = current()
        if record is not None and record.capture:
            record.keep_completion(completion_text(result.body))
        return Completed(result.body, served)

    async def stream(
        self, request_id: str, principal: Principal, request: ChatRequest, model: PublicModel
    ) -> StreamRelay:
        """Open the first upstream stream that delivers a first chunk; the relay then owns
        the stream and the hold, and settles when the stream ends however it ends."""

        async def call(provider: Provider, upstream: Call) -> OpenedStream:
            return await OpenedStream.open(provider, upstream)

        run = await self._run(
            request_id,
            principal,
            model,
            request.body,
            call,
            wishes=self._wishes(request, model),
        )

        async def settle(usage: Usage) -> int:
            seconds = time.monotonic() - run.answered_at
            self.health.generated(run.attempt.deployment.key, usage.completion_tokens, seconds)
            return await self._settle(run.held, run.payer, run.attempt, usage)

        return StreamRelay(
            opened=run.result,
            served=Served(run.attempt.model.name, run.attempt.deployment.provider, run.calls),
            settle=settle,
            prompt_estimate=request.prompt_estimate,
            include_usage=request.include_usage,
        )

    # -- Anthropic pass-through ----------------------------------------------------------

    def speaks_messages(self, request: ChatRequest, model: PublicModel) -> bool:
        """Every attempt of this request's plan (its own fallbacks and regions included) is
        an upstream that speaks the Messages API itself."""
        attempts = plan(self.catalog, model, self._wishes(request, model), self._rng)
        return bool(attempts) and all(
            isinstance(self._providers[a.deployment.provider], SpeaksMessages) for a in attempts
        )

    async def messages_passthrough(
        self,
        request_id: str,
        principal: Principal,
        *,
        request: ChatRequest,
        model: PublicModel,
        raw: JSONObject,
        headers: Mapping[str, str],
    ) -> tuple[Served, bytes | AsyncGenerator[bytes, None]]:
        """Relay an Anthropic request untouched (but for ``model``) to the first Anthropic
        upstream that takes it: the body, or the stream's lines, charged as they pass."""

        async def call(provider: Provider, upstream: Call) -> RawResponse:
            assert isinstance(provider, SpeaksMessages)
            body = dumps({**raw, "model": upstream.upstream_model})
            response: RawResponse = await provider.messages_raw(
                body, upstream.api_key, stream=request.stream, headers=headers
            )
            return response

        run = await self._run(
            request_id,
            principal,
            model,
            request.body,
            call,
            wishes=self._wishes(request, model),
        )
        served = Served(run.attempt.model.name, run.attempt.deployment.provider, run.calls)

        async def settle(usage: Usage) -> int:
            served.cost_nano = await self._settle(run.held, run.payer, run.attempt, usage)
            return served.cost_nano

        if request.stream:
            return served, relay_stream(run.result, settle, request.prompt_estimate)
        try:
            body = await run.result.read()
        except BaseException:
            await self._wallet.release(run.held)
            raise
        finally:
            run.result.release()
        await settle(message_usage(body, request.prompt_estimate))
        return served, body

    # -- embeddings ------------------------------------------------------------------

    async def embed(self, request_id: str, principal: Principal, body: JSONObject) -> Completed:
        model = self.resolve(principal, model_name(body), "embedding")
        texts = body.get("input")
        if texts is None:
            raise InvalidRequest("input is required", param="input")
        if not isinstance(texts, str | list) or (isinstance(texts, list) and not texts):
            raise InvalidRequest("input must be a string or a non-empty array", param="input")

        async def call(provider: Provider, upstream: Call) -> EmbeddingResult:
            return await provider.embed(upstream)

        items = [texts] if isinstance(texts, str) else texts
        prompt = sum(
            estimate_text_tokens(t) if isinstance(t, str) else len(t) if isinstance(t, list) else 1
            for t in items
        )
        wishes = Wishes(regions=principal.regions, prompt_tokens=prompt)  # residency
        run = await self._run(request_id, principal, model, body, call, wishes=wishes)
        result = run.result
        cost = await self._settle(run.held, run.payer, run.attempt, result.usage)
        served = Served(run.attempt.model.name, run.attempt.deployment.provider, run.calls, cost)
        result.body.setdefault("usage", {})["cost"] = float(served.cost)
        return Completed(result.body, served)
