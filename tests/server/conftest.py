"""Fixtures of the tests of the gateway's own HTTP/1.1 server: one gateway process per
test module, with ``server:`` limits small enough (1 s timeouts) that every limit is
reached quickly (``SMALL_LIMITS``), and a raw connection per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Upstreams, limited_gateway, upstreams
from tests.e2e.harness import RunningGateway
from tests.server.wire import Wire, troubles

__all__ = ["upstreams"]


@pytest.fixture
def wire(gateway: RunningGateway) -> Iterator[Wire]:
    connection = Wire(gateway)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    running = limited_gateway(upstreams, tmp_path_factory.mktemp("native"))
    yield running
    assert running.stop() == 0, running.log()
    assert troubles(running.log()) == []


@pytest.fixture(scope="module")
def account(gateway: RunningGateway) -> str:
    return gateway.new_account("native", credit="10")


@pytest.fixture(scope="module")
def key(gateway: RunningGateway, account: str) -> str:
    return gateway.new_key(account)
