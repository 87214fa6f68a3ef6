"""One live gateway (SQLite) in front of the end-to-end stand-in upstreams, shared by every
client-library test: what is under test here is the client libraries' view of the wire, which
does not depend on the database backend, so one process for the whole session keeps it fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Upstreams, gateway_config, upstreams
from tests.e2e.harness import RunningGateway, start_gateway

__all__ = ["upstreams"]  # re-exported so pytest sees the stand-ins' session fixture here

MODEL = "gpt-mini"  # OpenAI-flavoured stand-in; capabilities tools and json_mode


@pytest.fixture(scope="session")
def gateway(
    upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    directory = tmp_path_factory.mktemp("clients-gateway")
    config = gateway_config(f"sqlite:///{directory / 'tokenyard.db'}", upstreams.urls)
    running = start_gateway(directory, config)
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="session")
def key(gateway: RunningGateway) -> str:
    return gateway.new_key()
