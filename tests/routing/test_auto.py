"""The auto router: task guesses, needs, ranking and rejections over a real parsed config."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokenyard.config import parse_config
from tokenyard.errors import InvalidRequest
from tokenyard.routing.auto import explain, parse_auto, rank
from tokenyard.routing.catalog import Catalog
from tokenyard.routing.task import classify, needs
from tokenyard.wire.json import JSONObject

CONFIG = """
billing:
  currency: USD
  markup: 0.10
  fx: {CNY: 0.14}
providers:
  deepseek: {api: openai, base_url: https://api.deepseek.com/v1, region: cn, keys: [{key: a}]}
  siliconflow: {api: openai, base_url: https://api.siliconflow.cn/v1, region: cn, keys: [{key: b}]}
  moonshot: {api: openai, base_url: https://api.moonshot.cn/v1, region: cn, keys: [{key: c}]}
  openai: {api: openai, base_url: https://api.openai.com/v1, region: us, keys: [{key: d}]}
  mistral: {api: openai, base_url: https://api.mistral.ai/v1, region: eu, keys: [{key: e}]}
  local: {api: local}
models:
  deepseek-chat:
    context_window: 65536
    capabilities: [tools, json_mode, reasoning]
    tasks: [chat, coding, reasoning]
    tier: standard
    deployments:
      - {provider: deepseek, model: deepseek-chat, price: {input: 0.27, output: 1.10}}
      - provider: siliconflow
        model: deepseek-ai/DeepSeek-V3
        region: sg
        price: {input: 2.0, output: 8.0, currency: CNY}
  kimi-k2:
    context_window: 131072
    capabilities: [tools]
    tasks: [chat, coding]
    deployments:
      - {provider: moonshot, model: kimi-k2, price: {input: 0.27, output: 1.10}}
  qwen-plus:
    context_window: 131072
    capabilities: [tools, json_mode, vision]
    tasks: [chat, cjk, translation, summarization]
    tier: standard
    deployments:
      - provider: siliconflow
        model: Qwen/Qwen-Plus
        price: {input: 0.8, output: 2.0, currency: CNY}
  gpt-4o:
    context_window: 128000
    capabilities: [tools, json_mode, vision]
    tasks: [chat, coding, extraction]
    tier: premium
    deployments:
      - {provider: openai, model: gpt-4o, price: {input: 2.5, output: 10}}
  mistral-small:
    context_window: 32000
    capabilities: [tools, json_mode]
    tasks: [chat, extraction, translation]
    tier: economy
    deployments:
      - {provider: mistral, model: mistral-small-latest, price: {input: 0.2, output: 0.6}}
  glm-4-flash:
    context_window: 8192
    tasks: [chat, cjk]
    tier: economy
    deployments:
      - {provider: siliconflow, model: THUDM/glm-4-9b-chat, price: {input: 0}}
  text-embedding-small:
    kind: embedding
    deployments:
      - {provider: local, model: all-minilm-l6-v2, price: {input: 0}}
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(parse_config(CONFIG))


def user(text: str, *, system: str | None = None, **extra: object) -> JSONObject:
    messages: list[JSONObject] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    return {"model": "auto", "messages": messages, **extra}


def image(text: str) -> JSONObject:
    parts = [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    return {"model": "auto", "messages": [{"role": "user", "content": parts}]}


LONG_DOC = "The committee met on Tuesday and discussed the budget at length. " * 200
HUGE_DOC = "The quarterly report lists revenue, costs and outlook per region. " * 700


# --- classify -------------------------------------------------------------------------

TASK_CASES: list[tuple[str, JSONObject, str]] = [
    ("hello", user("Hi! How are you today?"), "chat"),
    ("fence", user("Why does this fail?\n```python\ndef f(x):\n    return x[0]\n```"), "coding"),
    ("traceback", user('Traceback (most recent call last):\n  File "a.py", line 3'), "coding"),
    ("bug words", user("There is a bug in my javascript function, can you debug it?"), "coding"),
    (
        "json schema",
        user("Give me the people.", response_format={"type": "json_schema", "json_schema": {}}),
        "extraction",
    ),
    ("extract cue", user("Extract the invoice number and date as JSON: Invoice 42"), "extraction"),
    ("summarize long", user("Please summarize:\n" + LONG_DOC), "summarization"),
    ("tl;dr short", user("tl;dr of the French revolution?"), "summarization"),
    ("very long", user(HUGE_DOC), "summarization"),
    ("translate", user("Translate 'good morning' into French"), "translation"),
    ("翻译", user("把这句话翻译成英文：今天天气很好"), "translation"),
    ("cjk chat", user("你好，请介绍一下北京的历史和文化。"), "cjk"),
    ("reasoning effort", user("What should I name my cat?", reasoning_effort="high"), "reasoning"),
    ("prove", user("Prove that the square root of 2 is irrational, step by step."), "reasoning"),
    ("math", user("Solve 3x + 5 = 20 for x"), "reasoning"),
    (
        "system prompt lightly",
        user("Invoice 42 from ACME, 2024-05-01", system="Extract fields and answer in JSON."),
        "extraction",
    ),
    ("system alone is light", user("Hi there", system="You know python."), "chat"),
]


@pytest.mark.parametrize(
    ("body", "task"), [c[1:] for c in TASK_CASES], ids=[c[0] for c in TASK_CASES]
)
def test_classify(body: JSONObject, task: str) -> None:
    guess = classify(body)
    assert guess.task == task, guess
    assert guess.reason
    assert task not in guess.secondary


def test_classify_reason_and_secondary() -> None:
    guess = classify(
        user("这段代码为什么运行报错？请帮我看看哪里有问题。\n```python\ndef f(): pass\n```")
    )
    assert guess.task == "coding"
    assert guess.reason == "code fence and 'def' in the last user message"
    assert "cjk" in guess.secondary


def test_classify_reason_from_body() -> None:
    guess = classify(user("hi", response_format={"type": "json_object"}))
    assert guess.reason == "response_format json_object in the request"


def test_classify_tolerates_odd_bodies() -> None:
    assert classify({}).task == "chat"
    assert classify({"messages": "nope"}).task == "chat"
    assert classify({"messages": [{"role": "user", "content": None}, 3]}).task == "chat"


def test_classify_reads_a_very_long_input() -> None:
    """A 1 MB prompt is still classified by what it asks (its speed: bench/micro.py)."""
    body = user("Please summarize this:\n" + HUGE_DOC * 20)
    assert classify(body).task == "summarization"


# --- needs ------------------------------------------------------------------------------


NEEDS_CASES: list[tuple[JSONObject, frozenset[str]]] = [
    (user("hi"), frozenset()),
    (user("hi", tools=[{"type": "function", "function": {"name": "f"}}]), frozenset({"tools"})),
    (user("hi", tools=[]), frozenset()),
    (image("what is this?"), frozenset({"vision"})),
    (user("hi", response_format={"type": "json_object"}), frozenset({"json_mode"})),
    (user("hi", response_format={"type": "text"}), frozenset()),
    (user("hi", reasoning_effort="low"), frozenset({"reasoning"})),
]


@pytest.mark.parametrize(("body", "expected"), NEEDS_CASES)
def test_needs(body: JSONObject, expected: frozenset[str]) -> None:
    assert needs(body) == expected


# --- rank -------------------------------------------------------------------------------


def ranked(
    catalog: Catalog,
    body: JSONObject,
    *,
    tier: str | None = None,
    allowed: frozenset[str] | None = None,
    regions: frozenset[str] | None = None,
    sort: str | None = None,
    max_price: tuple[Decimal | None, Decimal | None] | None = None,
    tokens: tuple[int, int] = (1000, 1000),
    health: dict[str, float] | None = None,
) -> tuple[list[str], dict[str, str]]:
    ranking = rank(
        catalog,
        body,
        tier=tier,
        allowed=(lambda name: True) if allowed is None else allowed.__contains__,
        regions=regions,
        sort=sort,
        max_price=max_price,
        prompt_tokens=tokens[0],
        output_tokens=tokens[1],
        health=None if health is None else (lambda name: health.get(name, 1.0)),
    )
    return [c.name for c in ranking.candidates], ranking.rejected


CHAT = user("Hi! How are you today?")
CODE = user("```python\ndef f(x): return x\n```\nwhy is this slow?")
EMBEDDING = {"text-embedding-small": "embedding model"}
ALL_CHAT = {"deepseek-chat", "kimi-k2", "qwen-plus", "gpt-4o", "mistral-small", "glm-4-flash"}

RANK_CASES: list[tuple[str, JSONObject, dict[str, object], list[str], dict[str, str]]] = [
    (
        "chat default: standard tier, then cost",
        CHAT,
        {},
        ["qwen-plus", "deepseek-chat", "kimi-k2", "glm-4-flash", "mistral-small", "gpt-4o"],
        EMBEDDING,
    ),
    (
        "coding: task match before cost",
        CODE,
        {},
        ["deepseek-chat", "kimi-k2", "qwen-plus", "gpt-4o", "glm-4-flash", "mistral-small"],
        EMBEDDING,
    ),
    (
        "sort=price puts cost first",
        CHAT,
        {"sort": "price"},
        ["glm-4-flash", "qwen-plus", "mistral-small", "deepseek-chat", "kimi-k2", "gpt-4o"],
        EMBEDDING,
    ),
    (
        "auto:premium",
        CHAT,
        {"tier": "premium"},
        ["gpt-4o", "qwen-plus", "deepseek-chat", "kimi-k2", "glm-4-flash", "mistral-small"],
        EMBEDDING,
    ),
    (
        "auto:economy",
        CHAT,
        {"tier": "economy"},
        ["glm-4-flash", "mistral-small", "qwen-plus", "deepseek-chat", "kimi-k2", "gpt-4o"],
        EMBEDDING,
    ),
    (
        "vision",
        image("what is in this picture?"),
        {},
        ["qwen-plus", "gpt-4o"],
        {
            "deepseek-chat": "lacks vision",
            "kimi-k2": "lacks vision",
            "mistral-small": "lacks vision",
            "glm-4-flash": "lacks vision",
            **EMBEDDING,
        },
    ),
    (
        "json mode and tools",
        user("list them", tools=[{"type": "function"}], response_format={"type": "json_object"}),
        {},
        ["qwen-plus", "deepseek-chat", "mistral-small", "gpt-4o"],
        {"kimi-k2": "lacks json_mode", "glm-4-flash": "lacks json_mode, tools", **EMBEDDING},
    ),
    (
        "context window",
        CHAT,
        {"tokens": (30000, 4000)},
        ["qwen-plus", "deepseek-chat", "kimi-k2", "gpt-4o"],
        {
            "mistral-small": "window 32000 < 34000",
            "glm-4-flash": "window 8192 < 34000",
            **EMBEDDING,
        },
    ),
    (
        "region eu",
        CHAT,
        {"regions": frozenset({"eu"})},
        ["mistral-small"],
        {
            "deepseek-chat": "region cn,sg not allowed",
            "kimi-k2": "region cn not allowed",
            "qwen-plus": "region cn not allowed",
            "gpt-4o": "region us not allowed",
            "glm-4-flash": "region cn not allowed",
            **EMBEDDING,
        },
    ),
    (
        "max_price on input",
        CHAT,
        {"max_price": (Decimal("0.25"), None)},
        ["qwen-plus", "glm-4-flash", "mistral-small"],
        {
            "deepseek-chat": "over max_price",
            "kimi-k2": "over max_price",
            "gpt-4o": "over max_price",
            **EMBEDDING,
        },
    ),
    (
        "max_price on output, in CNY converted",
        CHAT,
        {"max_price": (None, Decimal("0.28"))},
        ["qwen-plus", "glm-4-flash"],
        {
            "deepseek-chat": "over max_price",
            "kimi-k2": "over max_price",
            "gpt-4o": "over max_price",
            "mistral-small": "over max_price",
            **EMBEDDING,
        },
    ),
    (
        "key scope",
        CHAT,
        {"allowed": frozenset({"gpt-4o", "glm-4-flash", "text-embedding-small"})},
        ["glm-4-flash", "gpt-4o"],
        {
            name: "not allowed for this key"
            for name in ("deepseek-chat", "kimi-k2", "qwen-plus", "mistral-small")
        }
        | EMBEDDING,
    ),
    (
        "health breaks a cost tie",
        CODE,
        {"health": {"deepseek-chat": 0.4}},
        ["kimi-k2", "deepseek-chat", "qwen-plus", "gpt-4o", "glm-4-flash", "mistral-small"],
        EMBEDDING,
    ),
    (
        "health does not beat tier by default",
        CHAT,
        {"health": {"qwen-plus": 0.1}},
        ["qwen-plus", "deepseek-chat", "kimi-k2", "glm-4-flash", "mistral-small", "gpt-4o"],
        EMBEDDING,
    ),
    (
        "a model whose every circuit is open goes last",
        CHAT,
        {"health": {"qwen-plus": 0.0}},
        ["deepseek-chat", "kimi-k2", "glm-4-flash", "mistral-small", "gpt-4o", "qwen-plus"],
        EMBEDDING,
    ),
    (
        "sort=price also puts a model that is down last",
        CHAT,
        {"sort": "price", "health": {"glm-4-flash": 0.0}},
        ["qwen-plus", "mistral-small", "deepseek-chat", "kimi-k2", "gpt-4o", "glm-4-flash"],
        EMBEDDING,
    ),
    (
        "sort=latency puts health first",
        CHAT,
        {"sort": "latency", "health": {"qwen-plus": 0.1, "gpt-4o": 0.9}},
        ["deepseek-chat", "kimi-k2", "glm-4-flash", "mistral-small", "gpt-4o", "qwen-plus"],
        EMBEDDING,
    ),
]


@pytest.mark.parametrize(
    ("body", "options", "order", "rejected"),
    [c[1:] for c in RANK_CASES],
    ids=[c[0] for c in RANK_CASES],
)
def test_rank(
    catalog: Catalog,
    body: JSONObject,
    options: dict[str, object],
    order: list[str],
    rejected: dict[str, str],
) -> None:
    names, why = ranked(catalog, body, **options)  # type: ignore[arg-type]
    assert names == order
    assert why == rejected
    assert set(names) | set(why) == ALL_CHAT | {"text-embedding-small"}


def test_expected_cost_uses_cheapest_allowed_deployment_after_fx(catalog: Catalog) -> None:
    anywhere = rank(
        catalog,
        CODE,
        tier=None,
        allowed=lambda n: True,
        regions=None,
        sort=None,
        max_price=None,
        prompt_tokens=1000,
        output_tokens=1000,
    )
    first = anywhere.candidates[0]
    assert first.name == "deepseek-chat"
    assert first.expected_cost == Decimal("0.00137")
    assert first.deployment is not None and first.deployment.provider == "deepseek"
    assert first.task_match and first.tier == "standard"
    singapore = rank(
        catalog,
        CODE,
        tier=None,
        allowed=lambda n: True,
        regions=frozenset({"sg"}),
        sort=None,
        max_price=None,
        prompt_tokens=1000,
        output_tokens=1000,
    )
    assert [c.name for c in singapore.candidates] == ["deepseek-chat"]
    only = singapore.candidates[0]
    assert only.expected_cost == Decimal("0.0014")  # (0.28 + 1.12) per 1M, CNY x 0.14
    assert only.deployment is not None and only.deployment.provider == "siliconflow"


def test_rank_rejects_unknown_sort(catalog: Catalog) -> None:
    with pytest.raises(InvalidRequest):
        ranked(catalog, CHAT, sort="random")


# --- parse_auto and explain ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("auto", None),
        ("auto:economy", "economy"),
        ("auto:standard", "standard"),
        ("auto:premium", "premium"),
        ("deepseek-chat", False),
        ("automatic", False),
        ("Auto", False),
    ],
)
def test_parse_auto(model: str, expected: str | None) -> None:
    assert parse_auto(model) == expected


@pytest.mark.parametrize("model", ["auto:gold", "auto:", "auto:Premium"])
def test_parse_auto_unknown_tier(model: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_auto(model)
    assert info.value.param == "model"


def test_explain(catalog: Catalog) -> None:
    ranking = rank(
        catalog,
        CODE,
        tier=None,
        allowed=lambda n: True,
        regions=None,
        sort=None,
        max_price=None,
        prompt_tokens=100,
        output_tokens=100,
    )
    assert explain(ranking) == "task=coding; tier=standard; chosen=deepseek-chat; runner-up=kimi-k2"


def test_explain_with_one_or_no_candidate(catalog: Catalog) -> None:
    eu = rank(
        catalog,
        CHAT,
        tier="economy",
        allowed=lambda n: True,
        regions=frozenset({"eu"}),
        sort=None,
        max_price=None,
        prompt_tokens=10,
        output_tokens=10,
    )
    assert explain(eu) == "task=chat; tier=economy; chosen=mistral-small"
    nowhere = rank(
        catalog,
        CHAT,
        tier=None,
        allowed=lambda n: True,
        regions=frozenset({"mars"}),
        sort=None,
        max_price=None,
        prompt_tokens=10,
        output_tokens=10,
    )
    assert explain(nowhere) == "task=chat; tier=standard; chosen=none"
    assert explain(nowhere).isascii()
