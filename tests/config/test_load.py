"""Config validation: every error path names the dotted field and says what is wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from tokenyard.config import parse_config
from tokenyard.errors import ConfigError

SPEC_EXAMPLE = """
database: sqlite:///tokenyard.db
redis: redis://127.0.0.1:6379/0
admin_key: ${TOKENYARD_ADMIN_KEY}
billing:
  currency: USD
  markup: 0.10
  fx: {CNY: 0.14}
logging:
  prompts: false
providers:
  deepseek:
    api: openai
    base_url: https://api.deepseek.com/v1
    region: cn
    timeout_s: 600
    keys:
      - {key: ${DEEPSEEK_KEY_A}, rpm: 500, tpm: 2000000}
      - {key: ${DEEPSEEK_KEY_B}, weight: 2}
  siliconflow:
    api: openai
    base_url: https://api.siliconflow.cn/v1
    region: cn
    keys: [{key: sf}]
  qwen:
    api: openai
    base_url: https://dashscope.aliyuncs.com/compatible-mode/v1
    keys: [{key: q}]
models:
  deepseek-chat:
    context_window: 65536
    max_output_tokens: 8192
    capabilities: [tools, json_mode, vision, reasoning]
    tasks: [chat, coding, reasoning]
    tier: standard
    deployments:
      - provider: deepseek
        model: deepseek-chat
        price: {input: 0.27, output: 1.10, cached_input: 0.07}
      - provider: siliconflow
        model: deepseek-ai/DeepSeek-V3
        price: {input: 2.0, output: 8.0, currency: CNY}
    fallbacks: [qwen-plus]
  qwen-plus:
    deployments:
      - {provider: qwen, model: qwen-plus, price: {input: 0.8, output: 2}}
