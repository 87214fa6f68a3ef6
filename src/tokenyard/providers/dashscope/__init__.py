"""The Alibaba DashScope native wire family (``api: dashscope``), providers.md §6.4.

The compatible mode (``/compatible-mode/v1``) is served by the OpenAI family; this package
speaks the native ``/api/v1/services/...`` API: ``input``/``parameters`` bodies and the
multimodal endpoint (:mod:`.request`), ``output.choices`` answers (:mod:`.response`),
``event:result`` streams without ``[DONE]`` (:mod:`.stream`), string error codes
(:mod:`.failure`).
"""

from tokenyard.providers.dashscope.provider import DEFAULT_BASE_URL, DashScopeProvider, build
from tokenyard.providers.dashscope.stream import DashScopeStream

__all__ = ["DEFAULT_BASE_URL", "DashScopeProvider", "DashScopeStream", "build"]
