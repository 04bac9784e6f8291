"""How ``flask baton status`` shows workflows: aligned tables for people, JSON for scripts.

Pure functions of records already read, so the one-off ``status`` and each
redraw of ``status --watch`` render the same way.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..budget import used
from ..explain import Explanation, describe_states, explain, last_line
from ..export import step_document, workflow_document
from ..headline import Headline, OutcomeFacts, headline
from ..records import AttemptRecord, StepRecord, WorkflowRecord, WorkflowStatus
from ..states import StepState

#: The error column never wraps narrower than this, however narrow the terminal.
MIN_ERROR_WIDTH = 40
#: Steps whose error is a traceback of their own (``--errors`` prints them whole).
RAISED = (StepState.RETRYABLE, StepState.DISCARDED)


@dataclass(frozen=True)
class Snapshot:
    """One read of a workflow: its row, its summary, its outcome's facts and its steps (``only``: the states shown)."""

    record: WorkflowRecord
    summary: WorkflowStatus
    steps: list[StepRecord]
    only: StepState | None = None
    facts: OutcomeFacts = field(default_factory=OutcomeFacts)

    @property
    def headline(self) -> Headline:
        return headline(self.record, self.facts, clock)

    @property
    def shown(self) -> list[StepRecord]:
        return [s for s in self.steps if self.only is None or s.state == self.only]

    def fingerprint(self) -> tuple[Any, ...]:
        """What changes when the workflow moves on (not the clock): when a watch prints again."""
        return self.summary.state, tuple((s.step_name, s.state, s.attempt) for s in self.steps)


def workflow_list(records: Sequence[WorkflowRecord], facts: Mapping[str, OutcomeFacts]) -> str:
    """A table of workflows; OUTCOME is the title of each one's headline (``facts``: ``Query.outcome_facts``)."""
    return table(
        ["ID", "NAME", "STATE", "STEPS", "CREATED", "DURATION", "OUTCOME"],
        [
            [
                w.id,
                w.name,
                w.state,
                f"{w.settled_steps}/{w.total_steps}",
                clock(w.created_at),
                duration(w.created_at, w.finished_at),
                headline(w, facts.get(w.id, OutcomeFacts()), clock).title,
            ]
            for w in records
        ],
    )


def workflow_list_json(records: Sequence[WorkflowRecord], next_before: str | None) -> str:
    """``{"workflows": [...], "next_before": ...}``: the keys of ``flask baton export -f json``'s workflow."""
    return json.dumps({"workflows": [workflow_document(w) for w in records], "next_before": next_before}, indent=2)


def workflow_detail(snap: Snapshot, *, errors: bool, width: int | None = None) -> str:
    """The status line, a table of the steps (whole errors, wrapped) and, with ``errors``, their tracebacks."""
    by_name = {step.step_name: step for step in snap.steps}
    now = time.time()
    budget = snap.record.budget_usd
    parts = [
        status_line(snap.summary),
        *([] if budget is None else [used(snap.summary.cost_usd, budget)]),
        str(snap.headline),
        table(
            ["STEP", "STATE", "ATTEMPT", "STARTED", "DURATION", "WAITING ON", "ERROR"],
            [
                [
                    s.step_name,
                    s.state,
                    str(s.attempt),
                    clock(s.started_at),
                    duration(s.started_at, s.finished_at),
                    waiting_on(explain(by_name, s.step_name, now)),
                    last_line(s.error),
                ]
                for s in snap.shown
            ],
            wrap_last=shutil.get_terminal_size().columns if width is None else width,
        ),
    ]
    if errors:
        tracebacks = [
            f"\n--- {s.step_name} ({s.state}, attempt {s.attempt}) ---\n{error.rstrip()}"
            for s in snap.shown
            if s.state in RAISED and (error := s.error)
        ]
        parts += tracebacks or ["\nno step failed"]
    return "\n".join(parts)


