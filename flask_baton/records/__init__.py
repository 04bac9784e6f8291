"""The records reads return: workflows, steps, their runs and captured model calls, status, pages, usage totals.

Plain frozen dataclasses with no database in sight, so the CLI, the
dashboard, ``explain`` and ``export`` use them (and their tests build them)
without importing SQLAlchemy. ``flask_baton.store`` fills them in;
``flask_baton.query`` and ``flask_baton.usage`` hand them out.

Each record is defined by what it describes (``workflows``: workflows and
steps; ``runs``: a step's runs and their usage; ``overview``: what the
dashboard's overview counts) and named here, where the documentation and
callers import it from.
"""

from __future__ import annotations

from .overview import Activity, ConsumerRecord, RunningStep, ScheduleStatus, StepDurations, TickRecord
from .runs import AttemptRecord, ContextCapture, ModelCall, StepUsage, Usage
from .workflows import (
    Input,
    SignalRecord,
    StepOutline,
    StepRecord,
    WaitRecord,
    WorkflowPage,
    WorkflowRecord,
    WorkflowStatus,
)

__all__ = [
    "Activity",
    "AttemptRecord",
    "ConsumerRecord",
    "ContextCapture",
    "Input",
    "ModelCall",
    "RunningStep",
    "ScheduleStatus",
    "SignalRecord",
    "StepDurations",
    "StepOutline",
    "StepRecord",
    "StepUsage",
    "TickRecord",
    "Usage",
    "WaitRecord",
    "WorkflowPage",
    "WorkflowRecord",
    "WorkflowStatus",
]
