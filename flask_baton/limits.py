"""Rate limits per key: declared in ``BATON_RATE_LIMITS`` or on a step, and which limit a key falls under.

Pure: no Flask, no SQL. A key is any string a step names or computes from
its job (``"openai"``, ``"openai:gpt-4o"``, ``f"tenant:{job.args['tenant']}"``).
A step may declare its key's limits itself (``rate_limit=RateLimit("openai",
rpm=40)``); ``BATON_RATE_LIMITS`` then still decides for that key if it
names it, so limits can be changed per deployment without a code change.
A key is matched in this order:

1. the key itself in ``BATON_RATE_LIMITS`` (``"openai"``);
2. the limits a step declared for it;
3. the longest pattern of ``BATON_RATE_LIMITS`` ending in ``*`` that the key starts with
   (``"tenant:*"`` matches ``"tenant:acme"``); each key it matches gets a
   bucket of its own with the pattern's limits, so every tenant has its own
   60 requests per minute;
4. ``"*"``, the default for every other key.

A key that matches none is a ``ConfigError`` naming it: for a key written on
the step, when the app starts (``init_app``); for a computed one, when the
step first runs (the step is then discarded with that message).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ArgumentError, ConfigError

#: The window ``rpm`` and ``tpm`` count in, in seconds: a minute. Read when the
#: config is read, so a test may shorten every window at once.
MINUTE = 60.0
#: What a limit may set; any subset, at least one.
FIELDS = ("rpm", "tpm", "concurrency")


@dataclass(frozen=True)
class Limit:
    """The limits of one key: requests and tokens per ``window`` seconds, steps running at once."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    window: float = 60.0

    @property
    def paced(self) -> bool:
        """Whether calls are counted (``rpm`` or ``tpm`` is set)."""
        return self.rpm is not None or self.tpm is not None


class RateLimit:
    """A step's ``rate_limit=`` with its key's limits: ``RateLimit("openai", rpm=40, tpm=90_000, concurrency=8)``.

    Any subset of ``rpm`` (requests per minute), ``tpm`` (tokens per
    minute) and ``concurrency`` (steps running at once), each a whole
    number > 0. Every step naming the key shares its bucket; steps declaring
    different limits for one key are an error. ``BATON_RATE_LIMITS`` naming
    the key overrides these.
    """

    def __init__(
        self, key: str, *, rpm: int | None = None, tpm: int | None = None, concurrency: int | None = None
    ) -> None:
        if not isinstance(key, str) or not key or key.endswith("*"):
            raise ArgumentError(f"RateLimit key must be a non-empty string without a trailing '*', got {key!r}")
        given = {
            name: value
            for name, value in (("rpm", rpm), ("tpm", tpm), ("concurrency", concurrency))
            if value is not None
        }
        if not given:
            raise ArgumentError(f"RateLimit({key!r}) needs at least one of {', '.join(FIELDS)}")
        try:
            self.limit = _limit("RateLimit", key, given)
        except ConfigError as exc:
            raise ArgumentError(str(exc)) from None
        self.key = key
        self._given = given

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RateLimit) and (self.key, self.limit) == (other.key, other.limit)

    def __hash__(self) -> int:
        return hash((self.key, self.limit))

    def __repr__(self) -> str:
        return f"RateLimit({self.key!r}, {', '.join(f'{k}={v}' for k, v in self._given.items())})"


#: A step's ``rate_limit=``: a key, a function of the job that computes one, or a ``RateLimit``.
KeySpec = str | Callable[[Any], str] | RateLimit
#: A step's ``tokens=``: its estimate of the tokens one call uses, or a function of the job.
TokenSpec = int | Callable[[Any], int]


class RateLimits:
    """The configured limits, and the limit each key falls under (see the module's docstring)."""

    def __init__(self, limits: Mapping[str, Limit]) -> None:
        self._exact = {key: limit for key, limit in limits.items() if not key.endswith("*")}
        # Longest prefix first, so "tenant:big:*" wins over "tenant:*" and both over "*".
        self._patterns = sorted(
            ((key[:-1], limit) for key, limit in limits.items() if key.endswith("*")), key=lambda p: -len(p[0])
        )

    def __bool__(self) -> bool:
        return bool(self._exact or self._patterns)

    def match(self, key: str, declared: Mapping[str, Limit] | None = None) -> Limit | None:
        """The limit ``key`` falls under (``declared``: the limits steps declared), None if nothing matches."""
        if key in self._exact:
            return self._exact[key]
        if declared and key in declared:
            return declared[key]
        return next((limit for prefix, limit in self._patterns if key.startswith(prefix)), None)

    def limit_of(self, key: str, step_name: str, declared: Mapping[str, Limit] | None = None) -> Limit:
        """``match``, or a ``ConfigError`` naming the key, the step and what is configured."""
        limit = self.match(key, declared) if isinstance(key, str) and key else None
        if limit is None:
            configured = ", ".join(map(repr, [*self.configured(), *sorted(declared or ())])) or "nothing"
            raise ConfigError(
                f"step {step_name!r} has rate_limit key {key!r}, which no key of BATON_RATE_LIMITS matches "
                f"(configured: {configured}); add it, or a pattern such as 'prefix:*' or '*'"
            )
        return limit

    def configured(self) -> list[str]:
        """The configured keys and patterns, sorted."""
        return sorted([*self._exact, *(prefix + "*" for prefix, _ in self._patterns)])


