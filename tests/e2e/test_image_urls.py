"""Image URLs through the real gateway to a Gemini stand-in: the gateway downloads the image
(Gemini's native API takes bytes, not URLs) from an image server on a loopback address —
only because the operator allowed that network — and refuses it everywhere else."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.e2e.harness import RunningGateway, start_gateway
from tests.upstreams import background, gemini_wire

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
IMAGE_HOST = "127.0.0.2"  # on the loopback interface, like 127.0.0.1
MAX_BYTES = 16 * 1024


@dataclass
class ImageHost:
    """A real HTTP image server; ``hits`` lists the paths it was asked for."""

    hits: list[str] = field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        async def serve(request: web.Request) -> web.StreamResponse:
            self.hits.append(request.path)
            if request.path == "/slow.png":
                await self._stopping.wait()  # far past the gateway's time limit
            if request.path == "/big.png":
                return web.Response(body=b"\0" * (MAX_BYTES * 4), content_type="image/png")
            return web.Response(body=PNG, content_type="image/png")

        app = web.Application()
        app.router.add_get("/{name}", serve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, IMAGE_HOST, 0).start()
        self.base_url = f"http://{IMAGE_HOST}:{self._runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Setup:
    gateway: RunningGateway
    gemini: gemini_wire.GeminiStandIn
    images: ImageHost
    account: str
    key: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    stops: list[Callable[[], None]] = []
    gemini = gemini_wire.GeminiStandIn(api_key="gm-images")
    gemini_url, stop = gemini_wire.run_in_thread(gemini)
    stops.append(stop)
    images = ImageHost()
    _, stop = background.run_in_thread(images, "image-host")
    stops.append(stop)
    directory = tmp_path_factory.mktemp("images")
    images_open = f"{{max_bytes: {MAX_BYTES}, timeout_s: 1, allow_networks: [{IMAGE_HOST}/32]}}"
    price = "{input: 1, output: 1}"
    config = f"""
database: sqlite:///{directory / "tokenyard.db"}
admin_key: admin-images-key-1234
providers:
  trusting: {{api: gemini, base_url: {gemini_url}, keys: [{{key: gm-images}}], images: {images_open}}}
  default: {{api: gemini, base_url: {gemini_url}, keys: [{{key: gm-images}}]}}
models:
  trusting: {{capabilities: [vision], deployments: [{{provider: trusting, model: gemini-2.5-flash, price: {price}}}]}}
  default: {{capabilities: [vision], deployments: [{{provider: default, model: gemini-2.5-flash, price: {price}}}]}}
"""
    gateway = start_gateway(directory, config)
    admin = {"Authorization": "Bearer admin-images-key-1234"}
    account = gateway.http.post("/admin/accounts", json={"name": "img"}, headers=admin).json()["id"]
    gateway.http.post(
        f"/admin/accounts/{account}/credits",
        json={"amount": "100", "reference": "r"},
        headers=admin,
    )
    key = gateway.http.post(
        "/admin/keys", json={"account_id": account, "name": "k"}, headers=admin
    ).json()["key"]
    yield Setup(gateway, gemini, images, account, key)
    gateway.stop()
    for stop in stops:
        stop()


def ask(setup: Setup, model: str, url: str, *, stream: bool = False) -> httpx.Response:
    content = [
        {"type": "text", "text": "what is in this picture"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
    ]
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return setup.gateway.post("/v1/chat/completions", setup.key, json=body)


def text_of(answer: httpx.Response, stream: bool) -> str:
    if not stream:
        content: str = answer.json()["choices"][0]["message"]["content"]
        return content
    events = [line[6:] for line in answer.text.splitlines() if line.startswith("data: {")]
    chunks = [json.loads(event) for event in events]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def reserved(setup: Setup) -> Decimal:
    answer = setup.gateway.http.get(
        f"/admin/accounts/{setup.account}",
        headers={"Authorization": "Bearer admin-images-key-1234"},
    )
    return Decimal(answer.json()["reserved"])


@pytest.mark.parametrize("stream", [False, True])
def test_an_allowed_image_host_is_downloaded_and_sent_inline(setup: Setup, stream: bool) -> None:
    setup.gemini.reset()
    answer = ask(setup, "trusting", f"{setup.images.base_url}/cat.png", stream=stream)
    assert answer.status_code == 200, answer.text
    assert text_of(answer, stream) == "echo: what is in this picture [1 images]"
    parts = setup.gemini.requests[-1].body["contents"][0]["parts"]
    assert parts[0] == {"text": "what is in this picture"}
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == PNG


def test_a_loopback_image_host_is_refused_without_the_allowlist(setup: Setup) -> None:
    setup.gemini.reset()
    hits = len(setup.images.hits)
    answer = ask(setup, "default", f"{setup.images.base_url}/cat.png")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_image_url"
    assert error["message"] == f"image URL refused: host '{IMAGE_HOST}' is a loopback address"
    assert len(setup.images.hits) == hits  # the image server saw no request
    assert setup.gemini.requests == []  # nor did Gemini
    for metadata in ("http://169.254.169.254/latest/meta-data/", "http://localhost/cat.png"):
        refused = ask(setup, "trusting", metadata)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_image_url"
    assert reserved(setup) == 0


def test_an_image_over_max_bytes_is_refused(setup: Setup) -> None:
    answer = ask(setup, "trusting", f"{setup.images.base_url}/big.png")
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        f"the images of one request may have {MAX_BYTES} bytes at most"
    )


def test_a_slow_image_host_is_refused_at_the_time_limit(setup: Setup) -> None:
    answer = ask(setup, "trusting", f"{setup.images.base_url}/slow.png", stream=True)
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "message": "fetching the image URLs took longer than 1 s",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_image_url",
    }
    assert reserved(setup) == 0


def test_an_anthropic_url_image_source_is_downloaded_too(setup: Setup) -> None:
    """Anthropic SDK clients name images by ``source.type: url``; for Gemini the gateway
    downloads them like OpenAI image URLs."""
    setup.gemini.reset()
    image = {"type": "image", "source": {"type": "url", "url": f"{setup.images.base_url}/a.png"}}
    body = {
        "model": "trusting",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, image]}],
    }
    answer = setup.gateway.http.post("/v1/messages", json=body, headers={"x-api-key": setup.key})
    assert answer.status_code == 200, answer.text
    parts = setup.gemini.requests[-1].body["contents"][0]["parts"]
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == PNG
    refused = setup.gateway.http.post(
        "/v1/messages", json={**body, "model": "default"}, headers={"x-api-key": setup.key}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert "loopback address" in refused.json()["error"]["message"]
