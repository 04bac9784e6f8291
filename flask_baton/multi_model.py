"""Ask several models the same thing, then synthesise their answers.

::

    fan_out(workflow, "analysis", analyse, models=["gpt-4.1", "claude-sonnet-4", "gemini-1.5-pro"],
            deps=["fetch"], synthesize=("brief", write_brief), quorum=2)

adds ``analysis:gpt-4.1``, ``analysis:claude-sonnet-4``, ... (each gets its
model in ``job.args["model"]``) and ``brief``, which reads every model's result
keyed by model with ``model_results(job)``. Without ``quorum`` the synthesis
needs every model (a failed model cancels it, as any dependency would); with
``quorum=N`` it runs once the models settle, and goes ahead when at least N
succeeded: a failed model does not sink the whole brief.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import DuplicateStepError, WorkflowError
from .job import Job
from .outcomes import Discard
from .steps import Dep, DepSpec, Step, StepCall
from .workflow import Workflow


def _as_call(what: Step | StepCall, role: str) -> StepCall:
    if isinstance(what, StepCall):
        return what
    if isinstance(what, Step):
        return what.new()
    raise WorkflowError(f"fan_out {role} must be a step or step.new(...), got {what!r}")


def fan_out(
    workflow: Workflow,
    name: str,
    step: Step | StepCall,
    *,
    models: Sequence[str],
    deps: Sequence[DepSpec] = (),
    synthesize: tuple[str, Step | StepCall] | None = None,
    quorum: int | None = None,
) -> list[str]:
    """Add one step per model (``"<name>:<model>"``) and an optional synthesis; return the names added.

    Everything is checked before anything is added, so a bad call leaves the
    workflow as it was.
    """
    if isinstance(models, str) or not models or not all(isinstance(m, str) and m for m in models):
        raise WorkflowError(f"fan_out {name!r}: models must be a non-empty list of model names, got {models!r}")
    names = [f"{name}:{model}" for model in models]
    taken = set(workflow.step_names)
    for step_name in names:
        if step_name in taken:
            raise DuplicateStepError(step_name)
        taken.add(step_name)
    call = _as_call(step, "step")
    synthesis: tuple[str, StepCall] | None = None
    if synthesize is not None:
        synthesis_name, synthesis_step = synthesize
        if synthesis_name in taken:
            raise DuplicateStepError(synthesis_name)
        synthesis = (synthesis_name, _as_call(synthesis_step, "synthesize step"))
    if quorum is not None:
        if synthesis is None:
            raise WorkflowError(f"fan_out {name!r}: quorum needs a synthesize step")
        if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= len(models):
            raise WorkflowError(f"fan_out {name!r}: quorum must be between 1 and {len(models)}, got {quorum!r}")

    for model, step_name in zip(models, names, strict=True):
        workflow.add(step_name, StepCall(call.step, {**call.args, "model": model}), deps=deps)
    if synthesis is None:
        return names
    synthesis_name, synthesis_call = synthesis
    tolerant = quorum is not None
    workflow.add(
        synthesis_name,
        StepCall(
            synthesis_call.step,
            {
                **synthesis_call.args,
                "fan_out": name,
                "models": list(models),
                "quorum": quorum if tolerant else len(models),
            },
        ),
        deps=[Dep(n, ignore_cancelled=True, ignore_discarded=True) if tolerant else n for n in names],
    )
    return [*names, synthesis_name]


def quorum_text(args: Mapping[str, Any]) -> str | None:
    """How many models a synthesis step needs, for the dashboard; None for other steps."""
    if "fan_out" not in args or "quorum" not in args or "models" not in args:
        return None
    return f"needs {args['quorum']} of {len(args['models'])} models"


def model_results(job: Job) -> dict[str, Any]:
    """In a synthesis step: each succeeded model's result, keyed by model.

    Raises ``Discard`` (the synthesis gives up, naming the failed models) when
    fewer models succeeded than the fan-out's quorum.
    """
    try:
        prefix, models, quorum = job.args["fan_out"], job.args["models"], job.args["quorum"]
    except KeyError:
        raise WorkflowError(f"step {job.step_name!r} is not the synthesis step of a fan_out") from None
    results, failed = job.results(), job.failed_deps()
    succeeded = {model: results[f"{prefix}:{model}"] for model in models if f"{prefix}:{model}" not in failed}
    if len(succeeded) < quorum:
        lost = ", ".join(f"{name} ({state})" for name, state in sorted(failed.items()))
        raise Discard(f"only {len(succeeded)} of {len(models)} models succeeded ({lost}); quorum is {quorum}")
    return succeeded
