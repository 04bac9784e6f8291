"""A running step under its ``rate_limit``: wait for its turn, call, give the slot back, count what it used.

The runner (``runner._execute``) asks a ``Pacer`` to ``admit`` the run,
then calls the step function inside ``with pacer:``. For a step with a
``rate_limit`` key, the pacer first asks the key's bucket (``limiter``, ``buckets.admit``) for the call:

- granted: the call is counted (with its ``tokens`` estimate) and, under a
  ``concurrency`` limit, a slot is held until the function returns;
- not yet: the step is snoozed (``Snooze``, no attempt used) to the very
  time its turn comes, computed from the bucket, so nothing polls; a step
  waiting for a slot sleeps until a releasing step wakes it (``wake``), at
  most ``BATON_LEASE_SECONDS`` in case that wake-up is lost;
- never (a key no limit matches, an estimate above the key's ``tpm``): the
  step is discarded with a message naming the key.

``job.record_usage`` then replaces the estimate with the tokens really used
(``correct``). A step that raises ``RateLimited`` (or whose provider SDK
raises its ``RateLimitError``) is snoozed for the time asked, and its key
slowed down as long (``buckets.slow_down``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from . import buckets, transitions
from .appstate import AppState
from .buckets import Request
from .dispatch import commit
from .effects import Claimed
from .errors import ConfigError
from .ids import new_id
from .job import Grant, Job
from .limits import Limit, RateLimit, check_tokens, declared_limits, retry_after_of
from .outcomes import Discard, RateLimited, Snooze
from .records import ModelCall
from .steps import Step

logger = logging.getLogger("flask_baton")


class Pacer:
    """One run of one step under its rate limit (or none: then ``run`` just calls)."""

    def __init__(self, state: AppState, step: Step, claimed: Claimed) -> None:
        self._state = state
        self._step = step
        self._claimed = claimed
        self._key: str | None = None
        self._limit: Limit | None = None
        self._ref = new_id()
        self._used = 0  # tokens recorded by this run so far

    def admit(self, job: Job) -> None:
        """Wait for this run's turn under its key, if it has one: ``Snooze`` / ``Discard`` raised if not now.

        Then run the step function in ``with pacer:``, which gives the slot
        back and turns a provider's rate-limit error into ``RateLimited``.
        """
        if self._step.rate_limit is not None:
            self._admit(job)

    def __enter__(self) -> Pacer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> Literal[False]:
        """Give the slot back; a rate-limit error slows the key down (and becomes ``RateLimited``).

        A class, not a generator, so an error's traceback keeps only the
        frames it had: the step's own below flask_baton's runner.
        """
        try:
            if isinstance(error, RateLimited):
                self._slow_down(error)
            elif isinstance(error, Exception) and (retry_after := retry_after_of(error)) is not None:
                told = RateLimited(retry_after)
                self._slow_down(told)
                raise told from error
        finally:
            self._release()
        return False

    def correct(self, call: ModelCall) -> None:
        """Count this run's call with the tokens recorded so far (``job.record_usage``), not its estimate."""
        if self._key is None or self._limit is None or self._limit.tpm is None:
            return
        self._used += call.input_tokens + call.output_tokens + call.cached_input_tokens
        used, ref = self._used, self._ref
        try:
            self._state.limiter.correct(self._key, self._limit, ref, used)
        except Exception:
            logger.exception("could not count the tokens of step %s against %r", self._claimed.step_name, self._key)

    def _admit(self, job: Job) -> None:
        step, limiter = self._step, self._state.limiter
        spec = step.rate_limit
        found = spec.key if isinstance(spec, RateLimit) else spec(job) if callable(spec) else spec
        try:
            limit = limit_for(self._state, found, step.name)
        except ConfigError as exc:
            raise Discard(str(exc)) from exc
        key = str(found)  # limit_for refused anything but a non-empty string
        tokens = check_tokens(step.name, step.tokens(job) if callable(step.tokens) else step.tokens or 0)
        if limit.tpm is not None and tokens > limit.tpm:
            raise Discard(
                f"step {step.name!r} estimates {tokens:,} tokens, more than the tpm of {limit.tpm:,} "
                f"of rate_limit key {key!r}: it could never run"
            )
        request = Request(self._claimed.node_id, self._ref, self._claimed.worker, tokens)
        fallback = self._state.config.lease_seconds
        asked = time.monotonic()
        verdict = limiter.admit(key, limit, request, fallback)
        if not verdict.granted:
            # From the decision's clock (Redis's, or this host's), plus the time the answer took
            # to come back: due at ``until`` or a moment later, never before.
            wait = Snooze(max(verdict.until - verdict.at, 0.0) + (time.monotonic() - asked))
            wait.waiting_for = verdict.reason
            raise wait
        self._key, self._limit = key, limit
        job.rate_limit = Grant(key, verdict.at, tokens)

    def _release(self) -> None:
        """Give the slot back, and wake the waiters whose turn it makes."""
        key, limit, limiter = self._key, self._limit, self._state.limiter
        if key is None or limit is None or limit.concurrency is None:
            return
        node_id = self._claimed.node_id
        try:
            woken = limiter.release(key, limit, node_id)
        except Exception:
            logger.exception("could not release the %r slot of step %s; the sweep will", key, node_id)
            return
        wake(self._state, key, limit, woken)

    def _slow_down(self, limited: RateLimited) -> None:
        """The provider said to wait: no step of this key starts before then."""
        key, limit = self._key, self._limit
        if key is None or limit is None:
            return
        limited.waiting_for = f"waiting for {key}: the provider asked to wait {limited.seconds:g}s"
        self._state.limiter.slow_down(key, limit, limited.seconds)


