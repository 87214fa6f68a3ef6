"""LlamaIndex's OpenAI-compatible LLM class (``llama-index-llms-openai-like``'s ``OpenAILike``)
pointed at the gateway: complete, chat, and both streamed."""

from __future__ import annotations

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike

from tests.clients.conftest import MODEL
from tests.e2e.harness import RunningGateway


def llm(gateway: RunningGateway, key: str) -> OpenAILike:
    return OpenAILike(
        model=MODEL,
        api_base=gateway.base_url + "/v1",
        api_key=key,
        is_chat_model=True,
        context_window=4096,
        max_retries=0,
    )


def test_complete_and_chat(gateway: RunningGateway, key: str) -> None:
    model = llm(gateway, key)
    assert model.complete("Hello LlamaIndex").text == "echo: Hello LlamaIndex"
    answer = model.chat([ChatMessage(role="user", content="Hello chat")])
    assert answer.message.content == "echo: Hello chat"


def test_stream_complete_and_chat(gateway: RunningGateway, key: str) -> None:
    model = llm(gateway, key)
    deltas = [piece.delta or "" for piece in model.stream_complete("Hello stream")]
    assert "".join(deltas) == "echo: Hello stream"
    assert len(deltas) > 2
    chat_deltas = [
        piece.delta or ""
        for piece in model.stream_chat([ChatMessage(role="user", content="Hello chat stream")])
    ]
    assert "".join(chat_deltas) == "echo: Hello chat stream"
