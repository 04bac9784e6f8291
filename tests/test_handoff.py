"""Direct hand-off: a completion claims a step it released for its own worker, which runs it next.

Huey's own signals count the messages: ``SIGNAL_ENQUEUED`` for each step
handed to Huey, ``SIGNAL_EXECUTING`` for each delivery a worker runs. A step
handed off has neither. Most tests give a delivery a budget no test reaches
(``BATON_HANDOFF_SECONDS``), so what is handed off does not depend on speed.
Killed and signalled consumers mid hand-off are in ``test_faults``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from huey.signals import SIGNAL_ENQUEUED, SIGNAL_EXECUTING
from sqlalchemy import select

from flask_baton import Workflow
from flask_baton.appstate import worker_id
from flask_baton.handoff import HandOff
from flask_baton.steps import Step
from flask_baton.store.tables import events as events_table

from . import ledger
from .steps import (
    add_one,
    always_fail,
    constant,
    fail_until,
    fake_llm,
    fan_out_dynamically,
    hanging_llm,
    slow,
    snooze_once,
    wait_for_file,
)
from .support import DATABASE_FEED, EventLog, ThreadConsumer, step_states, wait_finished, wait_for

#: A delivery's budget no test reaches: every step that may be handed off is.
UNBOUNDED = {"BATON_HANDOFF_SECONDS": 600}


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return UNBOUNDED


class HueyMessages:
    """The steps each of the app's queues was handed (enqueued) and delivered (executing), in order."""

    def __init__(self, app: Flask, *queues: str) -> None:
        self._hueys = {queue: app.extensions["baton"].queues.huey(queue) for queue in queues or ("default",)}
        self._lock = threading.Lock()
        self.enqueued: dict[str, list[str]] = {}
        self.delivered: dict[str, list[str]] = {}

    def _recorder(self, kind: dict[str, list[str]], queue: str) -> Any:
        def record(_signal: str, task: Any, *_: Any) -> None:
            if task.args:  # a step (the periodic sweep has no args)
                with self._lock:
                    kind.setdefault(queue, []).append(task.args[0])

        return record

    def __enter__(self) -> HueyMessages:
        self._receivers = []
        for queue, huey in self._hueys.items():
            for signal, kind in ((SIGNAL_ENQUEUED, self.enqueued), (SIGNAL_EXECUTING, self.delivered)):
                receiver = self._recorder(kind, queue)
                huey.signal(signal)(receiver)
                self._receivers.append((huey, signal, receiver))
        return self

    def __exit__(self, *exc: object) -> None:
        for huey, signal, receiver in self._receivers:
            huey.disconnect_signal(receiver, signal)


def chain(name: str, *calls: Any) -> Workflow:
    """``s0 -> s1 -> ...``, one step per call."""
    wf = Workflow(name)
    for index, call in enumerate(calls):
        wf.add(f"s{index}", call, deps=[f"s{index - 1}"] if index else [])
    return wf


def ids(app: Flask, workflow_id: str) -> dict[str, str]:
    """Each step's id, by name."""
    return {s.step_name: s.id for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


def results(app: Flask, workflow_id: str) -> dict[str, Any]:
    return {s.step_name: s.result for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id)}


# -- what is handed off ------------------------------------------------------------


def test_a_chain_runs_in_one_huey_delivery(app: Flask, ledger_path: Path) -> None:
    wf = chain("handoff:chain", *(add_one.new() for _ in range(8)))
    with HueyMessages(app) as messages, EventLog() as log, ThreadConsumer(app, workers=2):
        wf.insert()
        log.wait_caught_up(app, wf.workflow_id)

    root = ids(app, wf.workflow_id)["s0"]
    assert messages.enqueued == {"default": [root]}  # the insert's; no completion enqueued anything
    assert messages.delivered == {"default": [root]}
    assert results(app, wf.workflow_id) == {f"s{i}": i + 1 for i in range(8)}
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {f"s{i}": 1 for i in range(8)}


def test_a_handed_off_step_announces_itself_as_a_delivered_one_does_in_chain_order(app: Flask) -> None:
    wf = chain("handoff:events", *(add_one.new() for _ in range(4)))
    with EventLog() as log, ThreadConsumer(app, workers=2):
        wf.insert()
        log.wait_caught_up(app, wf.workflow_id)

    heard = log.steps(wf.workflow_id)
    assert [(name, p["step_name"]) for name, p in heard] == [
        (f"step.{state}", f"s{i}") for i in range(4) for state in ("executing", "completed")
    ]
    executing = [p for name, p in heard if name == "step.executing"]
    assert [(p["attempt"], p["worker"]) for p in executing] == [(1, worker_id())] * 4
    # Released and claimed by the same statement: it waited in no queue.
    assert [p["queue_wait"] for p in executing[1:]] == [0.0] * 3
    assert len(log.finished(wf.workflow_id)) == 1


@pytest.mark.parametrize("app_overrides", [{**UNBOUNDED, **DATABASE_FEED}])
def test_the_database_feed_has_a_handed_off_chain_s_events_in_order(app: Flask) -> None:
    wf = chain("handoff:feed", *(add_one.new() for _ in range(3)))
    with HueyMessages(app) as messages, ThreadConsumer(app, workers=2):
        wf.insert()
        wait_finished(app, wf.workflow_id)

    with app.extensions["baton"].engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.name, events_table.c.payload)
            .where(events_table.c.workflow_id == wf.workflow_id)
            .order_by(events_table.c.id)
        ).all()
    feed = [(name, json.loads(payload)) for name, payload in rows]
    assert [(p["step_name"], p["state"]) for name, p in feed if name == "workflow_step_updated"] == [
        (f"s{i}", state) for i in range(3) for state in ("executing", "completed")
    ]
    assert [name for name, _ in feed][-1] == "workflow_finished"
    assert len(messages.delivered["default"]) == 1


def test_a_step_on_another_queue_goes_through_huey_both_ways(app: Flask) -> None:
    wf = chain("handoff:queues", constant.new(), fake_llm.new(), constant.new())
    with (
        HueyMessages(app, "default", "llm") as messages,
        ThreadConsumer(app, workers=2),
        ThreadConsumer(app, workers=2, queue="llm"),
    ):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"

    step = ids(app, wf.workflow_id)
    assert messages.delivered == {"default": [step["s0"], step["s2"]], "llm": [step["s1"]]}


def test_only_steps_no_other_step_of_their_queue_outranks_are_handed_off() -> None:
    def step(name: str, queue: str = "default", priority: int | None = None) -> Step:
        return Step(lambda job: None, name=name, queue=queue, priority=priority)

    steps = {s.name: s for s in (step("a"), step("b", priority=0), step("c", priority=5), step("d", "other", 9))}
    assert HandOff(steps, "default", 600, lambda: False).take() == {"c"}
    assert HandOff(steps, "other", 600, lambda: False).take() == {"d"}
    assert HandOff({"a": steps["a"], "b": steps["b"]}, "default", 600, lambda: False).take() == {"a", "b"}


# -- the bound -------------------------------------------------------------------


def test_a_delivery_hands_off_nothing_once_its_budget_is_spent_or_its_consumer_stops() -> None:
    steps = {"a": Step(lambda job: None, name="a")}
    assert HandOff(steps, "default", 0, lambda: False).take() == frozenset()
    assert HandOff(steps, "default", 600, lambda: True).take() == frozenset()
    assert HandOff(steps, "default", 600, lambda: False).take() == {"a"}


@pytest.mark.parametrize("app_overrides", [{"BATON_HANDOFF_SECONDS": 0}])
def test_with_no_budget_every_step_is_a_huey_message(app: Flask) -> None:
    wf = chain("handoff:off", *(add_one.new() for _ in range(4)))
    with HueyMessages(app) as messages, ThreadConsumer(app, workers=2):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"

    step = ids(app, wf.workflow_id)
    assert messages.delivered == {"default": [step[f"s{i}"] for i in range(4)]}


@pytest.mark.parametrize("app_overrides", [{"BATON_HANDOFF_SECONDS": 0.25}])
def test_a_delivery_hands_off_only_within_its_budget(app: Flask) -> None:
    # Each step takes at least 0.1 s, so a delivery's budget of 0.25 s is
    # spent after its third step at the latest: 9 steps need 3 deliveries or more.
    wf = chain("handoff:budget", *(slow.new(seconds=0.1) for _ in range(9)))
    with HueyMessages(app) as messages, ThreadConsumer(app, workers=2):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"

    assert len(messages.delivered["default"]) >= 3


