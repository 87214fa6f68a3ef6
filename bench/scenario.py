"""The routing benchmark's scenario: the catalogue, the outage script and the workload.

* :data:`PROVIDERS` and :data:`MODELS` — the stand-in providers and the public models on
  them: tiers, context windows, capabilities, task hints, per-1M prices, real-world speed
  (time to first token, tokens per second; bench/fleet.py scales them) and fallbacks.
  :func:`gateway_config` turns them into a tokenyard config, :func:`fleet_spec` into the
  fleet's spec.
* :data:`EVENTS` — the default outage script, in fractions of the workload.
* :func:`generate` — the fixed, seeded workload: plain chat, code questions, JSON-mode
  extraction, translation, Chinese text, long-input summarisation and tool calls, with
  varied prompt sizes, a share of them streamed. Bodies carry no ``model``: each policy of
  bench/routing.py adds its own.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]

# ---- the catalogue -----------------------------------------------------------------------

PROVIDERS: dict[str, str] = {  # name: region
    "premium-cloud": "us",  # a frontier lab: its premium, standard and economy models
    "open-hub": "us",  # hosts open-weight models
    "eu-cloud": "eu",  # a second host of open-weight models, and a multilingual model
    "code-forge": "us",  # a coding-model vendor
}
HEALTH: Json = {  # tokenyard's defaults; the durations are multiplied by the time scale
    "consecutive_failures": 5,
    "failure_rate": 0.5,
    "min_requests": 10,
    "window_s": 60,
    "open_s": 30,
    "max_open_s": 300,
}
TIMEOUTS: Json = {  # an operator's provider timeouts (real seconds, scaled like HEALTH)
    "timeout_s": 600,
    "connect_timeout_s": 5,
    "first_byte_timeout_s": 60,  # a non-streamed answer's headers come with its body
    "idle_timeout_s": 30,
}
ALL_TASKS = ("chat", "coding", "reasoning", "extraction", "summarization", "translation", "cjk")


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str
    upstream: str  # the upstream's own model name
    input: float  # USD per 1M tokens
    output: float
    ttft_ms: float  # real-world time to first token
    tokens_per_s: float


@dataclass(frozen=True, slots=True)
class Model:
    tier: str
    context_window: int
    capabilities: tuple[str, ...]
    tasks: tuple[str, ...]
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()

    def describe(self) -> Json:
        return asdict(self)


def _d(
    provider: str, upstream: str, price: tuple[float, float], speed: tuple[float, float]
) -> Deployment:
    return Deployment(provider, upstream, *price, *speed)


MODELS: dict[str, Model] = {
    "atlas-pro": Model(
        "premium", 200_000, ("tools", "json_mode", "vision", "reasoning"), ALL_TASKS,
        (_d("premium-cloud", "atlas-pro-2025", (3.0, 15.0), (800, 50)),),
    ),
    "atlas-lite": Model(
        "standard", 200_000, ("tools", "json_mode", "vision", "reasoning"),
        ("chat", "extraction", "reasoning", "summarization"),
        (_d("premium-cloud", "atlas-lite-2025", (0.4, 1.6), (450, 90)),),
        fallbacks=("orca-70b",),
    ),
    "atlas-nano": Model(
        "economy", 128_000, ("tools", "json_mode", "vision"),
        ("chat", "extraction", "summarization"),
        (_d("premium-cloud", "atlas-nano-2025", (0.15, 0.6), (300, 150)),),
        fallbacks=("minnow-8b",),
    ),
    "orca-70b": Model(
        "standard", 128_000, ("tools", "json_mode"), ("chat", "summarization", "reasoning"),
        (
            _d("open-hub", "orca-70b-instruct", (0.6, 1.8), (550, 45)),
            _d("eu-cloud", "orca-70b", (0.7, 2.1), (650, 40)),
        ),
    ),
    "forge-coder": Model(
        "standard", 64_000, ("tools", "json_mode"), ("coding",),
        (_d("code-forge", "forge-coder-v3", (0.5, 2.0), (450, 80)),),
        fallbacks=("atlas-lite",),
    ),
    "polyglot-32b": Model(
        "standard", 32_000, ("json_mode",), ("translation", "cjk"),
        (_d("eu-cloud", "polyglot-32b", (0.3, 0.9), (400, 70)),),
        fallbacks=("orca-70b",),
    ),
    "minnow-8b": Model(
        "economy", 8_192, ("tools", "json_mode"), ("chat", "extraction", "translation"),
        (
            _d("open-hub", "minnow-8b-instruct", (0.1, 0.4), (200, 140)),
            _d("eu-cloud", "minnow-8b", (0.12, 0.45), (250, 120)),
        ),
    ),
}  # fmt: skip


def _keys(provider: str) -> list[str]:
    count = 2 if provider == "premium-cloud" else 1
    return [f"sk-{provider}-{i}" for i in range(count)]


def _scaled(values: Json, scale: float) -> Json:
    return {k: round(v * scale, 3) if k.endswith("_s") else v for k, v in values.items()}


def gateway_config(tmp: Path, ports: dict[str, int], admin_key: str, scale: float) -> Json:
    """A tokenyard config (SPEC §2) for the catalogue, the upstreams on ``ports``; every
    duration in it is a real-world value times ``scale``, like the upstreams' speeds."""
    providers = {
        name: {
            "api": "openai",
            "base_url": f"http://127.0.0.1:{ports[name]}/v1",
            "region": region,
            **_scaled(TIMEOUTS, scale),
            "keys": [{"key": k} for k in _keys(name)],
        }
        for name, region in PROVIDERS.items()
    }
    models = {
        name: {
            "context_window": m.context_window,
            "max_output_tokens": 4096,
            "capabilities": list(m.capabilities),
            "tasks": list(m.tasks),
            "tier": m.tier,
            "deployments": [
                {
                    "provider": d.provider,
                    "model": d.upstream,
                    "price": {"input": d.input, "output": d.output},
                }
                for d in m.deployments
            ],
            **({"fallbacks": list(m.fallbacks)} if m.fallbacks else {}),
        }
        for name, m in MODELS.items()
    }
    return {
        "database": f"sqlite:///{tmp}/routing.db",
        "admin_key": admin_key,
        "billing": {"currency": "USD", "markup": 0.10},
        "logging": {"level": "warning"},
        "health": _scaled(HEALTH, scale),
        "providers": providers,
        "models": models,
    }


