"""Schedules: one workflow per tick however many consumers check it, the overlap policy, bad crontabs.

The ticks are driven through the periodic task's own body (``ticks.run_due``)
with an injected ``now``, called by three threads at once per tick while
three real consumers run the workflows; one test lets a real consumer's
periodic task fire on its own.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_baton import ScheduleError, Workflow, cron
from flask_baton.consumer import log_banner
from flask_baton.schedule import Build, Overlap, Schedule
from flask_baton.states import TickOutcome
from flask_baton.store import migrations
from flask_baton.store.tables import schedule_ticks, workflows
from flask_baton.sweep import TICK_RETENTION, sweep
from flask_baton.ticks import Ticked, run_due

from .docs_support import DOCS, README, fenced_blocks
from .steps import always_fail, baton, fake_llm, wait_for_file
from .support import ThreadConsumer, make_version, wait_finished, wait_for

#: The first minute the tests tick at: the next whole minute, so each tick below is a minute later.
START = (int(time.time()) // 60 + 1) * 60.0


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    # Consumers check periodic tasks every second (the sweep's pace), so a
    # real consumer's check comes soon after a tick; the dashboard is open.
    return {"BATON_SWEEP_INTERVAL": 1, "BATON_DASHBOARD_AUTH": lambda: True}


@contextmanager
def declared(name: str, crontab: str, build: Build, overlap: Overlap = "skip") -> Iterator[Schedule]:
    """``baton.schedule(...)`` for the block only: the test Baton is shared by every test's app."""
    baton.schedule(name, crontab, build, overlap=overlap)
    try:
        yield baton.schedules[name]
    finally:
        del baton.schedules[name]


def gated(name: str, gate: Path) -> Build:
    """A build making a one-step workflow that runs until ``gate`` exists."""
    return lambda: Workflow(name=name).add("wait", wait_for_file.new(path=str(gate)))


def tick_from_three_consumers(app: Flask, now: float) -> list[Ticked]:
    """Three threads check the schedules at ``now`` at the same instant; every tick any of them recorded."""
    state = app.extensions["baton"]
    start = threading.Barrier(3)
    recorded: list[Ticked] = []
    errors: list[BaseException] = []

    def check() -> None:
        with app.app_context():
            start.wait(timeout=20)
            try:
                recorded.extend(run_due(state, now))
            except BaseException as error:  # re-raised in the test's thread
                errors.append(error)

    threads = [threading.Thread(target=check) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return recorded


def ticks_of(app: Flask, schedule: str) -> list[tuple[float, str, str | None]]:
    """The schedule's recorded ticks: (tick, outcome, workflow id), oldest first."""
    table = schedule_ticks
    with app.extensions["baton"].engine.connect() as conn:
        rows = conn.execute(
            select(table.c.tick_at, table.c.outcome, table.c.workflow_id)
            .where(table.c.schedule == schedule)
            .order_by(table.c.tick_at)
        )
        return [(tick, outcome, workflow_id) for tick, outcome, workflow_id in rows]


def workflows_named(app: Flask, name: str) -> int:
    with app.extensions["baton"].engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(workflows.c.name == name)).scalar_one())


