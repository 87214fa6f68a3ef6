"""A client of the gateway for the fault tests: one connection per request, closed after it
(so that the gateway's idle baseline of tasks holds), answers read to their end or left."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.harness import RunningGateway

BIG = 65 * 1024 * 1024
"""Bytes of an oversized answer: over the gateway's 64 MiB cap (providers/http.py)."""
SECRETS = ("sk-primary-secret", "sk-backup-secret", "sk-dead-secret", "sk-ant-faults-secret")


def body(model: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    chat: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "tell me a story"}],
        **extra,
    }
    if stream:
        chat.update(stream=True, stream_options={"include_usage": True})
    return chat


def complete(gateway: RunningGateway, key: str, model: str, **extra: Any) -> httpx.Response:
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        return client.post(
            "/v1/chat/completions",
            json=body(model, **extra),
            headers={"Authorization": f"Bearer {key}"},
        )


@dataclass
class Streamed:
    status: int
    headers: httpx.Headers
    events: list[Any] = field(default_factory=list)  # decoded data events, "[DONE]" as is
    error: dict[str, Any] | None = None  # the body of a non-200 answer

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [e for e in self.events if isinstance(e, dict) and e.get("choices")]

    @property
    def text(self) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in self.chunks)

    @property
    def usage(self) -> dict[str, Any]:
        (last,) = [e for e in self.events if isinstance(e, dict) and e.get("usage")]
        usage: dict[str, Any] = last["usage"]
        return usage

    @property
    def error_event(self) -> dict[str, Any] | None:
        errors = [e for e in self.events if isinstance(e, dict) and "error" in e]
        return errors[-1]["error"] if errors else None


def stream(gateway: RunningGateway, key: str, model: str, **extra: Any) -> Streamed:
    """Read a streamed answer to its end."""
    with (
        httpx.Client(base_url=gateway.base_url, timeout=30) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json=body(model, stream=True, **extra),
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        if response.status_code != 200:
            response.read()
            return Streamed(response.status_code, response.headers, error=response.json())
        got = Streamed(response.status_code, response.headers)
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                got.events.append(data if data == "[DONE]" else json.loads(data))
        return got


def assert_error_shape(error: dict[str, Any], type_: str, code: str | None) -> None:
    """The OpenAI error object, with no upstream key in it."""
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["type"], error["code"]) == (type_, code), error
    assert not any(secret in error["message"] for secret in SECRETS)
    assert "Traceback" not in error["message"]