"""

ENV = {"TOKENYARD_ADMIN_KEY": "admin-secret", "DEEPSEEK_KEY_A": "sk-a", "DEEPSEEK_KEY_B": "sk-b"}


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), ENV if env is None else env)
    return caught.value.problems


def test_the_spec_example_is_valid_and_typed() -> None:
    config = parse_config(SPEC_EXAMPLE, ENV)
    assert config.admin_key == "admin-secret"
    assert config.billing.markup == Decimal("0.10")
    assert config.billing.fx["CNY"] == Decimal("0.14")
    deployments = config.models["deepseek-chat"].deployments
    assert deployments[0].price.cached_input == Decimal("0.07")
    assert deployments[1].price.currency == "CNY"
    keys = config.providers["deepseek"].keys
    assert [k.key for k in keys] == ["sk-a", "sk-b"]
    assert keys[1].weight == 2
    assert config.server.max_body_bytes == 32 * 1024 * 1024


def test_secrets_do_not_show_in_repr() -> None:
    config = parse_config(SPEC_EXAMPLE, ENV)
    assert "sk-a" not in repr(config)
    assert "admin-secret" not in repr(config)


def test_config_is_immutable() -> None:
    config = parse_config(SPEC_EXAMPLE, ENV)
    with pytest.raises(ValueError, match="frozen"):
        config.database = "x"  # type: ignore[misc]


def test_unset_environment_variable_is_named_with_its_field() -> None:
    env = {k: v for k, v in ENV.items() if k != "DEEPSEEK_KEY_B"}
    assert problems(SPEC_EXAMPLE, env) == [
        "providers.deepseek.keys[1].key: environment variable DEEPSEEK_KEY_B is not set"
    ]


def test_interpolation_inside_a_longer_string() -> None:
    config = parse_config("database: postgresql://u:${PW}@db:5432/x\n", {"PW": "p4ss"})
    assert config.database == "postgresql://u:p4ss@db:5432/x"


def test_negative_price_names_the_dotted_path() -> None:
    text = SPEC_EXAMPLE.replace("input: 0.27", "input: -1")
    assert problems(text) == ["models.deepseek-chat.deployments[0].price.input: must be >= 0"]


def test_unknown_keys_are_rejected_at_every_depth() -> None:
    text = SPEC_EXAMPLE.replace("logging:\n", "colour: blue\nlogging:\n").replace(
        "    timeout_s: 600", "    timeout_s: 600\n    retries: 3"
    )
    assert sorted(problems(text)) == [
        "colour: unknown key",
        "providers.deepseek.retries: unknown key",
    ]


def test_all_problems_are_reported_at_once() -> None:
    text = """
    providers:
      p: {api: openai, base_url: http://x, keys: [{key: k, weight: 0}]}
    models:
      m:
        tier: gold
        deployments: [{provider: p, model: x, price: {input: 1}}]
    """
    assert sorted(problems(text)) == [
        "models.m.tier: must be one of 'economy', 'standard' or 'premium'",
        "providers.p.keys[0].weight: must be >= 1",
    ]


def test_wire_family_must_be_known() -> None:
    found = problems("providers:\n  p: {api: soap, base_url: http://x}\n")
    assert len(found) == 1
    assert found[0].startswith("providers.p.api: must be one of 'openai'")


def test_missing_required_fields() -> None:
    text = """
    providers:
      p: {base_url: http://x}
    models:
      m: {context_window: 10}
    """
    assert sorted(problems(text)) == [
        "models.m.deployments: required",
        "providers.p.api: required",
    ]


def test_wrong_types_are_reported() -> None:
    found = problems("server: {max_body_bytes: lots}\n")
    assert len(found) == 1
    assert found[0].startswith("server.max_body_bytes: ")


def test_deployment_must_name_an_existing_provider() -> None:
    text = SPEC_EXAMPLE.replace("- provider: siliconflow", "- provider: silicon")
    assert problems(text) == [
        "models.deepseek-chat.deployments[1].provider: no provider named 'silicon'"
    ]


def test_fallback_must_name_an_existing_model() -> None:
    text = SPEC_EXAMPLE.replace("fallbacks: [qwen-plus]", "fallbacks: [qwen-plus, glm-4-flash]")
    assert problems(text) == ["models.deepseek-chat.fallbacks[1]: no model named 'glm-4-flash'"]


def test_fallback_to_itself_or_to_another_kind() -> None:
    text = SPEC_EXAMPLE.replace("fallbacks: [qwen-plus]", "fallbacks: [deepseek-chat, emb]") + (
        "  emb:\n    kind: embedding\n"
        "    deployments: [{provider: qwen, model: e, price: {input: 0.1}}]\n"
    )
    assert problems(text) == [
        "models.deepseek-chat.fallbacks[0]: a model cannot fall back to itself",
        "models.deepseek-chat.fallbacks[1]: 'emb' is not a chat model",
    ]


def test_foreign_currency_needs_an_fx_rate() -> None:
    text = SPEC_EXAMPLE.replace("fx: {CNY: 0.14}", "fx: {EUR: 1.1}")
    assert problems(text) == [
        "models.deepseek-chat.deployments[1].price.currency: no billing.fx rate for CNY to USD"
    ]


def test_http_wire_families_need_a_base_url() -> None:
    assert problems("providers:\n  p: {api: openai}\n") == [
        "providers.p.base_url: required for api openai"
    ]


def test_simulator_block_only_on_simulators() -> None:
    text = "providers:\n  p: {api: openai, base_url: http://x, simulator: {ttft_ms: 1}}\n"
    assert problems(text) == ["providers.p.simulator: only for api simulator"]


def test_images_block_only_on_gemini() -> None:
    """Only the Gemini adapter downloads images: elsewhere the block would be ignored."""
    text = "providers:\n  claude: {api: anthropic, images: {fetch: false}}\n"
    assert problems(text) == [
        "providers.claude.images: only for api gemini; provider 'claude' has api anthropic, "
        "which never downloads images"
    ]
    gemini = parse_config("providers:\n  g: {api: gemini, images: {fetch: false}}\n", ENV)
    assert gemini.providers["g"].images.fetch is False
    plain = parse_config("providers:\n  c: {api: anthropic}\n", ENV)  # no block: fine
    assert "images" not in plain.providers["c"].model_fields_set


def test_output_limit_cannot_exceed_the_window() -> None:
    text = """
    providers: {s: {api: simulator}}
    models:
      m:
        context_window: 100
        max_output_tokens: 200
        deployments: [{provider: s, model: x, price: {input: 0}}]
    """
    assert problems(text) == ["models.m.max_output_tokens: must be <= context_window"]


def test_yaml_that_is_not_a_mapping_or_not_yaml() -> None:
    assert problems("- a\n- b\n") == ["the config file must be a mapping at the top level"]
    assert problems("a: [b\n")[0].startswith("not valid YAML")


def test_empty_file_gives_the_defaults() -> None:
    config = parse_config("", {})
    assert config.database == "sqlite:///tokenyard.db"
    assert config.billing.currency == "USD"
    assert config.models == {}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenyard.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_check_config_command_prints_ok(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(SPEC_EXAMPLE)
    result = _cli("check-config", str(path), env={**ENV, "PATH": "/usr/bin"})
    assert (result.returncode, result.stdout) == (0, "ok\n")


def test_check_config_command_prints_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC_EXAMPLE.replace("input: 0.27", "input: -1"))
    result = _cli("check-config", str(path), env={**ENV, "PATH": "/usr/bin"})
    assert result.returncode == 2
    assert result.stderr == "models.deepseek-chat.deployments[0].price.input: must be >= 0\n"


def test_check_config_accepts_every_native_family_with_its_default_host(tmp_path: Path) -> None:
    path = tmp_path / "families.yaml"
    path.write_text(
        "providers:\n"
        + "".join(
            f"  {api}: {{api: {api}, keys: [{{key: k}}]}}\n"
            for api in ("anthropic", "gemini", "zhipu", "dashscope", "spark")
        )
    )
    result = _cli("check-config", str(path))
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_check_config_reports_an_unknown_openai_dialect(tmp_path: Path) -> None:
    path = tmp_path / "vendor.yaml"
    path.write_text("providers:\n  p: {api: openai, base_url: http://x, vendor: acme}\n")
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith("providers.p.vendor: unknown vendor 'acme'")


def test_check_config_on_a_missing_file(tmp_path: Path) -> None:
    result = _cli("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_a_value_with_yaml_syntax_stays_one_string() -> None:
    env = {"K": "a: b # not a comment, {x}"}
    config = parse_config(
        "providers:\n  p: {api: openai, base_url: http://x, keys: [{key: ${K}}]}\n", env
    )
    assert config.providers["p"].keys[0].key == "a: b # not a comment, {x}"
