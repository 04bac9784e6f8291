"""flask_baton: dependency-ordered Huey workflows (DAGs) for Flask."""

from __future__ import annotations

__version__ = "0.2.0.dev0"

from .buckets import RateLimitUsage
from .bulk import BulkResult
from .errors import (
    AmbiguousWorkflowIdError,
    ArgumentError,
    BatonError,
    BudgetError,
    ConfigError,
    ConfigWarning,
    CycleError,
    DuplicateStepError,
    DuplicateWorkflowError,
    InvalidStepError,
    NotADependencyError,
    NotSerializableError,
    ScheduleError,
    SchemaError,
    SetupError,
    SignalError,
    StepTimeout,
    UnknownDependencyError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from .explain import Explanation
from .extension import Baton
from .job import Job
from .limits import RateLimit
from .outcomes import Discard, RateLimited, Snooze, WaitFor
from .records import WorkflowStatus
from .states import AttemptOutcome, StepState, Tolerance, WorkflowState
from .steps import Dep, Step, StepCall
from .workflow import InsertedJob, Workflow

__all__ = [
    "AmbiguousWorkflowIdError",
    "ArgumentError",
    "AttemptOutcome",
    "Baton",
    "BatonError",
    "BudgetError",
    "BulkResult",
    "ConfigError",
    "ConfigWarning",
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
    "RateLimit",
    "RateLimitUsage",
    "RateLimited",
    "ScheduleError",
    "SchemaError",
    "SetupError",
    "SignalError",
    "Snooze",
    "Step",
    "StepCall",
    "StepState",
    "StepTimeout",
    "Tolerance",
    "UnknownDependencyError",
    "WaitFor",
    "Workflow",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowState",
    "WorkflowStateError",
    "WorkflowStatus",
]
