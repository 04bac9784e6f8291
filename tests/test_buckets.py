"""The pure arithmetic of a key's limits (``flask_baton.buckets``) and of ``BATON_RATE_LIMITS`` (``limits``)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from flask_baton import ConfigError
from flask_baton.buckets import Bucket, Request, admit, correct, release, slow_down, usage_of
from flask_baton.errors import ArgumentError
from flask_baton.limits import Limit, check_step_options, parse_rate_limits, retry_after_of

FALLBACK = 60.0


def ask(bucket: Bucket, limit: Limit, node: str, now: float, tokens: int = 0, key: str = "openai") -> float | None:
    """Admit ``node`` at ``now``: None if granted, else the time it is told to come back."""
    verdict = admit(bucket, key, limit, Request(node, f"{node}@{now}", "host:1", tokens), now, FALLBACK)
    return None if verdict.granted else verdict.until


def run_clients(limit: Limit, arrivals: list[tuple[float, str, int]]) -> list[tuple[float, str, int]]:
    """Simulate steps that each come back exactly when told; return the grants (time, node, tokens)."""
    bucket = Bucket()
    pending = sorted(arrivals)
    grants = []
    while pending:
        now, node, tokens = pending.pop(0)
        until = ask(bucket, limit, node, now, tokens)
        if until is None:
            grants.append((now, node, tokens))
        else:
            assert until > now or until == now
            pending.append((until, node, tokens))
            pending.sort()
    return grants


def assert_windows(grants: list[tuple[float, str, int]], limit: Limit) -> None:
    """No window of ``limit.window`` seconds holds more than rpm calls or tpm tokens."""
    times = [at for at, _node, _tokens in grants]
    for start, _node, _tokens in grants:
        inside = [g for g in grants if start <= g[0] < start + limit.window]
        if limit.rpm is not None:
            assert len(inside) <= limit.rpm, (start, inside)
        if limit.tpm is not None:
            assert sum(g[2] for g in inside) <= limit.tpm, (start, inside)
    assert times == sorted(times)


def test_a_burst_is_spread_so_no_minute_holds_more_than_the_rpm() -> None:
    limit = Limit(rpm=3)
    grants = run_clients(limit, [(0.0, f"s{i}", 0) for i in range(10)])
    assert len(grants) == 10
    assert_windows(grants, limit)
    assert [at for at, _n, _t in grants] == [0, 0, 0, 60, 60, 60, 120, 120, 120, 180]


@pytest.mark.parametrize(
    ("limit", "seed", "span", "most_tokens", "count"),
    [(Limit(tpm=1000), 7, 30.0, 600, 40), (Limit(rpm=5, tpm=2000), 3, 200.0, 900, 80)],
    ids=["tpm", "rpm-and-tpm"],
)
def test_random_arrivals_with_uneven_estimates_never_exceed_a_limit(
    limit: Limit, seed: int, span: float, most_tokens: int, count: int
) -> None:
    rng = random.Random(seed)
    arrivals = [(rng.uniform(0, span), f"s{i}", rng.randint(0, most_tokens)) for i in range(count)]
    grants = run_clients(limit, arrivals)
    assert len(grants) == count
    assert_windows(grants, limit)


def play(limit: Limit, script: list[tuple[str, float, float | None]]) -> None:
    """Each (step, time, answer) in turn on one bucket: granted (None) or told to come back at ``answer``."""
    bucket = Bucket()
    assert [(node, now, ask(bucket, limit, node, now)) for node, now, _answer in script] == script


def test_waiters_are_served_oldest_first_and_a_later_arrival_does_not_overtake() -> None:
    # At 60 a newcomer finds the window free, but the oldest waiter holds that turn.
    play(
        Limit(rpm=1),
        [
            ("first", 0.0, None),
            ("old", 1.0, 60.0),
            ("older-still-waiting", 2.0, 120.0),
            ("newcomer", 60.0, 180.0),
            ("old", 60.0, None),
            ("older-still-waiting", 120.0, None),
            ("newcomer", 180.0, None),
        ],
    )


def test_a_waiter_that_never_comes_back_loses_its_place_after_the_grace() -> None:
    # "gone" never came back; past its turn plus the grace, "b" is next.
    play(Limit(rpm=1), [("a", 0.0, None), ("gone", 1.0, 60.0), ("b", 2.0, 120.0), ("b", 120.0, None)])


def test_a_correction_counts_the_real_tokens_for_later_calls() -> None:
    limit = Limit(tpm=1000)
    bucket = Bucket()
    assert ask(bucket, limit, "a", 0.0, tokens=100) is None
    correct(bucket, "a@0.0", 900)
    assert ask(bucket, limit, "b", 1.0, tokens=200) == 60.0


def test_concurrency_grants_n_slots_then_wakes_the_oldest_on_release() -> None:
    limit = Limit(concurrency=2)
    bucket = Bucket()
    assert ask(bucket, limit, "a", 0.0) is None
    assert ask(bucket, limit, "b", 0.0) is None
    verdict = admit(bucket, "gpu", limit, Request("c", "c1", "host:1", 0), 1.0, FALLBACK)
    assert not verdict.granted and verdict.for_slot and verdict.until == 1.0 + FALLBACK
    assert verdict.reason == "waiting for gpu: 2 of 2 running"
    assert ask(bucket, limit, "d", 2.0) == 2.0 + FALLBACK
    assert release(bucket, limit, "a", 3.0) == ["c"]
    assert ask(bucket, limit, "d", 3.5) == 3.5 + FALLBACK  # c's turn, not d's
    assert ask(bucket, limit, "c", 4.0) is None
    assert usage_of(bucket, "gpu", limit, 4.0).describe(4.0) == "gpu: 2 of 2 running, 1 waiting"


def test_a_slowed_key_grants_nothing_before_the_provider_said() -> None:
    limit = Limit(rpm=100)
    bucket = Bucket()
    slow_down(bucket, 30.0)
    verdict = admit(bucket, "openai", limit, Request("a", "a1", "h", 0), 10.0, FALLBACK)
    assert verdict.until == 30.0 and verdict.reason == "waiting for openai: slowed by the provider for 20s"


def test_the_reason_says_how_much_of_the_limit_is_used_and_who_is_ahead() -> None:
    limit = Limit(rpm=2)
    bucket = Bucket()
    ask(bucket, limit, "a", 0.0)
    ask(bucket, limit, "b", 0.0)
    ask(bucket, limit, "c", 1.0)
    verdict = admit(bucket, "openai", limit, Request("d", "d1", "h", 0), 2.0, FALLBACK)
    assert verdict.reason == "waiting for openai: 2 of 2 rpm used, 1 waiting ahead"


def test_a_bucket_survives_its_json() -> None:
    bucket = Bucket()
    limit = Limit(rpm=1, concurrency=1)
    ask(bucket, limit, "a", 0.0, tokens=5)
    ask(bucket, limit, "b", 1.0)
    slow_down(bucket, 9.0)
    assert Bucket.loads(bucket.dumps()) == bucket


# -- BATON_RATE_LIMITS ---------------------------------------------------------


def test_keys_match_exactly_then_by_the_longest_pattern_then_the_default() -> None:
    limits = parse_rate_limits(
        "BATON_RATE_LIMITS",
        {"openai": {"rpm": 1}, "tenant:*": {"rpm": 2}, "tenant:big:*": {"rpm": 3}, "*": {"concurrency": 4}},
    )
    assert limits.match("openai") == Limit(rpm=1)
    assert limits.match("tenant:acme") == Limit(rpm=2)
    assert limits.match("tenant:big:corp") == Limit(rpm=3)
    assert limits.match("anything") == Limit(concurrency=4)


def test_the_limits_may_be_given_as_json() -> None:
    limits = parse_rate_limits("BATON_RATE_LIMITS", '{"openai": {"rpm": 40, "tpm": 90000}}')
    assert limits.match("openai") == Limit(rpm=40, tpm=90000)


@pytest.mark.parametrize(
    ("value", "culprit"),
    [
        ({"openai": {"rpm": 0}}, "BATON_RATE_LIMITS['openai']['rpm'] must be a whole number > 0, got 0"),
        ({"openai": {"tpm": -5}}, "BATON_RATE_LIMITS['openai']['tpm'] must be a whole number > 0, got -5"),
        ({"openai": {"concurrency": 1.5}}, "['concurrency'] must be a whole number > 0, got 1.5"),
        ({"openai": {"rpm": True}}, "['rpm'] must be a whole number > 0, got True"),
        ({"openai": {"rph": 5}}, "BATON_RATE_LIMITS['openai'] has unknown field(s) rph"),
        ({"openai": {}}, "BATON_RATE_LIMITS['openai'] must be a mapping"),
        ({"a*b": {"rpm": 1}}, "key 'a*b' must be a non-empty string, with '*' only at its end"),
        ([1, 2], "BATON_RATE_LIMITS must be a mapping"),
        ("{not json", "BATON_RATE_LIMITS must be a mapping (or its JSON)"),
    ],
)
def test_a_bad_limit_is_a_config_error_naming_it(value: object, culprit: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_rate_limits("BATON_RATE_LIMITS", value)
    assert culprit in str(raised.value)


def test_an_unknown_key_is_an_error_naming_the_key_and_the_step() -> None:
    limits = parse_rate_limits("BATON_RATE_LIMITS", {"openai": {"rpm": 1}})
    with pytest.raises(ConfigError, match=r"step 'summarize' has rate_limit key 'anthropic', which no key"):
        limits.limit_of("anthropic", "summarize")


@pytest.mark.parametrize(
    ("rate_limit", "tokens", "culprit"),
    [
        ("", None, "rate_limit must be a key"),
        (5, None, "rate_limit must be a key"),
        ("openai", -1, "tokens must be a whole number >= 0, got -1"),
        (None, 100, "tokens= estimates a rate-limited call; give rate_limit= too"),
    ],
)
def test_bad_step_options_name_the_step(rate_limit: object, tokens: object, culprit: str) -> None:
    with pytest.raises(ArgumentError, match="step 'ask'") as raised:
        check_step_options("ask", rate_limit, tokens)
    assert culprit in str(raised.value)


class RateLimitError(Exception):
    """Shaped like the OpenAI and Anthropic SDKs' error: a response with headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("429 Too Many Requests")
        self.response = SimpleNamespace(headers=headers)


def test_a_providers_rate_limit_error_is_read_by_its_shape() -> None:
    assert retry_after_of(RateLimitError({"retry-after": "7"})) == 7.0
    assert retry_after_of(RateLimitError({"retry-after-ms": "1500", "retry-after": "2"})) == 1.5
    assert retry_after_of(RateLimitError({})) is None  # no wait given: an ordinary error, retried
    assert retry_after_of(RateLimitError({"retry-after": "Wed, 21 Oct 2015"})) is None
    assert retry_after_of(ValueError("429")) is None


def test_a_woken_waiter_must_come_within_the_grace_or_lose_its_place() -> None:
    limit = Limit(concurrency=1)
    bucket = Bucket()
    assert ask(bucket, limit, "a", 0.0) is None
    assert ask(bucket, limit, "woken-but-cancelled", 1.0) == 1.0 + FALLBACK
    assert ask(bucket, limit, "b", 2.0) == 2.0 + FALLBACK
    assert release(bucket, limit, "a", 3.0) == ["woken-but-cancelled"]
    assert ask(bucket, limit, "b", 3.0 + 5) == 8.0 + FALLBACK  # still its place
    assert ask(bucket, limit, "b", 3.0 + 11) is None  # it never came: b's turn
