"""The ``Workflow`` builder: declare steps and their deps, check, insert at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from . import dag, subworkflow
from .appstate import AppState, get_state
from .budget import BudgetAction, check_action, check_budget
from .dispatch import commit
from .effects import NewStep, NewWorkflow
from .errors import (
    DuplicateStepError,
    DuplicateWorkflowError,
    InvalidStepError,
    WorkflowError,
)
from .ids import new_id, new_ids
from .inserts import insert_workflows
from .states import Tolerance
from .steps import DepSpec, StepCall, split_deps

OnConflict = Literal["raise", "return"]
#: A step as the builder keeps it: name, call, dependency names, their failure policies.
_Entry = tuple[str, StepCall, Sequence[str], Mapping[str, Tolerance]]


@dataclass(frozen=True)
class InsertedJob:
    """One step of an inserted workflow."""

    id: str
    workflow_id: str
    step_name: str


class Workflow:
    """A DAG of steps, built with ``add`` and written with ``insert``.

    ::

        Workflow(name="research:ai")
            .add("fetch", fetch.new(topic="ai"))
            .add("summarize", summarize.new(), deps=["fetch"])
            .insert()
    """

    def __init__(
        self,
        name: str = "workflow",
        *,
        unique_key: str | None = None,
        on_conflict: OnConflict = "raise",
        budget_usd: float | None = None,
        on_budget: BudgetAction | None = None,
    ) -> None:
        """``unique_key``: while a workflow with this key runs, ``insert`` does not
        start another one; it raises ``DuplicateWorkflowError``, or with
        ``on_conflict="return"`` returns the running one's jobs (and sets
        ``workflow_id`` to its id). The key is free again once that workflow
        finishes.

        ``budget_usd``: once the cost its steps recorded (``job.record_usage``)
        reaches this many US dollars, its steps not yet started are cancelled
        ("budget exceeded"), or with ``on_budget="pause"`` held until
        ``baton.set_budget`` raises the cap. ``on_budget`` defaults to
        ``BATON_BUDGET_ACTION``. A step already running finishes.
        """
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"a workflow name must be a non-empty string, got {name!r}")
        if unique_key is not None and (not isinstance(unique_key, str) or not unique_key):
            raise WorkflowError(f"unique_key must be a non-empty string or None, got {unique_key!r}")
        if on_conflict not in ("raise", "return"):
            raise WorkflowError(f'on_conflict must be "raise" or "return", got {on_conflict!r}')
        self.name = name
        self.unique_key = unique_key
        self.on_conflict = on_conflict
        self.budget_usd = None if budget_usd is None else check_budget(budget_usd)
        self.on_budget = None if on_budget is None else check_action(on_budget)
        # Known before insert, so a caller can subscribe to its events first.
        self.workflow_id = new_id()
        self.inserted = False
        #: True when ``insert`` found a running workflow with the same unique_key and returned it.
        self.reused = False
        self._calls: dict[str, StepCall] = {}
        self._deps: dict[str, list[str]] = {}
        self._tolerates: dict[str, dict[str, Tolerance]] = {}

    def add(self, name: str, call: StepCall, deps: Sequence[DepSpec] = ()) -> Workflow:
        """Add step ``name`` running ``call`` after every step in ``deps``.

        A dep is a step name, or ``Dep(name, ignore_cancelled=..., ignore_discarded=...)``
        to run even when that dependency fails that way.
        """
        _check_name(name)
        if not isinstance(call, StepCall):
            raise InvalidStepError(
                f"step {name!r} must be added as my_step.new(...), got {type(call).__name__}: {call!r}"
            )
        names, tolerates = split_deps(name, deps)
        self._put([(name, call, names, tolerates)])
        return self

    def add_workflow(self, name: str, child: Workflow, deps: Sequence[DepSpec] = ()) -> Workflow:
        """Nest the whole (not inserted) workflow ``child`` as step ``name``.

        The child's steps are copied in as ``"<name>/<step>"``, its roots
        waiting on ``deps``; a join step ``name`` completes once they did,
        with each of the child's steps' results keyed by its name inside the
        child, so a dependent reads ``job.result(name)["<step>"]``. A failure
        inside the child that the child itself would not tolerate cancels
        the join and its dependents, as any failed dependency does. The child
        is copied now: changing it later does not change this workflow, and
        one child may be nested several times under different names.
        """
        _check_name(name)
        if name in self._calls:  # before the child's steps: the clash to report is the name itself
            raise DuplicateStepError(name)
        if not isinstance(child, Workflow):
            raise InvalidStepError(f"sub-workflow {name!r} must be a Workflow, got {type(child).__name__}")
        if child.inserted:
            raise WorkflowError(
                f"sub-workflow {name!r}: workflow {child.name!r} was already inserted as {child.workflow_id}; "
                "nest a workflow that has not been inserted"
            )
        child.validate()
        names, tolerates = split_deps(name, deps)
        prefix = name + subworkflow.SEPARATOR
        steps: list[_Entry] = [
            (
                prefix + step,
                subworkflow.nested_call(call, prefix),
                [prefix + dep for dep in child._deps[step]] if child._deps[step] else names,
                {prefix + dep: t for dep, t in child._tolerates[step].items()} if child._deps[step] else tolerates,
            )
            for step, call in child._calls.items()
        ]
        nested = [
            member for call in child._calls.values() if subworkflow.is_join(call) for member in call.args["steps"]
        ]
        waits = subworkflow.join_deps(child._deps, child._tolerates, nested)
        steps.append(
            (
                name,
                subworkflow.join_call(name, [prefix + step for step in child._calls]),
                [prefix + step for step in waits],
                {prefix + step: t for step, t in waits.items() if t is not None},
            )
        )
        self._put(steps)
        return self

    def _put(self, steps: Sequence[_Entry]) -> None:
        """Add checked steps, all or none: a name already taken adds nothing."""
        for name, *_ in steps:
            if name in self._calls:
                raise DuplicateStepError(name)
        for name, call, names, tolerates in steps:
            self._calls[name] = call
            self._deps[name] = list(names)
            self._tolerates[name] = dict(tolerates)

    @property
    def step_names(self) -> list[str]:
        """The steps added so far, in order."""
        return list(self._calls)

    def validate(self) -> list[str]:
        """Check the graph; return the step names in a dependency-first order.

        Raises ``UnknownDependencyError``, ``CycleError`` or
        ``DuplicateStepError`` naming the steps involved.
        """
        if not self._calls:
            raise WorkflowError(f"workflow {self.name!r} has no steps")
        return dag.topological_order(self._deps.items())

    def insert(self) -> list[InsertedJob]:
        """Validate, then write every step in one transaction and start the roots.

        All-or-nothing: on any error nothing is written. Returns one
        ``InsertedJob`` per step, in the order they were added.
        """
        state = get_state().ready()
        try:
            with dag.gc_paused():
                new = self._prepare(state)
                commit(state, insert_workflows, [new])
                jobs = _jobs(new)
        except DuplicateWorkflowError as conflict:
            if self.on_conflict == "raise" or conflict.workflow_id is None:
                raise
            return self._reuse(state, conflict.workflow_id)
        self.inserted = True
        return jobs

    @staticmethod
    def insert_many(workflows: Sequence[Workflow]) -> list[list[InsertedJob]]:
        """Insert several workflows in one transaction: all of them or none.

        Much faster than one ``insert()`` each when starting many small
        workflows at once (one transaction and three statements in all). A
        ``unique_key`` conflict fails the whole batch with
        ``DuplicateWorkflowError``, whatever ``on_conflict`` says.
        """
        if not workflows:
            return []
        state = get_state().ready()
        with dag.gc_paused():
            batch = [workflow._prepare(state) for workflow in workflows]
            if len({new.workflow_id for new in batch}) != len(batch):
                raise WorkflowError("insert_many() was given the same workflow twice")
            commit(state, insert_workflows, batch)
            jobs = [_jobs(new) for new in batch]
        for workflow in workflows:
            workflow.inserted = True
        return jobs

    def _prepare(self, state: AppState) -> NewWorkflow:
        """Check everything and build the rows to write (nothing written yet)."""
        if self.inserted:
            raise WorkflowError(f"workflow {self.name!r} was already inserted as {self.workflow_id}")
        self.validate()
        for name, call in self._calls.items():
            if state.step(call.step.name) is not call.step:
                raise InvalidStepError(
                    f"step {name!r} uses {call.step.name!r}, which is not a step of this app's Baton"
                )
        steps = [
            NewStep(node_id, name, call.step.name, call.args_json(name), self._deps[name], self._tolerates[name])
            for node_id, (name, call) in zip(new_ids(len(self._calls)), self._calls.items(), strict=True)
        ]
        state.remember_label(self.workflow_id, self.name)
        return NewWorkflow(self.workflow_id, self.name, steps, self.unique_key, self.budget_usd, self.on_budget)

    def _reuse(self, state: AppState, workflow_id: str) -> list[InsertedJob]:
        """Stand for the running workflow that holds our unique_key (``on_conflict="return"``)."""
        self.workflow_id = workflow_id
        self.inserted = self.reused = True
        return [
            InsertedJob(step.id, workflow_id, step.step_name) for step in state.query.get_workflow_jobs(workflow_id)
        ]


def prepare_scheduled(workflow: Workflow, state: AppState) -> NewWorkflow:
    """Check a schedule's workflow and build its rows, for ``ticks`` to insert with its tick's own row."""
    return workflow._prepare(state)


def _jobs(new: NewWorkflow) -> list[InsertedJob]:
    return [InsertedJob(step.node_id, new.workflow_id, step.step_name) for step in new.steps]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidStepError(f"a step name must be a non-empty string, got {name!r}")
