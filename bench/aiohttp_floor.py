"""The floor under any gateway built on aiohttp: a proxy that does nothing but relay.

Run by ``bench/run.py --gateway-cmd "python bench/aiohttp_floor.py" --label aiohttp-floor``:
it takes the harness's ``serve --config C --host H --port P --workers 1`` arguments, reads
the stand-in upstream's URL from the config, answers the harness's three admin calls with
made-up ids, and relays ``POST /v1/chat/completions`` bodies (streamed or not) to the
upstream through one ``aiohttp.ClientSession``, as tokenyard does — with no auth, routing,
billing, metrics or request log. Its rows say how much of tokenyard's cost per request is
the HTTP framework on both sides, and so what throughput any aiohttp-based design can reach
on this machine (docs/benchmarks.md).
"""

from __future__ import annotations

import aiohttp
import uvloop
from aiohttp import web

from procs import floor_args


def main() -> None:
    args, upstream = floor_args()

    async def made_up(request: web.Request) -> web.Response:
        return web.json_response({"id": "bench", "key": "ty-bench"}, status=201)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        session: aiohttp.ClientSession = request.app["session"]
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        async with session.post(upstream, data=body, headers=headers) as answer:
            if answer.headers.get("Content-Type", "").startswith("text/event-stream"):
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
            return web.Response(body=await answer.read(), content_type="application/json")

    async def session(app: web.Application):  # type: ignore[no-untyped-def]
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
        )
        yield
        await app["session"].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/readyz", ready)
    app.router.add_post("/admin/accounts", made_up)
    app.router.add_post("/admin/accounts/{id}/credits", made_up)
    app.router.add_post("/admin/keys", made_up)
    app.router.add_post("/v1/chat/completions", relay)
    uvloop.install()
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
