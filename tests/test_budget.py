"""Spend caps: a workflow's ``budget_usd`` and the app's ``BATON_BUDGET_USD_PER_DAY``, with real consumers.

Every step here is ``spend``: it records one call of model ``dollar``,
priced at $1 per output token, so a step's cost is its ``dollars`` arg.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_baton import BudgetError, ConfigError, Workflow, WorkflowNotFoundError, budget_control, transitions
from flask_baton.budget import Exceeded, day_start, dollars, reached
from flask_baton.dispatch import commit
from flask_baton.headline import headline

from . import ledger
from .apps import open_app
from .conftest import sqlite_settings
from .steps import baton, spend, wait_for_file
from .support import EventLog, ThreadConsumer, step_states, wait_finished, wait_for

DOLLAR = {"dollar": {"input": 0.0, "output": 1_000_000.0}}


@pytest.fixture
def app_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Prices every test needs; ``@pytest.mark.daily_cap(usd)`` sets ``BATON_BUDGET_USD_PER_DAY`` too."""
    marker = request.node.get_closest_marker("daily_cap")
    daily = {} if marker is None else {"BATON_BUDGET_USD_PER_DAY": marker.args[0]}
    return {"BATON_PRICING": DOLLAR, **daily}


def chain(name: str, *dollars_each: int, **options: Any) -> Workflow:
    """A chain ``s0 -> s1 -> ...`` of ``spend`` steps, each spending its dollars."""
    workflow = Workflow(name, **options)
    for index, amount in enumerate(dollars_each):
        workflow.add(f"s{index}", spend.new(dollars=amount), deps=[f"s{index - 1}"] if index else [])
    return workflow


def test_a_workflow_that_reaches_its_budget_cancels_its_steps_not_yet_started(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    workflow = chain("capped", 1, 1, 1, 1, budget_usd=2)
    with EventLog() as events:
        workflow.insert()
        # The row is cancelled as s1 records its cost; the end is announced once s1 settles.
        wait_for(lambda: events.finished(workflow.workflow_id), "the workflow's end")
        record = events.wait_caught_up(app, workflow.workflow_id)
        finished = events.finished(workflow.workflow_id)
    assert record.state == "cancelled"
    assert step_states(app, workflow.workflow_id) == {
        "s0": "completed",
        "s1": "completed",
        "s2": "cancelled",
        "s3": "cancelled",
    }
    assert ledger.runs_per_step(ledger_path, workflow.workflow_id) == {"s0": 1, "s1": 1}
    s2 = baton.query.get_workflow_job(workflow.workflow_id, "s2")
    assert s2 is not None and s2.error == "budget exceeded ($2.00 of $2.00)"
    assert s2.cancelled_by == "budget"
    assert len(finished) == 1 and finished[0]["failed_steps"] == ["s2", "s3"]  # as after a user's cancel
    facts = baton.query.outcome_facts([workflow.workflow_id])[workflow.workflow_id]
    record = baton.query.get_workflow(workflow.workflow_id)  # read again: s1 may have run on past the cancel
    assert record is not None and str(headline(record, facts)) == (
        "Cancelled: budget exceeded ($2.00 of $2.00). "
        "2 of 4 steps had completed; 2 steps cancelled: budget exceeded ($2.00 of $2.00)."
    )


def test_a_step_running_when_the_cap_is_reached_finishes_and_the_end_waits_for_it(
    app: Flask, consumer: ThreadConsumer, tmp_path: Path, ledger_path: Path
) -> None:
    gate, go = tmp_path / "gate", tmp_path / "go"
    workflow = (
        Workflow("running-on", budget_usd=2)
        .add("slow", spend.new(dollars=0, gate=str(gate)))
        .add("start", wait_for_file.new(path=str(go)))
        .add("pricey", spend.new(dollars=3), deps=["start"])
        .add("after", spend.new(dollars=1), deps=["slow", "pricey"])
    )
    with EventLog() as events:
        workflow.insert()
        # Running its function, not only claimed: a claimed step checks the cap before it runs.
        wait_for(lambda: ledger.runs_per_step(ledger_path, workflow.workflow_id)["slow"], "slow to run")
        go.touch()  # pricey starts only now: slow is running when the cap is reached
        wait_for(
            lambda: (
                step_states(app, workflow.workflow_id)
                == {
                    "slow": "executing",
                    "start": "completed",
                    "pricey": "completed",
                    "after": "cancelled",
                }
            ),
            "the cap to cancel what had not started while slow runs",
        )
        assert events.finished(workflow.workflow_id) == []
        record = baton.query.get_workflow(workflow.workflow_id)
        assert record is not None and (record.state, record.unsettled_steps) == ("cancelled", 1)
        gate.touch()
        # The workflow is cancelled at once; its end is announced when slow settles.
        wait_for(lambda: step_states(app, workflow.workflow_id)["slow"] == "completed", "slow to complete")
        record = events.wait_caught_up(app, workflow.workflow_id)
        assert len(events.finished(workflow.workflow_id)) == 1
    assert record.state == "cancelled"
    assert step_states(app, workflow.workflow_id)["slow"] == "completed"
    assert baton.query.get_workflow_job(workflow.workflow_id, "slow").result == "slow"  # type: ignore[union-attr]
    assert baton.stats.for_workflow(workflow.workflow_id).cost_usd == 3.0


def test_pause_holds_steps_until_a_person_raises_the_cap(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    workflow = chain("paused", 2, 1, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    wait_for(
        lambda: step_states(app, workflow.workflow_id) == {"s0": "completed", "s1": "pending", "s2": "pending"},
        "s1 to be held",
    )
    held = baton.query.get_workflow_job(workflow.workflow_id, "s1")
    assert held is not None and held.error == "held: budget exceeded ($2.00 of $2.00); raise the cap to release it"
    assert held.attempt == 0
    record = baton.query.get_workflow(workflow.workflow_id)
    assert record is not None and record.state == "running"
    assert ledger.runs_per_step(ledger_path, workflow.workflow_id) == {"s0": 1}

    assert baton.set_budget(workflow.workflow_id, 3.5) == ["s1"]
    # s1 runs and reaches the new cap ($3 of $3.50 is not), s2 then brings it to $4: nothing is left to hold.
    assert wait_finished(app, workflow.workflow_id).state == "completed"
    assert ledger.runs_per_step(ledger_path, workflow.workflow_id) == {"s0": 1, "s1": 1, "s2": 1}
    record = baton.query.get_workflow(workflow.workflow_id)
    assert record is not None and record.budget_usd == 3.5


def test_a_held_step_is_held_again_while_the_raised_cap_is_still_reached(app: Flask, consumer: ThreadConsumer) -> None:
    workflow = chain("still-over", 3, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    wait_for(lambda: step_states(app, workflow.workflow_id)["s1"] == "pending" and _held(workflow, "s1"), "s1 held")
    assert baton.set_budget(workflow.workflow_id, 2.5) == ["s1"]
    wait_for(
        lambda: _held(workflow, "s1", "held: budget exceeded ($3.00 of $2.50)"),
        "s1 to be held again under the raised, still reached, cap",
    )
    baton.cancel_workflow(workflow.workflow_id)
    assert step_states(app, workflow.workflow_id)["s1"] == "cancelled"


def test_a_hold_decided_on_a_cap_raised_meanwhile_is_dropped_and_the_step_runs(app: Flask) -> None:
    """A consumer claims a step under the old cap; a person raises it before the hold commits."""
    state = app.extensions["baton"]
    workflow = chain("raced", 2, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    with ThreadConsumer(app, workers=1):
        wait_for(lambda: _held(workflow, "s1"), "s1 held")
    assert baton.set_budget(workflow.workflow_id, 2) == ["s1"]  # released, its cap still reached
    node = baton.query.get_workflow_job(workflow.workflow_id, "s1")
    assert node is not None
    claimed, _ = commit(state, transitions.claim, node.id, "racing-worker")
    assert claimed is not None and claimed.budget_usd == 2

    assert baton.set_budget(workflow.workflow_id, 10) == []  # meanwhile: nothing held yet to release

    assert budget_control.may_start(state, claimed)  # decided again on $10: it runs, it is not held for good
    assert step_states(app, workflow.workflow_id)["s1"] == "executing"
    baton.cancel_workflow(workflow.workflow_id)


def _held(workflow: Workflow, step: str, prefix: str = "held:") -> bool:
    record = baton.query.get_workflow_job(workflow.workflow_id, step)
    return record is not None and record.state == "pending" and (record.error or "").startswith(prefix)


def test_a_workflow_a_cap_cancelled_resumes_after_the_cap_is_raised(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    workflow = chain("resumed", 2, 1, budget_usd=2)
    workflow.insert()
    assert wait_finished(app, workflow.workflow_id).state == "cancelled"
    baton.set_budget(workflow.workflow_id, 10)
    assert baton.resume_workflow(workflow.workflow_id) == ["s1"]
    assert wait_finished(app, workflow.workflow_id).state == "completed"
    assert ledger.runs_per_step(ledger_path, workflow.workflow_id) == {"s0": 1, "s1": 1}


@pytest.mark.daily_cap(3)
def test_the_daily_cap_stops_every_workflow_once_todays_spend_reaches_it(
    app: Flask, consumer: ThreadConsumer, ledger_path: Path
) -> None:
    first = chain("first", 2)
    first.insert()
    assert wait_finished(app, first.workflow_id).state == "completed"
    second = chain("second", 1, 1)
    second.insert()
    assert wait_finished(app, second.workflow_id).state == "cancelled"
    s1 = baton.query.get_workflow_job(second.workflow_id, "s1")
    assert s1 is not None and s1.error == "daily budget exceeded ($3.00 of $3.00 today)"
    # A workflow started later: its first step is cancelled as it comes up, without running.
    third = chain("third", 1)
    third.insert()
    assert wait_finished(app, third.workflow_id).state == "cancelled"
    assert ledger.runs_per_step(ledger_path, third.workflow_id) == {}
    assert baton.stats.total(since=day_start(third_created(third))).cost_usd == 3.0


def third_created(workflow: Workflow) -> float:
    record = baton.query.get_workflow(workflow.workflow_id)
    assert record is not None
    return record.created_at


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "2.5", True, [2]])
def test_a_budget_that_is_not_a_positive_number_is_refused_naming_budget_usd(value: Any) -> None:
    with pytest.raises(BudgetError, match=r"^budget_usd must be a positive number of US dollars, got "):
        Workflow("bad", budget_usd=value)


def test_an_unknown_budget_action_is_refused_naming_on_budget() -> None:
    with pytest.raises(BudgetError, match=r'^on_budget must be "cancel" or "pause", got \'stop\''):
        Workflow("bad", budget_usd=1, on_budget="stop")  # type: ignore[arg-type]


def test_set_budget_refuses_a_bad_cap_and_changes_nothing(app: Flask) -> None:
    workflow = chain("kept", 1, budget_usd=2)
    workflow.insert()
    for value in (0, -3, math.nan, "5", False):
        with pytest.raises(BudgetError, match="budget_usd"):
            baton.set_budget(workflow.workflow_id, value)
    record = baton.query.get_workflow(workflow.workflow_id)
    assert record is not None and record.budget_usd == 2.0
    with pytest.raises(WorkflowNotFoundError):
        baton.set_budget("no-such-workflow", 5)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("BATON_BUDGET_USD_PER_DAY", 0, "BATON_BUDGET_USD_PER_DAY must be a positive number of US dollars, got 0"),
        ("BATON_BUDGET_USD_PER_DAY", "lots", "BATON_BUDGET_USD_PER_DAY must be a positive number"),
        ("BATON_BUDGET_USD_PER_DAY", True, "BATON_BUDGET_USD_PER_DAY must be a positive number"),
        ("BATON_BUDGET_ACTION", "stop", 'BATON_BUDGET_ACTION must be "cancel" or "pause"'),
    ],
)
def test_a_bad_budget_setting_fails_init_app_naming_the_key(tmp_path: Path, key: str, value: Any, message: str) -> None:
    with (
        pytest.raises(ConfigError, match=message),
        open_app({**sqlite_settings(tmp_path, tmp_path / "ledger"), key: value}),
    ):
        pass


def test_a_daily_cap_given_as_a_string_is_read_as_dollars(tmp_path: Path) -> None:
    with open_app({**sqlite_settings(tmp_path, tmp_path / "ledger"), "BATON_BUDGET_USD_PER_DAY": "12.5"}) as app:
        assert app.extensions["baton"].config.budget_usd_per_day == 12.5


def test_a_cap_is_reached_at_its_amount_and_said_in_dollars() -> None:
    assert reached(1.99, 2.0) is None
    assert reached(None, 2.0) is None and reached(5.0, None) is None
    assert reached(2.0, 2.0) == Exceeded(2.0, 2.0)
    assert Exceeded(2.5, 2.0).reason == "budget exceeded ($2.50 of $2.00)"
    assert Exceeded(12.0, 10.0, daily=True).reason == "daily budget exceeded ($12.00 of $10.00 today)"
    assert dollars(0.0031) == "$0.0031" and dollars(0.0000045) == "$0.0000045" and dollars(1234.5) == "$1,234.50"
    assert day_start(86400 * 3 + 5) == 86400 * 3


def test_an_install_at_schema_5_upgrades_keeping_its_workflows_without_a_cap(
    app: Flask, consumer: ThreadConsumer
) -> None:
    from flask_baton.store import migrations

    from .support import make_version

    before = chain("before", 1)
    before.insert()
    assert wait_finished(app, before.workflow_id).state == "completed"
    make_version(app, 5)
    assert baton.create_schema() == (5, migrations.SCHEMA_VERSION)
    record = baton.query.get_workflow(before.workflow_id)
    assert record is not None and (record.state, record.budget_usd, record.on_budget) == ("completed", None, None)
    after = chain("after", 3, 1, budget_usd=2)
    after.insert()
    assert wait_finished(app, after.workflow_id).state == "cancelled"


def test_the_cli_shows_budget_used_and_raises_a_cap_releasing_held_steps(app: Flask, consumer: ThreadConsumer) -> None:
    workflow = chain("cli-paused", 2, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    wait_for(lambda: _held(workflow, "s1"), "s1 held")
    run = app.test_cli_runner()
    shown = run.invoke(args=["baton", "status", workflow.workflow_id])
    assert shown.exit_code == 0, shown.output
    assert "budget: $2.00 of $2.00 (100%)" in shown.output.splitlines()[1]
    assert "held: budget exceeded ($2.00 of $2.00)" in shown.output
    as_json = run.invoke(args=["baton", "status", workflow.workflow_id, "--json"])
    assert '"budget_usd": 2.0' in as_json.output

    refused = run.invoke(args=["baton", "budget", workflow.workflow_id, "0"])
    assert refused.exit_code == 1 and "budget_usd must be a positive number of US dollars" in refused.output
    assert _held(workflow, "s1")  # nothing changed

    raised = run.invoke(args=["baton", "budget", workflow.workflow_id[:16], "5"])
    assert raised.exit_code == 0, raised.output
    assert (
        raised.output
        == f"budget of workflow {workflow.workflow_id} (cli-paused) set to $5.00: 1 step(s) released: s1\n"
    )
    assert wait_finished(app, workflow.workflow_id).state == "completed"
    after = run.invoke(args=["baton", "status", workflow.workflow_id]).output
    assert "budget: $3.00 of $5.00 (60%)" in after


def test_explain_says_a_held_step_waits_for_a_raised_cap(app: Flask, consumer: ThreadConsumer) -> None:
    workflow = chain("explained", 2, 1, budget_usd=2, on_budget="pause")
    workflow.insert()
    wait_for(lambda: _held(workflow, "s1"), "s1 held")
    why = baton.explain(workflow.workflow_id, "s1")
    assert (why.state, why.waiting_on) == ("pending", {})
    assert why.reason == "held: budget exceeded ($2.00 of $2.00); raise the cap to release it"
    baton.cancel_workflow(workflow.workflow_id)


def test_a_workflow_whose_last_step_reaches_the_cap_completes(app: Flask, consumer: ThreadConsumer) -> None:
    workflow = chain("just-enough", 1, 2, budget_usd=3)
    workflow.insert()
    assert wait_finished(app, workflow.workflow_id).state == "completed"
    assert baton.stats.for_workflow(workflow.workflow_id).cost_usd == 3.0
