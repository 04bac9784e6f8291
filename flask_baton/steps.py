"""Step definitions: what ``@baton.step`` makes, and ``step.new(...)`` calls.

A step is a plain function of a ``job``; ``Step`` keeps it with its retry
policy and queue. Steps are declared at import time (before any app exists)
and looked up by name when a consumer runs them, so the web process and the
consumers must import the same step modules.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ArgumentError, InvalidStepError, NotSerializableError
from .limits import KeySpec, TokenSpec, check_step_options
from .states import Tolerance

#: A step function: called with the step's ``Job``. Spelled ``Any`` here, as
#: ``job.py`` imports this module (``Job.add_step`` takes a ``StepCall``).
StepFunction = Callable[[Any], Any]
#: ``on_dep_cancelled`` / ``on_dep_discarded``: called with the reason and the ``Job``.
DepHook = Callable[[str, Any], None]

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class StepCall:
    """A step with the args of one use of it; what ``Workflow.add`` takes."""

    step: Step
    args: dict[str, Any]

    def args_json(self, step_name: str) -> str:
        """Encode the args, or raise naming the workflow step they belong to."""
        try:
            return json.dumps(self.args, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise NotSerializableError(
                f"args of step {step_name!r} ({self.step.name}) are not JSON-serialisable: {exc}"
            ) from exc


class Step:
    """A registered step function and how it is run, retried and queued."""

    def __init__(
        self,
        func: StepFunction,
        *,
        name: str,
        retries: int = 0,
        retry_delay: float = 0.0,
        retry_backoff: float = 1.0,
        retry_jitter: bool = False,
        max_retry_delay: float | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int | None = None,
        timeout: float | None = None,
        on_dep_cancelled: DepHook | None = None,
        on_dep_discarded: DepHook | None = None,
        llm: bool = False,
        rate_limit: KeySpec | None = None,
        tokens: TokenSpec | None = None,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ArgumentError(f"step {name!r}: retries must be an int >= 0, got {retries!r}")
        if retry_delay < 0 or retry_backoff < 1:
            raise ArgumentError(
                f"step {name!r}: retry_delay must be >= 0 and retry_backoff >= 1, "
                f"got {retry_delay!r} and {retry_backoff!r}"
            )
        if timeout is not None and timeout <= 0:
            raise ArgumentError(f"step {name!r}: timeout must be > 0 seconds, got {timeout!r}")
        check_step_options(name, rate_limit, tokens)
        self.func = func
        self.name = name
        self.retries = retries
        self.retry_delay = float(retry_delay)
        self.retry_backoff = float(retry_backoff)
        self.retry_jitter = retry_jitter
        self.max_retry_delay = max_retry_delay
        self.llm = llm
        self.queue = queue
        self.priority = priority
        self.timeout = timeout
        self.dep_cancelled_hook = on_dep_cancelled
        self.dep_discarded_hook = on_dep_discarded
        #: The ``BATON_RATE_LIMITS`` key each run counts against (or a function of the job computing it).
        self.rate_limit = rate_limit
        #: Tokens one run is estimated to use (or a function of the job): reserved before the call.
        self.tokens = tokens
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def new(self, **args: Any) -> StepCall:
        """Return a call of this step with ``args`` (``job.args`` when it runs)."""
        return StepCall(self, args)

    def __call__(self, job: Any) -> Any:
        """Run the function directly, e.g. in a unit test of the step's logic."""
        return self.func(job)

    @property
    def max_attempts(self) -> int:
        """Runs in all: the first one plus ``retries`` (Huey's meaning)."""
        return self.retries + 1

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before the run after failed run number ``attempt``.

        Exponential (``retry_delay * retry_backoff ** (attempt - 1)``), capped
        at ``max_retry_delay``; with ``retry_jitter``, a uniform draw between 0
        and that ("full jitter"), so retries of many failed calls to one
        provider spread out instead of arriving together.
        """
        delay = self.retry_delay * self.retry_backoff ** (attempt - 1)
        if self.max_retry_delay is not None:
            delay = min(delay, self.max_retry_delay)
        return random.uniform(0.0, delay) if self.retry_jitter else delay

    def timeout_for(self, llm_timeout: float) -> float | None:
        """Seconds this step may run: its own timeout, else ``BATON_LLM_TIMEOUT`` for LLM steps."""
        if self.timeout is not None:
            return self.timeout
        return llm_timeout if self.llm else None

    def on_dep_cancelled(self, hook: DepHook) -> DepHook:
        """Decorator: call ``hook(reason, job)`` when a dependency is cancelled."""
        self.dep_cancelled_hook = hook
        return hook

    def on_dep_discarded(self, hook: DepHook) -> DepHook:
        """Decorator: call ``hook(reason, job)`` when a dependency is discarded."""
        self.dep_discarded_hook = hook
        return hook

    def __repr__(self) -> str:
        return f"<Step {self.name} queue={self.queue} retries={self.retries}>"


@dataclass(frozen=True)
class Dep:
    """A dependency with a failure policy: run anyway if ``step`` fails that way.

    ``deps=["fetch", Dep("model:a", ignore_discarded=True)]``: the dependent
    runs when ``model:a`` completes *or* is discarded, and sees which deps
    failed through ``job.failed_deps()``. Plain names keep the default:
    a failed dependency cancels its dependents.
    """

    step: str
    ignore_cancelled: bool = False
    ignore_discarded: bool = False

    @property
    def tolerates(self) -> str | None:  # a Tolerance: typed str until the API reference documents Tolerance
        """The failure this edge lets through: a ``flask_baton.Tolerance`` member, or None."""
        return _tolerance(self)


def _tolerance(dep: Dep) -> Tolerance | None:
    """The ``Tolerance`` of a ``Dep``'s options."""
    if dep.ignore_cancelled and dep.ignore_discarded:
        return Tolerance.ANY
    if dep.ignore_cancelled:
        return Tolerance.CANCELLED
    return Tolerance.DISCARDED if dep.ignore_discarded else None


DepSpec = str | Dep


def split_deps(step_name: str, deps: Sequence[DepSpec]) -> tuple[list[str], dict[str, Tolerance]]:
    """Dep names in order, and the failure policy of those that have one."""
    if isinstance(deps, (str, Dep)) or not all(isinstance(dep, (str, Dep)) for dep in deps):
        raise InvalidStepError(f"deps of step {step_name!r} must be a list of step names or Dep(...), got {deps!r}")
    names = [dep if isinstance(dep, str) else dep.step for dep in deps]
    tolerates = {dep.step: tolerance for dep in deps if isinstance(dep, Dep) and (tolerance := _tolerance(dep))}
    return names, tolerates
