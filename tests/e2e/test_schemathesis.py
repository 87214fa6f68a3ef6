"""schemathesis fuzzes a live gateway from its own OpenAPI document (GET /openapi.json):
every operation of /v1 (with a client key) and /admin (with the admin key), with valid and
invalid requests. No answer is a 5xx, and every 4xx is the error shape of SPEC §4 with the
type its status means there.

Bounded and reproducible: a fixed number of examples per operation, derandomized (the same
cases on every run), no example database. There is no per-example time limit: under a busy
CI machine that would be a timing assertion.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import ADMIN_KEY, RunningGateway, start_gateway
from tokenyard.server.openapi import document

MAX_EXAMPLES = 12
"""Per operation and generation mode: about 30 operations stay well under a minute."""

SPEC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
"""The OpenAI error ``type`` of each client-error status (SPEC §4)."""

schema = schemathesis.openapi.from_dict(document())
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,
    database="none",
    with_security_parameters=False,  # the keys are ours: see `credentials`
)


@pytest.fixture(scope="module")
def fuzzed(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One gateway on SQLite for the module, and a client key with credit."""
    directory: Path = tmp_path_factory.mktemp("fuzzed")
    config = gateway_config(f"sqlite:///{directory / 'tokenyard.db'}", upstreams.urls)
    running = start_gateway(directory, config)
    yield running, running.new_key()
    assert running.stop() == 0, running.log()


def credentials(path: str, client_key: str) -> dict[str, str]:
    key = ADMIN_KEY if path.startswith("/admin") or path == "/metrics" else client_key
    return {"Authorization": f"Bearer {key}"}


def assert_spec_error(path: str, status: int, body: Any) -> None:
    if path == "/v1/messages" and status != 405:
        # The Anthropic endpoint answers in Anthropic's shape; a method the route does not
        # have is refused by the router, before that endpoint, in the OpenAI shape.
        assert body.get("type") == "error", (status, body)
        assert set(body["error"]) == {"type", "message"}
        return
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == SPEC_TYPES[status], (status, error)
    assert "Traceback" not in error["message"]


@schema.parametrize()
def test_the_api_answers_every_request_per_spec(
    case: schemathesis.Case, fuzzed: tuple[RunningGateway, str]
) -> None:
    gateway, client_key = fuzzed
    response = case.call(
        base_url=gateway.base_url,
        headers=credentials(case.operation.path, client_key),
        timeout=30,
    )
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    assert response.status_code < 500, response.text
    assert response.headers["x-tokenyard-request-id"][0].startswith("req_")
    if response.status_code >= 400:
        assert_spec_error(case.operation.path, response.status_code, response.json())
