"""One conformance matrix: every upstream adapter × every case, against the stand-ins.

Rows are the families in conformance_cases.py, columns the ``CASES`` below; each cell drives
the adapter directly and asserts the canonical (OpenAI) output: text, tool calls, reasoning,
finish reasons, recorded usage, error class and ``retryable``. A cell a family refuses as
documented asserts an :class:`UpstreamRejected` with the documented message before any
request reaches the stand-in — that is a pass, not a skip.

==========  =====  ======  =====  ===========  =========  ===========  =========
family      plain  stream  tools  tool_stream  json_mode  image_input  reasoning
==========  =====  ======  =====  ===========  =========  ===========  =========
openai      pass   pass    pass   pass         pass       pass         pass [1]
deepseek    pass   pass    pass   pass         pass       pass [2]     pass
anthropic   pass   pass    pass   pass         pass       pass         pass
gemini      pass   pass    pass   pass         pass       pass         pass
zhipu       pass   pass    pass   pass         pass [3]   pass         pass
dashscope   pass   pass    pass   pass         pass [3]   pass         pass
spark-ws    pass   pass    pass   pass         refused    refused      pass
spark-http  pass   pass    pass   pass         pass [3]   refused      pass
==========  =====  ======  =====  ===========  =========  ===========  =========

and ``error_400``, ``error_401``, ``error_429``, ``error_500``, ``overload``, ``stream_cut``
pass for every family. [1] OpenAI returns no reasoning text: ``reasoning_effort`` reaches
the wire and none is invented. [2] forwarded as parts; the stand-in accepts them (real
DeepSeek needs a vision model). [3] the stand-in ignores JSON mode: the switch on the wire
is asserted, not the answer's shape. :func:`test_the_table_above_is_the_data` keeps the
refused cells of this table equal to the families' ``refuses``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from tests.providers.conformance_cases import FAMILIES, Family, Upstreams, start_upstreams
from tokenyard.errors import UpstreamError, UpstreamRejected
from tokenyard.providers.base import Call, ChatResult, Provider
from tokenyard.providers.transport import HttpClient
from tokenyard.wire.usage import Usage

T = TypeVar("T")
Case = Callable[[Upstreams, Family], None]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
HELLO = "hello there"
WEATHER = "what is the weather in Paris?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[Upstreams]:
    with start_upstreams() as started:
        yield started


# -- driving an adapter ---------------------------------------------------------------------


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def drive(up: Upstreams, family: Family, work: Callable[[Provider], Awaitable[T]]) -> T:
    async def main() -> T:
        async with HttpClient() as client:
            provider = family.provider(up, client)
            try:
                return await work(provider)
            finally:
                await provider.close()

    return asyncio.run(main())


def chat(
    up: Upstreams, family: Family, body: dict[str, Any], model: str | None = None
) -> ChatResult:
    call = Call(body=body, upstream_model=model or family.model, api_key=family.key)
    return drive(up, family, lambda provider: provider.chat(call))


def stream(
    up: Upstreams, family: Family, body: dict[str, Any], model: str | None = None
) -> tuple[list[dict[str, Any]], Usage | None, UpstreamError | None]:
    """(decoded chunks, the usage recorded, the error iteration raised if any)."""
    call = Call({**body, "stream": True}, model or family.model, family.key)

    async def work(provider: Provider) -> tuple[list[dict[str, Any]], Usage | None, Any]:
        opened = await provider.open_stream(call)
        chunks: list[dict[str, Any]] = []
        error = None
        try:
            async for payload in opened:
                chunks.append(orjson.loads(payload))
        except UpstreamError as exc:
            error = exc
        finally:
            await opened.aclose()
        return chunks, opened.usage, error

    return drive(up, family, work)


def failure(up: Upstreams, family: Family, key: str | None = None) -> UpstreamError:
    call = Call(body=user(HELLO), upstream_model=family.model, api_key=key or family.key)

    async def work(provider: Provider) -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(call)
        return caught.value

    return drive(up, family, work)


# -- what canonical output looks like -------------------------------------------------------


def completion(result: ChatResult, model: str, finish: str) -> dict[str, Any]:
    """Check the chat.completion envelope and usage; return its one message."""
    body = result.body
    assert body["object"] == "chat.completion"
    assert isinstance(body["id"], str) and body["id"]
    assert isinstance(body["created"], int) and body["model"] == model
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == finish
    assert "logprobs" in choice and choice["logprobs"] is None
    assert choice["message"]["role"] == "assistant"
    assert_usage(result.usage)
    assert body["usage"].items() >= result.usage.to_openai().items()
    message: dict[str, Any] = choice["message"]
    return message


def assert_usage(usage: Usage | None) -> None:
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


def chunk_deltas(chunks: list[dict[str, Any]], model: str, finish: str) -> list[dict[str, Any]]:
    """Check the chunk envelopes and finish reasons; return the deltas in order."""
    assert len(chunks) >= 2
    assert {(c["id"], c["created"], c["model"], c["object"]) for c in chunks} == {
        (chunks[0]["id"], chunks[0]["created"], model, "chat.completion.chunk")
    }
    assert all(not isinstance(c.get("usage"), dict) for c in chunks)  # usage is recorded
    choices = [c["choices"][0] for c in chunks]
    assert [c["finish_reason"] for c in choices] == [None] * (len(chunks) - 1) + [finish]
    assert choices[0]["delta"]["role"] == "assistant"
    return [c["delta"] for c in choices]


def text_of(deltas: list[dict[str, Any]], field: str = "content") -> str:
    return "".join(d.get(field) or "" for d in deltas)


def assert_weather_call(call: dict[str, Any]) -> None:
    assert isinstance(call["id"], str) and call["id"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"], str)
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


# -- the columns --------------------------------------------------------------------------


def plain(up: Upstreams, family: Family) -> None:
    message = completion(chat(up, family, user(HELLO)), family.model, "stop")
    assert message["content"] == f"echo: {HELLO}"
    assert not message.get("tool_calls")


def streamed(up: Upstreams, family: Family) -> None:
    chunks, usage, error = stream(up, family, user(HELLO))
    assert error is None
    deltas = chunk_deltas(chunks, family.model, "stop")
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert text_of(deltas) == f"echo: {HELLO}"
    assert_usage(usage)


def tools(up: Upstreams, family: Family) -> None:
    result = chat(up, family, user(WEATHER, tools=[WEATHER_TOOL]))
    message = completion(result, family.model, "tool_calls")
    (call,) = message["tool_calls"]
    assert_weather_call(call)


def tool_stream(up: Upstreams, family: Family) -> None:
    chunks, usage, error = stream(up, family, user(WEATHER, tools=[WEATHER_TOOL]))
    assert error is None
    deltas = chunk_deltas(chunks, family.model, "tool_calls")
    parts = [part for d in deltas for part in d.get("tool_calls") or ()]
    assert {part["index"] for part in parts} == {0}
    first, *rest = parts
    assert first["type"] == "function" and first["function"]["name"] == "get_weather"
    for later in rest:  # only argument fragments follow, under the same index (and id)
        assert later.get("id", first["id"]) == first["id"] and "name" not in later["function"]
    arguments = "".join(part["function"].get("arguments") or "" for part in parts)
    assert_weather_call({**first, "function": {"name": "get_weather", "arguments": arguments}})
    assert_usage(usage)


def json_mode(up: Upstreams, family: Family) -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": HELLO},
        ],
        "response_format": {"type": "json_object"},
    }
    message = completion(chat(up, family, body), family.model, "stop")
    assert family.json_switch(family.sent(up)[-1])
    if family.json_answers:
        assert json.loads(message["content"]) == {"echo": HELLO}
    else:
        assert message["content"] == f"echo: {HELLO}"


def image_input(up: Upstreams, family: Family) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    body = {"messages": [{"role": "user", "content": content}]}
    message = completion(chat(up, family, body, family.vision_model), family.vision_model, "stop")
    assert message["content"].startswith("echo: what is this")
    assert "image" in message["content"]  # the stand-in saw one image part


def reasoning(up: Upstreams, family: Family) -> None:
    body = user(HELLO, **family.reasoning_extra)
    model = family.reasoning_model
    message = completion(chat(up, family, body, model), model, "stop")
    assert message["content"] == f"echo: {HELLO}"
    chunks, usage, error = stream(up, family, body, model)
    assert error is None
    deltas = chunk_deltas(chunks, model, "stop")
    assert text_of(deltas) == f"echo: {HELLO}"
    assert_usage(usage)
    if family.reasoning_text is None:  # the effort reaches the wire, no text is made up
        assert family.sent(up)[-1]["reasoning_effort"] == family.reasoning_extra["reasoning_effort"]
        assert "reasoning_content" not in message
        assert text_of(deltas, "reasoning_content") == ""
        return
    assert message["reasoning_content"] == family.reasoning_text
    assert text_of(deltas, "reasoning_content") == family.reasoning_text
    first_text = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all(not d.get("reasoning_content") for d in deltas[first_text:])


def rejected(error: UpstreamError) -> None:
    assert isinstance(error, UpstreamRejected)
    assert error.retryable is False and error.status == 400


def retryable(error: UpstreamError) -> None:
    assert not isinstance(error, UpstreamRejected)
    assert error.retryable is True


def error_400(up: Upstreams, family: Family) -> None:
    family.faults["error_400"](up)
    rejected(failure(up, family))


def error_401(up: Upstreams, family: Family) -> None:
    error = failure(up, family, key=family.wrong_key)
    retryable(error)  # our credential, not the client's request: another key may work
    secret = family.wrong_key.rsplit(":", 1)[-1].rsplit(".", 1)[-1]  # Spark/Zhipu: the secret
    assert family.wrong_key not in error.message and secret not in error.message


def error_429(up: Upstreams, family: Family) -> None:
    family.faults["error_429"](up)
    error = failure(up, family)
    retryable(error)
    assert error.code == "upstream_rate_limited"
    assert error.retry_after_s == family.retry_after_s


def error_500(up: Upstreams, family: Family) -> None:
    family.faults["error_500"](up)
    retryable(failure(up, family))


def overload(up: Upstreams, family: Family) -> None:
    family.faults["overload"](up)
    retryable(failure(up, family))


def stream_cut(up: Upstreams, family: Family) -> None:
    family.faults["stream_cut"](up)
    chunks, _, error = stream(up, family, user(HELLO))
    assert error is not None
    retryable(error)
    assert len(chunks) >= 2  # the role chunk and at least one word came first
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert f"echo: {HELLO}".startswith(text_of([c["choices"][0]["delta"] for c in chunks]))


CASES: dict[str, Case] = {
    "plain": plain,
    "stream": streamed,
    "tools": tools,
    "tool_stream": tool_stream,
    "json_mode": json_mode,
    "image_input": image_input,
    "reasoning": reasoning,
    "error_400": error_400,
    "error_401": error_401,
    "error_429": error_429,
    "error_500": error_500,
    "overload": overload,
    "stream_cut": stream_cut,
}
REFUSAL_BODIES: dict[str, dict[str, Any]] = {
    "json_mode": user(HELLO, response_format={"type": "json_object"}),
    "image_input": {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ]
    },
}


def refused(up: Upstreams, family: Family, case: str) -> None:
    """The documented refusal: UpstreamRejected, clear message, nothing sent upstream."""
    before = len(family.sent(up))
    call = Call(body=REFUSAL_BODIES[case], upstream_model=family.model, api_key=family.key)

    async def work(provider: Provider) -> list[UpstreamError]:
        errors: list[UpstreamError] = []
        with pytest.raises(UpstreamRejected) as caught:
            await provider.chat(call)
        errors.append(caught.value)
        with pytest.raises(UpstreamRejected) as caught:
            await provider.open_stream(
                Call({**call.body, "stream": True}, family.model, family.key)
            )
        errors.append(caught.value)
        return errors

    for error in drive(up, family, work):
        rejected(error)
        assert family.refuses[case] in error.message
    assert len(family.sent(up)) == before


# -- the matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_conformance(upstreams: Upstreams, family: Family, case: str) -> None:
    if case in family.refuses:
        refused(upstreams, family, case)
    else:
        CASES[case](upstreams, family)


def test_the_table_above_is_the_data() -> None:
    names = [f.name for f in FAMILIES]
    lines = [line.split() for line in (__doc__ or "").splitlines()]
    header = next(words[1:] for words in lines if words[:1] == ["family"])
    rows = {
        words[0]: [cell for cell in words[1:] if not cell.startswith("[")]
        for words in lines
        if words[:1] and words[0] in names
    }
    assert list(rows) == names and set(header) <= set(CASES)
    for family in FAMILIES:
        cells = zip(header, rows[family.name], strict=True)
        assert {case for case, cell in cells if cell == "refused"} == set(family.refuses)
