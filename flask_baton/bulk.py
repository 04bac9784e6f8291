"""Acting on several workflows at once: cancel them, retry them, resume them; a result per workflow.

What ``baton.cancel_workflows`` / ``retry_workflows`` / ``resume_workflows``,
the CLI given several ids and the dashboard index's bulk buttons call. Each
workflow is changed by ``control`` in a transaction of its own, with the
same checks as one at a time: a workflow that cannot be changed is skipped,
saying why in a few words (``BulkResult.skipped``, which ``summary`` counts)
and in full (``BulkResult.error``), and the others are still changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import control, dag
from .appstate import AppState
from .errors import BatonError, DuplicateWorkflowError, WorkflowNotFoundError
from .states import WorkflowState

#: What an action does to one workflow: the steps it changed.
Act = Callable[[AppState, str], list[str]]


@dataclass(frozen=True)
class BulkResult:
    """What an action did to one workflow: the steps it changed, or why it skipped the workflow."""

    workflow_id: str
    label: str
    steps: list[str] = field(default_factory=list)
    #: A few words saying why nothing changed ("still running"); None when the action was done.
    skipped: str | None = None
    #: The whole refusal, naming the workflow.
    error: str | None = None
    #: After a retry or a resume: failed steps left cancelled, and why (``control.Retried``).
    left_cancelled: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.skipped is None


def cancel_workflows(state: AppState, workflow_ids: Sequence[str], reason: str) -> list[BulkResult]:
    """Cancel each running workflow; skip the others."""
    return _each(state, workflow_ids, lambda s, w: control.cancel_workflow(s, w, reason), _why_not_cancelled)


def retry_workflows(state: AppState, workflow_ids: Sequence[str]) -> list[BulkResult]:
    """Retry each finished workflow's discarded and cancelled steps (``control.retry_workflow``)."""
    return _each(state, workflow_ids, control.retry_workflow, _why_not_rerun(retry=True))


def resume_workflows(state: AppState, workflow_ids: Sequence[str]) -> list[BulkResult]:
    """Resume each workflow a user cancelled (``control.resume_workflow``)."""
    return _each(state, workflow_ids, control.resume_workflow, _why_not_rerun(retry=False))


def summary(results: Sequence[BulkResult], done: str) -> str:
    """What an action did, counted: ``3 retried``, ``3 retried, 1 skipped: still running``.

    Several reasons are counted each: ``1 cancelled, 3 skipped: 2 already completed, 1 not found``.
    """
    said = f"{sum(1 for result in results if result.done)} {done}"
    reasons = Counter(result.skipped for result in results if result.skipped is not None)
    if not reasons:
        return said
    skipped = sum(reasons.values())
    if len(reasons) == 1:
        return f"{said}, {skipped} skipped: {next(iter(reasons))}"
    return f"{said}, {skipped} skipped: " + ", ".join(f"{count} {why}" for why, count in sorted(reasons.items()))


def _each(
    state: AppState, workflow_ids: Sequence[str], act: Act, why_not: Callable[[AppState, str], str]
) -> list[BulkResult]:
    """``act`` on each workflow (once, in the order given); a refusal skips that one."""
    labels = {workflow_id: record.name for workflow_id, record in state.query.get_workflows(list(workflow_ids)).items()}
    results = []
    for workflow_id in dict.fromkeys(workflow_ids):
        label = labels.get(workflow_id, "")
        try:
            steps = act(state, workflow_id)
            left = steps.left_cancelled if isinstance(steps, control.Retried) else {}
            results.append(BulkResult(workflow_id, label, list(steps), left_cancelled=left))
        except WorkflowNotFoundError as exc:
            results.append(BulkResult(workflow_id, label, skipped="not found", error=str(exc)))
        except DuplicateWorkflowError as exc:
            results.append(BulkResult(workflow_id, label, skipped="its unique key is taken", error=str(exc)))
        except BatonError as exc:
            results.append(BulkResult(workflow_id, label, skipped=why_not(state, workflow_id), error=str(exc)))
    return results


def _why_not_cancelled(state: AppState, workflow_id: str) -> str:
    record = state.query.get_workflow(workflow_id)
    return "not found" if record is None else f"already {record.state}"


def _why_not_rerun(*, retry: bool) -> Callable[[AppState, str], str]:
    """Why a retry (or a resume) refused a workflow, read back: it runs, or has nothing to run again."""

    def why_not(state: AppState, workflow_id: str) -> str:
        record = state.query.get_workflow(workflow_id)
        if record is None:
            return "not found"
        if record.state == WorkflowState.RUNNING:
            return "still running"
        steps = state.query.get_workflow_jobs(workflow_id)
        if not (dag.failure_roots(dag.StepGraph.of(steps)) if retry else dag.resume_roots(steps)):
            return "nothing to retry" if retry else "nothing a user cancelled"
        return "changed meanwhile"

    return why_not
