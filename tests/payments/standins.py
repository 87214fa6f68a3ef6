"""Stand-ins for the payment processors' APIs, speaking their documented wire shapes.

* :class:`StripeStandIn` — ``POST /v1/checkout/sessions`` (form-encoded, Bearer secret key).
* :class:`PayPalStandIn` — ``POST /v1/oauth2/token`` (Basic auth), ``POST /v2/checkout/orders``
  and ``.../{id}/capture`` (Bearer token, ``PayPal-Request-Id`` replay), and
  ``GET /certs/test.pem``, the webhook signing certificate.
* :class:`CoinbaseStandIn` — ``POST /charges`` (``X-CC-Api-Key``, ``X-CC-Version``).

Each records what it received; ``fail_next`` makes the next API call answer an error. Servers
listen on 127.0.0.1 on a free port, on their own event loop in a thread (:func:`run_in_thread`).
Also here: :func:`make_certificate`, a self-signed RSA certificate for PayPal's signatures.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.upstreams import background

__all__ = [
    "CoinbaseStandIn",
    "PayPalStandIn",
    "Recorded",
    "StripeStandIn",
    "make_certificate",
    "rsa_sign",
    "run_in_thread",
]


@dataclass
class Recorded:
    """One request a stand-in received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]  # the JSON object, or the form fields by their flat names


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class StandIn:
    """Lifecycle, recording and fault injection shared by the three stand-ins."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.base_url = ""
        self._failures: list[tuple[int, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fail_next(self, status: int, body: dict[str, Any]) -> None:
        self._failures.append((status, body))

    def take_failure(self) -> web.Response | None:
        if not self._failures:
            return None
        status, body = self._failures.pop(0)
        return _json(body, status)

    async def record(self, request: web.Request) -> Recorded:
        raw = await request.read()
        if request.content_type == "application/x-www-form-urlencoded":
            body: dict[str, Any] = dict((await request.post()).items())
        else:
            body = orjson.loads(raw) if raw else {}
        headers = {k.lower(): v for k, v in request.headers.items()}
        recorded = Recorded(request.method, request.path, headers, body)
        self.requests.append(recorded)
        return recorded

    async def start(self) -> str:
        app = web.Application()
        self.routes(app)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class StripeStandIn(StandIn):
    def __init__(self, secret_key: str) -> None:
        super().__init__()
        self.secret_key = secret_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/checkout/sessions", self._create_session)

    async def _create_session(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        if recorded.headers.get("authorization") != f"Bearer {self.secret_key}":
            error = {"type": "invalid_request_error", "message": "Invalid API Key provided"}
            return _json({"error": error}, 401)
        failure = self.take_failure()
        if failure is not None:
            return failure
        form = recorded.body
        number = len(self.requests)
        session_id = f"cs_test_a1{number:04d}"
        return _json(
            {
                "id": session_id,
                "object": "checkout.session",
                "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                "cancel_url": form.get("cancel_url"),
                "client_reference_id": form.get("client_reference_id"),
                "currency": form["line_items[0][price_data][currency]"],
                "livemode": False,
                "metadata": {"account_id": form["metadata[account_id]"]},
                "mode": form["mode"],
                "payment_status": "unpaid",
                "status": "open",
                "success_url": form["success_url"],
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            }
        )


class PayPalStandIn(StandIn):
    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.credentials = (client_id, client_secret)
        self.tokens: list[str] = []
        self.cert_pem = b""
        self.cert_downloads = 0
        self.captured: dict[str, str] = {}  # order id -> PayPal-Request-Id of its capture

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/oauth2/token", self._token)
        app.router.add_post("/v2/checkout/orders", self._create_order)
        app.router.add_post("/v2/checkout/orders/{order_id}/capture", self._capture)
        app.router.add_get("/certs/test.pem", self._cert)

    async def _token(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        client_id, secret = self.credentials
        expected = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        if recorded.headers.get("authorization") != f"Basic {expected}":
            body = {"error": "invalid_client", "error_description": "Client Authentication failed"}
            return _json(body, 401)
        token = f"A21AA-test-token-{len(self.tokens) + 1}"
        self.tokens.append(token)
        return _json(
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": 32400,
                "nonce": "2026-01-01T00:00:00ZnonceXYZ",
            }
        )

    def _authorized(self, recorded: Recorded) -> bool:
        return recorded.headers.get("authorization") in {f"Bearer {t}" for t in self.tokens}

    async def _create_order(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        if not self._authorized(recorded):
            return _json({"name": "AUTHENTICATION_FAILURE", "message": "bad token"}, 401)
        failure = self.take_failure()
        if failure is not None:
            return failure
        order_id = f"5O190127TN36471{len(self.requests):02d}T"
        unit = recorded.body["purchase_units"][0]
        return _json(
            {
                "id": order_id,
                "status": "PAYER_ACTION_REQUIRED",
                "intent": recorded.body["intent"],
                "payment_source": {"paypal": {}},
                "purchase_units": [{"reference_id": "default", "amount": unit["amount"]}],
                "links": [
                    {
                        "href": f"{self.base_url}/v2/checkout/orders/{order_id}",
                        "rel": "self",
                        "method": "GET",
                    },
                    {
                        "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}",
                        "rel": "payer-action",
                        "method": "GET",
                    },
                ],
            },
            201,
        )

    async def _capture(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        if not self._authorized(recorded):
            return _json({"name": "AUTHENTICATION_FAILURE", "message": "bad token"}, 401)
        order_id = request.match_info["order_id"]
        request_id = recorded.headers.get("paypal-request-id", "")
        previous = self.captured.get(order_id)
        if previous is not None and previous != request_id:
            detail = {"issue": "ORDER_ALREADY_CAPTURED", "description": "Order already captured."}
            body = {"name": "UNPROCESSABLE_ENTITY", "message": "...", "details": [detail]}
            return _json(body, 422)
        self.captured[order_id] = request_id
        return _json({"id": order_id, "status": "COMPLETED"}, 201)

    async def _cert(self, request: web.Request) -> web.Response:
        self.cert_downloads += 1
        return web.Response(body=self.cert_pem, content_type="application/x-pem-file")


class CoinbaseStandIn(StandIn):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/charges", self._create_charge)

    async def _create_charge(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        if recorded.headers.get("x-cc-api-key") != self.api_key:
            return _json(
                {"error": {"type": "authorization_error", "message": "No such API key"}}, 401
            )
        failure = self.take_failure()
        if failure is not None:
            return failure
        code = f"66BEOV{len(self.requests):02d}"
        body = recorded.body
        return _json(
            {
                "data": {
                    "id": f"e0d9d5c4-6a4c-4a3c-9a43-5b7c2f3b00{len(self.requests):02d}",
                    "code": code,
                    "name": body["name"],
                    "description": body["description"],
                    "hosted_url": f"https://commerce.coinbase.com/charges/{code}",
                    "pricing_type": body["pricing_type"],
                    "pricing": {"local": body["local_price"]},
                    "metadata": body["metadata"],
                    "redirect_url": body.get("redirect_url"),
                    "cancel_url": body.get("cancel_url"),
                    "timeline": [{"status": "NEW", "time": "2025-10-09T18:13:20Z"}],
                },
                "warnings": [],
            },
            201,
        )


def run_in_thread(standin: StandIn) -> tuple[str, Callable[[], None]]:
    """Start ``standin`` on its own event loop in a daemon thread. Returns (base_url, stop);
    ``stop`` is idempotent."""
    url, stop = background.run_in_thread(standin, "payment-standin")
    return str(url), stop


@dataclass
class Signer:
    key: rsa.RSAPrivateKey
    pem: bytes
    not_before: float = field(default=0.0)
    not_after: float = field(default=0.0)


def make_certificate(
    *, not_before: float, not_after: float, common_name: str = "messageverificationcerts.paypal.com"
) -> Signer:
    """A fresh RSA key and a self-signed certificate for it, valid between the two times."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    utc = datetime.UTC
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, utc))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, utc))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return Signer(key=key, pem=pem, not_before=not_before, not_after=not_after)


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5) signature of ``message``, base64, as PayPal sends it."""
    signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()
