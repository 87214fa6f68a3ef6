"""Fixtures of the tests of the gateway's own HTTP/1.1 server: one gateway process per
test module, with ``server:`` limits small enough (1 s timeouts) that every limit is
reached quickly, and a raw connection per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config, upstreams
from tests.e2e.harness import RunningGateway, start_gateway
from tests.server.wire import Wire, troubles

__all__ = ["upstreams"]

LIMITS = (
    "max_body_bytes: 65536, body_timeout_s: 1, header_timeout_s: 1,"
    " max_header_bytes: 4096, max_headers: 32"
)


@pytest.fixture
def wire(gateway: RunningGateway) -> Iterator[Wire]:
    connection = Wire(gateway)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory: Path = tmp_path_factory.mktemp("native")
    config = gateway_config(
        f"sqlite:///{directory / 'tokenyard.db'}", upstreams.urls, server=LIMITS
    )
    running = start_gateway(directory, config)
    yield running
    assert running.stop() == 0, running.log()
    assert troubles(running.log()) == []


@pytest.fixture(scope="module")
def account(gateway: RunningGateway) -> str:
    return gateway.new_account("native", credit="10")


@pytest.fixture(scope="module")
def key(gateway: RunningGateway, account: str) -> str:
    return gateway.new_key(account)
