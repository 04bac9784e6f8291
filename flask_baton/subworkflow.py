"""Sub-workflows: a whole workflow nested as one step of another.

``Workflow.add_workflow("report", child, deps=[...])`` copies the child's
steps into the parent as ``"report/<step>"`` (the child's roots get
``deps``) and adds a *join* step named ``"report"``. The join runs
``join_step``, a step every ``Baton`` registers, once the child's steps have
settled; its result maps each of the child's own steps to its result, so
the parent's dependents of ``"report"`` read ``job.result("report")["fetch"]``.

Nothing about sub-workflows is stored but the join's args,
``{"subworkflow": "report", "steps": ["report/fetch", ...]}`` (every step
inside, nested ones included): enough for a view to draw the child
collapsed into its join node (``groups``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .states import FAILED, Tolerance, lets_through
from .steps import Step, StepCall

if TYPE_CHECKING:
    from .job import Job
    from .records import StepRecord

#: Between a sub-workflow's name and the names of its steps.
SEPARATOR = "/"
#: The join step's registered name (``baton_nodes.task`` of join steps).
JOIN_TASK = "flask_baton.subworkflow"


def _join(job: Job) -> dict[str, Any]:
    """A sub-workflow's result: each of its own steps' results, by its name inside it.

    Steps that failed in a way the child tolerated are left out, as a quorum
    synthesis leaves out a failed model.
    """
    prefix = job.step_name + SEPARATOR
    failed = job.failed_deps()
    return {name.removeprefix(prefix): result for name, result in job.results().items() if name not in failed}


join_step = Step(_join, name=JOIN_TASK)


def join_call(name: str, members: Sequence[str]) -> StepCall:
    """The join step of sub-workflow ``name``, recording every step inside it."""
    return join_step.new(subworkflow=name, steps=list(members))


def is_join(call: StepCall) -> bool:
    """Whether ``call`` is the join step of a sub-workflow."""
    return call.step is join_step


def nested_call(call: StepCall, prefix: str) -> StepCall:
    """``call`` as it runs inside a parent: a nested join names its steps anew."""
    if not is_join(call):
        return call
    return join_call(prefix + call.args["subworkflow"], [prefix + name for name in call.args["steps"]])


def join_deps(
    deps_of: Mapping[str, Sequence[str]],
    tolerates: Mapping[str, Mapping[str, Tolerance]],
    nested: Iterable[str],
) -> dict[str, Tolerance | None]:
    """What a child's join waits for, and which failure of each it lets through.

    The join waits for the child's own steps, not those inside a nested
    sub-workflow (``nested``: that one's join stands for them). A failure is
    let through when every dependent inside the child tolerates it, so the
    join fails exactly when the child, inserted alone, would fail.
    """
    inside = set(nested)
    dependents: dict[str, list[Tolerance | None]] = {name: [] for name in deps_of}
    for name, deps in deps_of.items():
        for dep in deps:
            dependents[dep].append(tolerates[name].get(dep))
    return {name: common_tolerance(edges) for name, edges in dependents.items() if name not in inside}


def common_tolerance(edges: Sequence[str | None]) -> Tolerance | None:
    """The failure every one of these edges tolerates (``Dep.tolerates`` values).

    No edges (a leaf) tolerates nothing: a failed leaf fails the child.
    """
    if not edges:
        return None
    common = frozenset(FAILED)
    for edge in edges:
        common &= lets_through(edge)
    return Tolerance.of(common)


def groups(steps: Iterable[StepRecord]) -> dict[str, list[str]]:
    """Each stored sub-workflow (its join step's name) and every step inside it."""
    return {step.step_name: list(step.args["steps"]) for step in steps if step.task == JOIN_TASK}


def innermost_group(members: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """For every step inside a sub-workflow, the smallest one holding it.

    A nested join is inside its parent sub-workflow, so following this map
    from a join name walks up the nesting.
    """
    holder: dict[str, str] = {}
    for name in sorted(members, key=lambda group: len(members[group]), reverse=True):
        for step in members[name]:
            holder[step] = name
    return holder
