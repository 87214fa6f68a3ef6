"""LiteLLM proxy as a comparison target: its own venv, config and start command."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import venv
from pathlib import Path

LITELLM_VERSION = "1.108.7"
LITELLM_SPEC = f"litellm[proxy]=={LITELLM_VERSION}"
HEALTH_PATH = "/health/liveliness"

CONFIG_TEMPLATE = """\
model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/upstream-model
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: sk-bench
litellm_settings:
  drop_params: true
  set_verbose: false
general_settings:
  master_key: {master_key}
"""


def _installed_version(python: Path) -> str | None:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_venv(venv_dir: Path) -> Path:
    """Create ``venv_dir`` with the pinned LiteLLM proxy if needed; return its executable."""
    python = venv_dir / "bin" / "python"
    exe = venv_dir / "bin" / "litellm"
    if not python.exists():
        print(f"creating {venv_dir} ...", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    if _installed_version(python) != LITELLM_VERSION or not exe.exists():
        print(f"installing {LITELLM_SPEC} (a few minutes) ...", file=sys.stderr, flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", LITELLM_SPEC], check=True)
    return exe


def write_config(tmp: Path, upstream_port: int) -> tuple[Path, str]:
    """Write the proxy config; returns its path and the (random) master key clients use.

    LiteLLM refuses to start without a master key; with no database, the master key is
    the only credential it checks, so clients send it as their bearer token.
    """
    master_key = "sk-" + secrets.token_hex(24)
    path = tmp / "litellm.yaml"
    path.write_text(CONFIG_TEMPLATE.format(upstream_port=upstream_port, master_key=master_key))
    return path, master_key


def command(exe: Path, config: Path, port: int, workers: int) -> list[str]:
    return [
        str(exe),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]


def environment() -> dict[str, str]:
    """No database, no remote cost-map fetch (the machine may be offline), quiet logs."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return env
