"""The outcome sentence over every case, without a database: ``headline`` and the bulk ``summary``."""

from __future__ import annotations

import pytest

from flask_baton.bulk import BulkResult, summary
from flask_baton.headline import Headline, OutcomeFacts, headline
from flask_baton.records import WorkflowRecord
from flask_baton.states import WorkflowState

#: 2025-11-03 14:02:51 UTC
AT = 1762178571.0


def record(state: str, total: int = 10, unsettled: int = 0, retried: int = 0) -> WorkflowRecord:
    finished = None if state == "running" else AT + 60
    return WorkflowRecord(
        "w" * 32, "nightly", WorkflowState(state), total, unsettled, AT - 600, finished, None, retried
    )


def told(state: str, facts: OutcomeFacts | None = None, **fields: int) -> Headline:
    return headline(record(state, **fields), facts or OutcomeFacts())


CASES = [
    # running: only progress, and whether it runs again after a retry
    (told("running", unsettled=4), Headline("running", "Running", "6 of 10 steps settled.")),
    (
        told("running", unsettled=4, retried=1),
        Headline("running", "Running", "6 of 10 steps settled; running again after 1 retry."),
    ),
    # completed: "Completed" only when every step completed
    (told("completed"), Headline("completed", "Completed", "All 10 steps completed.")),
    (told("completed", retried=2), Headline("completed", "Completed after 2 retries", "All 10 steps completed.")),
    (
        told("completed", OutcomeFacts(tolerated=1, tolerated_names=("model:b",))),
        Headline("completed", "Completed with 1 tolerated failure", "9 of 10 steps completed; model:b discarded."),
    ),
    (
        told("completed", OutcomeFacts(tolerated=5, tolerated_names=("a", "b", "c")), retried=1),
        Headline(
            "completed",
            "Completed with 5 tolerated failures after 1 retry",
            "5 of 10 steps completed; a, b, c and 2 more discarded.",
        ),
    ),
    (
        told("completed", OutcomeFacts(tolerated=2, tolerated_names=("a", "b"), cancelled_by_user=1, cancelled_at=AT)),
        Headline(
            "completed",
            "Completed with 3 tolerated failures",
            "7 of 10 steps completed; 1 cancelled by a user at 2025-11-03 14:02:51 UTC; a and b discarded.",
        ),
    ),
    # cancelled by a user: when, and what had finished
    (
        told("cancelled", OutcomeFacts(cancelled_by_user=7, cancelled_at=AT)),
        Headline(
            "cancelled",
            "Cancelled by a user at 2025-11-03 14:02:51 UTC",
            "3 of 10 steps had completed; 7 steps cancelled.",
        ),
    ),
    (
        told("cancelled", OutcomeFacts(cancelled_by_user=1)),  # no step's time: the workflow's end
        Headline(
            "cancelled",
            "Cancelled by a user at 2025-11-03 14:03:51 UTC",
            "9 of 10 steps had completed; 1 step cancelled.",
        ),
    ),
    (
        told(
            "cancelled",
            OutcomeFacts(failed=1, failed_names=("fetch",), consequences=2, cancelled_by_user=4, cancelled_at=AT),
            retried=1,
        ),
        Headline(
            "cancelled",
            "Cancelled by a user at 2025-11-03 14:02:51 UTC after 1 retry",
            "3 of 10 steps had completed; 4 steps cancelled; fetch failed; 2 cancelled as a consequence.",
        ),
    ),
    # failed: because of which steps, what that cancelled, what a user cancelled
    (
        told("failed", OutcomeFacts(failed=1, failed_names=("parse",), consequences=3)),
        Headline("failed", "Failed because of parse", "6 of 10 steps completed; 3 cancelled as a consequence."),
    ),
    (
        told("failed", OutcomeFacts(failed=2, failed_names=("a", "b"))),
        Headline("failed", "Failed because of a and b", "8 of 10 steps completed."),
    ),
    (
        told(
            "failed",
            OutcomeFacts(
                failed=4,
                failed_names=("a", "b", "c"),
                consequences=1,
                cancelled_by_user=2,
                cancelled_at=AT,
                tolerated=1,
                tolerated_names=("t",),
            ),
            retried=3,
        ),
        Headline(
            "failed",
            "Failed again because of a, b, c and 1 more",
            "2 of 10 steps completed; 1 cancelled as a consequence; 2 cancelled by a user at 2025-11-03 14:02:51 UTC; "
            "t discarded but tolerated; after 3 retries.",
        ),
    ),
    (  # a user's cancel, then one step retried: the rest is still the user's doing, not a consequence
        told("failed", OutcomeFacts(cancelled_by_user=145, cancelled_at=AT), total=352, retried=1),
        Headline(
            "failed",
            "Failed because 145 steps stayed cancelled by a user at 2025-11-03 14:02:51 UTC",
            "207 of 352 steps completed; after 1 retry.",
        ),
    ),
    (
        told("failed", OutcomeFacts(consequences=2)),
        Headline("failed", "Failed", "8 of 10 steps completed; 2 cancelled as a consequence."),
    ),
]


@pytest.mark.parametrize(("said", "expected"), CASES, ids=[f"{c[1].kind}-{i}" for i, c in enumerate(CASES)])
def test_headline_says_exactly_what_happened(said: Headline, expected: Headline) -> None:
    assert said == expected


def test_a_headline_reads_as_one_line() -> None:
    said = told("failed", OutcomeFacts(failed=1, failed_names=("parse",)))
    assert str(said) == "Failed because of parse. 9 of 10 steps completed."


def test_the_caller_writes_the_times() -> None:
    facts = OutcomeFacts(cancelled_by_user=1, cancelled_at=AT)
    assert headline(record("cancelled"), facts, lambda at: f"<{at:.0f}>").title == "Cancelled by a user at <1762178571>"


def done(workflow_id: str) -> BulkResult:
    return BulkResult(workflow_id, workflow_id, ["a"])


def skipped(workflow_id: str, why: str) -> BulkResult:
    return BulkResult(workflow_id, workflow_id, skipped=why, error=f"workflow {workflow_id}: {why}")


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([done("a"), done("b"), done("c")], "3 retried"),
        ([done("a"), done("b"), done("c"), skipped("d", "still running")], "3 retried, 1 skipped: still running"),
        (
            [done("a"), skipped("b", "still running"), skipped("c", "not found"), skipped("d", "still running")],
            "1 retried, 3 skipped: 1 not found, 2 still running",
        ),
        ([skipped("a", "nothing to retry")], "0 retried, 1 skipped: nothing to retry"),
    ],
)
def test_bulk_summary_counts_what_was_done_and_why_the_rest_was_skipped(
    results: list[BulkResult], expected: str
) -> None:
    assert summary(results, "retried") == expected
