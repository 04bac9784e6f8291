"""What a workflow page shows of a big workflow, as its URL says: opened chains and the step table's filter.

The page's query string is the whole state of the view, so a filtered table
or an opened chain can be linked, reloaded, and rendered the same by the
page, by the part HTMX fetches when a filter changes, and by the live socket
(which the browser reopens with the new query):

- ``open``: keys of chains drawn step by step (comma separated);
- ``node``: the table shows only this node's steps (a fold's members, or one
  step), what needs a look first on top;
- ``state`` and ``q``: only steps in this state, whose name contains this text;
- ``page``: which ``PAGE_ROWS`` rows of what is left.

Pure: no Flask, no SQL. Links are relative (``?…``): fragments only ever
show on their workflow's page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlencode

from ..states import StepState
from .folding import CHAIN, Folding

#: Rows of the step table per page.
PAGE_ROWS = 50
#: Longest name filter accepted.
MAX_NAME_FILTER = 200
#: Most chains kept open at once (the URL stays short).
MAX_OPEN = 20
#: The order of a node's steps in the table: what needs a look first.
ATTENTION = (
    StepState.DISCARDED,
    StepState.RETRYABLE,
    StepState.CANCELLED,
    StepState.EXECUTING,
    StepState.WAITING,
    StepState.SNOOZED,
    StepState.AVAILABLE,
    StepState.PENDING,
    StepState.COMPLETED,
)
_RANK = {state.value: rank for rank, state in enumerate(ATTENTION)}
_KEY = re.compile(r"^[0-9a-z]{1,16}$")
_STATES = frozenset(state.value for state in StepState)


class NamedState(Protocol):
    """What the table's filter reads of a step (a ``StepOutline`` or a ``StepRecord``)."""

    @property
    def step_name(self) -> str: ...

    @property
    def state(self) -> StepState: ...


@dataclass(frozen=True)
class Explore:
    """The view a workflow page's URL asks for (see the module's docstring); bad values are dropped."""

    opened: tuple[str, ...] = ()
    node: str | None = None
    state: str | None = None
    name: str | None = None
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Explore:
        opened = [key for key in (args.get("open") or "").split(",") if _KEY.match(key)]
        node = args.get("node") or None
        state = args.get("state") or None
        page = args.get("page") or "1"
        return cls(
            tuple(dict.fromkeys(opened))[:MAX_OPEN],
            node if node is not None and _KEY.match(node) else None,
            state if state in _STATES else None,
            (args.get("q") or "").strip()[:MAX_NAME_FILTER] or None,
            int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,
        )

    def args(self, **changes: Any) -> dict[str, str]:
        """Query arguments of this view with ``changes`` (field names; None or () drops one)."""
        view = replace(self, **changes)
        values = {
            "open": ",".join(view.opened),
            "node": view.node,
            "state": view.state,
            "q": view.name,
            "page": str(view.page) if view.page > 1 else None,
        }
        return {key: value for key, value in values.items() if value}

    def query(self, **changes: Any) -> str:
        """A relative link to this view with ``changes``: ``?state=discarded&q=item``."""
        return "?" + urlencode(self.args(**changes))

    def filtered(self, **changes: Any) -> str:
        """A link to the table's first page with ``changes`` to its filter."""
        return self.query(page=1, **changes)

    def toggled(self, key: str) -> tuple[str, ...]:
        """The chains opened once ``key`` is opened, or closed if it was open."""
        return tuple(k for k in self.opened if k != key) if key in self.opened else (*self.opened, key)

    @property
    def filtering(self) -> bool:
        return bool(self.node or self.state or self.name)


@dataclass(frozen=True)
class StepsPage:
    """The step table's rows for an ``Explore``: which steps, and how many each filter lets through."""

    names: tuple[str, ...]  # this page's rows, in table order
    matched: int  # steps all the filters let through
    total: int  # steps of the workflow
    page: int
    pages: int
    first: int  # 1-based number of the first row shown (0 when none)
    counts: tuple[tuple[str, int], ...]  # per state, among the steps the node and name filters let through
    focus: tuple[str, ...] | None  # the node filter's steps, None without one
    focus_label: str | None  # what the node filter is called in the table's header


def focus_label(members: Sequence[str], kind: str | None) -> str:
    """``item:000 … item:299 (300 steps)``, ``step:000 → … → step:049 (50 steps)``, or the one step's name."""
    if len(members) == 1:
        return members[0]
    joint = " → … → " if kind == CHAIN else " … "
    return f"{members[0]}{joint}{members[-1]} ({len(members)} steps)"


def steps_page(steps: Sequence[NamedState], explore: Explore, folding: Folding) -> StepsPage:
    """The rows the table shows: filtered by node, state and name; a node's steps in ``ATTENTION`` order."""
    focus = folding.members(explore.node) if explore.node else None
    chosen: Iterable[NamedState] = steps
    if focus is not None:
        wanted = set(focus)
        chosen = sorted((s for s in steps if s.step_name in wanted), key=lambda s: _RANK.get(s.state, len(_RANK)))
    if explore.name:
        text = explore.name.casefold()
        chosen = [s for s in chosen if text in s.step_name.casefold()]
    chosen = list(chosen)
    counts: dict[str, int] = {}
    for step in chosen:
        counts[step.state] = counts.get(step.state, 0) + 1
    if explore.state:
        chosen = [s for s in chosen if s.state == explore.state]
    pages = max(1, -(-len(chosen) // PAGE_ROWS))
    page = min(explore.page, pages)
    start = (page - 1) * PAGE_ROWS
    shown = tuple(s.step_name for s in chosen[start : start + PAGE_ROWS])
    kind = folding.folds[explore.node].kind if explore.node and explore.node in folding.folds else None
    return StepsPage(
        shown,
        len(chosen),
        len(steps),
        page,
        pages,
        start + 1 if shown else 0,
        tuple((state.value, counts[state.value]) for state in ATTENTION if state.value in counts),
        focus,
        None if focus is None else focus_label(focus, kind),
    )
