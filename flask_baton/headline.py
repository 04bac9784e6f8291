"""A workflow's outcome in one line: what the dashboard's banner, its index and ``flask baton status`` say.

Pure: it takes a workflow's record and the facts about its failed steps
(``OutcomeFacts``, which ``Query.outcome_facts`` reads) and writes the
sentence, so the three places that show an outcome never disagree, and
every case is tested without a database, a consumer or Flask.

The sentence tells apart what the workflow's state alone cannot: failures
every dependent tolerated (a quorum's discarded model) from failures that
failed the workflow, steps cancelled by a user from steps cancelled because
a dependency failed, and a first run from a run after retries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .records import WorkflowRecord
from .states import WorkflowState

#: Failed steps a sentence names before "and N more".
NAMED = 3
#: The title of a workflow every step of which completed, at its first run.
PLAIN = "Completed"


@dataclass(frozen=True)
class OutcomeFacts:
    """A workflow's failed steps by cause (all zero for a workflow without any).

    ``failed``: discarded steps that fail the workflow (a dependent does not
    tolerate the failure, or nothing depends on them); ``tolerated``:
    discarded steps every dependent went on without. ``*_names``: the first
    ``NAMED`` of each, in the order they were added. ``cancelled_by_user``:
    steps a user's cancel stopped (``cancel_workflow``), the last of them at
    ``cancelled_at``; ``cancelled_by_budget``: steps a spend cap cancelled,
    ``budget_reason`` saying which cap and by how much (``budget.Exceeded``);
    ``consequences``: steps cancelled because a dependency failed.
    """

    failed: int = 0
    failed_names: tuple[str, ...] = ()
    tolerated: int = 0
    tolerated_names: tuple[str, ...] = ()
    cancelled_by_user: int = 0
    cancelled_at: float | None = None
    cancelled_by_budget: int = 0
    budget_reason: str | None = None
    consequences: int = 0

    @property
    def failures(self) -> int:
        """Every discarded or cancelled step."""
        return self.failed + self.tolerated + self.cancelled_by_user + self.cancelled_by_budget + self.consequences


@dataclass(frozen=True)
class Headline:
    """The outcome: ``title`` for a row or a heading, ``detail`` to go with it; ``kind`` is its colour."""

    kind: str  # running | completed | failed | cancelled
    title: str
    detail: str

    def __str__(self) -> str:
        return f"{self.title}. {self.detail}"


def utc_clock(epoch: float) -> str:
    """``2025-11-03 14:02:51 UTC``: how a moment is written when the caller does not say."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def headline(record: WorkflowRecord, facts: OutcomeFacts, clock: Callable[[float], str] = utc_clock) -> Headline:
    """What happened to the workflow, in a title and a sentence; ``clock`` writes times."""
    total = record.total_steps
    if record.state == WorkflowState.RUNNING:
        again = f"; running again after {_retries(record.retried)}" if record.retried else ""
        return Headline("running", "Running", f"{record.settled_steps} of {total} steps settled{again}.")
    completed = total - record.unsettled_steps - facts.failures
    user_at = facts.cancelled_at if facts.cancelled_at is not None else record.finished_at
    by_user = "cancelled by a user" + ("" if user_at is None else f" at {clock(user_at)}")
    after = f"after {_retries(record.retried)}" if record.retried else ""
    if record.state == WorkflowState.COMPLETED:
        if not facts.failures:
            return Headline("completed", _joined(PLAIN, after), f"All {total} steps completed.")
        title = _joined(f"Completed with {_count(facts.failures, 'tolerated failure')}", after)
        causes = _causes(facts, by_user, tolerated="discarded")
        return Headline("completed", title, _sentence(f"{completed} of {total} steps completed", *causes))
    if record.state == WorkflowState.CANCELLED and facts.cancelled_by_budget and not facts.cancelled_by_user:
        detail = _sentence(f"{completed} of {total} steps had completed", *_causes(facts))
        return Headline("cancelled", _joined(f"Cancelled: {facts.budget_reason}", after), detail)
    if record.state == WorkflowState.CANCELLED:
        stopped = f"{_count(facts.cancelled_by_user, 'step')} cancelled" if facts.cancelled_by_user else ""
        detail = _sentence(f"{completed} of {total} steps had completed", stopped, *_causes(facts))
        return Headline("cancelled", _joined(by_user[0].upper() + by_user[1:], after), detail)
    done = f"{completed} of {total} steps completed"
    if facts.failed:
        title = f"Failed {'again ' if record.retried else ''}because of {_names(facts.failed_names, facts.failed)}"
        return Headline("failed", title, _sentence(done, *_causes(facts, by_user, named=False), after))
    if facts.cancelled_by_user:
        title = f"Failed because {_count(facts.cancelled_by_user, 'step')} stayed {by_user}"
        return Headline("failed", title, _sentence(done, *_causes(facts), after))
    return Headline("failed", "Failed", _sentence(done, *_causes(facts, by_user), after))


def _causes(
    facts: OutcomeFacts, by_user: str | None = None, *, named: bool = True, tolerated: str = "discarded but tolerated"
) -> list[str]:
    """A clause per cause of failed steps; a user's cancel only given ``by_user`` (its words)."""
    clauses = []
    if facts.failed and named:
        clauses.append(f"{_names(facts.failed_names, facts.failed)} failed")
    if facts.consequences:
        clauses.append(f"{facts.consequences} cancelled as a consequence")
    if facts.cancelled_by_user and by_user is not None:
        clauses.append(f"{facts.cancelled_by_user} {by_user}")
    if facts.cancelled_by_budget:
        clauses.append(f"{_count(facts.cancelled_by_budget, 'step')} cancelled: {facts.budget_reason}")
    if facts.tolerated:
        clauses.append(f"{_names(facts.tolerated_names, facts.tolerated)} {tolerated}")
    return clauses


def _joined(*words: str) -> str:
    return " ".join(word for word in words if word)


def _sentence(*clauses: str) -> str:
    """Clauses joined with semicolons, empty ones left out, ending with a full stop."""
    return "; ".join(clause for clause in clauses if clause) + "."


def _names(names: Sequence[str], count: int) -> str:
    """``a``, ``a and b``, ``a, b and c``, ``a, b, c and 4 more``."""
    shown = list(names[:NAMED])
    more = count - len(shown)
    if more > 0:
        return f"{', '.join(shown)} and {more} more" if shown else _count(count, "step")
    if len(shown) == 1:
        return shown[0]
    return f"{', '.join(shown[:-1])} and {shown[-1]}"


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _retries(number: int) -> str:
    return f"{number} retr{'y' if number == 1 else 'ies'}"
