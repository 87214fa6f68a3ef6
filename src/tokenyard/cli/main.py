"""``tokenyard serve | demo | check-config | db upgrade`` (SPEC §1)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from tokenyard import __version__
from tokenyard.cli.admin import add_commands
from tokenyard.cli.importers.command import add_import_command
from tokenyard.config import Config, load_config
from tokenyard.errors import ConfigError, InvalidRequest, ServiceUnavailable
from tokenyard.obs.logs import configure_logging
from tokenyard.providers.registry import availability_problems
from tokenyard.server.app import build_app
from tokenyard.server.run import install_uvloop, serve_app, serve_workers
from tokenyard.store import Database


def _load(path: str) -> Config:
    config = load_config(path)
    problems = availability_problems(config.providers)
    if problems:
        raise ConfigError(problems)
    return config


async def _upgrade(url: str) -> None:
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.close()


def cmd_check_config(args: argparse.Namespace) -> int:
    _load(args.config)
    print("ok")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    config = _load(args.config)
    asyncio.run(_upgrade(config.database))
    print("database is up to date")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    configure_logging(config.logging.level)
    # Until the serving loop handles SIGHUP (a config reload), one must not kill the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    install_uvloop()
    asyncio.run(_upgrade(config.database))
    if args.workers > 1:
        return serve_workers(config, args.config, args.host, args.port, args.workers)

    async def main() -> None:
        app = await build_app(config, config_path=args.config)
        await serve_app(app, args.host, args.port)

    asyncio.run(main())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tokenyard.cli.demo import run_demo

    return run_demo(args.port, args.host)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tokenyard", description=__doc__)
    top.add_argument("--version", action="version", version=f"tokenyard {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=cmd_serve)

    demo = sub.add_parser("demo", help="run a self-contained demo on simulated providers")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=4000)
    demo.set_defaults(run=cmd_demo)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("config")
    check.set_defaults(run=cmd_check_config)

    add_commands(sub)
    add_import_command(sub)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("--config", required=True)
    upgrade.set_defaults(run=cmd_db_upgrade)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"tokenyard: {exc.message}", file=sys.stderr)
        return 3
    except (InvalidRequest, ValueError) as exc:
        print(f"tokenyard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
