"""The routing section (deadline, retry budget) and the per-model `fastest` policy and
`hedge_after_ms`: defaults, values, and errors that name the dotted field."""

from __future__ import annotations

import textwrap

import pytest

from tokenyard.config import parse_config
from tokenyard.errors import ConfigError

MODEL = """
providers:
  p: {api: simulator}
models:
  m:
    deployments: [{provider: p, model: x, price: {input: 1}}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), {})
    return caught.value.problems


def test_routing_defaults_bound_every_request() -> None:
    config = parse_config(MODEL, {})
    assert config.routing.deadline_s == 600
    assert config.routing.max_attempts == 5
    model = config.models["m"]
    assert model.policy == "ordered"
    assert model.hedge_after_ms is None


def test_routing_values_are_read() -> None:
    config = parse_config(MODEL + "routing: {deadline_s: 12.5, max_attempts: 2}\n", {})
    assert config.routing.deadline_s == 12.5
    assert config.routing.max_attempts == 2


def test_fastest_and_hedging_are_read() -> None:
    text = MODEL + "    policy: fastest\n    hedge_after_ms: 800\n"
    model = parse_config(text, {}).models["m"]
    assert model.policy == "fastest"
    assert model.hedge_after_ms == 800


def test_hedging_may_start_at_once() -> None:
    assert parse_config(MODEL + "    hedge_after_ms: 0\n", {}).models["m"].hedge_after_ms == 0


def test_bad_routing_values_name_their_field() -> None:
    assert problems("routing: {deadline_s: 0, max_attempts: 0}\n") == [
        "routing.deadline_s: must be > 0.0",
        "routing.max_attempts: must be >= 1",
    ]
    assert problems("routing: {deadline: 3}\n") == ["routing.deadline: unknown key"]
    assert problems("routing: {max_attempts: 2.5}\n") == [
        "routing.max_attempts: input should be a valid integer, got a number with a fractional part"
    ]


def test_bad_policy_and_hedge_name_their_field() -> None:
    text = MODEL + "    policy: quickest\n    hedge_after_ms: -1\n"
    assert problems(text) == [
        "models.m.policy: must be one of 'ordered', 'weighted', 'cheapest' or 'fastest'",
        "models.m.hedge_after_ms: must be >= 0",
    ]


def test_the_classifier_is_read_and_its_model_must_be_an_embedding_model() -> None:
    classifier = "routing: {classifier: {embedding_model: %s, examples: {legal: [a contract]}}}\n"
    embedding = (
        "  e:\n    kind: embedding\n    deployments: [{provider: p, model: y, price: {input: 0}}]\n"
    )
    config = parse_config(MODEL + embedding + classifier % "e", {})
    assert config.routing.classifier is not None
    assert config.routing.classifier.examples == {"legal": ["a contract"]}
    assert config.routing.classifier.min_similarity == 0.5
    assert problems(MODEL + classifier % "nope") == [
        "routing.classifier.embedding_model: no model named 'nope'"
    ]
    assert problems(MODEL + classifier % "m") == [
        "routing.classifier.embedding_model: 'm' is not an embedding model"
    ]
    assert any(
        p.startswith("routing.classifier.examples")
        for p in problems(
            MODEL + embedding + "routing: {classifier: {embedding_model: e, examples: {}}}\n"
        )
    )
