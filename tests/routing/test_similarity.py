"""The similarity classifier's decisions, with a small deterministic embedder standing in for
the embedding model (bag of words; the real local model is used end to end in
tests/e2e/test_auto_similarity.py)."""

from __future__ import annotations

import asyncio
import hashlib

from tokenyard.routing.similarity import SimilarityClassifier
from tokenyard.routing.task import TaskGuess, classify

EXAMPLES = {
    "coding": ["my program crashes with an exception", "the loop in my script never ends"],
    "legal": ["is this contract clause enforceable", "can my landlord keep the deposit"],
}


class BagOfWords:
    """Counts each word into one of 64 buckets; remembers what it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(texts)
        if self.fail:
            raise ConnectionError("the embedding upstream is down")
        vectors = []
        for text in texts:
            vector = [0.0] * 64
            for word in text.lower().split():
                vector[hashlib.sha256(word.encode()).digest()[0] % 64] += 1.0
            vectors.append(vector)
        return vectors


def refine(classifier: SimilarityClassifier, text: str) -> TaskGuess:
    body = {"messages": [{"role": "user", "content": text}]}
    return asyncio.run(classifier.refine(classify(body), text))


def test_a_request_without_cues_takes_the_task_of_its_nearest_example() -> None:
    classifier = SimilarityClassifier(BagOfWords(), EXAMPLES, 0.4)
    guess = refine(classifier, "why does my program crash with this exception")
    assert guess.task == "coding"
    assert "my program crashes" in guess.reason and "similarity" in guess.reason
    assert refine(classifier, "can the landlord keep my deposit").task == "legal"


def test_too_little_similarity_leaves_chat() -> None:
    classifier = SimilarityClassifier(BagOfWords(), EXAMPLES, 0.4)
    guess = refine(classifier, "tell me about penguins")
    assert (guess.task, guess.reason) == ("chat", "no strong task cues")


def test_what_the_rules_classified_is_never_embedded() -> None:
    embedder = BagOfWords()
    classifier = SimilarityClassifier(embedder, EXAMPLES, 0.1)
    assert refine(classifier, "translate 'my program crashes' into French").task == "translation"
    assert embedder.calls == []


def test_examples_are_embedded_once() -> None:
    embedder = BagOfWords()
    classifier = SimilarityClassifier(embedder, EXAMPLES, 0.4)

    async def twice() -> None:
        for text in ("my script never ends", "is the clause enforceable"):
            body = {"messages": [{"role": "user", "content": text}]}
            await classifier.refine(classify(body), text)

    asyncio.run(twice())
    assert [len(texts) for texts in embedder.calls] == [4, 1, 1]


def test_a_failing_embedding_model_leaves_the_rules_guess() -> None:
    classifier = SimilarityClassifier(BagOfWords(fail=True), EXAMPLES, 0.4)
    assert refine(classifier, "my program crashes with an exception").task == "chat"
