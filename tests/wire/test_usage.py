from tokenyard.wire.tokens import estimate_prompt_tokens, estimate_text_tokens
from tokenyard.wire.usage import Usage, usage_from_openai


def test_openai_usage_with_details() -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert usage == Usage(1200, 18, 1024, 5)
    assert usage.to_openai()["total_tokens"] == 1218


def test_deepseek_cache_hits_and_moonshot_top_level_cached_tokens() -> None:
    deepseek = {"prompt_tokens": 18, "completion_tokens": 2, "prompt_cache_hit_tokens": 9}
    assert usage_from_openai(deepseek, "prompt_cache_hit_tokens").cached_tokens == 9
    assert usage_from_openai({"prompt_tokens": 10, "cached_tokens": 4}).cached_tokens == 4


def test_nonsense_counts_become_zero_and_subsets_are_bounded() -> None:
    usage = usage_from_openai(
        {
            "prompt_tokens": "x",
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 7},
            "completion_tokens_details": {"reasoning_tokens": 9},
        }
    )
    assert usage == Usage(0, 3, 0, 3)


def test_token_estimates() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abcd") == 1
    assert estimate_text_tokens("你好世界") == 4
    messages = [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]
    assert estimate_prompt_tokens(messages) == 4 + 2
