"""`auto`'s second opinion on a request's task: the labelled example it is most like.

The rule classifier (routing/task.py) reads cues — a code fence, "translate", a JSON
schema. A request without cues ("my list loses its last element when I sort it") is `chat`
to it. When ``routing.classifier`` is configured, such a request is embedded with one of
the catalogue's embedding models and compared with the operator's labelled examples; the
task of the nearest example is taken if it is similar enough. Requests the rules already
classified never pay for an embedding.

The examples are embedded once, on first use. If the embedding model fails, the rules'
guess stands (logged once): routing must not fail because its helper did.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from operator import mul

from tokenyard.routing.task import TaskGuess

log = logging.getLogger(__name__)

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
QUERY_CHARS = 2000
"""How much of the user's text is embedded: its start says what it is about."""


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(map(mul, a, b)))  # both are unit vectors


class SimilarityClassifier:
    def __init__(
        self, embed: Embed, examples: Mapping[str, Sequence[str]], min_similarity: float
    ) -> None:
        self._embed = embed
        self._labelled = [(task, text) for task, texts in examples.items() for text in texts]
        self._min = min_similarity
        self._vectors: list[list[float]] | None = None
        self._lock = asyncio.Lock()
        self._warned = False

    async def refine(self, guess: TaskGuess, text: str) -> TaskGuess:
        """``guess`` when the rules found a task (or there is no text); else the task of
        the most similar example, when it is similar enough."""
        if guess.task != "chat" or not text.strip():
            return guess
        try:
            examples = await self._examples()
            [query] = await self._embed([text[:QUERY_CHARS]])
        except Exception as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "task classifier: the embedding model failed; using the rules alone",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            return guess
        query = _unit(query)
        score, index = max((_cosine(query, v), i) for i, v in enumerate(examples))
        if score < self._min:
            return guess
        task, example = self._labelled[index]
        shown = example if len(example) <= 40 else example[:37] + "..."
        reason = f"like the {task} example '{shown}' (similarity {score:.2f})"
        return replace(guess, task=task, reason=reason)

    async def _examples(self) -> list[list[float]]:
        async with self._lock:
            if self._vectors is None:
                vectors = await self._embed([text for _, text in self._labelled])
                self._vectors = [_unit(v) for v in vectors]
            return self._vectors
