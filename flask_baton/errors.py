"""Exceptions flask_baton raises at its users.

Every message names the culprit (the step, the dependency, the config key) so
that a failing insert or a misconfigured app can be fixed from the traceback
alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class BatonError(Exception):
    """The root of every exception flask_baton raises on purpose.

    ``except flask_baton.BatonError`` catches them all; each subclass also
    derives from the built-in exception it refines (``ValueError`` for bad
    values, ``LookupError`` for missing things, ...), so code written against
    those keeps working.
    """


class SetupError(BatonError, RuntimeError):
    """flask_baton is used outside an app context, or on an app it is not registered on."""


class ArgumentError(BatonError, ValueError):
    """An argument given to a flask_baton function is of the wrong type or out of range."""


class BudgetError(ArgumentError):
    """A spend cap that is not a positive number of US dollars, or an unknown budget action."""


class WorkflowError(BatonError):
    """Base class for every problem with a workflow's shape or contents."""


class CycleError(WorkflowError, ValueError):
    """The dependency graph has a cycle; ``steps`` are the steps on it."""

    def __init__(self, steps: Iterable[str]) -> None:
        self.steps = sorted(steps)
        super().__init__("workflow has a dependency cycle through steps: " + ", ".join(map(repr, self.steps)))


class UnknownDependencyError(WorkflowError):
    """A step depends on a step name the workflow does not have."""

    def __init__(self, step: str, dependency: str) -> None:
        self.step = step
        self.dependency = dependency
        super().__init__(f"step {step!r} depends on unknown step {dependency!r}")


class DuplicateStepError(WorkflowError, ValueError):
    """Two steps of one workflow, or two registered steps, share a name."""

    def __init__(self, step: str, message: str | None = None) -> None:
        self.step = step
        super().__init__(message or f"workflow already has a step named {step!r}")


class InvalidStepError(WorkflowError):
    """Something other than ``my_step.new(...)`` was added as a step."""


class NotSerializableError(WorkflowError):
    """A step's args or result cannot be stored as JSON."""


class NotADependencyError(WorkflowError):
    """``job.result(name)`` asked for a step the job does not depend on."""

    def __init__(self, step: str, asked: str, deps: Iterable[str]) -> None:
        self.step = step
        self.asked = asked
        known = ", ".join(map(repr, sorted(deps))) or "none"
        super().__init__(
            f"step {step!r} asked for the result of {asked!r}, which is not one of its dependencies ({known})"
        )


class WorkflowNotFoundError(WorkflowError, LookupError):
    """No workflow (or no step of it) has the given id or name."""


class AmbiguousWorkflowIdError(WorkflowError, LookupError):
    """The start of an id given for a workflow matches several; say which, so one can be picked.

    ``matches`` maps some of those ids to their labels, newest first; ``more``
    is true when others match too.
    """

    def __init__(self, prefix: str, matches: Mapping[str, str], more: bool) -> None:
        self.prefix = prefix
        self.matches = dict(matches)
        self.more = more
        listed = "".join(f"\n  {workflow_id}  {label}" for workflow_id, label in self.matches.items())
        count = f"more than {len(self.matches)}" if more else str(len(self.matches))
        super().__init__(f"id prefix {prefix!r} matches {count} workflows; give more of the id to pick one:{listed}")


class WorkflowStateError(WorkflowError):
    """The workflow or step is not in a state that allows the action asked for."""


class DuplicateWorkflowError(WorkflowStateError):
    """A workflow with the same ``unique_key`` is running; ``workflow_id`` is that one.

    ``workflow_id`` is ``None`` when the holder finished before it could be
    read; the key is free again, so trying again can succeed.
    """

    def __init__(self, unique_key: str, workflow_id: str | None) -> None:
        self.unique_key = unique_key
        self.workflow_id = workflow_id
        holder = f": {workflow_id}" if workflow_id else " (it has finished since; try again)"
        super().__init__(f"a workflow with unique_key {unique_key!r} is already running{holder}")


class ScheduleError(BatonError, ValueError):
    """A schedule cannot be declared: its crontab does not parse, or its name or options are wrong.

    ``schedule`` names it; ``field`` is the crontab field at fault (``"minute"``,
    ``"day of week"``, ...), or ``None`` when the problem is not one field's.
    """

    def __init__(self, schedule: str, message: str, field: str | None = None) -> None:
        self.schedule = schedule
        self.field = field
        super().__init__(f"schedule {schedule!r}: {message}")


class SignalError(WorkflowStateError):
    """A signal refused: unknown workflow, a workflow no longer running, one already sent, a payload not JSON."""


class StepTimeout(BatonError, TimeoutError):
    """A step ran past its ``timeout``; it fails like any error (and may retry)."""


class ConfigError(BatonError, ValueError):
    """A ``BATON_*`` config value is missing, of the wrong type or out of range."""


class ConfigWarning(UserWarning):
    """A ``BATON_*`` key flask_baton does not know (a typo, most likely); it is ignored."""


class SchemaError(BatonError, RuntimeError):
    """flask_baton's tables are missing from the database, or older than this code.

    A ``RuntimeError``: the call was fine, the database is not ready for it.
    ``installed`` is the recorded schema version (0: not installed),
    ``needed`` the one this code requires; ``database`` is the URL with its
    password masked, so the message can be shown on a page or in a log.
    """

    def __init__(self, database: str, installed: int, needed: int) -> None:
        self.database = database
        self.installed = installed
        self.needed = needed
        if installed == 0:
            problem = f"flask_baton's tables are not installed in {database}"
        else:
            problem = (
                f"flask_baton's tables in {database} are at schema version {installed}, "
                f"and this flask_baton needs version {needed}"
            )
        super().__init__(f"{problem}: run `flask baton db upgrade` (or call baton.create_schema()) first")
