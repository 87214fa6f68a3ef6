"""The SSRF guard of image downloads: address rules, redirects, size and time limits.

Image servers are real aiohttp servers on loopback addresses (127.0.0.1 and 127.0.0.2, both
on the loopback interface); the fetcher reaches one of them only through ``allow_networks``,
exactly as an operator would allow an internal image host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from tokenyard.errors import UpstreamRejected
from tokenyard.providers.image_fetch import ImageFetcher, refused_kind

T = TypeVar("T")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
TRUSTED = ipaddress.ip_network("127.0.0.2/32")


@dataclass
class ImageServer:
    base_url: str
    hits: list[str] = field(default_factory=list)


def _app(server: ImageServer) -> web.Application:
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        server.hits.append(request.path_qs)
        response: web.StreamResponse = await handler(request)
        return response

    async def cat(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def chain(request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return web.Response(body=PNG, content_type="image/png")
        raise web.HTTPFound(f"/chain/{left - 1}")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        while True:  # only the client's byte cap ends this
            await response.write(b"\0" * 4096)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=PNG, content_type="image/png")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=PNG, content_type="image/png", headers={"Content-Encoding": "gzip"}
        )

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application(middlewares=[web.middleware(record)])
    for path, handler in (
        ("/cat.png", cat),
        ("/redirect", redirect),
        ("/chain/{left}", chain),
        ("/endless", endless),
        ("/slow", slow),
        ("/page", page),
        ("/gzipped", gzipped),
        ("/missing", missing),
    ):
        app.router.add_get(path, handler)
    return app


@asynccontextmanager
async def image_server(host: str = "127.0.0.1") -> AsyncIterator[ImageServer]:
    server = ImageServer(base_url="")
    runner = web.AppRunner(_app(server), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


def fetcher(**options: Any) -> ImageFetcher:
    settings: dict[str, Any] = {"max_bytes": 1 << 20, "timeout_s": 5, "max_redirects": 3}
    return ImageFetcher(**{**settings, **options})


def run(body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(body())


async def refused(fetch: ImageFetcher, url: str) -> UpstreamRejected:
    with pytest.raises(UpstreamRejected) as caught:
        await fetch.fetch([url])
    return caught.value


# -- the address rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1", "link-local (cloud metadata)"),
        ("fd00:ec2::254", "unique-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 carrying 127.0.0.1
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("100.100.100.200", "shared (carrier-grade NAT)"),  # Alibaba Cloud metadata
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("192.0.2.10", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    assert refused_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert refused_kind(ipaddress.ip_address(address)) is None


# -- refusals before and at the connection -------------------------------------------------


def test_loopback_and_private_urls_are_refused_before_any_request() -> None:
    async def main() -> dict[str, str]:
        async with image_server() as server:
            port = server.base_url.rsplit(":", 1)[1]
            urls = [
                f"http://localhost:{port}/cat.png",
                f"http://127.0.0.1:{port}/cat.png",
                f"http://[::1]:{port}/cat.png",
                f"http://[::ffff:127.0.0.1]:{port}/cat.png",
                f"http://2130706433:{port}/cat.png",
                f"http://0177.0.0.1:{port}/cat.png",
                f"http://127.1:{port}/cat.png",
                f"http://0x7f.0.0.1:{port}/cat.png",
                "http://10.0.0.1/cat.png",
                "http://172.16.5.4/cat.png",
                "http://192.168.0.1/cat.png",
                "http://169.254.169.254/latest/meta-data/",
                "http://100.100.100.200/latest/meta-data/",
                "ftp://example.com/cat.png",
                "file:///etc/passwd",
            ]
            found = {}
            for url in urls:
                error = await refused(fetcher(), url)
                found[url] = error.message
                assert (error.status, error.type, error.code) == (
                    400,
                    "invalid_request_error",
                    "invalid_image_url",
                )
            assert server.hits == []
            return {url.replace(port, "PORT"): message for url, message in found.items()}

    messages = run(main)
    assert messages["http://localhost:PORT/cat.png"] == (
        "image URL refused: host 'localhost' resolves to a loopback address"
    )
    assert messages["http://127.0.0.1:PORT/cat.png"] == (
        "image URL refused: host '127.0.0.1' is a loopback address"
    )
    assert "is a loopback address" in messages["http://[::1]:PORT/cat.png"]
    assert "is a loopback address" in messages["http://[::ffff:127.0.0.1]:PORT/cat.png"]
    for legacy in ("2130706433", "0177.0.0.1", "127.1", "0x7f.0.0.1"):
        assert "non-standard form of an IP address" in messages[f"http://{legacy}:PORT/cat.png"]
    assert "is a private address" in messages["http://10.0.0.1/cat.png"]
    assert "is a private address" in messages["http://172.16.5.4/cat.png"]
    assert "is a private address" in messages["http://192.168.0.1/cat.png"]
    assert "cloud metadata" in messages["http://169.254.169.254/latest/meta-data/"]
    assert "carrier-grade NAT" in messages["http://100.100.100.200/latest/meta-data/"]
    assert "http(s)" in messages["ftp://example.com/cat.png"]
    assert "http(s)" in messages["file:///etc/passwd"]


class StaticResolver(AbstractResolver):
    """DNS as a table: what a hostile DNS server could answer."""

    table = {"mixed.example": ["93.184.215.14", "10.0.0.7"], "public.example": ["93.184.215.14"]}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


def test_a_host_with_any_private_address_is_refused_without_naming_it() -> None:
    async def main() -> UpstreamRejected:
        return await refused(fetcher(resolver=StaticResolver), "http://mixed.example/cat.png")

    message = run(main).message
    assert message == "image URL refused: host 'mixed.example' resolves to a private address"
    assert "10.0.0.7" not in message


# -- allowed hosts, redirects ----------------------------------------------------------------


def test_an_allowed_network_is_fetched_and_redirects_into_loopback_are_refused() -> None:
    async def main() -> None:
        async with image_server("127.0.0.2") as trusted, image_server() as inner:
            fetch = fetcher(allow_networks=[TRUSTED])
            images = await fetch.fetch([f"{trusted.base_url}/cat.png"])
            image = images[f"{trusted.base_url}/cat.png"]
            assert (image.media_type, image.data) == ("image/png", PNG)
            port = inner.base_url.rsplit(":", 1)[1]
            for target in (f"{inner.base_url}/cat.png", f"http://localhost:{port}/cat.png"):
                error = await refused(fetch, f"{trusted.base_url}/redirect?to={target}")
                assert error.message.startswith("image URL refused: it redirects to a host")
                assert "loopback address" in error.message
            assert inner.hits == []
            assert len(trusted.hits) == 3

    run(main)


def test_redirects_are_followed_up_to_the_limit() -> None:
    async def main() -> None:
        async with image_server("127.0.0.2") as trusted:
            fetch = fetcher(allow_networks=[TRUSTED], max_redirects=2)
            images = await fetch.fetch([f"{trusted.base_url}/chain/2"])
            assert images[f"{trusted.base_url}/chain/2"].data == PNG
            with pytest.raises(UpstreamRejected, match="redirects more than 2 times"):
                await fetch.fetch([f"{trusted.base_url}/chain/3"])

    run(main)


# -- size, time, type ----------------------------------------------------------------------


def test_the_byte_cap_stops_an_endless_body_while_it_streams() -> None:
    message = {}

    async def main() -> None:
        async with image_server("127.0.0.2") as trusted:
            fetch = fetcher(allow_networks=[TRUSTED], max_bytes=100_000, timeout_s=30)
            with pytest.raises(UpstreamRejected) as caught:
                await fetch.fetch([f"{trusted.base_url}/endless"])
            message["endless"] = caught.value.message
            small = fetcher(allow_networks=[TRUSTED], max_bytes=len(PNG) + 10)
            one = f"{trusted.base_url}/cat.png"
            assert (await small.fetch([one, one]))[one].data == PNG  # one download only
            with pytest.raises(UpstreamRejected, match="bytes at most"):
                await small.fetch([one, f"{trusted.base_url}/chain/0"])  # the sum is capped

    run(main)
    assert message["endless"] == "the images of one request may have 100000 bytes at most"


def test_a_slow_server_fails_at_the_time_limit() -> None:
    async def main() -> None:
        async with image_server("127.0.0.2") as trusted:
            fetch = fetcher(allow_networks=[TRUSTED], timeout_s=0.5)
            with pytest.raises(UpstreamRejected, match=r"took longer than 0\.5 s"):
                await fetch.fetch([f"{trusted.base_url}/slow"])

    run(main)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/page", "does not point to an image (Content-Type 'text/html')"),
        ("/gzipped", "content-encoded body"),
        ("/missing", "answered HTTP 404"),
    ],
)
def test_only_plain_image_answers_are_taken(path: str, message: str) -> None:
    async def main() -> UpstreamRejected:
        async with image_server("127.0.0.2") as trusted:
            return await refused(fetcher(allow_networks=[TRUSTED]), trusted.base_url + path)

    assert message in run(main).message
