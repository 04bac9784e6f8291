"""The arithmetic of one key's limits: a sliding window of calls, a queue of waiters, held slots.

Pure: no Flask, no SQL, no Redis. A ``Bucket`` is the whole state of one key;
a backend (``limiter``) loads it, applies one of these functions and stores
it back atomically (a row lock in the database; in Redis, the same
arithmetic in one Lua script: ``redis_buckets``).

What is guaranteed, for a key with limit ``rpm`` / ``tpm`` over ``window``:

- **Sliding window, exact.** A call is counted at the moment it is granted
  (``Call.at``, right before the step function runs), with its estimated
  tokens. A call is granted at ``t`` only if the calls granted in
  ``(t - window, t]`` number fewer than ``rpm`` and their tokens plus its own
  stay within ``tpm``. So no window of that length ever holds more than
  ``rpm`` calls, or more than ``tpm`` estimated tokens. ``correct`` replaces an
  estimate by the tokens really used (``job.record_usage``): later grants
  count the real figure; an estimate that was too low cannot be taken back.
- **Oldest first.** A step that must wait joins the key's queue with a
  ticket (the time it first asked, then its id). A step is granted only
  after every waiter ahead of it would have been: the grant times of the
  waiters ahead are simulated in ticket order, each at the earliest time the
  window allows, and the step's own time follows theirs. A later arrival
  therefore never overtakes a step already waiting, across every workflow.
  A waiter that has not come back ``WAITER_GRACE`` seconds after its turn
  (its workflow was cancelled, its message lost) leaves the queue; if it
  comes back later it queues again at the back.
- **Concurrency.** At most ``concurrency`` slots are held at once; a step
  holds one from its grant until its function returns (``release``). When a
  slot frees, the releaser wakes the waiters now at the head of the queue.
- **Back-pressure.** ``slow_down`` makes every grant wait until a time the
  provider asked for (``RateLimited(retry_after=)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from .limits import Limit

#: Seconds a waiter keeps its place in the queue after its turn came without it.
WAITER_GRACE = 10.0


@dataclass
class Call:
    """A granted call: when, how many tokens (estimated, then corrected), which run (``ref``)."""

    at: float
    tokens: int
    ref: str


@dataclass
class Waiter:
    """A step waiting for its turn: its ticket, its step, its estimate, until when it keeps its place."""

    ticket: float
    node_id: str
    tokens: int
    expires: float


@dataclass
class Slot:
    """A concurrency slot held by a step on a consumer (``worker``) since ``since``."""

    worker: str
    since: float


@dataclass
class Bucket:
    """All that is known about one key."""

    calls: list[Call] = field(default_factory=list)  # in grant order, so by time
    waiters: list[Waiter] = field(default_factory=list)  # by ticket
    slots: dict[str, Slot] = field(default_factory=dict)  # node id -> slot
    slowed_until: float = 0.0

    def dumps(self) -> str:
        """The bucket as compact JSON, the form both backends store."""
        return json.dumps(
            {
                "c": [[c.at, c.tokens, c.ref] for c in self.calls],
                "w": [[w.ticket, w.node_id, w.tokens, w.expires] for w in self.waiters],
                "s": {node: [s.worker, s.since] for node, s in self.slots.items()},
                "u": self.slowed_until,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | bytes | None) -> Bucket:
        """A bucket from ``dumps``'s JSON; an empty one for nothing stored."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            [Call(*c) for c in data["c"]],
            [Waiter(*w) for w in data["w"]],
            {node: Slot(*s) for node, s in data["s"].items()},
            data["u"],
        )


@dataclass(frozen=True)
class Request:
    """A step asking to run: which step (``node_id``), which run (``ref``), on which consumer, how many tokens."""

    node_id: str
    ref: str
    worker: str
    tokens: int


