"""The critical path of a workflow run: the chain of dependencies that decided when it ended.

Walk back from the step that ended last: each step could not start before
its last dependency to end had ended, so that dependency is the one that held
it back; repeat until a step with no dependency that ended. Shortening any
step off this path would not have ended the workflow sooner; shortening one
on it might have.

Pure: the timings come from the step rows (or, later, from each attempt's
row), ``now`` standing in for the end of what still runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Timing(NamedTuple):
    """When a step ended (``None``: it has not run, or ran and is waiting to run again).

    A named tuple: one per step of the workflow on every read.
    """

    name: str
    deps: tuple[str, ...]
    end: float | None


def critical_path(timings: Sequence[Timing]) -> tuple[str, ...]:
    """Step names from the first to the last step of the critical path; empty when nothing ended.

    Ties go to the step inserted first (and, among deps, declared first), so
    the same run always gives the same path.
    """
    ended = {t.name: t for t in timings if t.end is not None}
    if not ended:
        return ()
    last = max(ended.values(), key=_end)
    path = {last.name: None}  # ordered, and a set: stored graphs are acyclic, a bad one must not loop
    while True:
        held_by = [ended[dep] for dep in last.deps if dep in ended and dep not in path]
        if not held_by:
            return tuple(reversed(path))
        last = max(held_by, key=_end)
        path[last.name] = None


def _end(timing: Timing) -> float:
    assert timing.end is not None
    return timing.end
