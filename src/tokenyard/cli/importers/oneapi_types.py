"""one-api and new-api channel types as data: which tokenyard wire family serves each.

The numbers come from the projects' own sources — one-api ``relay/channeltype/define.go``
and ``url.go`` (0 Unknown … 44 SiliconFlow), new-api ``constant/channel.go`` (0 … 52). The
two agree up to 25 except 2, 4 and 5, and then diverge (DeepSeek is 36 in one-api and 43 in
new-api), so an export is read with the table of the project that wrote it.

``suffix`` is what one-api appends to a channel's ``base_url`` before the OpenAI path
(``/v1/chat/completions``), i.e. what tokenyard's ``base_url`` needs after the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelType:
    name: str
    api: str | None  # None: no tokenyard wire family speaks this upstream
    default_base: str | None = None  # None: the channel's base_url is required (openai)
    suffix: str = "/v1"
    vendor: str | None = None
    why_not: str = ""


def _openai(
    name: str, base: str | None, suffix: str = "/v1", vendor: str | None = None
) -> ChannelType:
    return ChannelType(name, "openai", base, suffix, vendor)


def _no(
    name: str, why: str = "its wire is not OpenAI's and tokenyard has no adapter for it"
) -> ChannelType:
    return ChannelType(name, None, why_not=why)


_COMMON: dict[int, ChannelType] = {
    1: _openai("openai", "https://api.openai.com"),
    3: _openai("azure", None, "/openai/v1"),
    6: _openai("openaimax", "https://api.openaimax.com"),
    7: _openai("ohmygpt", "https://api.ohmygpt.com"),
    8: _openai("custom", None),
    9: _openai("ails", "https://api.caipacity.com"),
    10: _openai("aiproxy", "https://api.aiproxy.io"),
    11: _no("palm", "PaLM is retired"),
    12: _openai("api2gpt", "https://api.api2gpt.com"),
    13: _openai("aigc2d", "https://api.aigc2d.com"),
    14: ChannelType("anthropic", "anthropic", "https://api.anthropic.com", ""),
    15: _no("baidu", "ERNIE's v1 API signs with client_id|client_secret; use Qianfan v2"),
    16: ChannelType("zhipu", "zhipu", "https://open.bigmodel.cn", "/api/paas/v4"),
    17: ChannelType("dashscope", "dashscope", "https://dashscope.aliyuncs.com", ""),
    18: ChannelType("spark", "spark", None, ""),
    20: _openai("openrouter", "https://openrouter.ai/api"),
    21: _no("aiproxy-library"),
    22: _openai("fastgpt", "https://fastgpt.run/api/openapi"),
    23: _no("tencent", "Hunyuan's native API is TC3-signed"),
    24: ChannelType("gemini", "gemini", "https://generativelanguage.googleapis.com", ""),
    25: _openai("moonshot", "https://api.moonshot.cn"),
    31: _openai("lingyiwanwu", "https://api.lingyiwanwu.com"),
}

ONE_API: Mapping[int, ChannelType] = {
    **_COMMON,
    2: _openai("api2d", "https://oa.api2d.net"),
    4: _openai("closeai", "https://api.closeai-proxy.xyz"),
    5: _openai("openai-sb", "https://api.openai-sb.com"),
    19: _openai("ai360", "https://ai.360.cn"),
    26: _openai("baichuan", "https://api.baichuan-ai.com"),
    27: _no("minimax", "one-api calls MiniMax's chatcompletion_v2 endpoint"),
    28: _openai("mistral", "https://api.mistral.ai"),
    29: _openai("groq", "https://api.groq.com/openai"),
    30: _openai("ollama", "http://localhost:11434", vendor="ollama"),
    32: _openai("stepfun", "https://api.stepfun.com"),
    33: _no("aws-claude", "Bedrock needs AWS SigV4 signing"),
    34: _no("coze"),
    35: _no("cohere"),
    36: _openai("deepseek", "https://api.deepseek.com"),
    37: _no("cloudflare", "Workers AI URLs carry the account id; add by hand as openai"),
    38: _no("deepl", "DeepL is a translation API"),
    39: _openai("together", "https://api.together.xyz"),
    40: _openai("doubao", "https://ark.cn-beijing.volces.com", "/api/v3"),
    41: _openai("novita", "https://api.novita.ai/v3/openai", ""),
    42: _no("vertex-ai", "Vertex AI needs Google service-account auth"),
    43: _no("proxy"),
    44: _openai("siliconflow", "https://api.siliconflow.cn"),
}

NEW_API: Mapping[int, ChannelType] = {
    **_COMMON,
    2: _no("midjourney", "image generation"),
    4: _openai("ollama", "http://localhost:11434", vendor="ollama"),
    5: _no("midjourney-plus", "image generation"),
    19: _openai("ai360", "https://api.360.cn"),
    26: ChannelType("zhipu-v4", "zhipu", "https://open.bigmodel.cn", "/api/paas/v4"),
    27: _openai("perplexity", "https://api.perplexity.ai", ""),
    33: _no("aws", "Bedrock needs AWS SigV4 signing"),
    34: _no("cohere"),
    35: _no("minimax"),
    36: _no("suno", "music generation"),
    37: _no("dify", "Dify is an application platform"),
    38: _no("jina"),
    39: _no("cloudflare", "Workers AI URLs carry the account id; add by hand as openai"),
    40: _openai("siliconflow", "https://api.siliconflow.cn"),
    41: _no("vertex-ai", "Vertex AI needs Google service-account auth"),
    42: _openai("mistral", "https://api.mistral.ai"),
    43: _openai("deepseek", "https://api.deepseek.com"),
    44: _no("mokaai"),
    45: _openai("volcengine", "https://ark.cn-beijing.volces.com", "/api/v3"),
    46: _openai("qianfan", "https://qianfan.baidubce.com", "/v2"),
    47: _openai("xinference", None),
    48: _openai("xai", "https://api.x.ai"),
    49: _no("coze"),
    50: _no("kling", "video generation"),
    51: _no("jimeng", "image generation"),
    52: _no("custom-pass"),
}

# one-api's Spark model names carry the API version; tokenyard names Spark models as
# iFlytek does (providers/spark/models.py).
SPARK_VERSIONS: Mapping[str, str] = {
    "v1.1": "lite",
    "v3.1": "generalv3",
    "v3.5": "generalv3.5",
    "v4.0": "4.0Ultra",
}
