import random
from collections import Counter

import pytest

from tokenyard.config import KeyConfig
from tokenyard.errors import UpstreamError
from tokenyard.pool.keys import KeyPool, KeysExhausted


def test_keys_are_chosen_by_weight() -> None:
    pool = KeyPool(
        "p", [KeyConfig(key="a", weight=1), KeyConfig(key="b", weight=3)], random.Random(7)
    )
    picks = Counter(k.secret for k in (pool.choose() for _ in range(4000)) if k)
    assert 0.70 < picks["b"] / 4000 < 0.80
    assert picks["a"] + picks["b"] == 4000


def test_labels_never_carry_the_secret() -> None:
    pool = KeyPool("deepseek", [KeyConfig(key="sk-very-secret")], random.Random(1))
    chosen = pool.choose()
    assert chosen is not None
    assert chosen.label == "deepseek#0"
    assert "sk-very-secret" not in repr(chosen)


def test_a_provider_without_keys_sends_no_credential() -> None:
    assert KeyPool("ollama", [], random.Random(1)).choose() is None


def _pool(*keys: KeyConfig, now: list[float]) -> KeyPool:
    return KeyPool("p", list(keys), random.Random(3), clock=lambda: now[0])


def _error(status: int, retry_after: float | None = None) -> UpstreamError:
    error = UpstreamError("x", retryable=True, retry_after_s=retry_after)
    error.upstream_status = status
    return error


def test_a_429_cools_the_key_down_for_retry_after_and_the_others_serve() -> None:
    now = [100.0]
    pool = _pool(KeyConfig(key="a"), KeyConfig(key="b"), now=now)
    a = next(k for k in pool.keys if k.secret == "a")
    pool.failed(a, _error(429, retry_after=5))
    assert {pool.choose().secret for _ in range(50)} == {"b"}  # type: ignore[union-attr]
    now[0] += 5
    assert "a" in {pool.choose().secret for _ in range(50)}  # type: ignore[union-attr]


def test_without_retry_after_the_cool_down_doubles_and_a_success_resets_it() -> None:
    now = [0.0]
    pool = _pool(KeyConfig(key="a"), now=now)
    key = pool.keys[0]
    pauses = []
    for _ in range(4):
        pool.failed(key, _error(429))
        pauses.append(key.cool_until - now[0])
        now[0] = key.cool_until
    assert pauses == [1.0, 2.0, 4.0, 8.0]
    pool.succeeded(key)
    pool.failed(key, _error(429))
    assert key.cool_until - now[0] == 1.0


def test_a_refused_credential_leaves_the_pool_for_ten_minutes_then_longer() -> None:
    now = [0.0]
    pool = _pool(KeyConfig(key="a"), KeyConfig(key="b"), now=now)
    a, b = pool.keys
    pool.failed(a, _error(401))
    now[0] += 599
    assert {pool.choose().secret for _ in range(50)} == {"b"}  # type: ignore[union-attr]
    pool.failed(b, _error(403))
    with pytest.raises(KeysExhausted) as exhausted:
        pool.choose()
    assert exhausted.value.retryable
    assert exhausted.value.retry_after_s == 1.0  # a comes back first
    now[0] += 1
    assert pool.choose() is a
    pool.failed(a, _error(401))  # refused again: twice as long
    assert a.cool_until - now[0] == 1200.0


def test_a_key_at_its_rpm_or_tpm_is_skipped_not_hammered() -> None:
    now = [0.0]
    pool = _pool(KeyConfig(key="a", rpm=2), KeyConfig(key="b", tpm=100), now=now)
    picks = [pool.choose(tokens=40).secret for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(picks) == ["a", "a", "b", "b"]
    with pytest.raises(KeysExhausted):
        pool.choose(tokens=40)  # a: 2 requests, b: 80 + 40 > 100 tokens
    now[0] += 60
    assert pool.choose(tokens=40) is not None
