"""The ``job`` a step function receives: its args, its place, its inputs.

Dependency results are read lazily, in one query for all of them, the first
time the step asks; a step that ignores its inputs costs no extra round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import dag
from .effects import NewStep
from .errors import InvalidStepError, NotADependencyError
from .ids import new_id
from .records import Input, ModelCall
from .states import FAILED
from .steps import DepSpec, StepCall, split_deps

InputLoader = Callable[[], "dict[str, Input]"]
NameLoader = Callable[[], set[str]]
UsageRecorder = Callable[[ModelCall], "float | None"]
ContextRecorder = Callable[[Any, Any], bool]


@dataclass(frozen=True)
class Grant:
    """The call a rate-limited run was granted: its key, when it was counted, the tokens it reserved."""

    key: str
    at: float
    tokens: int


class Job:
    """One run of one step of one workflow.

    ``rate_limit``: for a step with ``rate_limit=``, the ``Grant`` this run
    runs under (its key, when its call was counted); None otherwise.
    """

    def __init__(
        self,
        *,
        id: str,
        workflow_id: str,
        workflow_label: str,
        step_name: str,
        args: Mapping[str, Any],
        attempt: int,
        load_inputs: InputLoader,
        load_step_names: NameLoader,
        record_usage: UsageRecorder,
        capture_context: ContextRecorder,
    ) -> None:
        self.id = id
        self.workflow_id = workflow_id
        self.workflow_label = workflow_label
        self.step_name = step_name
        self.args = dict(args)
        self.attempt = attempt
        self._load_inputs = load_inputs
        self._load_step_names = load_step_names
        self._record_usage = record_usage
        self._capture_context = capture_context
        self._started = time.monotonic()
        self._inputs: dict[str, Input] | None = None
        self._step_names: set[str] | None = None
        self.added_steps: list[NewStep] = []
        self.rate_limit: Grant | None = None

    @property
    def deps(self) -> tuple[str, ...]:
        """Names of the steps this one depends on."""
        return tuple(self._dep_results())

    def results(self) -> dict[str, Any]:
        """Every dependency's result, keyed by step name (``None`` for no result)."""
        return {name: dep.result for name, dep in self._dep_results().items()}

    def result(self, dep: str) -> Any:
        """The result of dependency ``dep``; raises ``NotADependencyError`` otherwise."""
        inputs = self._dep_results()
        if dep not in inputs:
            raise NotADependencyError(self.step_name, dep, inputs)
        return inputs[dep].result

    def failed_deps(self) -> dict[str, str]:
        """Dependencies that failed and that this step tolerates, with their state."""
        return {name: dep.state.value for name, dep in self._dep_results().items() if dep.state in FAILED}

    def _dep_results(self) -> dict[str, Input]:
        if self._inputs is None:
            self._inputs = self._load_inputs()
        return self._inputs

    def record_usage(
        self,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        latency: float | None = None,
    ) -> float | None:
        """Record one model call of this attempt in ``baton_step_stats``; return its cost.

        Token counts must be whole numbers >= 0 (``input_tokens`` excludes
        cached ones). ``latency`` defaults to the time since the attempt
        started. The cost comes from ``BATON_PRICING``; an unknown model is
        recorded with no cost and a warning in the log.
        """
        if latency is None:
            latency = time.monotonic() - self._started
        return self._record_usage(ModelCall(model, input_tokens, output_tokens, cached_input_tokens, latency))

    def capture_context(self, *, messages: Any, response: Any) -> bool:
        """Keep the full prompt and response in ``baton_debug_logs`` (``BATON_DEBUG_CAPTURE``).

        Returns True if stored. Does nothing, and returns False, when capture is off.
        """
        return self._capture_context(messages, response)

    def add_step(self, name: str, call: StepCall, deps: Sequence[DepSpec] = ()) -> None:
        """Add a step to this running workflow (a dynamic fan-out).

        The step is checked now, with the same rules as ``Workflow.add`` and
        ``validate``, against the workflow's stored steps and the ones added
        before it (so add dependencies first). It is written in the same
        transaction that completes this step: if this run fails, nothing is
        added, and a retry adds afresh. The workflow cannot finish before the
        added steps settle.
        """
        if not isinstance(call, StepCall):
            raise InvalidStepError(f"step {name!r} must be added as my_step.new(...), got {type(call).__name__}")
        names, tolerates = split_deps(name, deps)
        if self._step_names is None:
            self._step_names = self._load_step_names()
        dag.topological_order([(name, names)], existing=self._step_names)
        self.added_steps.append(NewStep(new_id(), name, call.step.name, call.args_json(name), names, tolerates))
        self._step_names.add(name)

    def __repr__(self) -> str:
        return f"<Job {self.step_name} of {self.workflow_label} attempt={self.attempt}>"
