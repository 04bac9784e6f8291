"""The Lua script of ``redis_buckets`` answers as ``buckets``' Python does, operation by operation.

Random operations (admissions, releases, reclaims, forgets, corrections,
slow-downs) run on a Python ``Bucket`` and on a real Redis through
``RedisLimiter``, at the same pinned times; every answer and the bucket
after each operation must agree.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from flask_baton import buckets
from flask_baton.buckets import Bucket, Request
from flask_baton.limits import Limit
from flask_baton.redis_buckets import RedisLimiter

from .conftest import REDIS_URL

LIMITS = [
    Limit(rpm=3, window=10.0),
    Limit(tpm=1000, window=10.0),
    Limit(rpm=4, tpm=900, concurrency=2, window=10.0),
    Limit(concurrency=3, window=10.0),
]
FALLBACK = 7.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_limiter(redis_huey_name: str) -> Iterator[tuple[RedisLimiter, Clock]]:
    import redis

    clock = Clock()
    client = redis.Redis.from_url(REDIS_URL)
    yield RedisLimiter(client, f"{redis_huey_name}:", owned=True, clock=clock), clock
    client.close()


def normalised(bucket: Bucket) -> Any:
    """The bucket as plain data, times rounded (Lua's JSON keeps 14 significant digits)."""
    return (
        [(round(c.at, 6), c.tokens, c.ref) for c in bucket.calls],
        [(round(w.ticket, 6), w.node_id, w.tokens, round(w.expires, 6)) for w in bucket.waiters],
        {node: (slot.worker, round(slot.since, 6)) for node, slot in bucket.slots.items()},
        round(bucket.slowed_until, 6),
    )


@pytest.mark.parametrize("limit", LIMITS, ids=["rpm", "tpm", "all", "concurrency"])
@pytest.mark.parametrize("seed", range(3))
def test_the_lua_script_agrees_with_the_python_arithmetic(
    redis_limiter: tuple[RedisLimiter, Clock], limit: Limit, seed: int
) -> None:
    limiter, clock = redis_limiter
    key = f"k{seed}"
    rng = random.Random(seed)
    python = Bucket()
    nodes = [f"n{i:02d}" for i in range(12)]
    for step in range(300):
        clock.now = round(clock.now + rng.choice([0.0, 0.1, 0.5, 1.0, 3.0]), 3)
        now = clock.now
        operation = rng.choice(["admit"] * 6 + ["release"] * 3 + ["reclaim", "forget", "correct", "slow_down"])
        node = rng.choice(nodes)
        if operation == "admit":
            request = Request(node, f"{node}:{step}", "host:1", rng.randint(0, 400))
            expected: Any = buckets.admit(python, key, limit, request, now, FALLBACK)
            got: Any = limiter.admit(key, limit, request, FALLBACK)
            expected, got = (expected.granted, expected.until, expected.reason), (got.granted, got.until, got.reason)
        elif operation == "release":
            expected = buckets.release(python, limit, node, now)
            got = limiter.release(key, limit, node)
        elif operation == "reclaim":
            dead = set(rng.sample(nodes, 2))
            expected = buckets.reclaim(python, limit, dead, now)
            got = limiter.reclaim(key, limit, dead)
        elif operation == "forget":
            gone = set(rng.sample(nodes, 2))
            expected = buckets.forget(python, limit, gone, now)
            got = limiter.forget(key, limit, gone)
        elif operation == "correct":
            ref = rng.choice([c.ref for c in python.calls] or ["none"])
            tokens = rng.randint(0, 400)
            expected = buckets.correct(python, ref, tokens)
            got = limiter.correct(key, limit, ref, tokens)
        else:
            seconds = rng.choice([0.5, 2.0])
            expected = buckets.slow_down(python, now + seconds)
            got = limiter.slow_down(key, limit, seconds)
        assert got == expected, (step, operation, node)
        assert normalised(limiter.buckets()[key]) == normalised(python), (step, operation, node)
