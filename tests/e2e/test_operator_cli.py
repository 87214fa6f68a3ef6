"""The operator commands (`tokenyard accounts|keys|credit|usage|invoice`) against the same
database a running gateway uses."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import Upstreams, gateway_config
from tests.e2e.harness import start_gateway


def tokenyard(config: Path, *args: str, ok: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tokenyard.cli.main", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0
        return result.stderr
    return result.stdout


def test_operator_commands_end_to_end(
    database_url: str, upstreams: Upstreams, tmp_path: Path
) -> None:
    config_text = gateway_config(database_url, upstreams.urls)
    gateway = start_gateway(tmp_path, config_text)
    config = tmp_path / "tokenyard.yaml"
    try:
        account = json.loads(tokenyard(config, "accounts", "create", "Ops Co", "--markup", "0.2"))
        assert account["balance"] == "0.000000"
        credited = json.loads(
            tokenyard(config, "credit", account["id"], "3.5", "--reference", "wire-1")
        )
        assert credited == {"balance": "3.500000", "applied": True}
        again = json.loads(
            tokenyard(config, "credit", account["id"], "3.5", "--reference", "wire-1")
        )
        assert again == {"balance": "3.500000", "applied": False}
        assert "no account" in tokenyard(
            config, "credit", "acct_none", "1", "--reference", "x", ok=False
        )
        assert "decimal" in tokenyard(
            config, "credit", account["id"], "lots", "--reference", "y", ok=False
        )
        assert "ledger can hold" in tokenyard(  # the amount alone
            config, "credit", account["id"], "1e12", "--reference", "z", ok=False
        )
        full = json.loads(tokenyard(config, "accounts", "create", "Full Co"))["id"]
        tokenyard(config, "credit", full, "9223372036.854775807", "--reference", "most")
        assert "ledger can hold" in tokenyard(  # the balance it would make
            config, "credit", full, "1", "--reference", "over", ok=False
        )
        issued = json.loads(
            tokenyard(
                config,
                "keys",
                "create",
                account["id"],
                "--name",
                "ci",
                "--rpm",
                "10",
                "--budget",
                "1",
            )
        )
        assert issued["key"].startswith("ty-")
        response = gateway.post(
            "/v1/chat/completions",
            issued["key"],
            json={"model": "gpt-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 200
        cost = Decimal(response.headers["x-tokenyard-cost"])

        listed = tokenyard(config, "accounts", "list")
        assert account["id"] in listed and "Ops Co" in listed
        shown = json.loads(tokenyard(config, "accounts", "show", account["id"]))
        assert Decimal(shown["balance"]) == Decimal("3.5") - cost
        assert shown["markup"] == "0.2"
        assert shown["keys"][0]["spent"] == f"{cost:.9f}".rstrip("0").ljust(8, "0")
        usage = tokenyard(config, "usage", "--account", account["id"])
        assert usage.splitlines()[1].split("\t")[:2] == ["gpt-mini", "1"]
        month = json.loads(tokenyard(config, "invoice", account["id"]))["month"]
        csv_text = tokenyard(config, "invoice", account["id"], "--month", month, "--format", "csv")
        assert Decimal(csv_text.splitlines()[-1].split(",")[7]) == cost
        assert "<table>" in tokenyard(config, "invoice", account["id"], "--format", "html")

        assert "revoked" in tokenyard(config, "keys", "revoke", issued["id"])
        assert "\trevoked\t" in tokenyard(config, "keys", "list", "--account", account["id"])
        assert "no active key" in tokenyard(config, "keys", "revoke", issued["id"], ok=False)
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    "args", [["accounts", "show", "acct_x"], ["invoice", "acct_x"], ["keys", "create", "acct_x"]]
)
def test_unknown_accounts_are_reported(args: list[str], tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'x.db'}\n")
    assert "no account" in tokenyard(config, *args, ok=False)
