"""The Spark model line-up as data: WebSocket path, ``domain`` and parameter limits.

Sources (checked for this table):

* WebSocket URL → ``parameter.chat.domain``: iFlytek's own page xfyun.cn/doc/spark/Web.html
  (§1.2 请求地址) and the official Java SDK ``iFLYTEK-OP/websdk-java``
  ``websdk-java-spark/.../config/SparkModel.java`` (which also lists X1 at ``/v1/x1``, domain
  ``x1``); one-api ``relay/adaptor/xunfei/domain.go`` agrees.
* ``max_tokens`` ranges: Pro, Max, Max-32K, 4.0 Ultra ``[1, 8192]``; Lite, Pro-128K
  ``[1, 4096]`` (websdk-java ``SparkChatClient.java`` and its README). X1: 32768 is
  **unverified**.
* ``functions``/``system``: websdk-java ``SparkModel`` flags (Lite has neither; Spark folds
  the system prompt into the first user turn there).
* ``sampling``: only X1 takes ``top_p``/``presence_penalty``/``frequency_penalty`` over the
  WebSocket (websdk-java ``buildParam``).

The HTTP API (providers.md §9.2) takes the same ``domain`` strings as its ``model``.
"""

from __future__ import annotations

from types import MappingProxyType

from tokenyard.immutable import immutable


@immutable
class SparkModel:
    domain: str
    """``parameter.chat.domain`` on the WebSocket, ``model`` on the HTTP API."""
    ws_path: str
    max_tokens: int
    """Upper bound of ``max_tokens``; larger requests are clamped."""
    functions: bool = True
    system: bool = True
    sampling: bool = False


MODELS: MappingProxyType[str, SparkModel] = MappingProxyType(
    {
        model.domain.lower(): model
        for model in (
            SparkModel("lite", "/v1.1/chat", 4096, functions=False, system=False),
            SparkModel("generalv3", "/v3.1/chat", 8192),
            SparkModel("pro-128k", "/chat/pro-128k", 4096),
            SparkModel("generalv3.5", "/v3.5/chat", 8192),
            SparkModel("max-32k", "/chat/max-32k", 8192),
            SparkModel("4.0Ultra", "/v4.0/chat", 8192),
            SparkModel("x1", "/v1/x1", 32768, sampling=True),
        )
    }
)

ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {
        "general": "lite",  # the V1.5 name, now served as Lite
        "spark-lite": "lite",
        "pro": "generalv3",
        "spark-pro": "generalv3",
        "spark-pro-128k": "pro-128k",
        "max": "generalv3.5",
        "spark-max": "generalv3.5",
        "spark-max-32k": "max-32k",
        "ultra": "4.0ultra",
        "spark-4.0-ultra": "4.0ultra",
        "spark-x1": "x1",
    }
)


def find_model(name: str) -> SparkModel | None:
    """The table row for an upstream model name or alias (case-insensitive), if any."""
    key = name.strip().lower()
    return MODELS.get(ALIASES.get(key, key))
