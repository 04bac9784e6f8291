"""What each running step of one page has streamed, pieced together from events.

A ``workflow_step_streamed`` event says where its text starts (``offset``)
in its attempt's stream, so pieces heard twice, or partly known already (a
page that read the text so far and then heard the event), add only what is
new. A newer attempt starts afresh, and so does a new run of the same
attempt (a snoozed step runs again under its attempt number, from offset
0): its first event (``seq`` 1) has another timestamp than the first one
heard; a step seen not running is forgotten. Only the last ``KEEP_CHARS`` of each stream are
kept: the page shows the end of a long answer, the step's result shows all
of it once it completes.
"""

from __future__ import annotations

from typing import Any

#: Characters of each step's stream kept in memory (and sent to a page that opens mid-stream).
KEEP_CHARS = 32_000


class StreamedText:
    """The streamed text of each step of one workflow, as far as heard."""

    def __init__(self) -> None:
        # step -> attempt, the run's first event's timestamp, end offset, text kept
        self._streams: dict[str, tuple[int, float | None, int, str]] = {}

    def add(self, payload: dict[str, Any]) -> str:
        """Take one event's payload; return the part of its text that is new ("" if none)."""
        step, attempt = str(payload["step_name"]), int(payload["attempt"])
        offset, text = int(payload["offset"]), str(payload["text"])
        first = float(payload["timestamp"]) if payload.get("seq") == 1 else None
        known, began, end, kept = self._streams.get(step, (attempt, first, 0, ""))
        if attempt < known:
            return ""
        if attempt > known or (first is not None and began is not None and first != began):
            began, end, kept = first, 0, ""  # a newer attempt, or the same one run again (a snooze)
        new = text[max(end - offset, 0) :]
        if new:
            kept = (kept + new)[-KEEP_CHARS:]
        self._streams[step] = (attempt, began if began is not None else first, max(end, offset + len(text)), kept)
        return new

    def forget(self, step: str) -> None:
        """Drop what ``step`` streamed (it is not running: what it streams next is a new run)."""
        self._streams.pop(step, None)

    def text(self, step: str, attempt: int) -> str:
        """What ``attempt`` of ``step`` streamed so far ("" if nothing was heard)."""
        known, _, _, kept = self._streams.get(step, (attempt, None, 0, ""))
        return kept if known == attempt else ""
