"""The HTTP client the gateway calls upstreams with keeps nothing of one call for the next
but the connection: a cookie an upstream sets while answering one tenant's request must not
be sent with another tenant's."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tokenyard.config.schema import ProviderConfig
from tokenyard.providers.registry import build_upstreams


def test_a_cookie_set_by_an_upstream_is_never_sent_back() -> None:
    async def main() -> list[str | None]:
        seen: list[str | None] = []

        async def answer(request: web.Request) -> web.Response:
            seen.append(request.headers.get("Cookie"))
            response = web.json_response({"ok": True})
            response.set_cookie("upstream_session", "tenant-a", path="/")
            return response

        app = web.Application()
        app.router.add_post("/v1/chat/completions", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "localhost", 0)  # a host name: cookie jars keep its cookies
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://localhost:{port}/v1"
        config = ProviderConfig.model_validate(
            {"api": "openai", "base_url": url, "keys": [{"key": "sk-test"}]}
        )
        upstreams = await build_upstreams({"p": config})
        try:
            (client,) = upstreams.clients
            for _ in range(2):
                response = await client.post(
                    f"{url}/chat/completions", b"{}", {}, connect_timeout_s=5
                )
                assert response.status == 200
                assert "upstream_session=tenant-a" in response.headers["Set-Cookie"]
                assert await response.read() == b'{"ok": true}'
                response.release()
            assert client.connections() == (0, 1)  # one connection, kept alive for both
        finally:
            await upstreams.close()
            await runner.cleanup()
        return seen

    seen = asyncio.run(main())
    assert seen == [None, None]
