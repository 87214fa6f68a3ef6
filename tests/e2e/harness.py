"""Running the real gateway as a separate process, as users run it, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

ADMIN_KEY = "admin-e2e-" + "x" * 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningGateway:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    def admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return self.http.request(
            method, path, json=json, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )

    def new_account(self, name: str = "e2e", credit: str | None = "1000") -> str:
        response = self.admin("POST", "/admin/accounts", {"name": name})
        assert response.status_code == 201, response.text
        account_id: str = response.json()["id"]
        if credit is not None:
            self.credit(account_id, credit)
        return account_id

    def credit(self, account_id: str, amount: str, reference: str | None = None) -> str:
        response = self.admin(
            "POST",
            f"/admin/accounts/{account_id}/credits",
            {"amount": amount, "reference": reference or secrets.token_hex(8)},
        )
        assert response.status_code in (200, 201), response.text
        balance: str = response.json()["balance"]
        return balance

    def new_key(self, account_id: str | None = None, **fields: Any) -> str:
        body = {"account_id": account_id or self.new_account(), "name": "k", **fields}
        response = self.admin("POST", "/admin/keys", body)
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def client(self, key: str, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url + "/v1", api_key=key, **options)

    def async_client(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url + "/v1", api_key=key, max_retries=0)

    def post(self, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.post(path, headers=headers, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_gateway(
    directory: Path, config_text: str, *, workers: int = 1, env: dict[str, str] | None = None
) -> RunningGateway:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "tokenyard.yaml"
    config.write_text(config_text)
    port = free_port()
    log_path = directory / "gateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokenyard.cli.main",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    gateway = RunningGateway(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{gateway.log()}")
        try:
            ready = httpx.get(gateway.base_url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready and gateway.log().count('"msg":"listening"') >= workers:
            return gateway
        time.sleep(0.05)
    gateway.stop()
    raise RuntimeError(f"the gateway did not become ready:\n{gateway.log()}")


def postgres_database(admin_url: str) -> tuple[str, Any]:
    """A fresh database on the test PostgreSQL server; returns its URL and a dropper."""
    import asyncpg

    name = "t_" + secrets.token_hex(6)
    dsn = admin_url

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url, drop
