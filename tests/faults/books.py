"""The ledger after a fault, read from the database and from the usage report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.e2e.harness import RunningGateway
from tests.e2e.ledger_view import read_books

NANO = 10**9


@dataclass(frozen=True)
class Payer:
    account_id: str
    key_id: str
    key: str


def new_payer(gateway: RunningGateway, credit: str = "10") -> Payer:
    account_id = gateway.new_account(credit=credit)
    created = gateway.admin("POST", "/admin/keys", {"account_id": account_id, "name": "faults"})
    assert created.status_code == 201, created.text
    return Payer(account_id, created.json()["id"], created.json()["key"])


def nano(amount: str | float) -> int:
    return int(Decimal(str(amount)) * NANO)


def cost_nano(input_tokens: int, output_tokens: int) -> int:
    """What the faults config charges: input 1, output 2 per 1M tokens, markup 10 %."""
    return (input_tokens * 1 + output_tokens * 2) * 1100


def assert_books(database_url: str, payer: Payer, charged: Mapping[str, int | None]) -> None:
    """The account's books are exact: balance = credits − charges, no hold left, and a
    charge for exactly the requests in ``charged`` (request id → nano-units, None: any)."""
    books = read_books(database_url, payer.account_id)
    assert books.reserved == 0
    assert books.reservations == 0
    assert books.balance == books.credits - sum(books.charges.values())
    assert sorted(books.charges) == sorted("req:" + rid for rid in charged)
    for request_id, amount in charged.items():
        if amount is not None:
            assert books.charges["req:" + request_id] == amount, request_id


def usage(gateway: RunningGateway, payer: Payer) -> list[dict[str, Any]]:
    """The key's usage rows (requests, input and output tokens, cost) by provider."""
    response = gateway.admin("GET", f"/admin/usage?key_id={payer.key_id}&group_by=provider")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows
