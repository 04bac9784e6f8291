"""Wide fan-in and long chains under a real 4-thread consumer."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flask_baton import Workflow

from . import ledger
from .steps import add_one, constant, sum_inputs
from .support import ThreadConsumer, wait_finished

WIDTH = 200
LENGTH = 50


def test_fan_in_runs_once_under_racing_consumers_and_early_deliveries(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    wf = Workflow(name="fan").add("root", constant.new(value=0))
    for index in range(WIDTH):
        wf.add(f"leaf:{index}", constant.new(value=index), deps=["root"])
    wf.add("total", sum_inputs.new(), deps=[f"leaf:{index}" for index in range(WIDTH)])
    jobs = wf.insert()
    # Extra deliveries of the fan-in while its inputs are still running: the
    # self-gate must turn every one away, and exactly one claim may win later.
    total_id = next(job.id for job in jobs if job.step_name == "total")
    queues = app.extensions["baton"].queues
    for _ in range(10):
        queues.enqueue(total_id, "default", None)

    assert wait_finished(app, wf.workflow_id, timeout=30).state == "completed"

    runs = ledger.runs_per_step(ledger_path, wf.workflow_id)
    assert runs["total"] == 1
    assert len(runs) == WIDTH + 2 and set(runs.values()) == {1}
    by_name = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert by_name["total"].result == sum(range(WIDTH))
    assert by_name["total"].attempt == 1
    # It ran after every leaf: the ledger's lines are appended in the order
    # the runs happened. (Not by timestamps: each transition takes its time
    # before it waits for its row, so the claim of the fan-in by the worker
    # whose leaf finished last can carry a time a millisecond before another
    # leaf's finish, which committed first: seen in CI.)
    order = [entry["step"] for entry in ledger.entries(ledger_path) if entry["workflow_id"] == wf.workflow_id]
    assert order[-1] == "total" and order.index("total") == WIDTH + 1


def test_chain_runs_link_by_link_in_order(app: Flask, consumer: ThreadConsumer, ledger_path: Path) -> None:
    wf = Workflow(name="chain").add("link:0", add_one.new())
    for index in range(1, LENGTH):
        wf.add(f"link:{index}", add_one.new(), deps=[f"link:{index - 1}"])
    wf.insert()

    assert wait_finished(app, wf.workflow_id, timeout=30).state == "completed"

    names = [f"link:{index}" for index in range(LENGTH)]
    assert [e["step"] for e in ledger.entries(ledger_path)] == names
    by_name = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}
    assert [by_name[name].result for name in names] == list(range(1, LENGTH + 1))
    for before, after in zip(names, names[1:]):
        assert by_name[before].finished_at <= by_name[after].started_at, (before, after)
