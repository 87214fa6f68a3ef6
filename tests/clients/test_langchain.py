"""``langchain-openai``'s ``ChatOpenAI`` pointed at the gateway: invoke, stream, a tool call
through ``bind_tools`` and ``with_structured_output`` into a pydantic model (by JSON schema,
LangChain's default, and by function calling)."""

from __future__ import annotations

from typing import Literal

import pytest
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.clients.conftest import MODEL
from tests.e2e.harness import RunningGateway


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"sunny in {city}"


class City(BaseModel):
    """A city the user mentioned."""

    name: str
    population: int


def chat(gateway: RunningGateway, key: str) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=gateway.base_url + "/v1", api_key=key, max_retries=0)  # type: ignore[arg-type]


def test_invoke_and_stream(gateway: RunningGateway, key: str) -> None:
    llm = chat(gateway, key)
    assert llm.invoke("Hello LangChain").content == "echo: Hello LangChain"
    pieces = [chunk.content for chunk in llm.stream("Hello stream")]
    assert "".join(str(piece) for piece in pieces) == "echo: Hello stream"
    assert len(pieces) > 2  # really streamed, not one block


def test_bind_tools_produces_a_tool_call(gateway: RunningGateway, key: str) -> None:
    message = chat(gateway, key).bind_tools([get_weather]).invoke("What is the weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather"  # type: ignore[attr-defined]
    assert message.tool_calls[0]["args"] == {"city": "Paris"}  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(
    gateway: RunningGateway, key: str, method: Literal["json_schema", "function_calling"]
) -> None:
    structured = chat(gateway, key).with_structured_output(City, method=method)
    assert structured.invoke("Paris") == City(name="Paris", population=1)
