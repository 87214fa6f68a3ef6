"""The Anthropic Messages API as an inbound wire: ``POST /v1/messages`` for every model.

An Anthropic SDK client's request is translated to the canonical form (OpenAI Chat
Completions, :mod:`tokenyard.wire`), runs through the gateway's normal flow, and the
canonical answer or stream is translated back. Pure translation — no I/O:

* :func:`messages_to_chat` — request (``request``)
* :func:`chat_to_message`, :func:`anthropic_error` — answer and error bodies (``response``)
* :class:`StreamTranslator` — chunks to SSE events (``stream``)
"""

from tokenyard.wire.anthropic.request import messages_to_chat
from tokenyard.wire.anthropic.response import anthropic_error, chat_to_message
from tokenyard.wire.anthropic.stream import StreamTranslator

__all__ = ["StreamTranslator", "anthropic_error", "chat_to_message", "messages_to_chat"]