def fleet_spec(ports: dict[str, int], control_port: int, time_scale: float, seed: int) -> Json:
    """What bench/fleet.py serves: per provider its port, keys and models' speeds."""
    upstreams: Json = {
        name: {"port": ports[name], "keys": _keys(name), "models": {}} for name in PROVIDERS
    }
    for m in MODELS.values():
        for d in m.deployments:
            speed = {"ttft_ms": d.ttft_ms, "tokens_per_s": d.tokens_per_s}
            upstreams[d.provider]["models"][d.upstream] = speed
    return {
        "control_port": control_port,
        "time_scale": time_scale,
        "seed": seed,
        "upstreams": upstreams,
    }


# ---- the outage script ---------------------------------------------------------------------

MODES = ("refuse", "reset", "hang", "http503", "http500", "http429")  # see bench/fleet.py


@dataclass(frozen=True, slots=True)
class Event:
    """``upstream`` is in ``mode`` (for ``fraction`` of its requests) from the request at
    ``start`` to the one at ``end`` (fractions of the workload)."""

    upstream: str
    mode: str
    start: float
    end: float
    fraction: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Event:
        """``UPSTREAM:MODE[@FRACTION]:START-END``, e.g. ``open-hub:http503@0.25:0.35-0.55``."""
        upstream, mode, window = text.split(":")
        mode, _, fraction = mode.partition("@")
        start, end = window.split("-")
        if upstream not in PROVIDERS or mode not in MODES:
            raise ValueError(f"bad outage event {text!r}")
        return cls(upstream, mode, float(start), float(end), float(fraction or 1.0))

    def describe(self) -> str:
        share = f"@{self.fraction:g}" if self.fraction < 1 else ""
        return f"{self.upstream}:{self.mode}{share}:{self.start:g}-{self.end:g}"


EVENTS = (
    # the full outage: every deployment of premium-cloud, connections refused
    Event("premium-cloud", "refuse", 0.2, 0.7),
    # the spill-over: open-hub sheds a quarter of its requests with 503 meanwhile
    Event("open-hub", "http503", 0.35, 0.55, 0.25),
)

# ---- the workload --------------------------------------------------------------------------

KINDS: dict[str, tuple[float, int]] = {
    # kind: (share of the workload, max_tokens)
    "chat": (0.26, 400),
    "code": (0.16, 800),
    "extraction": (0.10, 200),
    "translation": (0.10, 400),
    "cjk": (0.10, 400),
    "summarization": (0.12, 500),
    "tools": (0.16, 64),
}
STREAM_SHARE = 0.4

