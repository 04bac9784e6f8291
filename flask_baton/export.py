"""A workflow as text: Mermaid, Graphviz DOT or JSON (``baton.export``).

The renderers are pure functions of the stored records, so they are tested
without a database. Step names are user data: every name is escaped for the
format it lands in, so a quote, bracket or newline in a name cannot break
(or inject into) the diagram. Sub-workflows are drawn as nested boxes
(Mermaid subgraphs, DOT clusters) next to their join step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import subworkflow
from .errors import ArgumentError, WorkflowNotFoundError
from .records import StepRecord, WorkflowRecord
from .states import StepState

if TYPE_CHECKING:
    from .query import Query

Renderer = Callable[[WorkflowRecord, Sequence[StepRecord]], str]

#: Fill colour of a step in each state, shared by the Mermaid and DOT drawings.
STATE_COLOURS: dict[StepState, str] = {
    StepState.PENDING: "#e5e7eb",
    StepState.AVAILABLE: "#dbeafe",
    StepState.EXECUTING: "#93c5fd",
    StepState.SNOOZED: "#fef3c7",
    StepState.WAITING: "#e9d5ff",
    StepState.RETRYABLE: "#fde68a",
    StepState.COMPLETED: "#bbf7d0",
    StepState.DISCARDED: "#fca5a5",
    StepState.CANCELLED: "#d1d5db",
}


def mermaid(workflow: WorkflowRecord, steps: Sequence[StepRecord]) -> str:
    """A Mermaid flowchart: one node per step, labelled with its name and state."""
    ids = {step.step_name: f"s{index}" for index, step in enumerate(steps)}
    lines = ["flowchart LR", f"  %% {_mermaid_text(workflow.name)} ({workflow.id}): {workflow.state.value}"]
    lines += _nested(
        steps,
        node=lambda step: (
            f'{ids[step.step_name]}["{_mermaid_text(step.step_name)}<br/>{step.state.value}"]:::{step.state.value}'
        ),
        open_group=lambda name: [f'subgraph {ids[name]}_group["{_mermaid_text(name)}"]'],
        close_group="end",
    )
    lines += [f"  {ids[dep]} --> {ids[step.step_name]}" for step in steps for dep in step.deps]
    lines += [f"  classDef {state.value} fill:{colour},stroke:#374151" for state, colour in STATE_COLOURS.items()]
    return "\n".join(lines) + "\n"


def dot(workflow: WorkflowRecord, steps: Sequence[StepRecord]) -> str:
    """A Graphviz digraph: nodes are the quoted step names, filled by state."""
    lines = [
        f"digraph {_dot_text(workflow.name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    lines += _nested(
        steps,
        node=lambda step: (
            f"{_dot_text(step.step_name)} "
            f'[label="{_dot_escape(step.step_name)}\\n{step.state.value}", '
            f'fillcolor="{STATE_COLOURS[step.state]}"];'
        ),
        open_group=lambda name: [f"subgraph {_dot_text('cluster ' + name)} {{", f"  label={_dot_text(name)};"],
        close_group="}",
    )
    lines += [f"  {_dot_text(dep)} -> {_dot_text(step.step_name)};" for step in steps for dep in step.deps]
    return "\n".join([*lines, "}"]) + "\n"


def workflow_document(workflow: WorkflowRecord) -> dict[str, Any]:
    """A workflow's stored fields as JSON-ready values (``export`` and ``status --json`` share the keys)."""
    return {
        "id": workflow.id,
        "name": workflow.name,
        "state": workflow.state.value,
        "total_steps": workflow.total_steps,
        "settled_steps": workflow.settled_steps,
        "created_at": workflow.created_at,
        "finished_at": workflow.finished_at,
        "unique_key": workflow.unique_key,
    }


def step_document(step: StepRecord) -> dict[str, Any]:
    """A step's stored fields as JSON-ready values, its result left out (``has_result`` says if there is one)."""
    return {
        "name": step.step_name,
        "state": step.state.value,
        "deps": list(step.deps),
        "task": step.task,
        "attempt": step.attempt,
        "has_result": step.has_result,
        "error": step.error,
        "worker": step.worker,
        "created_at": step.created_at,
        "scheduled_at": step.scheduled_at,
        "started_at": step.started_at,
        "finished_at": step.finished_at,
    }


def as_json(workflow: WorkflowRecord, steps: Sequence[StepRecord]) -> str:
    """``{"workflow": {...}, "steps": [{name, state, deps, ...}], "subworkflows": {...}}``.

    Results are left out (they can be large); ``has_result`` says whether
    there is one, and ``baton.query`` reads them.
    """
    groups = subworkflow.groups(steps)
    holder = subworkflow.innermost_group(groups)
    document: dict[str, Any] = {
        "workflow": workflow_document(workflow),
        "steps": [{**step_document(step), "subworkflow": holder.get(step.step_name)} for step in steps],
        "subworkflows": groups,
    }
    return json.dumps(document, indent=2) + "\n"


RENDERERS: dict[str, Renderer] = {"mermaid": mermaid, "dot": dot, "json": as_json}


def renderer(format: str) -> Renderer:
    """The renderer of ``format``; a clear ``ValueError`` for any other name."""
    try:
        return RENDERERS[format]
    except (KeyError, TypeError):
        raise ArgumentError(
            f"unknown export format {format!r}; choose one of: {', '.join(sorted(RENDERERS))}"
        ) from None


def export_workflow(query: Query, workflow_id: str, format: str) -> str:
    """Load a workflow and render it as ``format``."""
    render = renderer(format)
    workflow = query.get_workflow(workflow_id)
    if workflow is None:
        raise WorkflowNotFoundError(f"no workflow with id {workflow_id!r}")
    return render(workflow, query.get_workflow_jobs(workflow_id))


def _nested(
    steps: Sequence[StepRecord],
    *,
    node: Callable[[StepRecord], str],
    open_group: Callable[[str], list[str]],
    close_group: str,
) -> list[str]:
    """Node lines, each sub-workflow's steps in a group right after its join step."""
    groups = subworkflow.groups(steps)
    holder = subworkflow.innermost_group(groups)
    inside: dict[str | None, list[StepRecord]] = {}
    for step in steps:
        inside.setdefault(holder.get(step.step_name), []).append(step)

    def emit(group: str | None, depth: int) -> Iterator[str]:
        pad = "  " * depth
        for step in inside.get(group, ()):
            yield pad + node(step)
            if step.step_name in groups:
                yield from (pad + line for line in open_group(step.step_name))
                yield from emit(step.step_name, depth + 1)
                yield pad + close_group

    return list(emit(None, 1))


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: anything unusual as an entity code (``#35;``)."""
    return "".join(ch if ch.isalnum() or ch in _MERMAID_PLAIN else f"#{ord(ch)};" for ch in text)


_MERMAID_PLAIN = frozenset(" _-.,:/+=@!?'")


def _dot_escape(text: str) -> str:
    """Text safe inside a DOT double-quoted string, one name to one string.

    A backslash becomes an entity (``&#92;``), not ``\\\\``: DOT reads ``\\"``
    as an escaped quote, so a name ending in a backslash would run on.
    ``&`` is escaped first, so the entities stay unambiguous.
    """
    escaped = text.replace("&", "&amp;").replace("\\", "&#92;").replace('"', '\\"')
    return escaped.replace("\r", "\\r").replace("\n", "\\n")


def _dot_text(text: str) -> str:
    """A DOT id: any text, quoted."""
    return f'"{_dot_escape(text)}"'
