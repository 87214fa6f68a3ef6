"""``tokenyard demo``: the gateway on an embedded SQLite file and simulated providers, with
an account, some credit and a key, and copy-paste snippets to try it. No network needed."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path

from tokenyard.config import parse_config
from tokenyard.identity.service import Identity
from tokenyard.obs.logs import configure_logging
from tokenyard.server.app import build_app
from tokenyard.server.run import install_uvloop, serve_app
from tokenyard.server.state import IDENTITY, LEDGER
from tokenyard.store import Database

DEMO_CREDIT_NANO = 10 * 10**9  # 10 USD

DEMO_CONFIG = """
database: sqlite:///{db}
admin_key: {admin_key}
billing: {{currency: USD, markup: 0.10}}
providers:
  simulator:            # a built-in stand-in: deterministic text, no network
    api: simulator
    region: local
    simulator: {{ttft_ms: 120, tokens_per_s: 60, max_output_tokens: 120}}
  simulator-large:
    api: simulator
    region: local
    simulator: {{ttft_ms: 300, tokens_per_s: 30, max_output_tokens: 400}}
models:
  demo-chat:
    description: simulated chat model
    context_window: 65536
    max_output_tokens: 120
    capabilities: [json_mode]
    tier: economy
    deployments:
      - provider: simulator
        model: sim-small
        price: {{input: 0.27, output: 1.10, cached_input: 0.07}}
    fallbacks: [demo-large]
  demo-large:
    description: simulated large model
    context_window: 131072
    max_output_tokens: 400
    tier: premium
    deployments:
      - {{provider: simulator-large, model: sim-large, price: {{input: 3.0, output: 15.0}}}}
  demo-embedding:
    kind: embedding
    deployments:
      - {{provider: simulator, model: sim-embed, price: {{input: 0.02}}}}
"""


def _banner(base: str, key: str, admin_key: str, db: Path) -> str:
    return f"""
tokenyard demo — every provider here is a SIMULATOR (deterministic text, no network)

  base URL   {base}/v1
  API key    {key}
  admin key  {admin_key}
  models     demo-chat, demo-large, demo-embedding
  database   {db}

Try it:

  curl -N {base}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "demo-chat", "stream": true,
         "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  python - <<'PY'
  from openai import OpenAI
  client = OpenAI(base_url="{base}/v1", api_key="{key}")
  for chunk in client.chat.completions.create(
      model="demo-chat", stream=True, messages=[{{"role": "user", "content": "Hello!"}}]):
      print(chunk.choices[0].delta.content or "", end="", flush=True) if chunk.choices else None
  print()
  PY

Ctrl-C stops the demo.
"""


def run_demo(port: int, host: str) -> int:
    configure_logging("warning")
    install_uvloop()
    directory = Path(tempfile.gettempdir()) / "tokenyard-demo"
    directory.mkdir(exist_ok=True)
    db = directory / "demo.db"
    for stale in directory.glob("demo.db*"):
        stale.unlink()
    admin_key = "admin-" + secrets.token_urlsafe(16)
    config = parse_config(DEMO_CONFIG.format(db=db, admin_key=admin_key))

    async def main() -> None:
        database = Database(config.database)
        await database.upgrade()
        await database.close()
        app = await build_app(config)

        async def ready() -> None:
            identity: Identity = app[IDENTITY]
            account = await identity.store.create_account("demo")
            await app[LEDGER].credit(
                account.id, DEMO_CREDIT_NANO, "demo:welcome-credit", note="demo credit"
            )
            issued = await identity.issue_key(account_id=account.id, name="demo")
            print(_banner(f"http://{host}:{port}", issued.key, admin_key, db), flush=True)

        await serve_app(app, host, port, on_ready=ready)

    asyncio.run(main())
    return 0
