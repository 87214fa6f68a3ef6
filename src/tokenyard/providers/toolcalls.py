"""Tool-call deltas with stable canonical indexes (used by the zhipu and dashscope families).

Vendors stream tool calls in different cuts: GLM sends each call whole in one delta
(sometimes every call under index 0, each with its own id); DashScope sends the id, type and
name first and then argument fragments whose ``id`` is empty. OpenAI's rule, which clients
rely on: the first delta for an index carries ``id``, ``type`` and ``function.name``; later
ones only ``function.arguments`` fragments. :class:`ToolCallDeltas` maps one to the other:
a new id under a known vendor index opens a new canonical index, and a call whose name has
not arrived yet is held back (arguments buffered) until it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenyard.wire.json import JSONObject, dumps


@dataclass(slots=True)
class _Call:
    index: int
    id: str = ""
    name: str = ""
    pending: str = ""
    opened: bool = False


def _arguments(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return dumps(value).decode()  # some vendors send the arguments as an object


class ToolCallDeltas:
    def __init__(self, id_prefix: str = "call_") -> None:
        self._by_key: dict[int, _Call] = {}
        self._count = 0
        self._prefix = id_prefix

    @property
    def seen(self) -> bool:
        return self._count > 0

    def feed(self, raw: object, position: int) -> JSONObject | None:
        """The canonical delta for one vendor tool-call delta (None: nothing to send yet)."""
        if not isinstance(raw, dict):
            return None
        key = raw.get("index")
        key = key if isinstance(key, int) else position
        call_id = raw.get("id") if isinstance(raw.get("id"), str) else ""
        function = raw.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        name = name if isinstance(name, str) else ""
        arguments = _arguments(function.get("arguments"))
        call = self._by_key.get(key)
        if call is None or (call_id and call.id and call_id != call.id):
            call = _Call(index=self._count)
            self._count += 1
            self._by_key[key] = call
        if call_id and not call.id:
            call.id = call_id
        if call.opened:
            if not arguments:
                return None
            return {"index": call.index, "function": {"arguments": arguments}}
        call.name += name
        call.pending += arguments
        if not call.name:
            return None
        call.opened = True
        opened: JSONObject = {
            "index": call.index,
            "id": call.id or f"{self._prefix}{call.index}",
            "type": "function",
            "function": {"name": call.name, "arguments": call.pending},
        }
        call.pending = ""
        return opened
