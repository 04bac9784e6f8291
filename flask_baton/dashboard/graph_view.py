"""The drawn DAG of a workflow: laid-out nodes given a step's (or a fold's) face.

``layout`` places nodes and edges from the structure alone; this module gives
each placed node what it shows (label, colour, detail, hover text, its bar when
it is a fold of twins or of a chain) from the steps' views, where a click on
it leads (the step table shows its steps; a chain opens, or folds again), and
fingerprints the structure so a live update knows when the drawing must be
redone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..states import StepState
from .explore import Explore, focus_label
from .folding import CHAIN, STEP
from .formatting import Segment, fingerprint, segments, short
from .layout import Frame, Layout, PlacedEdge, PlacedNode
from .step_view import StepView


class Structured(Protocol):
    """A step as the layout sees it (a ``StepOutline`` or a ``StepRecord``)."""

    @property
    def step_name(self) -> str: ...
    @property
    def deps(self) -> tuple[str, ...]: ...


class Stateful(Protocol):
    """What a fold's face reads of its steps."""

    @property
    def state(self) -> StepState: ...


#: Characters of a step name that fit in a graph node.
NODE_LABEL_CHARS = 22


@dataclass(frozen=True)
class NodeView:
    """One node of the drawn DAG (a step, or a fold of twins or of a chain)."""

    key: str
    kind: str
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str
    state: str
    detail: str
    href: str
    bars: tuple[Segment, ...]
    selected: bool  # the table shows its steps

    @property
    def group(self) -> bool:
        return self.kind != STEP


class _Face(NamedTuple):
    """What a node shows, apart from where it is drawn and where it leads."""

    label: str
    title: str
    state: str
    detail: str
    bars: tuple[Segment, ...]


def _group_state(states: Iterable[str]) -> str:
    """The colour of a group: its most telling member state (failures first)."""
    present = set(states)
    for state in ("discarded", "executing", "waiting", "retryable", "snoozed", "available", "pending", "cancelled"):
        if state in present:
            return state
    return "completed"


def _step_face(step: StepView) -> _Face:
    detail = step.state
    if step.attempt > 1:
        detail += f" · try {step.attempt_text}"
    elif step.duration != "—" and step.running_since is None:
        detail += f" · {step.duration}"
    title = f"{step.name} ({step.task}): {step.state}, attempt {step.attempt_text}"
    if step.error_summary:
        title += f"\n{step.error_summary}"
    return _Face(short(step.name, NODE_LABEL_CHARS), title, step.state, detail, ())


def _fold_face(node: PlacedNode, members: Sequence[Stateful]) -> _Face:
    counts: dict[str, int] = {}
    for step in members:
        counts[step.state] = counts.get(step.state, 0) + 1
    settled = sum(counts.get(state, 0) for state in ("completed", "discarded", "cancelled"))
    first, last = node.members[0], node.members[-1]
    chain = node.kind == CHAIN
    label = f"{short(first, 9)} {'→' if chain else '…'} {short(last, 9)}"
    what = "in a chain, click to open it" if chain else "in parallel"
    title = f"{focus_label(node.members, node.kind)}, {what}: " + ", ".join(
        f"{count} {state}" for state, count in sorted(counts.items())
    )
    detail = f"{len(node.members)} steps · {settled} settled"
    return _Face(label, title, _group_state(counts), detail, tuple(segments(counts, len(members))))


def node_view(
    node: PlacedNode, steps: Mapping[str, StepView], states: Mapping[str, Stateful], explore: Explore
) -> NodeView:
    """A node's face; a click shows its steps in the table, and opens a chain."""
    if node.folded:
        face = _fold_face(node, [states[name] for name in node.members])
    else:
        face = _step_face(steps[node.name])
    opened = explore.toggled(node.key) if node.kind == CHAIN else explore.opened
    href = explore.filtered(node=node.key, opened=opened)
    return NodeView(
        node.key,
        node.kind,
        node.x,
        node.y,
        node.width,
        node.height,
        *face[:4],
        href,
        face.bars,
        node.key == explore.node,
    )


@dataclass(frozen=True)
class FrameView:
    """An opened chain's frame, with the link that folds it again."""

    key: str
    x: float
    y: float
    width: float
    height: float
    label: str
    href: str


@dataclass(frozen=True)
class GraphView:
    width: float
    height: float
    nodes: tuple[NodeView, ...]
    edges: tuple[PlacedEdge, ...]
    frames: tuple[FrameView, ...]
    shape: str  # fingerprint of the structure: a new one needs a full redraw


def graph_view(
    layout: Layout, steps: Mapping[str, StepView], states: Mapping[str, Stateful], explore: Explore
) -> GraphView:
    """The drawing: ``steps`` are the views of the steps drawn alone, ``states`` every step's state."""
    nodes = tuple(node_view(node, steps, states, explore) for node in layout.nodes)
    frames = tuple(_frame_view(frame, explore) for frame in layout.frames)
    shape = fingerprint([(n.key, n.members) for n in layout.nodes], [(e.source, e.target) for e in layout.edges])
    return GraphView(layout.width, layout.height, nodes, layout.edges, frames, shape)


def _frame_view(frame: Frame, explore: Explore) -> FrameView:
    label = f"{focus_label(frame.members, CHAIN)} · fold"
    href = explore.query(opened=explore.toggled(frame.key))
    return FrameView(frame.key, frame.x, frame.y, frame.width, frame.height, label, href)


def structure_of(steps: Iterable[Structured]) -> list[tuple[str, tuple[str, ...]]]:
    return [(step.step_name, step.deps) for step in steps]