@dataclass(frozen=True)
class RateLimitUsage:
    """How much of a key's limits is used now (``baton.rate_limits()``, ``flask baton status``)."""

    key: str
    limit: Limit
    calls: int  # counted in the window ending now
    tokens: int  # their tokens (estimates, corrected by usage recorded)
    running: int  # slots held
    waiting: int  # steps queued for their turn
    slowed_until: float  # no call before this (the provider asked to wait)

    def describe(self, now: float) -> str:
        """``"openai: 38 of 40 rpm, 61,200 of 90,000 tpm, 2 of 8 running, 5 waiting"``."""
        parts = []
        if self.limit.rpm is not None:
            parts.append(f"{self.calls} of {self.limit.rpm} rpm")
        if self.limit.tpm is not None:
            parts.append(f"{self.tokens:,} of {self.limit.tpm:,} tpm")
        if self.limit.concurrency is not None:
            parts.append(f"{self.running} of {self.limit.concurrency} running")
        if self.waiting:
            parts.append(f"{self.waiting} waiting")
        if self.slowed_until > now:
            parts.append(f"slowed by the provider for {self.slowed_until - now:.0f}s")
        return f"{self.key}: {', '.join(parts)}"


@dataclass(frozen=True)
class Verdict:
    """Decided ``at``: ``granted``, or wait until ``until`` (``for_slot``: until a slot frees, ``until`` a fallback).

    A refusal carries the key's ``usage`` and the step's ``position`` in its
    queue (how many wait ahead of it): what ``reason`` says.
    """

    granted: bool
    at: float
    until: float = 0.0
    for_slot: bool = False
    position: int = 0
    usage: RateLimitUsage | None = None

    @property
    def reason(self) -> str:
        """``"waiting for openai: 38 of 40 rpm used, 5 waiting ahead"``; empty for a grant."""
        usage = self.usage
        if self.granted or usage is None:
            return ""
        ahead = f", {self.position} waiting ahead" if self.position else ""
        if self.for_slot:
            return f"waiting for {usage.key}: {usage.running} of {usage.limit.concurrency} running{ahead}"
        return f"waiting for {usage.key}: {_binding(usage.limit, usage, self.at)}{ahead}"


def admit(bucket: Bucket, key: str, limit: Limit, request: Request, now: float, slot_fallback: float) -> Verdict:
    """Grant ``request`` now, or say until when it waits (and queue it); changes ``bucket``.

    ``slot_fallback``: seconds a step waiting for a slot sleeps at most, in
    case the wake-up a release sends is lost.
    """
    _forget_old(bucket, limit, now, keep=request.node_id)
    me = _join(bucket, request, now)
    position = bucket.waiters.index(me)
    turns = _turns(bucket, limit, bucket.waiters[: position + 1], now)
    my_turn = turns[-1]
    due_ahead = sum(1 for turn in turns[:-1] if turn <= now)
    slots_taken = len(bucket.slots) + due_ahead
    if my_turn <= now and (limit.concurrency is None or slots_taken < limit.concurrency):
        bucket.waiters.remove(me)
        if limit.paced:
            bucket.calls.append(Call(now, request.tokens, request.ref))
        if limit.concurrency is not None:
            bucket.slots[request.node_id] = Slot(request.worker, now)
        return Verdict(True, now)
    if my_turn > now:
        me.expires = my_turn + WAITER_GRACE
        return Verdict(False, now, my_turn, False, position, usage_of(bucket, key, limit, now))
    me.expires = now + slot_fallback + WAITER_GRACE
    return Verdict(False, now, now + slot_fallback, True, position, usage_of(bucket, key, limit, now))


def release(bucket: Bucket, limit: Limit, node_id: str, now: float) -> list[str]:
    """Give back ``node_id``'s slot; the waiters to wake now (those whose turn has come, one per free slot)."""
    bucket.slots.pop(node_id, None)
    _forget_old(bucket, limit, now)
    return to_wake(bucket, limit, now)


def reclaim(bucket: Bucket, limit: Limit, dead: Iterable[str], now: float) -> list[str]:
    """Give back the slots of steps whose consumer died (``dead`` node ids); the waiters to wake."""
    for node_id in dead:
        bucket.slots.pop(node_id, None)
    _forget_old(bucket, limit, now)
    return to_wake(bucket, limit, now)


def forget(bucket: Bucket, limit: Limit, gone: Iterable[str], now: float) -> list[str]:
    """Drop the waiters ``gone`` (their steps will never come); the waiters to wake in their stead."""
    for node_id in gone:
        leave(bucket, node_id)
    return to_wake(bucket, limit, now)


def correct(bucket: Bucket, ref: str, tokens: int) -> None:
    """Count the call ``ref`` with the ``tokens`` it really used, instead of its estimate."""
    for call in bucket.calls:
        if call.ref == ref:
            call.tokens = tokens
            return


