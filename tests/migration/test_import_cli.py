"""`tokenyard import litellm|one-api` run as users run it: the worked examples under
examples/ give exactly the expected configs, every unmapped setting is reported, the
result passes tokenyard's own parser, and bad input gets a clear message (exit 1)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tokenyard.cli.importers import convert_litellm, convert_oneapi
from tokenyard.cli.importers.emit import per_million
from tokenyard.config import parse_config

EXAMPLES = Path(__file__).parent / "examples"


def tokenyard_import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenyard.cli.main", "import", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def with_env(text: str) -> dict[str, str]:
    return {name: f"value-of-{name}" for name in re.findall(r"\$\{(\w+)\}", text)}


def test_litellm_example_gives_the_expected_config() -> None:
    result = tokenyard_import("litellm", str(EXAMPLES / "litellm.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (EXAMPLES / "litellm.expected.yaml").read_text()
    config = parse_config(result.stdout, with_env(result.stdout))
    assert config.admin_key == "value-of-LITELLM_MASTER_KEY"
    assert config.database == "value-of-DATABASE_URL"
    openai = config.providers["openai"]
    assert [(k.key, k.rpm, k.tpm) for k in openai.keys] == [
        ("value-of-OPENAI_API_KEY_A", 500, 2_000_000),
        ("value-of-OPENAI_API_KEY_B", 200, None),
    ]
    assert config.providers["azure"].base_url == "value-of-AZURE_API_BASE/openai/v1"
    assert config.providers["azure"].keys[0].tpm == 80_000
    assert config.providers["vllm"].vendor == "vllm"
    assert config.providers["ollama"].base_url == "http://127.0.0.1:11434/v1"
    assert config.providers["together"].base_url == "https://api.together.xyz/v1"
    gpt = config.models["gpt-4o"]
    assert [d.provider for d in gpt.deployments] == ["openai", "azure"]
    assert gpt.policy == "weighted"
    assert gpt.fallbacks == ["claude-sonnet", "deepseek-chat"]
    assert gpt.context_window == 128_000
    assert gpt.capabilities == ["tools", "vision"]
    price = gpt.deployments[0].price
    assert (price.input, price.output, price.cached_input) == (
        Decimal("2.5"),
        Decimal("10"),
        Decimal("1.25"),
    )
    assert config.models["deepseek-chat"].deployments[0].price.input == Decimal("0.27")
    assert config.models["deepseek-chat"].max_output_tokens == 8192
    assert config.models["deepseek-chat"].fallbacks == ["gemini-flash"]
    assert config.models["embed-small"].kind == "embedding"
    assert config.models["embed-small"].deployments[0].price.input == Decimal("0.02")
    assert config.providers["deepseek"].timeout_s == 300
    assert config.providers["anthropic"].timeout_s == 600
    assert "titan" not in config.models


def test_litellm_warns_about_everything_it_did_not_map() -> None:
    result = tokenyard_import("litellm", str(EXAMPLES / "litellm.yaml"))
    warnings = result.stderr
    for expected in (
        "provider 'bedrock'",
        "litellm_settings.success_callback",
        "litellm_settings.cache ",
        "litellm_settings.cache_params",
        "litellm_settings.max_budget",
        "litellm_settings.num_retries",
        "litellm_settings.drop_params",
        "router_settings.allowed_fails",
        "router_settings.cooldown_time",
        "general_settings.alerting",
        "guardrails",
        "environment_variables (LANGFUSE_PUBLIC_KEY)",
        "litellm_params.api_version",
        "litellm_params.temperature",
        "fallbacks of 'titan'",
        "context_window_fallbacks",
        "PRICES ARE PLACEHOLDERS",
    ):
        assert expected in warnings, expected
    assert all(line.startswith("warning: ") for line in warnings.splitlines())
    assert "pk-lf-example" not in warnings  # values of settings are never echoed


def test_oneapi_example_gives_the_expected_config() -> None:
    result = tokenyard_import("one-api", str(EXAMPLES / "oneapi-channels.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (EXAMPLES / "oneapi-channels.expected.yaml").read_text()
    config = parse_config(result.stdout, {})
    pool = config.providers["openai-main"]
    assert [k.key for k in pool.keys] == ["sk-openai-one", "sk-openai-two"]
    assert pool.base_url == "https://api.openai.com/v1"
    assert config.providers["deepseek"].base_url == "https://api.deepseek.com/v1"
    assert config.providers["dashscope"].api == "dashscope"
    assert config.providers["zhipu-glm"].base_url == "https://open.bigmodel.cn/api/paas/v4"
    assert config.providers["spark"].keys[0].key == "app123:apikey789:apisecret456"
    assert config.models["SparkDesk-v4.0"].deployments[0].model == "4.0Ultra"
    mini = config.models["gpt-4o-mini"]  # priority 10 before 0; mapping to deepseek-chat
    assert mini.policy == "ordered"
    assert [(d.provider, d.model) for d in mini.deployments] == [
        ("openai-main", "gpt-4o-mini"),
        ("deepseek", "deepseek-chat"),
    ]
    gpt = config.models["gpt-4o"]  # channel 9 is disabled; 11 has priority 5
    assert [d.provider for d in gpt.deployments] == ["openai-main", "backup-proxy"]
    qwen = config.models["qwen-plus"]  # same priority: weighted by channel weight
    assert qwen.policy == "weighted"
    assert [(d.provider, d.weight) for d in qwen.deployments] == [
        ("dashscope", 3),
        ("dashscope-compatible", 1),
    ]
    assert all(d.price.input == 0 for m in config.models.values() for d in m.deployments)
    assert "ERNIE-4.0-8K" not in config.models


def test_oneapi_warns_about_everything_it_did_not_map() -> None:
    result = tokenyard_import("one-api", str(EXAMPLES / "oneapi-channels.json"))
    for expected in (
        "channel 9 (OpenAI old key): disabled by hand — skipped",
        "channel 10 (Baidu ERNIE): type baidu is not supported",
        "not mapped: proxy (channel 11)",
        "not mapped: group (vip: channels 2, 3)",
        "PRICES ARE PLACEHOLDERS",
        "plain text",
    ):
        assert expected in result.stderr, expected
    assert "sk-openai-revoked" not in result.stdout + result.stderr
    assert "sk-openai-one" not in result.stderr  # keys never reach the warnings


def test_output_file_is_written_and_validated(tmp_path: Path) -> None:
    out = tmp_path / "tokenyard.yaml"
    result = tokenyard_import("one-api", str(EXAMPLES / "oneapi-channels.json"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "validated" in result.stderr
    assert out.read_text() == (EXAMPLES / "oneapi-channels.expected.yaml").read_text()


def test_new_api_numbers_are_detected() -> None:
    rows = [
        {"id": 1, "type": 43, "name": "ds", "key": "k", "status": 1, "models": "deepseek-chat"},
        {"id": 2, "type": 36, "name": "ds-2", "key": "k", "status": 1, "models": "x", "tag": "a"},
    ]
    conversion = convert_oneapi(rows)
    assert conversion.config["providers"]["ds"]["base_url"] == "https://api.deepseek.com/v1"
    assert any("new-api" in w for w in conversion.warnings)
    assert any("channel 2 (ds-2): type suno" in w for w in conversion.warnings)
    as_one_api = convert_oneapi(rows, flavor="one-api")
    assert "ds-2" in as_one_api.config["providers"]  # 36 is DeepSeek in one-api


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0000025, "2.5"),
        (2.7e-07, "0.27"),
        ("1e-7", "0.1"),
        (0.00000125, "1.25"),
        (0, "0"),
        (3e-05, "30"),
        (0.1 + 0.2, "300000.00000000004"),  # the float as written, not rounded
        (-1, None),
        ("cheap", None),
    ],
)
def test_per_token_costs_become_exact_per_million_prices(value: object, expected: str) -> None:
    assert per_million(value) == expected


def test_missing_api_key_uses_litellm_default_variable() -> None:
    conversion = convert_litellm(
        {"model_list": [{"model_name": "m", "litellm_params": {"model": "gpt-4o"}}]}
    )
    assert conversion.config["providers"]["openai"]["keys"] == [{"key": "${OPENAI_API_KEY}"}]
    assert any("OPENAI_API_KEY" in w for w in conversion.warnings)


@pytest.mark.parametrize(
    ("importer", "content", "message"),
    [
        ("litellm", "model_list: [unclosed", "not valid YAML"),
        ("litellm", "general_settings: {master_key: sk-12345678}\n", "no model_list"),
        ("litellm", "- just\n- a list\n", "YAML mapping with a model_list"),
        (
            "litellm",
            "model_list:\n  - model_name: x\n    litellm_params: {model: sagemaker/x}\n",
            "provider 'sagemaker'",
        ),
        ("one-api", "{not json", "not valid JSON"),
        ("one-api", '{"success": true}', "JSON list of channel rows"),
        ("one-api", '[{"id": 1, "type": 1, "status": 2, "models": "a"}]', "disabled by hand"),
    ],
)
def test_bad_input_gets_a_clear_message(
    tmp_path: Path, importer: str, content: str, message: str
) -> None:
    source = tmp_path / "input"
    source.write_text(content)
    result = tokenyard_import(importer, str(source))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_missing_file_is_a_clear_message(tmp_path: Path) -> None:
    result = tokenyard_import("litellm", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_examples_are_valid_inputs() -> None:
    json.loads((EXAMPLES / "oneapi-channels.json").read_text())
