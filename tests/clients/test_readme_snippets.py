"""The Python and JavaScript snippets of README.md's "Clients" section, run as written against
a live gateway, so what a reader copies is what the test command proved.

Placeholders are replaced as the README states (address, ``ty-…``), and the models it names
(``demo-chat``, ``deepseek-chat``) become the OpenAI-flavoured stand-in's ``gpt-mini``, which
answers tool calls and JSON-schema requests. Each snippet must exit 0 and print the stand-in's
``echo:`` answer; the precise assertions live in the per-client test modules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import MODEL
from tests.clients.test_node import node_project
from tests.e2e.harness import RunningGateway

__all__ = ["node_project"]  # the npm project fixture, shared with test_node

README = Path(__file__).resolve().parents[2] / "README.md"


def snippets(language: str) -> list[str]:
    text = README.read_text()
    section = text.split("\n## Clients\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```", section, re.MULTILINE | re.DOTALL)


def live(snippet: str, gateway: RunningGateway, key: str) -> str:
    for model in ("demo-chat", "deepseek-chat"):
        snippet = snippet.replace(f'"{model}"', f'"{MODEL}"')
    return snippet.replace("http://127.0.0.1:4000", gateway.base_url).replace("ty-…", key)


def check(result: subprocess.CompletedProcess[str], snippet: str) -> None:
    assert result.returncode == 0, f"{snippet}\n--- stderr\n{result.stderr}"
    assert "echo: " in result.stdout, result.stdout


def test_the_clients_section_has_snippets() -> None:
    assert len(snippets("python")) >= 4
    assert len(snippets("js")) >= 2


@pytest.mark.parametrize("index", range(len(snippets("python"))))
def test_python_snippet(gateway: RunningGateway, key: str, index: int) -> None:
    snippet = live(snippets("python")[index], gateway, key)
    result = subprocess.run(
        [sys.executable, "-c", snippet], check=False, capture_output=True, text=True, timeout=60
    )
    check(result, snippet)


@pytest.mark.parametrize("index", range(len(snippets("js"))))
def test_javascript_snippet(
    node_project: Path, gateway: RunningGateway, key: str, index: int
) -> None:
    # Under node_modules/, so that the snippet's imports resolve to the locked packages.
    directory = node_project / "node_modules" / ".readme-snippets"
    directory.mkdir(exist_ok=True)
    script = directory / f"snippet_{index}.mjs"
    snippet = live(snippets("js")[index], gateway, key)
    script.write_text(snippet)
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, str(script)], check=False, capture_output=True, text=True, timeout=60
    )
    check(result, snippet)
