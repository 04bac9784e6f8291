"""What a step's page says about its wait (``WaitFor``): what for, since and until when, and who decided.

An approval (``WaitFor(..., approval=True)``) is decided in the dashboard:
Approve / Reject send its signal with ``{"approved": bool, "comment": str,
"by": user}``, the user being who ``BATON_DASHBOARD_AUTH`` named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..records import WaitRecord
from .formatting import Timestamp, timestamp


@dataclass(frozen=True)
class WaitView:
    """A step's last wait as its page shows it."""

    name: str
    approval: bool
    waiting: bool  # the step waits now: an approval can be decided
    since: Timestamp | None
    until: Timestamp | None
    then: str  # what happens at the deadline
    outcome: str | None  # "approved", "rejected", "received", "timed out"; None while none
    by: str | None
    at: Timestamp | None
    comment: str | None


def wait_view(wait: WaitRecord) -> WaitView:
    signal = wait.signal
    then = "the step runs again without it" if wait.on_timeout == "continue" else "the step is discarded"
    outcome = by = comment = None
    at = None
    if signal is not None:
        at, by = timestamp(signal.sent_at, with_date=True), signal.sent_by
        if signal.timed_out:
            outcome = "timed out"
        elif wait.approval and isinstance(signal.payload, dict) and "approved" in signal.payload:
            outcome = "approved" if signal.payload["approved"] else "rejected"
            comment = _text(signal.payload.get("comment"))
        else:
            outcome = "received"
    return WaitView(
        name=wait.name,
        approval=wait.approval,
        waiting=wait.waiting,
        since=timestamp(wait.since, with_date=True),
        until=timestamp(wait.until, with_date=True),
        then=then,
        outcome=outcome,
        by=by,
        at=at,
        comment=comment,
    )


def decision(approved: bool, comment: str, user: str | None) -> dict[str, Any]:
    """The payload of an approval decided in the dashboard."""
    return {"approved": approved, "comment": comment, "by": user}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
