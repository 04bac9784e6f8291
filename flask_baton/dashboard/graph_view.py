"""The drawn DAG of a workflow: laid-out nodes given a step's (or a group's) face.

``layout`` places nodes and edges from the structure alone; this module gives
each placed node what it shows (label, colour, detail, hover text, its bar when
it is a collapsed group of twins) from the steps' views, and fingerprints the
structure so a live update knows when the drawing must be redone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..records import StepRecord
from .formatting import Segment, fingerprint, segments, short
from .layout import Layout, PlacedEdge, PlacedNode, node_key
from .step_view import StepView

#: Characters of a step name that fit in a graph node.
NODE_LABEL_CHARS = 22


@dataclass(frozen=True)
class NodeView:
    """One node of the drawn DAG (a step, or a collapsed group of twins)."""

    key: str
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str
    state: str
    detail: str
    row_key: str
    group: bool
    bars: tuple[Segment, ...]


class _Face(NamedTuple):
    """What a node shows, apart from where it is drawn."""

    label: str
    title: str
    state: str
    detail: str
    row_key: str
    bars: tuple[Segment, ...]


def _group_state(states: Iterable[str]) -> str:
    """The colour of a group: its most telling member state (failures first)."""
    present = set(states)
    for state in ("discarded", "executing", "retryable", "snoozed", "available", "pending", "cancelled"):
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
    return _Face(short(step.name, NODE_LABEL_CHARS), title, step.state, detail, step.key, ())


def _group_face(names: Sequence[str], members: Sequence[StepView]) -> _Face:
    counts: dict[str, int] = {}
    for step in members:
        counts[step.state] = counts.get(step.state, 0) + 1
    settled = sum(counts.get(state, 0) for state in ("completed", "discarded", "cancelled"))
    first, last = names[0], names[-1]
    label = f"{short(first, 9)} … {short(last, 9)}"
    title = f"{len(names)} parallel steps, {first} … {last}: " + ", ".join(
        f"{count} {state}" for state, count in sorted(counts.items())
    )
    detail = f"{len(names)} steps · {settled} settled"
    return _Face(label, title, _group_state(counts), detail, node_key(first), tuple(segments(counts, len(members))))


def node_view(node: PlacedNode, steps: Mapping[str, StepView]) -> NodeView:
    members = [steps[name] for name in node.members if name in steps]
    face = _group_face(node.members, members) if node.is_group else _step_face(members[0])
    return NodeView(
        node.key,
        node.x,
        node.y,
        node.width,
        node.height,
        face.label,
        face.title,
        face.state,
        face.detail,
        face.row_key,
        node.is_group,
        face.bars,
    )


@dataclass(frozen=True)
class GraphView:
    width: float
    height: float
    nodes: tuple[NodeView, ...]
    edges: tuple[PlacedEdge, ...]
    shape: str  # fingerprint of the structure: a new one needs a full redraw


def graph_view(layout: Layout, steps: Mapping[str, StepView]) -> GraphView:
    nodes = tuple(node_view(node, steps) for node in layout.nodes)
    shape = fingerprint([(n.key, n.members) for n in layout.nodes], [(e.source, e.target) for e in layout.edges])
    return GraphView(layout.width, layout.height, nodes, layout.edges, shape)


def structure_of(steps: Iterable[StepRecord]) -> list[tuple[str, tuple[str, ...]]]:
    return [(step.step_name, step.deps) for step in steps]
