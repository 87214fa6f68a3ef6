"""The OpenAI-wire adapter alone, against stand-in upstreams: what it sends for each vendor,
how it classifies failures, how it reads streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.upstreams.openai_wire import Flavor, StandInUpstream, run_in_thread
from tokenyard.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from tokenyard.providers.base import Call
from tokenyard.providers.failure import parse_duration
from tokenyard.providers.openai import OpenAIProvider
from tokenyard.providers.transport import HttpClient
from tokenyard.providers.vendors import GENERIC, VENDORS, vendor_for

T = TypeVar("T")
USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[StandInUpstream, str]]:
    upstream = StandInUpstream(Flavor.OPENAI, api_key="sk-unit")
    url, stop = run_in_thread(upstream)
    yield upstream, url
    stop()


def with_provider(
    url: str, body: Callable[[OpenAIProvider], Awaitable[T]], vendor: str = "openai"
) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = OpenAIProvider(
                name="p",
                base_url=url,
                vendor=VENDORS[vendor],
                client=client,
                timeout_s=5,
                connect_timeout_s=1,
                first_byte_timeout_s=1,
                idle_timeout_s=1,
            )
            return await body(provider)

    return asyncio.run(main())


def encoded(vendor: str, body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    async def run(provider: OpenAIProvider) -> dict[str, Any]:
        import orjson

        result: dict[str, Any] = orjson.loads(
            provider.encode_chat(Call(body=body, upstream_model="up"), stream=stream)
        )
        return result

    return with_provider("http://127.0.0.1:9", run, vendor)


def test_vendor_is_named_or_inferred_from_the_host() -> None:
    assert vendor_for(None, "https://api.deepseek.com/v1").name == "deepseek"
    assert vendor_for(None, "https://dashscope-intl.aliyuncs.com/compatible-mode/v1").name == (
        "dashscope"
    )
    assert vendor_for(
        None, "https://ws-1.cn-beijing.maas.aliyuncs.com/compatible-mode/v1"
    ).name == ("dashscope")
    assert vendor_for(None, "http://10.0.0.5:8000/v1") is GENERIC
    assert vendor_for("vllm", "http://10.0.0.5:8000/v1").name == "vllm"


def test_request_encoding_per_vendor() -> None:
    body = {
        "model": "public",
        "messages": [{"role": "developer", "content": "x"}, *USER],
        "max_completion_tokens": 9,
        "seed": 1,
        "temperature": 1.5,
        "stream_options": {"include_obfuscation": False},
    }
    openai = encoded("openai", body, stream=True)
    assert openai["model"] == "up"
    assert openai["max_completion_tokens"] == 9 and "max_tokens" not in openai
    assert openai["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert openai["messages"][0]["role"] == "developer"
    deepseek = encoded("deepseek", body)
    assert deepseek["max_tokens"] == 9 and "max_completion_tokens" not in deepseek
    assert deepseek["messages"][0]["role"] == "system"
    assert "stream_options" not in deepseek and "stream" not in deepseek
    assert encoded("moonshot", body)["temperature"] == 1.0
    mistral = encoded("mistral", body, stream=True)
    assert mistral["random_seed"] == 1 and "seed" not in mistral
    assert "stream_options" not in mistral
    generic = encoded("generic", {**body, "max_tokens": 3}, stream=True)
    assert generic["max_completion_tokens"] == 9 and generic["max_tokens"] == 3
    assert body["model"] == "public"  # the caller's body is never changed


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (413, False),
        (422, False),
        (401, True),
        (402, True),
        (403, True),
        (404, True),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
        (529, True),
    ],
)
def test_failures_are_classified(
    standin: tuple[StandInUpstream, str], status: int, retryable: bool
) -> None:
    upstream, url = standin
    upstream.fail_next(status)

    async def run(provider: OpenAIProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(
                Call(body={"messages": USER}, upstream_model="gpt-4o-mini", api_key="sk-unit")
            )
        return caught.value

    error = with_provider(url, run)
    assert error.retryable is retryable
    assert isinstance(error, UpstreamRejected) is (not retryable)
    if status == 429:
        assert error.retry_after_s == 1.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 1.0),
        (
            {
                "x-ratelimit-remaining-requests": "17",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-requests": "120ms",
                "x-ratelimit-reset-tokens": "1m30.5s",
            },
            90.5,
        ),
        ({"Retry-After": "3", "x-ratelimit-reset-requests": "20s"}, 3.0),
        ({"retry-after-ms": "250", "Retry-After": "3"}, 0.25),
        ({"x-ratelimit-reset-requests": "soon"}, None),
    ],
)
def test_a_429_is_cooled_for_what_the_rate_limit_headers_say(
    standin: tuple[StandInUpstream, str], headers: dict[str, str], seconds: float | None
) -> None:
    upstream, url = standin
    upstream.fail_next(429, headers=headers)

    async def run(provider: OpenAIProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(
                Call(body={"messages": USER}, upstream_model="gpt-4o-mini", api_key="sk-unit")
            )
        return caught.value

    error = with_provider(url, run)
    if seconds is None:
        assert error.retry_after_s is None
    else:
        assert error.retry_after_s == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m3s", 3723.0), ("", None), ("5", None)],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_wrong_upstream_key_is_retryable_and_scrubbed(standin: tuple[StandInUpstream, str]) -> None:
    _, url = standin

    async def run(provider: OpenAIProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(
                Call(body={"messages": USER}, upstream_model="m", api_key="sk-wrong-secret")
            )
        return caught.value

    error = with_provider(url, run)
    assert error.retryable
    assert "sk-wrong-secret" not in error.message


def test_connection_refused_and_stalls(standin: tuple[StandInUpstream, str]) -> None:
    upstream, url = standin

    async def refused(provider: OpenAIProvider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(Call(body={"messages": USER}, upstream_model="m"))
        return caught.value

    assert with_provider("http://127.0.0.1:9/v1", refused).retryable
    upstream.stall_next(2)

    async def stalled(provider: OpenAIProvider) -> None:
        with pytest.raises(UpstreamTimeout):
            await provider.open_stream(
                Call(body={"messages": USER}, upstream_model="m", api_key="sk-unit")
            )

    with_provider(url, stalled)


def test_a_stream_broken_mid_way_raises_after_its_chunks(
    standin: tuple[StandInUpstream, str],
) -> None:
    upstream, url = standin
    upstream.break_stream_next(3)

    async def run(provider: OpenAIProvider) -> list[bytes]:
        stream = await provider.open_stream(
            Call(body={"messages": USER}, upstream_model="m", api_key="sk-unit")
        )
        got: list[bytes] = []
        with pytest.raises(UpstreamError, match="mid-stream"):
            async for chunk in stream:
                got.append(chunk)
        await stream.aclose()
        return got

    assert len(with_provider(url, run)) == 3


def test_stream_usage_is_taken_out_and_recorded(standin: tuple[StandInUpstream, str]) -> None:
    _, url = standin

    async def run(provider: OpenAIProvider) -> tuple[list[bytes], Any]:
        stream = await provider.open_stream(
            Call(body={"messages": USER}, upstream_model="m", api_key="sk-unit")
        )
        chunks = [chunk async for chunk in stream]
        await stream.aclose()
        return chunks, stream.usage

    chunks, usage = with_provider(url, run)
    assert all(b'"usage":{' not in c for c in chunks)
    assert usage is not None and usage.completion_tokens == 3
