"""``baton.export`` / ``flask baton export``: a workflow as Mermaid, DOT or JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from flask_baton import StepState, Workflow, WorkflowNotFoundError, WorkflowState
from flask_baton.export import as_json, dot, mermaid, renderer
from flask_baton.query import StepRecord, WorkflowRecord
from flask_baton.subworkflow import JOIN_TASK

from .steps import always_fail, baton, constant
from .support import ThreadConsumer, wait_finished

WORKFLOW = WorkflowRecord("wf1", 'brief "ai"', WorkflowState.RUNNING, 3, 2, 100.0, None)


def step(name: str, state: StepState, deps: tuple[str, ...] = (), **fields: Any) -> StepRecord:
    """A stored step as ``get_workflow_jobs`` returns it."""
    values: dict[str, Any] = {
        "id": f"id-{name}",
        "workflow_id": "wf1",
        "step_name": name,
        "task": "constant",
        "state": state,
        "attempt": 1,
        "deps": deps,
        "result": None,
        "has_result": False,
        "error": None,
        "worker": None,
        "created_at": 100.0,
        "scheduled_at": None,
        "started_at": None,
        "finished_at": None,
    }
    return StepRecord(**{**values, **fields})


STEPS = [
    step("fetch", StepState.COMPLETED),
    step('say "hi"]\n', StepState.EXECUTING, ("fetch",)),
    step("back\\", StepState.PENDING, ("fetch", 'say "hi"]\n')),
]


def test_mermaid_labels_each_step_with_its_state_and_escapes_names() -> None:
    text = mermaid(WORKFLOW, STEPS)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  s0["fetch<br/>completed"]:::completed' in lines
    assert '  s1["say #34;hi#34;#93;#10;<br/>executing"]:::executing' in lines
    assert '  s2["back#92;<br/>pending"]:::pending' in lines
    assert ["  s0 --> s1", "  s0 --> s2", "  s1 --> s2"] == [line for line in lines if "-->" in line]
    assert "  classDef discarded fill:#fca5a5,stroke:#374151" in lines
    assert '"' not in lines[1]  # the workflow's name is escaped in the comment too


def test_dot_quotes_and_escapes_names_so_none_can_break_the_graph() -> None:
    text = dot(WORKFLOW, STEPS)
    assert text.startswith('digraph "brief \\"ai\\"" {\n')
    assert '  "fetch" [label="fetch\\ncompleted", fillcolor="#bbf7d0"];' in text
    assert '  "say \\"hi\\"]\\n" [label="say \\"hi\\"]\\n\\nexecuting", fillcolor="#93c5fd"];' in text
    # A trailing backslash would escape the closing quote: it becomes an entity.
    assert '  "back&#92;" [label="back&#92;\\npending", fillcolor="#e5e7eb"];' in text
    assert '  "say \\"hi\\"]\\n" -> "back&#92;";' in text
    assert text.endswith("}\n")


def test_json_lists_every_step_with_its_state_and_deps() -> None:
    document = json.loads(as_json(WORKFLOW, STEPS))
    assert document["workflow"] == {
        "id": "wf1",
        "name": 'brief "ai"',
        "state": "running",
        "total_steps": 3,
        "settled_steps": 1,
        "created_at": 100.0,
        "finished_at": None,
        "unique_key": None,
    }
    assert [(s["name"], s["state"], s["deps"]) for s in document["steps"]] == [
        ("fetch", "completed", []),
        ('say "hi"]\n', "executing", ["fetch"]),
        ("back\\", "pending", ["fetch", 'say "hi"]\n']),
    ]
    assert document["subworkflows"] == {}


def test_sub_workflows_are_drawn_as_nested_groups_after_their_join() -> None:
    steps = [
        step("start", StepState.COMPLETED),
        step("sub/a", StepState.COMPLETED, ("start",)),
        step("sub/in/x", StepState.EXECUTING, ("sub/a",)),
        step(
            "sub/in",
            StepState.PENDING,
            ("sub/in/x",),
            task=JOIN_TASK,
            args={"subworkflow": "sub/in", "steps": ["sub/in/x"]},
        ),
        step(
            "sub",
            StepState.PENDING,
            ("sub/a", "sub/in"),
            task=JOIN_TASK,
            args={"subworkflow": "sub", "steps": ["sub/a", "sub/in/x", "sub/in"]},
        ),
    ]
    nodes = [line for line in mermaid(WORKFLOW, steps).splitlines() if "-->" not in line and "classDef" not in line]
    assert nodes[2:] == [
        '  s0["start<br/>completed"]:::completed',
        '  s4["sub<br/>pending"]:::pending',
        '  subgraph s4_group["sub"]',
        '    s1["sub/a<br/>completed"]:::completed',
        '    s3["sub/in<br/>pending"]:::pending',
        '    subgraph s3_group["sub/in"]',
        '      s2["sub/in/x<br/>executing"]:::executing',
        "    end",
        "  end",
    ]
    assert 'subgraph "cluster sub/in" {' in dot(WORKFLOW, steps)
    document = json.loads(as_json(WORKFLOW, steps))
    assert [s["subworkflow"] for s in document["steps"]] == [None, "sub", "sub/in", "sub", None]


def test_an_unknown_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown export format 'svg'; choose one of: dot, json, mermaid"):
        renderer("svg")


def test_export_renders_a_stored_workflow(app: Flask, consumer: ThreadConsumer) -> None:
    wf = (
        Workflow("export")
        .add("ok", constant.new(value=1))
        .add("boom", always_fail.new(), deps=["ok"])
        .add("after", constant.new(), deps=["boom"])
    )
    wf.insert()
    wait_finished(app, wf.workflow_id)
    assert '["boom<br/>discarded"]:::discarded' in baton.export(wf.workflow_id)
    assert '"after" [label="after\\ncancelled"' in baton.export(wf.workflow_id, format="dot")
    document = json.loads(baton.export(wf.workflow_id, format="json"))
    assert document["workflow"]["state"] == "failed"
    assert {s["name"]: s["state"] for s in document["steps"]} == {
        "ok": "completed",
        "boom": "discarded",
        "after": "cancelled",
    }
    with pytest.raises(ValueError, match="unknown export format"):
        baton.export(wf.workflow_id, format="png")
    with pytest.raises(WorkflowNotFoundError, match="no workflow with id 'nope'"):
        baton.export("nope")


def test_cli_export_prints_the_chosen_format(app: Flask) -> None:
    wf = Workflow("cli-export").add("a", constant.new()).add("b", constant.new(), deps=["a"])
    wf.insert()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["baton", "export", wf.workflow_id, "--format", "mermaid"])
    assert result.exit_code == 0, result.output
    assert result.output == baton.export(wf.workflow_id)
    assert "s0 --> s1" in result.output
    as_dot = runner.invoke(args=["baton", "export", wf.workflow_id, "-f", "dot"])
    assert as_dot.output.startswith('digraph "cli-export" {')
    bad = runner.invoke(args=["baton", "export", wf.workflow_id, "--format", "svg"])
    assert bad.exit_code != 0 and "'svg' is not one of 'dot', 'json', 'mermaid'" in bad.output
    missing = runner.invoke(args=["baton", "export", "nope"])
    assert missing.exit_code != 0 and "no workflow with id 'nope'" in missing.output
