"""The step page's view model: the step, each of its runs, and the model calls each run captured.

Built from records already read (``reads.step_page`` reads them), in plain
Python, so what a run shows (its outcome in words, its trimmed traceback,
which captures belong to it) is tested without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..records import AttemptRecord, ContextCapture
from ..states import AttemptOutcome
from ..tracebacks import Trimmed, trim
from .formatting import Timestamp, error_summary, fingerprint, format_duration, format_size, timestamp
from .step_view import StepView
from .transcript import Transcript, transcript
from .wait_view import WaitView

#: Runs shown on a step's page, newest kept (a step snoozing every few seconds runs often).
SHOWN_RUNS = 50

#: How each outcome reads, the state colour it takes, and what it means.
OUTCOMES: dict[AttemptOutcome, tuple[str, str, str]] = {
    AttemptOutcome.RUNNING: ("running", "executing", "running now"),
    AttemptOutcome.COMPLETED: ("completed", "completed", "returned; its result is the step's"),
    AttemptOutcome.FAILED: ("failed, retried", "retryable", "raised; the step ran again after its retry delay"),
    AttemptOutcome.SNOOZED: ("snoozed", "snoozed", "asked to run later; its attempt was given back"),
    AttemptOutcome.WAITED: ("waited", "waiting", "returned WaitFor: waited for a signal; its attempt was given back"),
    AttemptOutcome.HANDED_BACK: (
        "handed back",
        "available",
        "its consumer stopped mid-run and handed the step back; its attempt was given back",
    ),
    AttemptOutcome.LOST: (
        "lost, rescued",
        "retryable",
        "its consumer stopped renewing its lease; the sweep made the step run again",
    ),
    AttemptOutcome.DISCARDED: ("discarded", "discarded", "failed for good"),
    AttemptOutcome.CANCELLED: ("cancelled while running", "cancelled", "cancelled as it ran; its outcome was dropped"),
}
#: Outcomes after which the next run has the next attempt number, unless a retry by hand re-armed the step.
_COUNTED = frozenset({AttemptOutcome.FAILED, AttemptOutcome.LOST, AttemptOutcome.DISCARDED, AttemptOutcome.CANCELLED})
#: The last line of a traceback of ``StepTimeout`` starts with its class's name.
_TIMEOUT = ("flask_baton.errors.StepTimeout:", "StepTimeout:")


@dataclass(frozen=True)
class AttemptView:
    """One run of the step, as its page lists it."""

    key: str
    attempt: int
    outcome: str  # AttemptOutcome's value
    label: str
    state: str  # the step state whose colour it takes
    meaning: str
    started: Timestamp | None
    finished: Timestamp | None
    duration: str
    running_since: float | None
    worker: str | None
    error_summary: str | None
    traceback: Trimmed | None
    error_full: str | None
    transcripts: tuple[Transcript, ...]
    retried_by_hand: bool  # a retry by hand re-armed the step between the previous run and this one


@dataclass(frozen=True)
class StepPage:
    """Everything a step's page shows, and a version that changes when any of it does."""

    workflow_id: str
    workflow_label: str
    step: StepView
    runs: tuple[AttemptView, ...]  # oldest first
    earlier: bool  # runs older than these exist and are not shown
    capture_cap: str  # BATON_DEBUG_CAPTURE_MAX_BYTES, for the cut marker
    version: str
    settled: bool
    wait: WaitView | None = None  # the step's last ``WaitFor``, if it waited


def step_page(
    workflow_id: str,
    workflow_label: str,
    step: StepView,
    runs: Sequence[AttemptRecord],
    captures: Sequence[ContextCapture],
    capture_cap: int,
    now: float,
    wait: WaitView | None = None,
) -> StepPage:
    """The page of one step; ``runs`` may hold one more than ``SHOWN_RUNS``, to tell that earlier ones exist."""
    shown = list(runs[-SHOWN_RUNS:])
    owned = assign(shown, captures)
    views = []
    for index, run in enumerate(shown):
        previous = shown[index - 1] if index else None
        views.append(attempt_view(index, run, owned[index], previous, now))
    version = fingerprint(
        step.state,
        [(r.attempt, r.outcome.value, r.started_at, r.finished_at) for r in shown],
        [(c.attempt, c.created_at) for c in captures],
        None if wait is None else (wait.waiting, wait.outcome),
    )
    return StepPage(
        workflow_id,
        workflow_label,
        step,
        tuple(views),
        len(runs) > SHOWN_RUNS,
        format_size(capture_cap),
        version,
        step.state in ("completed", "discarded", "cancelled"),
        wait,
    )


def attempt_view(
    index: int, run: AttemptRecord, captures: Sequence[ContextCapture], previous: AttemptRecord | None, now: float
) -> AttemptView:
    label, state, meaning = OUTCOMES[run.outcome]
    summary = error_summary(run.error)
    if summary is not None and summary.startswith(_TIMEOUT):
        label = label.replace("failed", "timed out") if run.outcome == AttemptOutcome.FAILED else f"timed out, {label}"
    running = run.finished_at is None
    end = now if run.finished_at is None else run.finished_at
    trimmed = trim(run.error) if run.error else None
    return AttemptView(
        key=f"run-{index + 1}",
        attempt=run.attempt,
        outcome=run.outcome.value,
        label=label,
        state=state,
        meaning=meaning,
        started=timestamp(run.started_at),
        finished=timestamp(run.finished_at),
        duration=format_duration(end - run.started_at),
        running_since=run.started_at if running else None,
        worker=run.worker,
        error_summary=summary,
        traceback=trimmed,
        error_full=run.error,
        transcripts=tuple(transcript(capture) for capture in captures),
        retried_by_hand=previous is not None
        and (run.attempt < previous.attempt or (run.attempt == previous.attempt and previous.outcome in _COUNTED)),
    )


def assign(runs: Sequence[AttemptRecord], captures: Sequence[ContextCapture]) -> list[list[ContextCapture]]:
    """Each run's captures: those with its attempt number made since it started, before a later run did.

    The attempt number alone is not enough: a snoozed run and the next share
    it, and a retry by hand counts from 1 again. A capture no shown run
    fits (made before the first shown) is left out.
    """
    owned: list[list[ContextCapture]] = [[] for _ in runs]
    for capture in captures:
        fitting = [
            index
            for index, run in enumerate(runs)
            if run.attempt == capture.attempt and run.started_at <= capture.created_at
        ]
        if fitting:
            owned[max(fitting, key=lambda index: runs[index].started_at)].append(capture)
    return owned
