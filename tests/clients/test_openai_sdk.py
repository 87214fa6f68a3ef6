"""The official ``openai`` Python SDK, sync and async, streamed and not, with tools — exactly
the calls the README's "Clients" section shows."""

from __future__ import annotations

import asyncio
import json

from openai import AsyncOpenAI, OpenAI

from tests.clients.conftest import MODEL
from tests.e2e.harness import RunningGateway

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def sync_client(gateway: RunningGateway, key: str) -> OpenAI:
    return OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0)


def async_client(gateway: RunningGateway, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0)


def test_sync_completion(gateway: RunningGateway, key: str) -> None:
    client = sync_client(gateway, key)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello!"}]
    )
    assert completion.choices[0].message.content == "echo: Hello!"
    assert completion.usage is not None and completion.usage.completion_tokens == 2


def test_sync_stream(gateway: RunningGateway, key: str) -> None:
    client = sync_client(gateway, key)
    stream = client.chat.completions.create(
        model=MODEL,
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Hello streaming world"}],
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text == "echo: Hello streaming world"
    assert usage is not None and usage.total_tokens > 0


def test_sync_tool_call(gateway: RunningGateway, key: str) -> None:
    client = sync_client(gateway, key)
    completion = client.chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


def test_async_completion_stream_and_tools(gateway: RunningGateway, key: str) -> None:
    async def main() -> tuple[str | None, str, str]:
        client = async_client(gateway, key)
        async with client:
            plain = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "async hello"}]
            )
            text = ""
            stream = await client.chat.completions.create(
                model=MODEL, stream=True, messages=[{"role": "user", "content": "async stream"}]
            )
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            tooled = await client.chat.completions.create(
                model=MODEL,
                tools=[WEATHER_TOOL],  # type: ignore[list-item]
                messages=[{"role": "user", "content": "weather in Paris please"}],
            )
            call = (tooled.choices[0].message.tool_calls or [])[0]
            return plain.choices[0].message.content, text, call.function.name  # type: ignore[union-attr]

    plain, streamed, tool = asyncio.run(main())
    assert plain == "echo: async hello"
    assert streamed == "echo: async stream"
    assert tool == "get_weather"


def test_json_schema_structured_output(gateway: RunningGateway, key: str) -> None:
    """``response_format: json_schema`` is passed through; the SDK's ``parse`` helper works."""
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    client = sync_client(gateway, key)
    completion = client.chat.completions.parse(
        model=MODEL, response_format=City, messages=[{"role": "user", "content": "Paris"}]
    )
    parsed = completion.choices[0].message.parsed
    assert parsed == City(name="Paris", population=1)
