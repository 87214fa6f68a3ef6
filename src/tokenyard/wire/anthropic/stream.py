"""Canonical chat.completion.chunk payloads → Anthropic SSE events, incrementally.

The sequence is Anthropic's (providers.md §3.4): ``message_start``, then per block
``content_block_start`` / ``content_block_delta``* / ``content_block_stop`` with increasing
``index``, then ``message_delta`` and ``message_stop``; ``error`` ends a stream early. No
``ping`` events are written.

* ``message_start`` goes out with the first chunk, before the prompt is counted: its usage
  says ``input_tokens: 0``. The real counts (input, cache reads, output) come in
  ``message_delta.usage``, which newer API versions — and the SDK's accumulator — read as
  cumulative totals that overwrite the start's.
* ``reasoning_content`` → a ``thinking`` block (``thinking_delta``; no ``signature_delta``,
  there is no signature), ``content`` and ``refusal`` → a ``text`` block (``text_delta``),
  each OpenAI tool-call ``index`` → its own ``tool_use`` block whose start carries ``id``,
  ``name`` and ``input: {}``, its argument fragments → ``input_json_delta``. A change of kind
  closes the open block. Fragments for a tool call whose block was already closed (vendors
  do not interleave, but could) are still sent at that block's index.
* ``finish_reason`` is remembered and reported by :meth:`StreamTranslator.finish`; a usage
  chunk (``choices: []``) is remembered too, for a ``finish(None)``. An OpenAI-shaped
  ``{"error": …}`` chunk becomes an ``error`` event.
"""

from __future__ import annotations

from tokenyard.wire.anthropic.response import anthropic_usage, error_kind, stop_reason
from tokenyard.wire.json import JSONObject, dumps

THINKING = "thinking"
TEXT = "text"
TOOL = "tool_use"


def event(payload: JSONObject) -> bytes:
    """One SSE frame; the event name is the payload's ``type``, as Anthropic sends it."""
    return b"event: " + str(payload["type"]).encode() + b"\ndata: " + dumps(payload) + b"\n\n"


def _block_event(kind: str, index: int, **fields: object) -> bytes:
    return event({"type": kind, "index": index, **fields})


class StreamTranslator:
    """Canonical chat.completion.chunk payloads → Anthropic SSE events, incrementally."""

    def __init__(self, *, model: str, message_id: str) -> None:
        self._model = model
        self._message_id = message_id
        self._started = False
        self._done = False
        self._open: tuple[str, int] | None = None  # kind and index of the open block
        self._next_index = 0
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._finish_reason: object = None
        self._refused = False
        self._usage: JSONObject | None = None

    def feed(self, chunk: JSONObject) -> list[bytes]:
        if self._done:
            return []
        error = chunk.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            text = message if isinstance(message, str) and message else "upstream error"
            return self.error(text, error_kind(error.get("type")))
        events = self._start()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return events
        delta = choice.get("delta")
        if isinstance(delta, dict):
            events += self._delta(delta)
        if choice.get("finish_reason") is not None:
            self._finish_reason = choice["finish_reason"]
        return events

    def finish(self, usage: JSONObject | None) -> list[bytes]:
        """Close the open block, then ``message_delta`` (stop reason, usage) and
        ``message_stop``. Idempotent: a second call (or one after :meth:`error`) is empty."""
        if self._done:
            return []
        self._done = True
        events = self._start() + self._close()
        usage = usage if usage is not None else self._usage
        reason = stop_reason(
            self._finish_reason, used_tools=bool(self._tools), refused=self._refused
        )
        events.append(
            event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": anthropic_usage(usage) if usage is not None else {"output_tokens": 0},
                }
            )
        )
        events.append(event({"type": "message_stop"}))
        return events

    def error(self, message: str, kind: str = "api_error") -> list[bytes]:
        """An ``error`` event; the stream is over after it."""
        self._done = True
        return [event({"type": "error", "error": {"type": kind, "message": message}})]

    # --- internals -------------------------------------------------------------------------

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: JSONObject = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [event({"type": "message_start", "message": message})]

    def _delta(self, delta: JSONObject) -> list[bytes]:
        events: list[bytes] = []
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            events += self._append(THINKING, reasoning)
        text = delta.get("content")
        if isinstance(text, str) and text:
            events += self._append(TEXT, text)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refused = True
            events += self._append(TEXT, refusal)
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            if isinstance(call, dict):
                events += self._tool_delta(call, position)
        return events

    def _open_block(self, kind: str, block: JSONObject) -> list[bytes]:
        events = self._close()
        index = self._next_index
        self._next_index += 1
        self._open = (kind, index)
        return [*events, _block_event("content_block_start", index, content_block=block)]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        _, index = self._open
        self._open = None
        return [_block_event("content_block_stop", index)]

    def _append(self, kind: str, piece: str) -> list[bytes]:
        events: list[bytes] = []
        if self._open is None or self._open[0] != kind:
            block: JSONObject = (
                {"type": "thinking", "thinking": "", "signature": ""}
                if kind == THINKING
                else {"type": "text", "text": ""}
            )
            events += self._open_block(kind, block)
        assert self._open is not None
        delta = (
            {"type": "thinking_delta", "thinking": piece}
            if kind == THINKING
            else {"type": "text_delta", "text": piece}
        )
        events.append(_block_event("content_block_delta", self._open[1], delta=delta))
        return events

    def _tool_delta(self, call: JSONObject, position: int) -> list[bytes]:
        key = call.get("index")
        key = key if isinstance(key, int) and not isinstance(key, bool) else position
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        events: list[bytes] = []
        if key not in self._tools:
            call_id, name = call.get("id"), function.get("name")
            block = {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{key}",
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            events += self._open_block(TOOL, block)
            self._tools[key] = self._next_index - 1
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # lenient vendors send the object whole
            arguments = dumps(arguments).decode()
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append(_block_event("content_block_delta", self._tools[key], delta=delta))
        return events
