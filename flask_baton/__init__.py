"""flask_baton: dependency-ordered Huey workflows (DAGs) for Flask."""

from __future__ import annotations

from .errors import (
    AmbiguousWorkflowIdError,
    ConfigError,
    CycleError,
    DuplicateStepError,
    DuplicateWorkflowError,
    InvalidStepError,
    NotADependencyError,
    NotSerializableError,
    StepTimeout,
    UnknownDependencyError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from .explain import Explanation
from .extension import Baton
from .job import Job
from .outcomes import Discard, Snooze
from .query import WorkflowStatus
from .states import StepState, WorkflowState
from .steps import Dep, Step, StepCall
from .workflow import InsertedJob, Workflow

__all__ = [
    "AmbiguousWorkflowIdError",
    "Baton",
    "ConfigError",
    "CycleError",
    "Dep",
    "Discard",
    "DuplicateStepError",
    "DuplicateWorkflowError",
    "Explanation",
    "InsertedJob",
    "InvalidStepError",
    "Job",
    "NotADependencyError",
    "NotSerializableError",
    "Snooze",
    "Step",
    "StepCall",
    "StepState",
    "StepTimeout",
    "UnknownDependencyError",
    "Workflow",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowStateError",
    "WorkflowState",
    "WorkflowStatus",
]
