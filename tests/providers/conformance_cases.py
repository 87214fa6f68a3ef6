"""The rows of the conformance matrix (test_conformance.py): one :class:`Family` per adapter,
as data — how to build it against its stand-in, which models and triggers it needs, how each
fault is injected on its wire, and which features it refuses as documented.

Every stand-in is started once (:func:`start_upstreams`) and shared by all rows; the triggers
are the stand-ins' own (the word "weather" with tools, reasoning model names or
``reasoning_effort``, ``fail_next`` / ``break_stream_next`` / ``cut_stream_next`` /
``drop_next``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tests.upstreams import anthropic_wire, dashscope_wire, gemini_wire, spark_wire, zhipu_wire
from tests.upstreams.flavors import REASONING_TEXT as OPENAI_REASONING
from tests.upstreams.openai_wire import Flavor, StandInUpstream
from tests.upstreams.openai_wire import run_in_thread as run_openai
from tokenyard.providers.anthropic import AnthropicProvider
from tokenyard.providers.base import Provider
from tokenyard.providers.dashscope import DashScopeProvider
from tokenyard.providers.gemini import GeminiProvider
from tokenyard.providers.http import Timeouts
from tokenyard.providers.openai import OpenAIProvider
from tokenyard.providers.spark import SparkProvider
from tokenyard.providers.transport import HttpClient
from tokenyard.providers.vendors import VENDORS
from tokenyard.providers.zhipu import ZhipuProvider

TIMEOUTS = Timeouts(timeout_s=5, connect_timeout_s=1, first_byte_timeout_s=2, idle_timeout_s=2)
OPENAI_KEY = "sk-conformance"
ANTHROPIC_KEY = "sk-ant-conformance"
GEMINI_KEY = "gm-conformance"
ZHIPU_KEY = "kid123.s3cr3t-value"
DASHSCOPE_KEY = "sk-dash-conformance"
SPARK_WS_KEY = "app00001:key-1:secret-1"
SPARK_PASSWORD = "spark-password"


@dataclass
class Upstreams:
    """Every stand-in, each on its own event loop in a daemon thread."""

    openai: StandInUpstream
    openai_url: str
    deepseek: StandInUpstream
    deepseek_url: str
    anthropic: anthropic_wire.AnthropicStandIn
    anthropic_url: str
    gemini: gemini_wire.GeminiStandIn
    gemini_url: str
    zhipu: zhipu_wire.ZhipuStandIn
    zhipu_url: str
    dashscope: dashscope_wire.DashScopeStandIn
    dashscope_url: str
    spark: spark_wire.SparkStandIn


@contextlib.contextmanager
def start_upstreams() -> Iterator[Upstreams]:
    with contextlib.ExitStack() as stack:

        def started(url_and_stop: tuple[str, Callable[[], None]]) -> str:
            url, stop = url_and_stop
            stack.callback(stop)
            return url

        openai = StandInUpstream(Flavor.OPENAI, api_key=OPENAI_KEY)
        deepseek = StandInUpstream(Flavor.DEEPSEEK, api_key=OPENAI_KEY)
        anthropic = anthropic_wire.AnthropicStandIn(api_key=ANTHROPIC_KEY)
        gemini = gemini_wire.GeminiStandIn(api_key=GEMINI_KEY)
        zhipu = zhipu_wire.ZhipuStandIn(ZHIPU_KEY)
        dashscope = dashscope_wire.DashScopeStandIn(DASHSCOPE_KEY)
        spark = spark_wire.SparkStandIn(password=SPARK_PASSWORD)
        upstreams = Upstreams(
            openai=openai,
            openai_url=started(run_openai(openai)),
            deepseek=deepseek,
            deepseek_url=started(run_openai(deepseek)),
            anthropic=anthropic,
            anthropic_url=started(anthropic_wire.run_in_thread(anthropic)),
            gemini=gemini,
            gemini_url=started(gemini_wire.run_in_thread(gemini)),
            zhipu=zhipu,
            zhipu_url=started(zhipu_wire.run_in_thread(zhipu)),  # type: ignore[arg-type]
            dashscope=dashscope,
            dashscope_url=started(dashscope_wire.run_in_thread(dashscope)),  # type: ignore[arg-type]
            spark=spark,
        )
        stack.callback(spark_wire.run_in_thread(spark))
        yield upstreams


Inject = Callable[[Upstreams], None]
JSONBody = dict[str, Any]


@dataclass(frozen=True)
class Family:
    """One row: an adapter against its stand-in."""

    name: str
    key: str
    wrong_key: str
    """A credential the stand-in refuses (the vendor's own "bad key" answer)."""
    model: str
    vision_model: str
    reasoning_model: str
    reasoning_extra: JSONBody
    """Body fields that ask for reasoning (with ``reasoning_model``)."""
    reasoning_text: str | None
    """The stand-in's reasoning text; None where the vendor returns none (OpenAI)."""
    provider: Callable[[Upstreams, HttpClient], Provider]
    sent: Callable[[Upstreams], list[JSONBody]]
    """The wire bodies the stand-in received so far (oldest first)."""
    json_switch: Callable[[JSONBody], bool]
    """Whether a wire body carries the vendor's JSON-mode switch."""
    json_answers: bool
    """The stand-in answers JSON in JSON mode (others only echo: the switch is checked)."""
    faults: Mapping[str, Inject]
    """error_400, error_429, error_500, overload and stream_cut on the vendor's wire."""
    retry_after_s: float | None
    """What error_429 must report: the Retry-After (or vendor equivalent) the stand-in sent;
    None where the vendor documents no delay (DeepSeek, Spark's WebSocket codes)."""
    refuses: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """case → a fragment of the documented refusal (UpstreamRejected before any request)."""


def _openai(url: Callable[[Upstreams], str], vendor: str) -> Callable[..., Provider]:
    def make(up: Upstreams, client: HttpClient) -> Provider:
        return OpenAIProvider(
            name=vendor, base_url=url(up), vendor=VENDORS[vendor], client=client, **TIMEOUTS
        )

    return make


def _spark(up: Upstreams, client: HttpClient) -> Provider:
    return SparkProvider(
        name="spark",
        base_url=up.spark.http_base_url,
        ws_base_url=up.spark.ws_base_url,
        client=client,
        **TIMEOUTS,
    )


def _has_json_object(body: JSONBody) -> bool:
    return body.get("response_format") == {"type": "json_object"}


def _anthropic_json(body: JSONBody) -> bool:
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system or ()]
    return any("JSON" in text for text in texts) or "output_config" in body


