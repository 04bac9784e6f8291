"""The ``job`` a step function receives: its args, its place, its inputs.

Dependency results are read lazily, in one query for all of them, the first
time the step asks; a step that ignores its inputs costs no extra round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import dag
from .effects import NewStep
from .errors import ArgumentError, InvalidStepError, NotADependencyError
from .ids import new_id
from .records import Input, ModelCall, SignalRecord
from .sdk_usage import call_of_response
from .states import FAILED
from .steps import DepSpec, StepCall, split_deps
from .streaming import StepStream, collect

logger = logging.getLogger("flask_baton")

InputLoader = Callable[[], "dict[str, Input]"]
NameLoader = Callable[[], set[str]]
SignalLoader = Callable[[], "dict[str, SignalRecord]"]
UsageRecorder = Callable[[ModelCall], "float | None"]
ContextRecorder = Callable[[Any, Any], bool]
#: ``record_usage``'s response when only keywords are given (``None`` is a wrong response, named as such).
_NO_RESPONSE: Any = object()


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
        stream: StepStream,
        load_signals: SignalLoader,
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
        self._stream = stream
        self._load_signals = load_signals
        self._signals: dict[str, SignalRecord] | None = None
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

    def signal(self, name: str) -> Any:
        """The payload of the signal ``name`` sent to this workflow (``baton.signal``); None while none arrived.

        Also None after a ``WaitFor(name, on_timeout="continue")`` timed out
        (``timed_out`` tells). Read once per run, in one query for all signals.
        """
        kept = self._kept_signals().get(name)
        return None if kept is None else kept.payload

    def timed_out(self, name: str) -> bool:
        """Whether this step's ``WaitFor(name, on_timeout="continue")`` timed out before a signal arrived."""
        kept = self._kept_signals().get(name)
        return kept is not None and kept.timed_out

    def _kept_signals(self) -> dict[str, SignalRecord]:
        if self._signals is None:
            self._signals = self._load_signals()
        return self._signals

    def record_usage(
        self,
        response: Any = _NO_RESPONSE,
        /,
        *,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        latency: float | None = None,
    ) -> float | None:
        """Record one model call of this attempt in ``baton_step_stats``; return its cost.

        Pass the SDK's response (OpenAI chat completions or Responses API,
        Anthropic messages, Google GenAI; the object or its ``model_dump()``):
        its counts and model are read by shape, ``model=`` overriding the
        model. Or pass the counts as keywords: ``model``, ``input_tokens``
        and ``output_tokens``, and optionally ``cached_input_tokens``,
        ``reasoning_tokens``, ``cache_write_tokens``. Counts are whole
        numbers >= 0 and disjoint: ``input_tokens`` excludes cached and
        cache-written ones, ``output_tokens`` excludes reasoning. ``latency``
        defaults to the time since the attempt started. The cost comes from
        ``BATON_PRICING``; an unknown model is recorded with no cost and a
        warning in the log. A response with no usage (a stream's chunk, some
        proxies) records nothing, logs a warning naming the step, and returns
        ``None``.
        """
        if latency is None:
            latency = time.monotonic() - self._started
        counts = (input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cache_write_tokens)
        if response is _NO_RESPONSE:
            if model is None or input_tokens is None or output_tokens is None:
                raise ArgumentError("record_usage() needs a response, or model=, input_tokens= and output_tokens=")
            cached, reasoning, writes = (0 if count is None else count for count in counts[2:])
            call = ModelCall(model, input_tokens, output_tokens, cached, latency, reasoning, writes)
        elif any(count is not None for count in counts):
            raise ArgumentError("record_usage() takes a response or token counts, not both")
        elif (read := call_of_response(response, model, latency)) is not None:
            call = read
        else:
            logger.warning(
                "step %r of %s (%s): the %s passed to record_usage() carries no usage; nothing recorded for this call",
                self.step_name,
                self.workflow_label,
                self.workflow_id,
                type(response).__name__,
            )
            return None
        return self._record_usage(call)

    def capture_context(self, *, messages: Any, response: Any) -> bool:
        """Keep the full prompt and response in ``baton_debug_logs`` (``BATON_DEBUG_CAPTURE``).

        Returns True if stored. Does nothing, and returns False, when capture is off.
        """
        return self._capture_context(messages, response)

    def stream(self, text: str) -> None:
        """Publish ``text`` as the next piece of this step's streamed output.

        Subscribers of the workflow (``events.subscribe_workflow``, the
        dashboard's workflow page) receive it as a ``workflow_step_streamed``
        event; nothing is stored per piece (the database feed writes what
        came in over ``BATON_STREAM_FLUSH_SECONDS`` as one row). The step's
        result is still what it returns.
        """
        self._stream.write(text)

    def stream_from(self, chunks: Iterable[Any]) -> str:
        """``stream`` the text of every chunk of a model SDK's stream; return the whole text.

        Takes OpenAI chat-completion chunks, Anthropic message stream events,
        Gemini chunks or plain strings, recognised by shape
        (``flask_baton.streaming.text_of``).
        """
        return collect(self._stream, chunks)

    def end_stream(self) -> None:
        """Publish the streamed text still held (the runner calls it when the step function is done)."""
        self._stream.close()

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
