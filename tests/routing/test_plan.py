"""The plan of attempts: policies, fallbacks, the request's own list, regions, windows."""

from __future__ import annotations

import random
from collections import Counter

from tokenyard.config import parse_config
from tokenyard.routing.catalog import Catalog
from tokenyard.routing.plan import Wishes, plan

CONFIG = """
providers:
  a: {api: simulator, region: us}
  b: {api: simulator, region: eu}
  c: {api: simulator, region: cn}
models:
  main:
    context_window: 1000
    policy: weighted
    deployments:
      - {provider: a, model: m-a, price: {input: 1, output: 1}, weight: 1}
      - {provider: b, model: m-b, price: {input: 1, output: 1}, weight: 3}
    fallbacks: [big]
  big:
    context_window: 100000
    policy: cheapest
    deployments:
      - {provider: a, model: big-a, price: {input: 9, output: 9}}
      - {provider: c, model: big-c, price: {input: 2, output: 30}}
  extra:
    deployments: [{provider: c, model: x, price: {input: 1}}]
"""
catalog = Catalog(parse_config(CONFIG, {}))


def route(wishes: Wishes, seed: int = 1) -> list[str]:
    model = catalog.get("main")
    assert model is not None
    return [a.deployment.upstream_model for a in plan(catalog, model, wishes, random.Random(seed))]


def test_weighted_order_follows_the_weights() -> None:
    firsts = Counter(route(Wishes(), seed)[0] for seed in range(2000))
    assert 0.70 < firsts["m-b"] / 2000 < 0.80
    assert sorted(route(Wishes())[:2]) == ["m-a", "m-b"]


def test_cheapest_depends_on_this_requests_tokens() -> None:
    input_heavy = route(Wishes(prompt_tokens=10_000, output_tokens=10))  # main's window: 1000
    output_heavy = route(Wishes(prompt_tokens=10, output_tokens=10_000))[2:]
    assert input_heavy == ["big-c", "big-a"]  # 2 per 1M input beats 9
    assert output_heavy == ["big-a", "big-c"]  # 9 per 1M output beats 30


def test_fallbacks_then_the_requests_list_without_repeats() -> None:
    extra = catalog.get("extra")
    assert extra is not None
    names = route(Wishes(models=(extra, extra)))
    assert names[2:] == ["big-a", "big-c", "x"] or names[2:] == ["big-c", "big-a", "x"]
    assert len(names) == 5  # the duplicate is dropped


def test_regions_and_windows_leave_attempts_out() -> None:
    assert route(Wishes(regions=frozenset({"eu"}))) == ["m-b"]
    assert route(Wishes(regions=frozenset({"cn"}), prompt_tokens=10)) == ["big-c"]
    assert route(Wishes(prompt_tokens=5000)) in (["big-a", "big-c"], ["big-c", "big-a"])
    assert route(Wishes(prompt_tokens=500_000)) == []


FASTEST = """
providers:
  a: {api: simulator}
  b: {api: simulator}
  c: {api: simulator}
models:
  quick:
    policy: fastest
    deployments:
      - {provider: a, model: m, price: {input: 1}}
      - {provider: b, model: m, price: {input: 1}}
      - {provider: c, model: m, price: {input: 1}}
"""
fastest_catalog = Catalog(parse_config(FASTEST, {}))


def fastest(speeds: dict[str, float | None] | None) -> list[str]:
    model = fastest_catalog.get("quick")
    assert model is not None
    speed = None if speeds is None else speeds.get
    return [a.deployment.provider for a in plan(fastest_catalog, model, speed=speed)]


def test_fastest_orders_by_measured_speed() -> None:
    assert fastest({"a/m": 900.0, "b/m": 120.0, "c/m": 400.0}) == ["b", "c", "a"]


def test_fastest_tries_the_unmeasured_first_in_configured_order() -> None:
    # b and c have never answered: each gets measured once before speed decides.
    assert fastest({"a/m": 50.0}) == ["b", "c", "a"]
    assert fastest({"c/m": 10.0, "a/m": 20.0}) == ["b", "c", "a"]


def test_fastest_puts_a_deployment_that_only_failed_last() -> None:
    assert fastest({"a/m": float("inf"), "b/m": 300.0}) == ["c", "b", "a"]


def test_fastest_keeps_the_configured_order_without_speeds_or_on_ties() -> None:
    assert fastest(None) == ["a", "b", "c"]
    assert fastest({}) == ["a", "b", "c"]
    assert fastest({"a/m": 100.0, "b/m": 100.0, "c/m": 100.0}) == ["a", "b", "c"]