def workflow_detail_json(snap: Snapshot, *, indent: int | None = 2) -> str:
    """``{"workflow": {...export's keys, counts, duration, cost_usd}, "steps": [{...export's keys, waiting_on}]}``."""
    by_name = {step.step_name: step for step in snap.steps}
    now = time.time()
    summary = snap.summary
    document = {
        "workflow": {
            **workflow_document(snap.record),
            "counts": {state.value: count for state, count in summary.counts.items()},
            "duration": summary.duration,
            "cost_usd": summary.cost_usd,
            "budget_usd": snap.record.budget_usd,
            "headline": {"title": snap.headline.title, "detail": snap.headline.detail},
        },
        "steps": [
            {**step_document(s), "waiting_on": sorted(explain(by_name, s.step_name, now).waiting_on)}
            for s in snap.shown
        ],
    }
    return json.dumps(document, indent=indent)


def attempt_list(runs: Sequence[AttemptRecord], *, errors: bool, width: int | None = None) -> str:
    """One line per run of a step, oldest first (the error wrapped in its column); with ``errors``, each traceback."""
    if not runs:
        return "this step has not run yet"
    rows = [
        [
            f"#{run.attempt}",
            run.outcome.value,
            clock(run.started_at),
            duration(run.started_at, run.finished_at),
            run.worker or "-",
            last_line(run.error),
        ]
        for run in runs
    ]
    wrap = shutil.get_terminal_size().columns if width is None else width
    parts = [table(["RUN", "OUTCOME", "STARTED", "DURATION", "WORKER", "ERROR"], rows, wrap_last=wrap)]
    if errors:
        parts += [
            f"\n--- run {index} (attempt {run.attempt}, {run.outcome.value}) ---\n{run.error.rstrip()}"
            for index, run in enumerate(runs, start=1)
            if run.error
        ] or ["\nno run raised"]
    return "\n".join(parts)


def attempt_list_json(workflow_id: str, step_name: str, runs: Sequence[AttemptRecord]) -> str:
    """``{"workflow_id", "step_name", "attempts": [...]}``, each run with ``Query.get_step_attempts``'s fields."""
    document = {
        "workflow_id": workflow_id,
        "step_name": step_name,
        "attempts": [
            {
                "attempt": run.attempt,
                "outcome": run.outcome.value,
                "worker": run.worker,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "duration": run.duration,
                "error": run.error,
            }
            for run in runs
        ],
    }
    return json.dumps(document, indent=2)


def status_line(summary: WorkflowStatus) -> str:
    """``name (id): state, 3/4 steps settled, took 1.2s, cost $0.0042 [completed 3, executing 1]``."""
    cost = "" if summary.cost_usd is None else f", cost ${summary.cost_usd:.4f}"
    counts = ", ".join(f"{state.value} {count}" for state, count in summary.counts.items() if count)
    return (
        f"{summary.name} ({summary.id}): {summary.state}, "
        f"{summary.settled_steps}/{summary.total_steps} steps settled, "
        f"took {seconds(summary.duration)}{cost} [{counts}]"
    )


def waiting_on(why: Explanation) -> str:
    """The WAITING ON cell: unfinished dependencies, or when a scheduled step runs next."""
    if why.waiting_on:
        return describe_states(why.waiting_on)
    if why.state in (StepState.SNOOZED, StepState.RETRYABLE) and why.runs_at is not None:
        waiting_for = f"{why.waiting_for}, " if why.waiting_for else ""
        return f"{waiting_for}next run {clock(why.runs_at)}"
    return ""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], wrap_last: int | None = None) -> str:
    """Columns padded to their widest cell; with ``wrap_last``, the last column wraps to fit that many characters.

    A wrapped cell continues on the next lines, in its own column, so a long
    error stays whole and readable instead of being cut.
    """
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    cells: list[list[list[str]]] = [[[str(cell)] for cell in row] for row in [headers, *rows]]
    if wrap_last is not None and rows:
        room = max(MIN_ERROR_WIDTH, wrap_last - sum(widths[:-1]) - 2 * (len(widths) - 1))
        for row in cells[1:]:
            row[-1] = textwrap.wrap(row[-1][0], room, break_on_hyphens=False) or [""]
        widths[-1] = max(len(line) for row in cells for line in row[-1])
    lines = []
    for row in cells:
        for index in range(max(len(cell) for cell in row)):
            parts = [(cell[index] if index < len(cell) else "").ljust(width) for cell, width in zip(row, widths)]
            lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def clock(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def duration(start: float | None, end: float | None) -> str:
    if not start:
        return "-"
    return seconds((end or time.time()) - start)


def seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"