VOCABULARY = (
    "account adapter answer balance budget cache capacity cluster commit contract customer "
    "dashboard deadline delivery deployment design engineer estimate failure feature forecast "
    "gateway growth incident invoice latency ledger market meeting metric migration network "
    "office outage partner payment pipeline platform pricing project quarter region release "
    "report request revenue review risk roadmap schedule security server service storage "
    "strategy supplier support team timeline traffic upgrade usage vendor warehouse workload"
).split()
FILLER = "a the of to and in for with on by from our their this that is was will has".split()
ZH = (
    "我们的团队正在评估新的云服务供应商。",
    "这个季度的收入增长超过了预期。",
    "请帮我写一封给客户的道歉信。",
    "系统在晚上出现了短暂的故障，但很快恢复了。",
    "下周的会议需要准备一份详细的报告。",
    "北京和上海的数据中心之间的延迟很低。",
    "用户反馈说新版本的界面更加简洁。",
    "我们计划在明年扩大在亚洲市场的业务。",
)
TOPICS = ("a product launch", "a team offsite", "a database migration", "a pricing change")
CITIES = ("Paris", "Berlin", "Tokyo", "Lisbon", "Toronto", "Nairobi", "Seoul")
LANGUAGES = ("French", "German", "Spanish", "Japanese", "Italian")
CODE = (
    "def load(path):\n    with open(path) as f:\n        rows = [l.split(',') for l in f]\n"
    "    return {r[0]: r[1] for r in rows}\n",
    "function total(items) {\n  let sum = 0;\n  for (const i of items) { sum += i.price * i.qty }"
    "\n  return sum.toFixed(2);\n}\n",
    "class Cache:\n    def __init__(self):\n        self.data = {}\n    def get(self, key):\n"
    "        return self.data[key]\n",
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Flights between two airports on a date",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string"},
                    "destination": {"type": "string"},
                    "date": {"type": "string"},
                },
                "required": ["origin", "destination", "date"],
            },
        },
    },
]


@dataclass(frozen=True, slots=True)
class Item:
    index: int
    kind: str
    stream: bool
    body: Json  # messages, max_tokens, and response_format / tools / stream_options

    @property
    def json_mode(self) -> bool:
        return "response_format" in self.body


def _prose(rng: random.Random, words: int) -> str:
    out: list[str] = []
    sentence = 0
    for _ in range(words):
        pool = VOCABULARY if rng.random() < 0.55 else FILLER
        word = rng.choice(pool)
        out.append(word.capitalize() if sentence == 0 else word)
        sentence += 1
        if sentence > 8 and rng.random() < 0.15:
            out[-1] += "."
            sentence = 0
    return " ".join(out) + "."


def _chat(rng: random.Random) -> list[Json]:
    context = _prose(rng, rng.randint(20, 250))
    ask = f"Give me a short plan for {rng.choice(TOPICS)}. Context: {context}"
    messages = [{"role": "user", "content": ask}]
    if rng.random() < 0.4:
        messages.insert(0, {"role": "system", "content": "You are a concise assistant."})
    return messages


def _code(rng: random.Random) -> list[Json]:
    snippet = rng.choice(CODE) * rng.randint(1, 4)
    ask = rng.choice(("Why does this raise a KeyError?", "Refactor this code:", "Add unit tests:"))
    lang = "javascript" if snippet.startswith("function") else "python"
    return [{"role": "user", "content": f"{ask}\n```{lang}\n{snippet}```"}]


def _extraction(rng: random.Random) -> list[Json]:
    text = _prose(rng, rng.randint(60, 400))
    ask = f"Extract the vendor, the amount and the due date from this invoice as JSON:\n{text}"
    return [{"role": "user", "content": ask}]


def _translation(rng: random.Random) -> list[Json]:
    if rng.random() < 0.3:
        text = "".join(rng.choice(ZH) for _ in range(rng.randint(2, 12)))
        return [{"role": "user", "content": f"请把下面这段话翻译成英文：{text}"}]
    text = _prose(rng, rng.randint(30, 300))
    return [{"role": "user", "content": f"Translate into {rng.choice(LANGUAGES)}: {text}"}]


def _cjk(rng: random.Random) -> list[Json]:
    text = "".join(rng.choice(ZH) for _ in range(rng.randint(3, 40)))
    return [{"role": "user", "content": f"{text}你怎么看？"}]


def _summarization(rng: random.Random) -> list[Json]:
    document = _prose(rng, rng.randint(2000, 9000))  # about 3k-12k tokens
    return [
        {"role": "system", "content": "You write executive summaries."},
        {"role": "user", "content": f"Summarize the key points of this report:\n\n{document}"},
    ]


def _tools(rng: random.Random) -> list[Json]:
    city = rng.choice(CITIES)
    return [{"role": "user", "content": f"What's the weather in {city} right now?"}]


BUILDERS = {
    "chat": _chat,
    "code": _code,
    "extraction": _extraction,
    "translation": _translation,
    "cjk": _cjk,
    "summarization": _summarization,
    "tools": _tools,
}


def generate(count: int, seed: int, stream_share: float = STREAM_SHARE) -> list[Item]:
    rng = random.Random(seed)
    kinds = list(KINDS)
    shares = [KINDS[k][0] for k in kinds]
    items = []
    for index in range(count):
        kind = rng.choices(kinds, weights=shares)[0]
        body: Json = {"messages": BUILDERS[kind](rng), "max_tokens": KINDS[kind][1]}
        if kind == "extraction":
            body["response_format"] = {"type": "json_object"}
        if kind == "tools":
            body["tools"] = TOOLS
        stream = rng.random() < stream_share
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        items.append(Item(index, kind, stream, body))
    return items
