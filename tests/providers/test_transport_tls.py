"""The upstream HTTP client over TLS, as every real provider is called: the certificate is
verified against the trust store and the host name it was asked for, and nothing is sent
to a server that fails either check. The stand-in is a real TLS server on 127.0.0.1 with
a certificate made for this test (for ``localhost`` only)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tokenyard.providers.transport import HttpClient, TransportError

pytestmark = pytest.mark.usefixtures("any_loop")  # every test on uvloop and on asyncio

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{"ok":true}'


def make_certificate(tmp: Path) -> tuple[Path, Path, str]:
    """A self-signed certificate for ``localhost`` (and no IP address): its file, its key's
    file, and the certificate as PEM text for a client's trust store."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp / "cert.pem", tmp / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem.decode()


class TlsUpstream:
    """Answers every request it reads in full with ANSWER; keeps the requests it read."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            self.requests.append(head + await reader.readexactly(length))
            writer.write(ANSWER)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client refused the handshake: nothing was sent
        finally:
            writer.close()


@asynccontextmanager
async def serving(tmp: Path) -> AsyncIterator[tuple[TlsUpstream, str]]:
    cert_file, key_file, pem = make_certificate(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    upstream = TlsUpstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, ssl=context)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream, pem
    finally:
        server.close()
        await server.wait_closed()


def trusting(pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=pem)


def test_a_trusted_certificate_for_the_host_carries_the_call(tmp_path: Path) -> None:
    async def main() -> tuple[int, bytes, list[bytes]]:
        async with (
            serving(tmp_path) as (upstream, pem),
            HttpClient(ssl_context=trusting(pem)) as client,
        ):
            url = f"https://localhost:{upstream.port}/v1/chat/completions"
            response = await client.post(
                url, b"{}", {"Authorization": "Bearer sk-x"}, connect_timeout_s=5
            )
            body = await response.read()
            response.release()
            return response.status, body, upstream.requests

    status, body, requests = asyncio.run(main())
    assert (status, body) == (200, b'{"ok":true}')
    assert len(requests) == 1
    assert requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Authorization: Bearer sk-x\r\n" in requests[0]


@pytest.mark.parametrize(
    ("host", "trust"),
    [
        ("localhost", False),  # the system's trust store does not know the certificate
        ("127.0.0.1", True),  # trusted, but made for localhost, not for this address
    ],
)
def test_a_certificate_that_fails_verification_gets_nothing(
    tmp_path: Path, host: str, trust: bool
) -> None:
    async def main() -> list[bytes]:
        async with serving(tmp_path) as (upstream, pem):
            client = HttpClient(ssl_context=trusting(pem) if trust else None)
            try:
                with pytest.raises(TransportError, match="could not connect"):
                    await client.post(
                        f"https://{host}:{upstream.port}/v1/chat/completions",
                        b'{"secret": "prompt"}',
                        {"Authorization": "Bearer sk-x"},
                        connect_timeout_s=5,
                    )
                assert client.connections() == (0, 0)
            finally:
                await client.close()
            return upstream.requests

    assert asyncio.run(main()) == []  # neither the key nor the prompt left the client