def parse_rate_limits(setting: str, value: Any) -> RateLimits:
    """Check ``BATON_RATE_LIMITS`` (a mapping, or its JSON) and return it; ``ConfigError`` naming the culprit."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"{setting} must be a mapping (or its JSON), got {value!r}") from None
    if value is None:
        return RateLimits({})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{setting} must be a mapping of key -> {{'rpm': n, 'tpm': n, 'concurrency': n}}")
    return RateLimits({_key(setting, key): _limit(setting, key, spec) for key, spec in value.items()})


def _key(setting: str, key: Any) -> str:
    if not isinstance(key, str) or not key or "*" in key[:-1]:
        raise ConfigError(f"{setting}: key {key!r} must be a non-empty string, with '*' only at its end")
    return key


def _limit(setting: str, key: str, spec: Any) -> Limit:
    where = f"{setting}[{key!r}]"
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"{where} must be a mapping with any of {', '.join(FIELDS)}, got {spec!r}")
    unknown = sorted(str(name) for name in spec if name not in FIELDS)
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(unknown)}; the fields are {', '.join(FIELDS)}")
    counts: dict[str, int] = {}
    for name, number in spec.items():
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise ConfigError(f"{where}[{name!r}] must be a whole number > 0, got {number!r}")
        counts[name] = number
    return Limit(window=MINUTE, **counts)


def declared_limits(specs: Iterable[tuple[str, Any]]) -> dict[str, Limit]:
    """The limits steps declared (``RateLimit``), by key, from (step name, ``rate_limit``) pairs.

    ``ArgumentError`` naming both steps when two declare different limits for one key.
    """
    found: dict[str, tuple[str, RateLimit]] = {}
    for step_name, spec in specs:
        if not isinstance(spec, RateLimit):
            continue
        first = found.setdefault(spec.key, (step_name, spec))
        if first[1] != spec:
            raise ArgumentError(
                f"step {step_name!r} declares {spec!r}, but step {first[0]!r} declares {first[1]!r} for the same key; "
                "declare it once (or in BATON_RATE_LIMITS)"
            )
    return {key: spec.limit for key, (_step, spec) in found.items()}


def check_step_options(step_name: str, rate_limit: Any, tokens: Any) -> None:
    """``rate_limit=`` and ``tokens=`` of a step declaration; ``ArgumentError`` naming the step."""
    if isinstance(rate_limit, RateLimit):
        rate_limit = rate_limit.key
    if rate_limit is not None and not callable(rate_limit) and (not isinstance(rate_limit, str) or not rate_limit):
        raise ArgumentError(
            f"step {step_name!r}: rate_limit must be a key (a non-empty string) or a function of the job, "
            f"got {rate_limit!r}"
        )
    if tokens is None:
        return
    if rate_limit is None:
        raise ArgumentError(f"step {step_name!r}: tokens= estimates a rate-limited call; give rate_limit= too")
    if not callable(tokens):
        check_tokens(step_name, tokens)


def check_tokens(step_name: str, tokens: Any) -> int:
    """A token estimate: a whole number >= 0, else ``ArgumentError`` naming the step."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ArgumentError(f"step {step_name!r}: tokens must be a whole number >= 0, got {tokens!r}")
    return tokens


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds a provider's rate-limit error asks to wait, read from its shape; None if it is not one.

    An OpenAI or Anthropic SDK ``RateLimitError`` (by class name, so neither
    SDK is imported) carries the HTTP response; its ``retry-after-ms`` or
    ``retry-after`` header (seconds) says how long. One without a usable
    header is an ordinary error (None): the step's retries and backoff apply.
    """
    if type(exc).__name__ != "RateLimitError":
        return None
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(header) or "") * scale
        except (TypeError, ValueError, AttributeError):
            continue
        if 0 <= seconds < math.inf:
            return seconds
    return None
