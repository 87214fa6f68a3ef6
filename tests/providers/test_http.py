"""``UpstreamHttp.post``'s first-byte timeout, which the transport's one timer for the headers
enforces (its ``deadline``): headers that do not come, and an error page that does not come
whole, by ``first_byte_timeout_s`` after the call began are the same retryable
``UpstreamTimeout``, and their connection is closed; an error page in time is the mapper's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import pytest

from tests.providers.test_transport import Handler, eventually, pooled, run, serving, writing
from tokenyard.errors import UpstreamError, UpstreamTimeout
from tokenyard.providers.http import UpstreamHttp
from tokenyard.providers.transport import HttpClient

pytestmark = pytest.mark.usefixtures("any_loop")

TIMED_OUT = "provider p did not answer in time"


def refused(
    status: int, body: bytes, headers: Mapping[str, str], secret: str | None
) -> UpstreamError:
    return UpstreamError(f"refused: {status} {body.decode()}", retryable=False)


def upstream_http(client: HttpClient, first_byte_timeout_s: float) -> UpstreamHttp:
    return UpstreamHttp(
        name="p",
        client=client,
        timeout_s=5,
        connect_timeout_s=0.5,
        first_byte_timeout_s=first_byte_timeout_s,
        idle_timeout_s=5,
        map_error=refused,
    )


def timed_out(handler: Handler, *, stream: bool) -> tuple[str, float, tuple[int, int], bool]:
    """What a call to ``handler``'s upstream with a first-byte timeout of 0.2 s raises, how
    long it took, the pool's counts after, and whether the upstream saw the connection end."""

    async def main() -> tuple[str, float, tuple[int, int], bool]:
        async with serving(handler) as up, pooled() as client:
            http = upstream_http(client, 0.2)
            start = time.monotonic()
            with pytest.raises(UpstreamTimeout) as caught:
                await http.post(up.url + "/v1", b"{}", {}, None, stream=stream)
            waited = time.monotonic() - start
            hung_up = await eventually(lambda: up.hangups == 1)
            return caught.value.message, waited, client.connections(), hung_up

    return run(main())


@pytest.mark.parametrize("stream", [False, True])
def test_headers_not_in_by_the_first_byte_timeout_are_an_upstream_timeout(stream: bool) -> None:
    message, waited, connections, hung_up = timed_out(writing(), stream=stream)  # no answer
    assert message == TIMED_OUT
    assert 0.15 <= waited < 0.5
    assert connections == (0, 0)
    assert hung_up


def test_an_error_page_not_whole_by_the_first_byte_timeout_is_an_upstream_timeout() -> None:
    """The headers came at once, the body never does: the rest of the same 0.2 s, no more."""
    half = writing(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 20\r\n\r\n0123456789")
    message, waited, connections, hung_up = timed_out(half, stream=False)
    assert message == TIMED_OUT
    assert 0.15 <= waited < 0.5
    assert connections == (0, 0)
    assert hung_up


def test_an_error_page_in_time_is_the_mappers_and_its_connection_is_kept() -> None:
    async def main() -> tuple[str, int | None, tuple[int, int]]:
        page = writing(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")
        async with serving(page) as up, pooled() as client:
            with pytest.raises(UpstreamError) as caught:
                await upstream_http(client, 0.2).post(up.url + "/v1", b"{}", {}, None)
            await asyncio.sleep(0.3)  # past the deadline: nothing of it is left to fire
            return caught.value.message, caught.value.upstream_status, client.connections()

    assert run(main()) == ("refused: 500 oops", 500, (0, 1))
