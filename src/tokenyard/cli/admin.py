"""Operator commands against the configured database: accounts, keys, credits, usage and
invoices — the same operations as the admin API, for a shell or a cron job."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from tokenyard.billing.invoice import Statement, month_bounds
from tokenyard.billing.money import format_nano, parse_amount
from tokenyard.config import Config, load_config
from tokenyard.identity.revocation import MemoryEpoch
from tokenyard.identity.service import Identity
from tokenyard.store import Database
from tokenyard.store.accounts import KeyRow, SqlAccounts
from tokenyard.store.ledger import BalanceOutOfRange, DuplicateReference, SqlLedger
from tokenyard.store.reports import SqlReports, UsageFilter
from tokenyard.wire.json import dumps


class Tools:
    def __init__(self, config: Config, database: Database):
        self.config = config
        self.accounts = SqlAccounts(database.engine)
        self.ledger = SqlLedger(database.engine)
        self.reports = SqlReports(database.engine)
        self.identity = Identity(self.accounts, MemoryEpoch())


Action = Callable[[Tools, argparse.Namespace], Awaitable[int]]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = load_config(args.config)

        async def main() -> int:
            database = Database(config.database)
            await database.upgrade()
            try:
                return await action(Tools(config, database), args)
            finally:
                await database.close()

        return asyncio.run(main())

    return run


def _print(value: object) -> None:
    print(dumps(value).decode())


def _regions(text: str | None) -> list[str] | None:
    """``--regions eu,us`` as a sorted list; absent or ``none`` means any region."""
    if text is None or text.strip().lower() in ("", "none", "any"):
        return None
    return sorted({r.strip() for r in text.split(",") if r.strip()}) or None


def _listed(regions: tuple[str, ...] | None) -> list[str] | None:
    return list(regions) if regions is not None else None


async def accounts_create(tools: Tools, args: argparse.Namespace) -> int:
    account = await tools.accounts.create_account(
        args.name, markup=args.markup, regions=_regions(args.regions)
    )
    _print(
        {
            "id": account.id,
            "name": account.name,
            "balance": format_nano(0),
            "regions": _listed(account.regions),
        }
    )
    return 0


async def accounts_set_regions(tools: Tools, args: argparse.Namespace) -> int:
    account = await tools.identity.set_account_regions(args.account, _regions(args.regions))
    if account is None:
        print(f"no account {args.account}", file=sys.stderr)
        return 1
    _print({"id": account.id, "regions": _listed(account.regions)})
    print(
        "running gateways apply it within 10 s (PATCH /admin/accounts/{id} applies it at once)",
        file=sys.stderr,
    )
    return 0


async def accounts_list(tools: Tools, _args: argparse.Namespace) -> int:
    for account in await tools.accounts.list_accounts():
        print(
            f"{account.id}\t{format_nano(account.balance_nano)}\t"
            f"{format_nano(account.reserved_nano)}\t{account.name}"
        )
    return 0


async def accounts_show(tools: Tools, args: argparse.Namespace) -> int:
    account = await tools.accounts.get_account(args.account)
    if account is None:
        print(f"no account {args.account}", file=sys.stderr)
        return 1
    _print(
        {
            "id": account.id,
            "name": account.name,
            "markup": account.markup,
            "regions": _listed(account.regions),
            "balance": format_nano(account.balance_nano),
            "reserved": format_nano(account.reserved_nano),
            "keys": [_key_json(k) for k in await tools.accounts.list_keys(account.id)],
        }
    )
    return 0


def _key_json(key: KeyRow) -> dict[str, object]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "name": key.name,
        "models": list(key.models) if key.models is not None else None,
        "regions": _listed(key.regions),
        "rpm": key.rpm,
        "tpm": key.tpm,
        "budget": format_nano(key.budget_nano) if key.budget_nano is not None else None,
        "spent": format_nano(key.spent_nano),
        "revoked": key.revoked_at is not None,
    }


async def keys_create(tools: Tools, args: argparse.Namespace) -> int:
    account = await tools.accounts.get_account(args.account)
    if account is None:
        print(f"no account {args.account}", file=sys.stderr)
        return 1
    regions = _regions(args.regions)
    if regions and account.regions is not None and not set(regions) & set(account.regions):
        print(
            f"no region in common with the account's ({','.join(account.regions)})", file=sys.stderr
        )
        return 1
    issued = await tools.identity.issue_key(
        account_id=args.account,
        name=args.name,
        models=args.models or None,
        rpm=args.rpm,
        tpm=args.tpm,
        budget_nano=parse_amount(args.budget) if args.budget else None,
        regions=regions,
    )
    _print({"id": issued.row.id, "key": issued.key, "prefix": issued.row.prefix})
    return 0


async def keys_list(tools: Tools, args: argparse.Namespace) -> int:
    for key in await tools.accounts.list_keys(args.account):
        state = "revoked" if key.revoked_at else "active"
        print(f"{key.id}\t{key.prefix}…\t{state}\t{key.account_id}\t{key.name}")
    return 0


async def keys_revoke(tools: Tools, args: argparse.Namespace) -> int:
    if not await tools.identity.revoke(args.key):
        print(f"no active key {args.key}", file=sys.stderr)
        return 1
    print(
        "revoked (running gateways drop it from their caches within 10 s; the admin API "
        "revokes at once)"
    )
    return 0


async def credit(tools: Tools, args: argparse.Namespace) -> int:
    amount = parse_amount(args.amount)
    try:
        result = await tools.ledger.credit(
            args.account,
            amount,
            f"admin:{args.reference}",
            kind="credit" if amount > 0 else "adjustment",
            note=args.note,
        )
    except DuplicateReference:
        print("that reference was used for another account", file=sys.stderr)
        return 1
    except BalanceOutOfRange as exc:
        print(exc, file=sys.stderr)
        return 1
    if result is None:
        print(f"no account {args.account}", file=sys.stderr)
        return 1
    balance, applied = result
    _print({"balance": format_nano(balance), "applied": applied})
    return 0


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def usage(tools: Tools, args: argparse.Namespace) -> int:
    rows = await tools.reports.usage(
        UsageFilter(
            account_id=args.account,
            key_id=args.key,
            model=args.model,
            since=_since(args.since),
            until=_since(args.until),
        ),
        args.group_by,
    )
    print(f"{args.group_by}\trequests\tinput_tokens\toutput_tokens\tcost")
    for row in rows:
        print(
            f"{row.group}\t{row.requests}\t{row.input_tokens}\t{row.output_tokens}\t"
            f"{format_nano(row.cost_nano)}"
        )
    return 0


async def invoice(tools: Tools, args: argparse.Namespace) -> int:
    account = await tools.accounts.get_account(args.account)
    if account is None:
        print(f"no account {args.account}", file=sys.stderr)
        return 1
    start, end = month_bounds(args.month)
    statement = Statement(
        account_id=account.id,
        account_name=account.name,
        month=args.month,
        currency=tools.config.billing.currency,
        lines=await tools.reports.usage(
            UsageFilter(account_id=account.id, since=start, until=end), "model"
        ),
        credits_nano=await tools.reports.credits(account.id, start, end),
    )
    if args.format == "csv":
        sys.stdout.write(statement.as_csv())
    elif args.format == "html":
        sys.stdout.write(statement.as_html())
    else:
        _print(statement.as_json())
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(
        parent: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        action: Action,
        help_text: str,
    ) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help_text)
        parser.add_argument("--config", required=True)
        parser.set_defaults(run=_run(action))
        return parser

    accounts = sub.add_parser("accounts", help="accounts").add_subparsers(required=True)
    created = command(accounts, "create", accounts_create, "create an account")
    created.add_argument("name")
    created.add_argument("--markup", help="this account's markup, e.g. 0.2")
    created.add_argument("--regions", help="data residency for all its keys, e.g. eu,us")
    command(accounts, "list", accounts_list, "list accounts: id, balance, reserved, name")
    command(accounts, "show", accounts_show, "one account and its keys").add_argument("account")
    resided = command(accounts, "set-regions", accounts_set_regions, "change its residency")
    resided.add_argument("account")
    resided.add_argument("regions", help="e.g. eu,us; none lifts the restriction")

    keys = sub.add_parser("keys", help="client keys").add_subparsers(required=True)
    made = command(keys, "create", keys_create, "issue a key (printed once)")
    made.add_argument("account")
    made.add_argument("--name", default="default")
    made.add_argument("--models", nargs="*")
    made.add_argument("--rpm", type=int)
    made.add_argument("--tpm", type=int)
    made.add_argument("--budget")
    made.add_argument("--regions", help="data residency, e.g. eu,us (within the account's)")
    command(keys, "list", keys_list, "list keys").add_argument("--account")
    command(keys, "revoke", keys_revoke, "revoke a key").add_argument("key")

    credited = command(sub, "credit", credit, "credit an account once per reference")
    credited.add_argument("account")
    credited.add_argument("amount")
    credited.add_argument("--reference", required=True)
    credited.add_argument("--note")

    used = command(sub, "usage", usage, "usage grouped by model, day, key or provider")
    used.add_argument("--account")
    used.add_argument("--key")
    used.add_argument("--model")
    used.add_argument("--since")
    used.add_argument("--until")
    used.add_argument("--group-by", default="model", choices=["model", "day", "key", "provider"])

    billed = command(sub, "invoice", invoice, "a month's statement")
    billed.add_argument("account")
    billed.add_argument("--month", default=datetime.now(UTC).strftime("%Y-%m"))
    billed.add_argument("--format", default="json", choices=["json", "csv", "html"])
