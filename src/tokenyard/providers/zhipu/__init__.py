"""The Zhipu GLM / Z.AI wire family (``api: zhipu``), providers.md §7.

An OpenAI-like wire with its own rules: JWT or raw-key auth (:mod:`.auth`), clamped
sampling, string-only content for non-user roles, bare-base64 images, ``thinking`` switch
(:mod:`.request`); ``sensitive``/``network_error`` finish reasons (:mod:`.response`,
:mod:`.stream`); string business error codes (:mod:`.failure`).
"""

from tokenyard.providers.zhipu.provider import DEFAULT_BASE_URL, ZhipuProvider, build
from tokenyard.providers.zhipu.stream import ZhipuStream

__all__ = ["DEFAULT_BASE_URL", "ZhipuProvider", "ZhipuStream", "build"]