def limit_for(state: AppState, key: Any, step_name: str) -> Limit:
    """The limit ``key`` falls under: ``BATON_RATE_LIMITS``, then what steps declared (``limits``).

    ``ConfigError`` naming the key and the step when none does.
    """
    declared = declared_limits((step.name, step.rate_limit) for step in state.steps.values())
    return state.config.rate_limits.limit_of(key, step_name, declared)


def usage(state: AppState, now: float) -> list[buckets.RateLimitUsage]:
    """How much of each key's limits is used now, by key (keys in use only)."""
    declared = declared_limits((step.name, step.rate_limit) for step in state.steps.values())
    found = []
    for key, bucket in state.limiter.buckets().items():
        limit = state.config.rate_limits.match(key, declared)
        if limit is not None:
            found.append(buckets.usage_of(bucket, key, limit, now))
    return found


#: Rounds of ``wake`` at most: each drops from the queue the waiters that will never come.
WAKE_ROUNDS = 5


def wake(state: AppState, key: str, limit: Limit, node_ids: list[str]) -> None:
    """Hand the snoozed steps ``node_ids`` to Huey now (a slot they wait for freed).

    A waiter that will never come (its workflow was cancelled meanwhile)
    leaves the queue at once, and the waiters its place goes to are woken instead.
    """
    for _round in range(WAKE_ROUNDS):
        if not node_ids:
            return
        woken = _wake_snoozed(state, node_ids)
        gone = state.store.settled_among([node for node in node_ids if node not in woken])
        if not gone:
            return
        node_ids = state.limiter.forget(key, limit, gone)


#: How long a release waits for a waiter that was told to wait but has not
#: yet recorded its snooze (``_wake_snoozed``), in pauses of ``SNOOZE_PAUSE``.
SNOOZE_GRACE, SNOOZE_PAUSE = 2.0, 0.02


def _wake_snoozed(state: AppState, node_ids: list[str]) -> set[str]:
    """Make ``node_ids`` due now; those woken.

    A waiter is told to wait (``admit``) before its snooze commits: a slot
    freed in between would find it still executing, and it would sleep
    until its fallback (``BATON_LEASE_SECONDS``). So a waiter still
    executing, or snoozed since that try, is tried again until it is woken,
    for ``SNOOZE_GRACE`` at most.
    """
    woken: set[str] = set()
    deadline = time.monotonic() + SNOOZE_GRACE
    pending = list(node_ids)
    while pending:
        _, effects = commit(state, transitions.wake, pending)
        woken |= {ready.node_id for ready in effects.ready}
        pending = [node for node in pending if node not in woken]
        if not pending or time.monotonic() > deadline:
            break
        pending = state.store.not_yet_woken_among(pending)
        if pending:
            time.sleep(SNOOZE_PAUSE)
    return woken


def reclaim_slots(state: AppState, now: float) -> list[str]:
    """Give back the slots of steps no longer running on a live consumer (the sweep); their node ids.

    A slot is held by a step that is ``executing`` and whose consumer renewed
    its lease within ``BATON_LEASE_SECONDS``; any other (its consumer was
    killed, its release was lost) is taken back and its waiters woken.
    """
    limiter = state.limiter
    declared = declared_limits((step.name, step.rate_limit) for step in state.steps.values())
    reclaimed: list[str] = []
    for key, bucket in limiter.buckets().items():
        limit = state.config.rate_limits.match(key, declared)
        if limit is None or not bucket.slots:
            continue
        dead = set(bucket.slots) - state.store.live_runs(bucket.slots, now - state.config.lease_seconds)
        if dead:
            woken = limiter.reclaim(key, limit, dead)
            reclaimed.extend(sorted(dead))
            wake(state, key, limit, woken)
    return reclaimed
