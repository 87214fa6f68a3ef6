"""The official ``anthropic`` Python SDK against ``/v1/messages``, sync and async, streamed
and not, in front of an OpenAI-wire model."""

from __future__ import annotations

import asyncio

import anthropic

from tests.clients.conftest import MODEL
from tests.e2e.harness import RunningGateway


def test_sync_message_and_stream(gateway: RunningGateway, key: str) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
    message = client.messages.create(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Hello!"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: Hello!"
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Hello stream!"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: Hello stream!"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_async_message_and_stream(gateway: RunningGateway, key: str) -> None:
    async def main() -> tuple[str, str]:
        client = anthropic.AsyncAnthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
        async with client:
            message = await client.messages.create(
                model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "async hi"}]
            )
            block = message.content[0]
            assert block.type == "text"
            async with client.messages.stream(
                model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "async flow"}]
            ) as stream:
                text = "".join([piece async for piece in stream.text_stream])
            return block.text, text

    plain, streamed = asyncio.run(main())
    assert plain == "echo: async hi"
    assert streamed == "echo: async flow"