def test_a_consumer_asked_to_stop_hands_off_no_more(app: Flask, tmp_path: Path) -> None:
    go = tmp_path / "go"
    wf = chain("handoff:stop", wait_for_file.new(path=str(go), value=1), add_one.new())
    with HueyMessages(app) as messages:
        with ThreadConsumer(app, workers=2) as running:
            wf.insert()
            wait_for(lambda: step_states(app, wf.workflow_id)["s0"] == "executing", "s0 to run")
            running.consumer.stop_flag.set()  # what stop() does first; s0 is still running
            go.touch()
        step = ids(app, wf.workflow_id)
        assert messages.enqueued["default"] == [step["s0"], step["s1"]]  # s1 went back to Huey
        with ThreadConsumer(app, workers=2):
            assert wait_finished(app, wf.workflow_id).state == "completed"


# -- outcomes of handed-off steps -------------------------------------------------


def test_a_handed_off_step_that_fails_is_retried_through_huey_and_hands_off_after_it(
    app: Flask, ledger_path: Path
) -> None:
    wf = chain("handoff:retry", constant.new(), fail_until.new(failures=1), constant.new())
    with HueyMessages(app) as messages, ThreadConsumer(app, workers=2):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"

    step = ids(app, wf.workflow_id)
    assert messages.delivered == {"default": [step["s0"], step["s1"]]}  # s1's retry; s2 handed off
    assert results(app, wf.workflow_id) == {"s0": 1, "s1": {"succeeded_on": 2}, "s2": 1}
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {"s0": 1, "s1": 2, "s2": 1}


def test_a_handed_off_step_that_snoozes_runs_again_later_without_using_an_attempt(app: Flask) -> None:
    wf = chain("handoff:snooze", constant.new(), snooze_once.new(), constant.new())
    with ThreadConsumer(app, workers=2):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert results(app, wf.workflow_id)["s1"] == {"attempt": 1}


def test_a_handed_off_step_that_fails_for_good_cancels_what_follows(app: Flask) -> None:
    wf = chain("handoff:discard", add_one.new(), always_fail.new(), add_one.new())
    with ThreadConsumer(app, workers=2):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "failed"
    assert step_states(app, wf.workflow_id) == {"s0": "completed", "s1": "discarded", "s2": "cancelled"}


def test_a_handed_off_step_is_held_to_its_timeout(app: Flask) -> None:
    wf = chain("handoff:timeout", fake_llm.new(), hanging_llm.new())
    with HueyMessages(app, "llm") as messages, ThreadConsumer(app, workers=2, queue="llm"):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "failed"

    hanging = {s.step_name: s for s in app.extensions["baton"].query.get_workflow_jobs(wf.workflow_id)}["s1"]
    assert hanging.state.value == "discarded" and "StepTimeout" in (hanging.error or "")
    assert messages.delivered == {"llm": [ids(app, wf.workflow_id)["s0"]]}


def test_steps_a_step_adds_are_handed_off_as_its_dependents_are(app: Flask, ledger_path: Path) -> None:
    wf = Workflow("handoff:dynamic").add("spread", fan_out_dynamically.new(items=[1, 2, 3]))
    with HueyMessages(app) as messages, ThreadConsumer(app, workers=2):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"

    assert results(app, wf.workflow_id)["total"] == 6
    steps = ids(app, wf.workflow_id)
    # spread's completion hands off one of the steps it added, an item's the total.
    assert len(messages.delivered["default"]) < len(steps)
    assert ledger.runs_per_step(ledger_path, wf.workflow_id) == {name: 1 for name in steps}


def test_a_fan_in_is_handed_off_to_the_completion_that_releases_it_and_runs_once(app: Flask, ledger_path: Path) -> None:
    wf = Workflow("handoff:fan-in").add("root", add_one.new())
    for index in range(20):
        wf.add(f"p{index}", add_one.new(), deps=["root"])
    wf.add("sum", fail_until.new(failures=0), deps=[f"p{index}" for index in range(20)])
    with HueyMessages(app) as messages, ThreadConsumer(app, workers=4):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"

    assert ledger.runs_per_step(ledger_path, wf.workflow_id)["sum"] == 1
    # Handed off, unless the last two completions raced (PostgreSQL): then
    # neither saw the other done, and the fan-in went to Huey, once.
    assert messages.delivered["default"].count(ids(app, wf.workflow_id)["sum"]) <= 1
    assert len(messages.delivered["default"]) < 22
