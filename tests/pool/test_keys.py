import asyncio
import random
from collections import Counter

import pytest

from tokenyard.config import KeyConfig
from tokenyard.errors import UpstreamError
from tokenyard.pool.keys import KeyPool, KeysExhausted, PooledKey, fingerprint
from tokenyard.store.limits import MemoryLimiter


def _choose(pool: KeyPool, tokens: int = 0) -> PooledKey | None:
    return asyncio.run(pool.choose(tokens))


def test_keys_are_chosen_by_weight() -> None:
    pool = KeyPool(
        "p", [KeyConfig(key="a", weight=1), KeyConfig(key="b", weight=3)], random.Random(7)
    )
    picks = Counter(k.secret for k in (_choose(pool) for _ in range(4000)) if k)
    assert 0.70 < picks["b"] / 4000 < 0.80
    assert picks["a"] + picks["b"] == 4000


def test_labels_never_carry_the_secret() -> None:
    pool = KeyPool("deepseek", [KeyConfig(key="sk-very-secret")], random.Random(1))
    chosen = _choose(pool)
    assert chosen is not None
    assert chosen.label == "deepseek#0"
    assert "sk-very-secret" not in repr(chosen)


def test_a_provider_without_keys_sends_no_credential() -> None:
    assert _choose(KeyPool("ollama", [], random.Random(1))) is None


def _pool(*keys: KeyConfig, now: list[float]) -> KeyPool:
    return KeyPool(
        "p",
        list(keys),
        random.Random(3),
        clock=lambda: now[0],
        windows=MemoryLimiter(clock=lambda: now[0]),
    )


def _error(status: int, retry_after: float | None = None) -> UpstreamError:
    error = UpstreamError("x", retryable=True, retry_after_s=retry_after)
    error.upstream_status = status
    return error


def test_a_429_cools_the_key_down_for_retry_after_and_the_others_serve() -> None:
    now = [100.0]
    pool = _pool(KeyConfig(key="a"), KeyConfig(key="b"), now=now)
    a = next(k for k in pool.keys if k.secret == "a")
    pool.failed(a, _error(429, retry_after=5))
    assert {_choose(pool).secret for _ in range(50)} == {"b"}  # type: ignore[union-attr]
    now[0] += 5
    assert "a" in {_choose(pool).secret for _ in range(50)}  # type: ignore[union-attr]


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
    assert {_choose(pool).secret for _ in range(50)} == {"b"}  # type: ignore[union-attr]
    pool.failed(b, _error(403))
    with pytest.raises(KeysExhausted) as exhausted:
        _choose(pool)
    assert exhausted.value.retryable
    assert exhausted.value.retry_after_s == 1.0  # a comes back first
    now[0] += 1
    assert _choose(pool) is a
    pool.failed(a, _error(401))  # refused again: twice as long
    assert a.cool_until - now[0] == 1200.0


def test_a_key_at_its_rpm_or_tpm_is_skipped_not_hammered() -> None:
    now = [0.0]
    pool = _pool(KeyConfig(key="a", rpm=2), KeyConfig(key="b", tpm=100), now=now)
    picks = [_choose(pool, tokens=40).secret for _ in range(4)]  # type: ignore[union-attr]
    assert sorted(picks) == ["a", "a", "b", "b"]
    with pytest.raises(KeysExhausted):
        _choose(pool, tokens=40)  # a: 2 requests, b: 80 + 40 > 100 tokens
    now[0] += 120  # the sliding minute (two fixed minutes, docs/decisions/0007) has passed
    assert _choose(pool, tokens=40) is not None


def test_cool_downs_are_announced_with_a_name_every_process_derives_alike() -> None:
    now = [0.0]
    told: list[tuple[str, float, bool]] = []
    pool = _pool(KeyConfig(key="a"), KeyConfig(key="b"), now=now)
    pool.on_cool = lambda *cooled: told.append(cooled)
    a, b = pool.keys
    pool.failed(a, _error(429, retry_after=7))
    pool.failed(b, _error(401))
    assert told == [(a.id, 7, False), (b.id, 600.0, True)]
    assert a.id == fingerprint("a") != b.id
    other = _pool(KeyConfig(key="b"), KeyConfig(key="a"), now=now)  # listed the other way
    assert other.cool(a.id, 7) and other.cool(b.id, 600.0, refused=True)
    assert not other.cool("unknown", 5)
    with pytest.raises(KeysExhausted):
        _choose(other)
    assert [s["state"] for s in other.status()] == ["refused", "cooling"]
    now[0] += 7
    assert _choose(other).secret == "a"  # type: ignore[union-attr]


def test_a_remote_cool_down_never_shortens_a_longer_local_one() -> None:
    now = [0.0]
    pool = _pool(KeyConfig(key="a"), now=now)
    pool.failed(pool.keys[0], _error(429, retry_after=30))
    pool.cool(pool.keys[0].id, 1)
    now[0] += 10
    with pytest.raises(KeysExhausted):
        _choose(pool)


def test_status_shows_states_and_never_the_secret() -> None:
    now = [0.0]
    pool = _pool(KeyConfig(key="sk-secret-1", rpm=1), KeyConfig(key="sk-secret-2"), now=now)
    assert _choose(pool) is not None
    while _choose(pool).secret != "sk-secret-2":  # type: ignore[union-attr]
        pass
    status = pool.status()
    assert "sk-secret" not in repr(status)
    assert [s["label"] for s in status] == ["p#0", "p#1"]
    assert {s["state"] for s in status} <= {"ready", "full"}


def test_windows_in_one_limiter_are_shared_by_every_pool_that_uses_it() -> None:
    """Two processes' pools over one limiter (in production: Redis) admit rpm in total."""
    now = [0.0]
    shared = MemoryLimiter(clock=lambda: now[0])
    pools = [
        KeyPool("p", [KeyConfig(key="a", rpm=3)], random.Random(i), windows=shared)
        for i in range(2)
    ]
    admitted = 0
    for i in range(6):
        try:
            _choose(pools[i % 2])
            admitted += 1
        except KeysExhausted:
            pass
    assert admitted == 3
