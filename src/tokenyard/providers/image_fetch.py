"""Downloading the images a client names by URL, for upstreams that need the bytes inline.

A gateway that fetches URLs for its clients is a server-side request forgery tool unless it
refuses addresses its clients could not reach themselves. The rules:

* Only ``http`` and ``https``. An address is refused unless it is globally routable:
  loopback, private, link-local (which holds the cloud metadata service 169.254.169.254),
  unique-local, shared (carrier-grade NAT, 100.64.0.0/10, also Alibaba's metadata address),
  multicast, reserved and unspecified addresses are all refused, and an IPv4 address inside
  IPv6 (``::ffff:127.0.0.1``, 6to4) is judged as the IPv4 address it carries. The legacy
  numeric forms the C resolver still accepts (``2130706433``, ``0177.0.0.1``, ``127.1``)
  are refused outright. Networks in ``allow_networks`` are trusted (internal image hosts).
* The check sits where the connection is made, not in front of it: the resolver refuses a
  host when *any* of its addresses is refused, and the socket factory checks the very
  address each socket connects to. So there is no window between a check and a second DNS
  answer (DNS rebinding), redirects are checked like the first URL, and IP literals — which
  aiohttp never hands to a resolver — are checked too.
* Limits: at most ``max_redirects`` redirects, ``timeout_s`` for all the downloads of one
  request, and ``max_bytes`` for their bodies together, counted while the body streams in.
  Bodies must be ``image/*`` and not content-encoded (a compressed body could expand past
  the limit); ``Accept-Encoding: identity`` asks for that.

Every refusal is an :class:`UpstreamRejected` (400 ``invalid_request_error``, code
``invalid_image_url``) that names the rule and the host the client sent, never an address
the gateway resolved or a redirect target.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from tokenyard.errors import UpstreamRejected

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_CHUNK = 64 * 1024
_HEADERS = {"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "tokenyard"}


def refused_kind(address: Address) -> str | None:
    """What kind of non-public address this is (the rule that refuses it), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour
        if carried is not None:
            return refused_kind(carried)
        if address in _UNIQUE_LOCAL:
            return "unique-local"
    elif address in _SHARED:
        return "shared (carrier-grade NAT)"
    for kind, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata)", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ):
        if hit:
            return kind
    return None if address.is_global else "non-public"


def literal_address(host: str) -> Address | None:
    """The address an IP-literal host names; None for a host name. Raises UpstreamRejected
    for a legacy numeric form (decimal, octal, hex, shortened) that resolvers still map."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return None
    raise UpstreamRejected(
        f"image URL refused: host {host!r} is a non-standard form of an IP address",
        code="invalid_image_url",
    )


@dataclass(frozen=True)
class FetchedImage:
    media_type: str
    data: bytes

    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


class _Refused(OSError):
    """Raised inside aiohttp's connector; the guard keeps the client-facing reason."""


class _Guard(AbstractResolver):
    """The address policy of one request's downloads, as aiohttp's resolver and socket
    factory. ``reason`` holds the first refusal, phrased for the client."""

    def __init__(self, allow: Sequence[Network], inner: AbstractResolver) -> None:
        self._allow = allow
        self._inner = inner
        self._host = ""
        self._literal: Address | None = None
        self.reason: str | None = None

    def requesting(self, host: str) -> None:
        """The host of the URL the client sent, which refusals may name."""
        self._host, self._literal = host, literal_address(host)

    def _kind(self, address: Address) -> str | None:
        if any(address in network for network in self._allow):
            return None
        return refused_kind(address)

    def _refuse(self, kind: str, *, requested: bool, resolved: bool) -> _Refused:
        verb = "resolves to" if resolved else "is"
        if requested:
            self.reason = f"image URL refused: host {self._host!r} {verb} a {kind} address"
        else:
            self.reason = f"image URL refused: it redirects to a host that {verb} a {kind} address"
        return _Refused(self.reason)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            kind = self._kind(ipaddress.ip_address(result["host"].split("%")[0]))
            if kind is not None:
                raise self._refuse(kind, requested=host == self._host, resolved=True)
        return results

    async def close(self) -> None:
        await self._inner.close()

    def socket(self, addr_info: AddrInfoType) -> socket.socket:
        """aiohttp's socket factory: the last check, on the address about to be dialled."""
        family, type_, proto, _, sockaddr = addr_info
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        kind = self._kind(address)
        if kind is not None:
            raise self._refuse(kind, requested=address == self._literal, resolved=False)
        return socket.socket(family=family, type=type_, proto=proto)


class ImageFetcher:
    """Downloads image URLs under the rules above. One aiohttp session per request's
    downloads, without connection reuse or DNS cache, so every connection is checked."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        max_redirects: int,
        allow_networks: Iterable[Network] = (),
        resolver: Callable[[], AbstractResolver] = ThreadedResolver,
    ) -> None:
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._allow = tuple(allow_networks)
        self._resolver = resolver

    async def fetch(self, urls: Iterable[str]) -> dict[str, FetchedImage]:
        """Each distinct URL's image, fetched one after another; the time and byte limits
        hold for all of them together."""
        wanted = list(dict.fromkeys(urls))
        for url in wanted:
            _check_url(url)
        guard = _Guard(self._allow, self._resolver())
        connector = aiohttp.TCPConnector(
            resolver=guard, use_dns_cache=False, force_close=True, socket_factory=guard.socket
        )
        images: dict[str, FetchedImage] = {}
        budget = self._max_bytes
        try:
            async with asyncio.timeout(self._timeout_s):
                async with aiohttp.ClientSession(
                    connector=connector, auto_decompress=False, trust_env=False
                ) as session:
                    for url in wanted:
                        guard.requesting(URL(url).host or "")
                        image = await self._get(session, url, budget)
                        budget -= len(image.data)
                        images[url] = image
        except TimeoutError:
            raise _rejected(
                f"fetching the image URLs took longer than {self._timeout_s:g} s"
            ) from None
        except aiohttp.TooManyRedirects:
            raise _rejected(
                f"the image URL redirects more than {self._max_redirects} times"
            ) from None
        except (aiohttp.ClientError, OSError):
            raise _rejected(guard.reason or "the image URL could not be fetched") from None
        return images

    async def _get(self, session: aiohttp.ClientSession, url: str, budget: int) -> FetchedImage:
        async with session.get(
            url,
            headers=_HEADERS,
            allow_redirects=self._max_redirects > 0,
            max_redirects=self._max_redirects + 1,  # aiohttp stops at the n-th, not after it
        ) as response:
            if response.status != 200:
                raise _rejected(f"the image server answered HTTP {response.status}")
            if not response.content_type.startswith("image/"):
                raise _rejected(
                    f"the image URL does not point to an image (Content-Type "
                    f"{response.content_type!r})"
                )
            if response.headers.get("Content-Encoding", "identity").lower() != "identity":
                raise _rejected("the image server sent a content-encoded body")
            too_large = _rejected(
                f"the images of one request may have {self._max_bytes} bytes at most"
            )
            if (response.content_length or 0) > budget:
                raise too_large
            data = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > budget:
                    raise too_large
            return FetchedImage(response.content_type, bytes(data))


def _check_url(url: str) -> None:
    try:
        parsed = URL(url)
    except ValueError:
        raise _rejected("the image URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise _rejected("image URLs must be http(s) URLs with a host")
    literal_address(parsed.host)


def _rejected(message: str) -> UpstreamRejected:
    return UpstreamRejected(message, code="invalid_image_url")