_SPARK_HTTP_429 = {"error": {"message": "Too Many Requests", "type": "rate_limit_error"}}

FAMILIES: tuple[Family, ...] = (
    Family(
        name="openai",
        key=OPENAI_KEY,
        wrong_key="sk-wrong-secret",
        model="gpt-4o-mini",
        vision_model="gpt-4o-mini",
        reasoning_model="o4-mini",
        reasoning_extra={"reasoning_effort": "low"},
        reasoning_text=None,  # Chat Completions never returns OpenAI's reasoning text
        provider=_openai(lambda up: up.openai_url, "openai"),
        sent=lambda up: [r.body for r in up.openai.requests],
        json_switch=_has_json_object,
        json_answers=True,
        faults={
            "error_400": lambda up: up.openai.fail_next(400),
            "error_429": lambda up: up.openai.fail_next(429),  # Retry-After: 1
            "error_500": lambda up: up.openai.fail_next(500),
            "overload": lambda up: up.openai.fail_next(503),  # code "overloaded"
            "stream_cut": lambda up: up.openai.break_stream_next(3),
        },
        retry_after_s=1.0,
    ),
    Family(
        name="deepseek",
        key=OPENAI_KEY,
        wrong_key="sk-wrong-secret",
        model="deepseek-chat",
        vision_model="deepseek-chat",
        reasoning_model="deepseek-reasoner",
        reasoning_extra={},
        reasoning_text=OPENAI_REASONING,
        provider=_openai(lambda up: up.deepseek_url, "deepseek"),
        sent=lambda up: [r.body for r in up.deepseek.requests],
        json_switch=_has_json_object,
        json_answers=True,
        faults={
            "error_400": lambda up: up.deepseek.fail_next(400),
            "error_429": lambda up: up.deepseek.fail_next(429),  # no Retry-After (§5.6)
            "error_500": lambda up: up.deepseek.fail_next(500),
            "overload": lambda up: up.deepseek.fail_next(503),  # "Server overloaded"
            "stream_cut": lambda up: up.deepseek.break_stream_next(3),
        },
        retry_after_s=None,
    ),
    Family(
        name="anthropic",
        key=ANTHROPIC_KEY,
        wrong_key="sk-ant-wrong-secret",
        model="claude-sonnet-4-5",
        vision_model="claude-sonnet-4-5",
        reasoning_model="claude-sonnet-4-5",
        reasoning_extra={"reasoning_effort": "low"},
        reasoning_text=anthropic_wire.REASONING_TEXT,
        provider=lambda up, client: AnthropicProvider(
            name="anthropic", base_url=up.anthropic_url, client=client, **TIMEOUTS
        ),
        sent=lambda up: [r.body for r in up.anthropic.requests],
        json_switch=_anthropic_json,
        json_answers=True,
        faults={
            "error_400": lambda up: up.anthropic.fail_next(400),
            "error_429": lambda up: up.anthropic.fail_next(429, headers={"retry-after": "7"}),
            "error_500": lambda up: up.anthropic.fail_next(500),
            "overload": lambda up: up.anthropic.fail_next(529),  # overloaded_error
            "stream_cut": lambda up: up.anthropic.break_stream_next(after_events=5),
        },
        retry_after_s=7.0,
    ),
    Family(
        name="gemini",
        key=GEMINI_KEY,
        wrong_key="gm-wrong-secret",  # 400 INVALID_ARGUMENT, reason API_KEY_INVALID
        model="gemini-2.5-flash",
        vision_model="gemini-2.5-flash",
        reasoning_model="gemini-2.5-flash",
        reasoning_extra={"reasoning_effort": "high"},
        reasoning_text=gemini_wire.THOUGHT,
        provider=lambda up, client: GeminiProvider(
            name="gemini", base_url=up.gemini_url, client=client, **TIMEOUTS
        ),
        sent=lambda up: [r.body for r in up.gemini.requests],
        json_switch=lambda body: (
            body.get("generationConfig", {}).get("responseMimeType") == "application/json"
        ),
        json_answers=True,
        faults={
            "error_400": lambda up: up.gemini.fail_next(400),
            "error_429": lambda up: up.gemini.fail_next(429),  # RetryInfo.retryDelay "17s"
            "error_500": lambda up: up.gemini.fail_next(500),
            "overload": lambda up: up.gemini.fail_next(503),  # UNAVAILABLE
            "stream_cut": lambda up: up.gemini.break_stream_next(2, error=False),
        },
        retry_after_s=17.0,
    ),
    Family(
        name="zhipu",
        key=ZHIPU_KEY,
        wrong_key="kid123.wrong-secret",  # the JWT fails verification: 401 / 1004
        model="glm-4.6",
        vision_model="glm-4.5v",
        reasoning_model="glm-4.6",
        reasoning_extra={"reasoning_effort": "high"},
        reasoning_text=zhipu_wire.REASONING,
        provider=lambda up, client: ZhipuProvider(
            name="zhipu", base_url=up.zhipu_url, client=client, **TIMEOUTS
        ),
        sent=lambda up: [r.body for r in up.zhipu.requests],
        json_switch=_has_json_object,
        json_answers=False,
        faults={
            "error_400": lambda up: up.zhipu.fail_next(400, "1214", "参数非法"),
            "error_429": lambda up: up.zhipu.fail_next(
                429, "1302", "并发数过高", headers={"Retry-After": "7"}
            ),
            "error_500": lambda up: up.zhipu.fail_next(500, "500", "Internal Error"),
            # 1305: "该模型当前访问量过大，请您稍后再试" (the model is overloaded)
            "overload": lambda up: up.zhipu.fail_next(429, "1305", "该模型当前访问量过大"),
            "stream_cut": lambda up: up.zhipu.break_stream_next(2),  # 1234 network error
        },
        retry_after_s=7.0,
    ),
    Family(
        name="dashscope",
        key=DASHSCOPE_KEY,
        wrong_key="sk-dash-wrong-secret",
        model="qwen-plus",
        vision_model="qwen-vl-max",
        reasoning_model="qwen-plus",
        reasoning_extra={"reasoning_effort": "high"},
        reasoning_text=dashscope_wire.REASONING,
        provider=lambda up, client: DashScopeProvider(
            name="dashscope", base_url=up.dashscope_url, client=client, **TIMEOUTS
        ),
        sent=lambda up: [r.body for r in up.dashscope.requests],
        json_switch=lambda body: _has_json_object(body.get("parameters") or {}),
        json_answers=False,
        faults={
            "error_400": lambda up: up.dashscope.fail_next(400, "InvalidParameter"),
            "error_429": lambda up: up.dashscope.fail_next(
                429, "Throttling.RateQuota", headers={"Retry-After": "3"}
            ),
            "error_500": lambda up: up.dashscope.fail_next(500, "InternalError"),
            "overload": lambda up: up.dashscope.fail_next(503, "ServiceUnavailable"),
            "stream_cut": lambda up: up.dashscope.cut_stream_next(2),
        },
        retry_after_s=3.0,
    ),
    Family(
        name="spark-ws",
        key=SPARK_WS_KEY,
        wrong_key="app00001:key-1:wrong-secret",  # the handshake is refused: HTTP 401
        model="generalv3.5",
        vision_model="generalv3.5",
        reasoning_model="x1",
        reasoning_extra={},
        reasoning_text=spark_wire.REASONING_TEXT,
        provider=_spark,
        sent=lambda up: [r.frame for r in up.spark.ws_requests],
        json_switch=lambda body: False,  # never sent: refused below
        json_answers=False,
        faults={
            "error_400": lambda up: up.spark.fail_next(10005),  # parameter value invalid
            "error_429": lambda up: up.spark.fail_next(11202),  # per-second flow control
            "error_500": lambda up: up.spark.fail_next(10012),  # engine internal error
            "overload": lambda up: up.spark.fail_next(10008),  # service capacity exhausted
            "stream_cut": lambda up: up.spark.drop_next(after=2),
        },
        retry_after_s=None,
        refuses=MappingProxyType(
            {"json_mode": "has no JSON mode", "image_input": "takes text only"}
        ),
    ),
    Family(
        name="spark-http",
        key=SPARK_PASSWORD,
        wrong_key="wrong-password-123",
        model="generalv3.5",
        vision_model="generalv3.5",
        reasoning_model="x1",
        reasoning_extra={},
        reasoning_text=spark_wire.REASONING_TEXT,
        provider=_spark,
        sent=lambda up: [r.body for r in up.spark.http_requests],
        json_switch=_has_json_object,
        json_answers=False,
        faults={
            "error_400": lambda up: up.spark.http_fail_next(
                400, {"error": {"message": "bad request", "type": "invalid_request_error"}}
            ),
            "error_429": lambda up: up.spark.http_fail_next(
                429, _SPARK_HTTP_429, headers={"Retry-After": "5"}
            ),
            "error_500": lambda up: up.spark.http_fail_next(500, {"error": {"message": "boom"}}),
            "overload": lambda up: up.spark.fail_next(10008),  # a 200 carrying code 10008
            "stream_cut": lambda up: up.spark.drop_next(after=2),
        },
        retry_after_s=5.0,
        refuses=MappingProxyType({"image_input": "takes text only"}),
    ),
)
