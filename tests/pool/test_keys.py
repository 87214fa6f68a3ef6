import random
from collections import Counter

from tokenyard.config import KeyConfig
from tokenyard.pool.keys import KeyPool


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
