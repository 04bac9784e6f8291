"""A 10,000-step workflow's page (``python -m bench.dashboard``, section 3): rendered, filtered, kept live.

The workflow: a split, 40 chains of 200 steps, a merge, then a 1,998-wide
fan-out (10,000 steps, folded into 44 nodes). It is inserted with
``Workflow.insert`` and put mid-run by one ``UPDATE`` per kind of step (no
consumer: the page reads what is stored, however it got there): the split
and the first 150 steps of each chain completed, the 151st executing, the
rest pending. Then, through the Flask test client (the whole server side of
a page load: reads, folding, layout, timeline, templates), median of
``--repeats``:

- ``GET /baton/workflows/<id>``, the page as first opened;
- the same filtered by state and name, and with one chain opened;
- a live update: the page's websocket feed (``WorkflowFeed.update``, what
  each transition costs the server) after one step completes and the next
  starts, median over ``--repeats`` transitions.

Target for each: <= 300 ms. Section 2's transition -> DOM latency is also
measured on this workflow's page (``big_chain``), so "stays live" is seen in
a browser too.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from flask import Flask
from sqlalchemy import and_

from flask_baton import Workflow
from flask_baton.dashboard.explore import Explore
from flask_baton.dashboard.folding import fold
from flask_baton.dashboard.live import WorkflowFeed
from flask_baton.events import STEP_UPDATED, Event
from flask_baton.states import StepState
from flask_baton.store.tables import nodes

PAGE_TARGET_MS = 300.0
LANES, LANE_LENGTH, DONE_PER_LANE = 40, 200, 150


def add_big(wf: Workflow, step: Any, total: int, after: str | None = None) -> None:
    """Add ``total`` steps to ``wf``: a split (after ``after``), ``LANES`` chains, a merge, a fan-out."""
    wf.add("split", step.new(), deps=[after] if after else [])
    for lane in range(LANES):
        previous = "split"
        for i in range(LANE_LENGTH):
            name = lane_step(lane, i)
            wf.add(name, step.new(), deps=[previous])
            previous = name
    wf.add("merge", step.new(), deps=[lane_step(lane, LANE_LENGTH - 1) for lane in range(LANES)])
    for i in range(total - LANES * LANE_LENGTH - 2):
        wf.add(f"item:{i:04d}", step.new(), deps=["merge"])


def lane_step(lane: int, index: int) -> str:
    return f"lane:{lane:02d}:{index:03d}"


def _mid_run(app: Flask, workflow_id: str) -> None:
    """Mark the split and each chain's first ``DONE_PER_LANE`` steps completed, the next executing."""
    now = time.time()
    done = ["split"] + [lane_step(lane, i) for lane in range(LANES) for i in range(DONE_PER_LANE)]
    running = [lane_step(lane, DONE_PER_LANE) for lane in range(LANES)]
    with app.extensions["baton"].engine.begin() as conn:
        for names, state in ((done, StepState.COMPLETED), (running, StepState.EXECUTING)):
            for start in range(0, len(names), 500):
                conn.execute(
                    nodes.update()
                    .where(and_(nodes.c.workflow_id == workflow_id, nodes.c.step_name.in_(names[start : start + 500])))
                    .values(
                        state=state,
                        attempt=1,
                        scheduled_at=now - 600,
                        started_at=now - 300,
                        finished_at=now - 60 if state == StepState.COMPLETED else None,
                        result="1" if state == StepState.COMPLETED else None,
                    )
                )


def _step_done(app: Flask, workflow_id: str, lane: int, index: int) -> Event:
    """Complete one chain's executing step and start the next, as a consumer would; the event it sends."""
    now = time.time()
    with app.extensions["baton"].engine.begin() as conn:
        for name, values in (
            (lane_step(lane, index), {"state": StepState.COMPLETED, "finished_at": now, "result": "1"}),
            (lane_step(lane, index + 1), {"state": StepState.EXECUTING, "attempt": 1, "started_at": now}),
        ):
            conn.execute(
                nodes.update()
                .where(and_(nodes.c.workflow_id == workflow_id, nodes.c.step_name == name))
                .values(**values)
            )
    return Event(STEP_UPDATED, {"workflow_id": workflow_id, "step_name": lane_step(lane, index), "state": "completed"})


def bench_big_page(
    app: Flask, step: Any, total: int, repeats: int, time_get: Any, log: Any
) -> list[tuple[str, float, list[float]]]:
    """(what, median ms, every ms) for the page, its filters, and a live update, at ``total`` steps."""
    with app.app_context():
        wf = Workflow(f"big:{total}")
        add_big(wf, step, total)
        started = time.perf_counter()
        wf.insert()
        log(f"  inserted a {total:,}-step workflow in {time.perf_counter() - started:.1f}s")
    _mid_run(app, wf.workflow_id)
    page = f"/baton/workflows/{wf.workflow_id}"
    state = app.extensions["baton"]
    structure = [(s.step_name, s.deps) for s in state.query.get_workflow_outline(wf.workflow_id)]
    chain = next(node.key for node in fold(structure).nodes if node.kind == "chain")
    rows = []
    for label, url in (
        (f"page, {total:,} steps", page),
        (f"page, {total:,} steps, ?state=executing&q=lane:07", f"{page}?state=executing&q=lane:07"),
        (f"page, {total:,} steps, a 200-step chain opened", f"{page}?open={chain}&node={chain}"),
    ):
        median, times = time_get(app, url, repeats)
        rows.append((label, median, times))
        log(f"  {label}: median {median:.1f} ms")
    updates = []
    with app.test_request_context(page):
        feed = WorkflowFeed(state, wf.workflow_id, None, Explore())
        feed.start()
        for index in range(repeats):
            event = _step_done(app, wf.workflow_id, index % LANES, DONE_PER_LANE + index // LANES)
            started = time.perf_counter()
            messages = feed.update([event])
            updates.append((time.perf_counter() - started) * 1000)
            assert messages, "a transition changed nothing on the page"
    rows.append(("live update of that page, one transition (server side)", statistics.median(updates), updates))
    log(f"  live update: median {statistics.median(updates):.1f} ms")
    return rows
