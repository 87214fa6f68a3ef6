"""Checking what a client sent before anything is spent on it.

Only what the gateway itself relies on is checked; everything else is passed through for
the upstream to judge. The routing fields of SPEC §3 (``models``, ``routing``) are removed
from the body that goes upstream.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from tokenyard.errors import InvalidRequest
from tokenyard.immutable import immutable
from tokenyard.routing.catalog import PublicModel
from tokenyard.wire.json import JSONObject
from tokenyard.wire.tokens import estimate_prompt_tokens

ROUTING_FIELDS = ("models", "routing")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_N = 128


@immutable
class ChatRequest:
    model: str
    body: JSONObject  # canonical body for the upstream (routing fields removed)
    stream: bool
    include_usage: bool
    prompt_estimate: int
    max_output: int | None
    choices: int
    fallback_models: tuple[str, ...] = ()
    """The request's own ordered fallback list (OpenRouter's ``models``)."""
    regions: frozenset[str] | None = None
    fallback_models_resolved: tuple[PublicModel, ...] = ()
    sort: str | None = None
    max_price: tuple[Decimal | None, Decimal | None] | None = None
    route: str | None = None
    """Why ``auto`` chose what it chose (the ``x-tokenyard-route`` header)."""


def _require_int(body: JSONObject, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidRequest(f"{name} must be an integer {bound}", param=name)
    return value


def model_name(body: object) -> str:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required and must be a string", param="model")
    return model


def parse_chat(body: JSONObject) -> ChatRequest:
    model = model_name(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or role not in ROLES:  # (a dict role is unhashable)
            raise InvalidRequest(
                f"messages[{i}] must be an object with a valid role", param=f"messages[{i}]"
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    choices = _require_int(body, "n", 1, MAX_N) or 1
    limit = _require_int(body, "max_completion_tokens", 1)
    limit = _require_int(body, "max_tokens", 1) if limit is None else limit
    fallback_models, regions, sort, max_price = _routing(body)
    canonical = {k: v for k, v in body.items() if k not in ROUTING_FIELDS}
    return ChatRequest(
        model=model,
        body=canonical,
        stream=stream,
        include_usage=bool(stream and options and options.get("include_usage")),
        prompt_estimate=estimate_prompt_tokens(messages),
        max_output=limit,
        choices=choices,
        fallback_models=fallback_models,
        regions=regions,
        sort=sort,
        max_price=max_price,
    )


Routing = tuple[
    tuple[str, ...], frozenset[str] | None, str | None, tuple[Decimal | None, Decimal | None] | None
]


def _price(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        price = Decimal(str(value)) if isinstance(value, int | float | str) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price < 0:
        raise InvalidRequest(f"{name} must be a non-negative number", param=name)
    return price


def _routing(body: JSONObject) -> Routing:
    models = body.get("models")
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)
    ):
        raise InvalidRequest("models must be an array of model names", param="models")
    routing = body.get("routing")
    if routing is None:
        return tuple(models or ()), None, None, None
    if not isinstance(routing, dict):
        raise InvalidRequest("routing must be an object", param="routing")
    regions = routing.get("regions")
    if regions is not None and (
        not isinstance(regions, list) or not regions or not all(isinstance(r, str) for r in regions)
    ):
        raise InvalidRequest(
            "routing.regions must be a non-empty array of strings", param="routing.regions"
        )
    sort = routing.get("sort")
    if sort is not None and sort not in ("price", "latency", "throughput"):
        raise InvalidRequest(
            "routing.sort must be price, latency or throughput", param="routing.sort"
        )
    limit = routing.get("max_price")
    if limit is not None and not isinstance(limit, dict):
        raise InvalidRequest("routing.max_price must be an object", param="routing.max_price")
    max_price = (
        (
            _price(limit.get("input"), "routing.max_price.input"),
            _price(limit.get("output"), "routing.max_price.output"),
        )
        if limit is not None
        else None
    )
    return (
        tuple(models or ()),
        frozenset(regions) if regions is not None else None,
        sort,
        max_price,
    )


def check_regions(request: ChatRequest, known: frozenset[str]) -> None:
    """``routing.regions`` names only regions some deployment carries: a typo is the
    client's error (400), not a missing upstream (503)."""
    unknown = request.regions - known if request.regions is not None else None
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise InvalidRequest(
            f"routing.regions names unknown regions: {', '.join(sorted(unknown))} "
            f"(the deployments' regions: {listed})",
            param="routing.regions",
        )


def _has_images(body: JSONObject) -> bool:
    for message in body["messages"]:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "image_url" for p in content
        ):
            return True
    return False


def check_fit(request: ChatRequest, model: PublicModel) -> None:
    """The model can serve this request: capabilities it declares, context window."""
    body = request.body
    if body.get("tools") and model.lacks("tools"):
        raise InvalidRequest(f"the model {model.name!r} does not support tools", param="tools")
    response_format = body.get("response_format")
    if (
        isinstance(response_format, dict)
        and response_format.get("type") in ("json_object", "json_schema")
        and model.lacks("json_mode")
    ):
        raise InvalidRequest(
            f"the model {model.name!r} does not support JSON mode", param="response_format"
        )
    if model.lacks("vision") and _has_images(body):
        raise InvalidRequest(f"the model {model.name!r} does not accept images", param="messages")
    most = model.max_output_tokens or model.context_window
    if request.max_output is not None and most is not None and request.max_output > most:
        param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        raise InvalidRequest(
            f"{param} is {request.max_output}; the model {model.name!r} writes at most "
            f"{most} tokens",
            param=param,
        )
    # The context window is checked per model of the plan: a larger fallback may fit.