def test_three_consumers_insert_one_workflow_per_tick_and_skip_while_one_runs(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = [tmp_path / "first"]
    with (
        caplog.at_level(logging.INFO, logger="flask_baton.worker"),
        declared("every-minute", "* * * * *", lambda: gated("every-minute", gate[0])()),
        ThreadConsumer(app, workers=2),
        ThreadConsumer(app, workers=2),
        ThreadConsumer(app, workers=2),
    ):
        [first] = tick_from_three_consumers(app, START + 5)
        assert (first.tick_at, first.outcome) == (START, TickOutcome.STARTED)
        wait_for(lambda: ticks_of(app, "every-minute"), "the first tick's row")

        [skipped] = tick_from_three_consumers(app, START + 65)
        assert (skipped.tick_at, skipped.outcome) == (START + 60, TickOutcome.SKIPPED)
        assert skipped.detail == f"{first.workflow_id} was still running"
        assert first.workflow_id is not None

        gate[0].touch()
        assert wait_finished(app, first.workflow_id).state == "completed"
        gate[0] = tmp_path / "open"
        gate[0].touch()
        [second] = tick_from_three_consumers(app, START + 125)
        assert second.workflow_id is not None
        assert wait_finished(app, second.workflow_id).state == "completed"
        [third] = tick_from_three_consumers(app, START + 185)
        assert third.workflow_id is not None
        assert wait_finished(app, third.workflow_id).state == "completed"
        assert tick_from_three_consumers(app, START + 186) == []  # that tick is done

    assert ticks_of(app, "every-minute") == [
        (START, "started", first.workflow_id),
        (START + 60, "skipped", None),
        (START + 120, "started", second.workflow_id),
        (START + 180, "started", third.workflow_id),
    ]
    assert workflows_named(app, "every-minute") == 3
    # One line for the skip, from the consumer that recorded it.
    skips = [r.getMessage() for r in caplog.records if getattr(r, "baton_event", None) == "schedule_skipped"]
    assert skips == [
        f"schedule 'every-minute' skipped its tick of {cron.utc_minute(START + 60)}: "
        f"{first.workflow_id} was still running"
    ]


def test_overlap_allow_starts_a_tick_while_the_previous_run_is_live(app: Flask, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with declared("overlapping", "*/2 * * * *", gated("overlapping", gate), overlap="allow"):
        [first] = run_due(app.extensions["baton"], START + 1)
        [second] = run_due(app.extensions["baton"], START + 121)
        assert [first.outcome, second.outcome] == [TickOutcome.STARTED, TickOutcome.STARTED]
        assert first.workflow_id is not None and second.workflow_id is not None
        gate.touch()
        with ThreadConsumer(app, workers=2):
            for run in (first, second):
                assert run.workflow_id is not None
                assert wait_finished(app, run.workflow_id).state == "completed"


def test_a_crontab_that_does_not_parse_is_refused_and_nothing_changes(app: Flask, tmp_path: Path) -> None:
    before = dict(baton.schedules)
    with pytest.raises(ScheduleError) as raised:
        baton.schedule("nightly-report", "0 25 * * *", gated("nightly-report", tmp_path / "gate"))
    assert str(raised.value) == "schedule 'nightly-report': crontab '0 25 * * *', hour field: 25 is out of range 0-23"
    with pytest.raises(ScheduleError, match="minute field"):

        @baton.schedule("decorated", "60 * * * *")
        def decorated() -> Workflow:
            return Workflow(name="decorated")

    assert baton.schedules == before
    assert run_due(app.extensions["baton"], START + 1) == []
    assert ticks_of(app, "nightly-report") == []


def test_a_second_schedule_of_the_same_name_is_refused(tmp_path: Path) -> None:
    with declared("twice", "* * * * *", gated("twice", tmp_path / "gate")) as first:
        with pytest.raises(ScheduleError, match="a schedule with this name is already declared"):
            baton.schedule("twice", "*/5 * * * *", gated("twice", tmp_path / "gate"))
        assert baton.schedules["twice"] is first


def test_a_build_that_fails_records_its_tick_and_the_other_schedules_still_run(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Workflow:
        raise RuntimeError("the report's source is down")

    with (
        declared("broken", "* * * * *", broken),
        declared("working", "* * * * *", gated("working", tmp_path / "g")),
        caplog.at_level(logging.INFO, logger="flask_baton.worker"),
    ):
        ticked = {tick.schedule: tick for tick in run_due(app.extensions["baton"], START + 1)}
    assert ticked["broken"].outcome is TickOutcome.FAILED
    assert ticked["broken"].detail == "RuntimeError: the report's source is down"
    assert ticked["working"].outcome is TickOutcome.STARTED
    assert ticks_of(app, "broken") == [(START, "failed", None)]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            f"schedule 'broken' failed to build its tick of {cron.utc_minute(START)}: "
            "RuntimeError: the report's source is down",
        )
    ]


def test_a_tick_whose_unique_key_is_held_is_skipped(app: Flask, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    held = Workflow(name="held", unique_key="report").add("wait", wait_for_file.new(path=str(gate)))
    held.insert()

    def build() -> Workflow:
        return Workflow(name="keyed", unique_key="report").add("fail", always_fail.new())

    with declared("keyed", "* * * * *", build):
        [ticked] = run_due(app.extensions["baton"], START + 1)
    assert ticked.outcome is TickOutcome.SKIPPED
    assert ticked.detail == f"a workflow with unique_key 'report' is already running: {held.workflow_id}"
    assert workflows_named(app, "keyed") == 0
    gate.touch()


def test_a_real_consumer_runs_a_due_schedule_from_its_periodic_task(app: Flask, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    with declared("periodic", "* * * * *", gated("periodic", gate)), ThreadConsumer(app, workers=2, periodic=True):
        wait_for(lambda: ticks_of(app, "periodic"), "the consumer's periodic task to record a tick", timeout=30)
        [(_, outcome, workflow_id)] = ticks_of(app, "periodic")[:1]
        assert outcome == "started" and workflow_id is not None
        assert wait_finished(app, workflow_id).state == "completed"


def test_the_schedules_command_lists_each_schedule_with_its_next_and_last_run(app: Flask, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    runner = app.test_cli_runner()
    with (
        declared("nightly-report", "0 3 * * *", gated("nightly-report", gate)),
        declared("every-five", "*/5 * * * *", gated("every-five", gate), overlap="allow"),
    ):
        five_past = (int(time.time()) // 300 + 1) * 300.0
        [started] = run_due(app.extensions["baton"], five_past + 30)  # every-five's tick, not nightly-report's
        checked = time.time()
        listing = runner.invoke(args=["baton", "schedules"])
        document = json.loads(runner.invoke(args=["baton", "schedules", "--json"]).output)
    assert listing.exit_code == 0, listing.output
    header, *rows = listing.output.splitlines()
    assert header.split() == [
        "NAME",
        "CRONTAB",
        "OVERLAP",
        "NEXT",
        "RUN",
        "LAST",
        "RUN",
        "OUTCOME",
        "WORKFLOW",
        "STATE",
    ]
    by_name = {row.split()[0]: row for row in rows}
    assert by_name.keys() == {"every-five", "nightly-report"}
    assert by_name["nightly-report"].split()[:7] == ["nightly-report", "0", "3", "*", "*", "*", "skip"]
    assert by_name["nightly-report"].split()[-4:] == ["-", "-", "-", "-"]  # never ran
    assert by_name["every-five"].split()[-3:] == ["started", started.workflow_id, "running"]
    assert cron.utc_minute(started.tick_at) in by_name["every-five"]
    five = document["schedules"][0]
    assert (five["name"], five["crontab"], five["overlap"]) == ("every-five", "*/5 * * * *", "allow")
    every_five = cron.parse("*/5 * * * *", "every-five")
    assert five["next_run"] in {every_five.next_after(checked), every_five.next_after(time.time())}
    assert five["last_run"] == {
        "tick_at": five_past,
        "outcome": "started",
        "workflow_id": started.workflow_id,
        "workflow_state": "running",
        "detail": None,
    }
    gate.touch()


def test_the_schedules_command_says_when_there_are_none(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["baton", "schedules"])
    assert (result.exit_code, result.output) == (
        0,
        "No schedules: declare one with baton.schedule(name, crontab, build).\n",
    )


def test_the_overview_lists_the_schedules_with_their_last_run(app: Flask, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with (
        declared("nightly-report", "0 3 * * *", gated("nightly-report", gate)),
        declared("every-minute", "* * * * *", gated("every-minute", gate)),
    ):
        [started] = run_due(app.extensions["baton"], START + 1)
        page = app.test_client().get("/baton/overview").get_data(as_text=True)
    gate.touch()
    rows = re.findall(r'<tr class="schedule" data-schedule="([^"]+)">(.*?)</tr>', page, re.S)
    assert [name for name, _ in rows] == ["every-minute", "nightly-report"]
    every_minute, nightly = (cells for _, cells in rows)
    assert f'href="/baton/workflows/{started.workflow_id}">started</a>' in every_minute
    assert cron.utc_minute(START) in every_minute
    assert "0 3 * * *" in nightly and "not yet" in nightly


def test_the_overview_leaves_out_the_schedules_section_without_schedules(app: Flask) -> None:
    assert 'id="schedules"' not in app.test_client().get("/baton/overview").get_data(as_text=True)


@pytest.mark.parametrize("document", [README, DOCS / "schedules.md"], ids=["README", "schedules.md"])
def test_the_documented_schedules_listing_has_the_command_s_columns(document: Path, app: Flask, tmp_path: Path) -> None:
    [listing] = [b for b in fenced_blocks(document) if b.code.startswith("$ flask --app myapp baton schedules")]
    with declared("nightly-report", "0 3 * * *", gated("nightly-report", tmp_path / "gate")):
        printed = app.test_cli_runner().invoke(args=["baton", "schedules"]).output
    columns = re.split(r"\s{2,}", printed.splitlines()[0])
    header, *rows = listing.code.splitlines()[1:]
    assert re.split(r"\s{2,}", header) == columns
    assert all(len(re.split(r"\s{2,}", row)) == len(columns) for row in rows)


def test_upgrading_from_schema_5_adds_the_schedule_ticks(app: Flask, tmp_path: Path) -> None:
    make_version(app, 5)
    assert baton.create_schema() == (5, migrations.SCHEMA_VERSION)
    with declared("after-upgrade", "* * * * *", gated("after-upgrade", tmp_path / "gate")):
        [ticked] = run_due(app.extensions["baton"], START + 1)
    assert ticked.outcome is TickOutcome.STARTED
    (tmp_path / "gate").touch()


def test_the_sweep_trims_old_ticks_but_keeps_each_schedule_s_latest_and_its_running_workflows(
    app: Flask, tmp_path: Path
) -> None:
    state = app.extensions["baton"]
    gate = tmp_path / "open"
    gate.touch()
    # The first tick's workflow runs on the llm queue, which no consumer here serves: it stays running.
    builds = [lambda: Workflow(name="trimmed").add("ask", fake_llm.new(prompt="hi"))]
    with declared("trimmed", "* * * * *", lambda: builds[-1](), overlap="allow"):
        [running] = run_due(state, START + 1)
        builds.append(gated("trimmed", gate))
        done = [run_due(state, START + 61)[0], run_due(state, START + 121)[0]]
        with ThreadConsumer(app, workers=2):
            for tick in done:
                assert tick.workflow_id is not None
                wait_finished(app, tick.workflow_id)
        report = sweep(state, force=True, now=time.time() + TICK_RETENTION + 1)
    assert report.ticks_trimmed == 1
    assert ticks_of(app, "trimmed") == [
        (START, "started", running.workflow_id),
        (START + 120, "started", done[1].workflow_id),
    ]


def test_a_worker_of_the_default_queue_says_which_schedules_it_runs(
    app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = app.extensions["baton"]
    with (
        declared("nightly-report", "0 3 * * *", gated("nightly-report", tmp_path / "gate")),
        declared("every-five", "*/5 * * * *", gated("every-five", tmp_path / "gate")),
        caplog.at_level(logging.INFO, logger="flask_baton.worker"),
    ):
        log_banner(state, "default")
        log_banner(state, "llm")
    default, llm = (record for record in caplog.records if getattr(record, "baton_event", None) == "worker_started")
    assert (
        default.getMessage()
        .splitlines()[0]
        .endswith("runs the sweep every 1s and the schedules every-five, nightly-report; steps by queue:")
    )
    assert (default.schedules, llm.schedules) == (["every-five", "nightly-report"], [])  # type: ignore[attr-defined]
    assert "schedules" not in llm.getMessage().splitlines()[0]