def slow_down(bucket: Bucket, until: float) -> None:
    """Grant nothing before ``until`` (the provider asked to wait)."""
    bucket.slowed_until = max(bucket.slowed_until, until)


def leave(bucket: Bucket, node_id: str) -> None:
    """``node_id`` no longer waits (it was refused for good)."""
    bucket.waiters = [w for w in bucket.waiters if w.node_id != node_id]


def usage_of(bucket: Bucket, key: str, limit: Limit, now: float) -> RateLimitUsage:
    """Calls and tokens in the window ending ``now``, slots held, waiters still holding a place."""
    recent = [call for call in bucket.calls if call.at > now - limit.window]
    waiting = sum(1 for waiter in bucket.waiters if waiter.expires >= now)
    return RateLimitUsage(
        key, limit, len(recent), sum(c.tokens for c in recent), len(bucket.slots), waiting, bucket.slowed_until
    )


def _forget_old(bucket: Bucket, limit: Limit, now: float, keep: str = "") -> None:
    """Drop calls out of the window and waiters past their place (but ``keep``'s own)."""
    bucket.calls = [call for call in bucket.calls if call.at > now - limit.window]
    bucket.waiters = [w for w in bucket.waiters if w.expires >= now or w.node_id == keep]


def _join(bucket: Bucket, request: Request, now: float) -> Waiter:
    """The request's place in the queue: kept if it waited already (a new estimate), else at the back."""
    for waiter in bucket.waiters:
        if waiter.node_id == request.node_id:
            waiter.tokens = request.tokens
            return waiter
    waiter = Waiter(now, request.node_id, request.tokens, now)
    bucket.waiters.append(waiter)
    bucket.waiters.sort(key=lambda w: (w.ticket, w.node_id))
    return waiter


def _turns(bucket: Bucket, limit: Limit, queue: list[Waiter], now: float) -> list[float]:
    """The earliest time each of ``queue`` may be granted, in order, each after those before it.

    The window's calls, then each waiter's simulated call, in time order; a
    two-pointer walk keeps the sum of the tokens in the window, so the whole
    queue costs one pass over calls and waiters.
    """
    times = [call.at for call in bucket.calls]
    tokens = [call.tokens for call in bucket.calls]
    oldest, in_window = 0, sum(tokens)
    turn = max(now, bucket.slowed_until)
    turns = []
    for waiter in queue:
        if limit.rpm is not None and len(times) >= limit.rpm:
            turn = max(turn, times[-limit.rpm] + limit.window)
        while oldest < len(times) and times[oldest] <= turn - limit.window:
            in_window -= tokens[oldest]
            oldest += 1
        if limit.tpm is not None:
            while oldest < len(times) and in_window + waiter.tokens > limit.tpm:
                turn = max(turn, times[oldest] + limit.window)
                in_window -= tokens[oldest]
                oldest += 1
        turns.append(turn)
        if limit.paced:
            times.append(turn)
            tokens.append(waiter.tokens)
            in_window += waiter.tokens
    return turns


def to_wake(bucket: Bucket, limit: Limit, now: float) -> list[str]:
    """The waiters at the head of the queue whose turn has come, as many as slots are free.

    Each is given ``WAITER_GRACE`` from now to come and take its slot, or lose its place.
    """
    if limit.concurrency is None or not bucket.waiters:
        return []
    free = limit.concurrency - len(bucket.slots)
    if free <= 0:
        return []
    due = [
        waiter for waiter, turn in zip(bucket.waiters, _turns(bucket, limit, bucket.waiters[:free], now)) if turn <= now
    ]
    for waiter in due:
        waiter.expires = min(waiter.expires, now + WAITER_GRACE)
    return [waiter.node_id for waiter in due]


def _binding(limit: Limit, usage: RateLimitUsage, now: float) -> str:
    """What holds the key back now, in words: the provider, the requests, or the tokens."""
    if usage.slowed_until > now:
        return f"slowed by the provider for {usage.slowed_until - now:.0f}s"
    if limit.rpm is not None and usage.calls >= limit.rpm:
        return f"{usage.calls} of {limit.rpm} rpm used"
    if limit.tpm is not None:
        return f"{usage.tokens:,} of {limit.tpm:,} tpm used"
    return f"{usage.calls} of {limit.rpm} rpm used"
