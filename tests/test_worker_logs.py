"""What ``flask baton worker`` logs: one line per failure, retry, discard, cascade and rescue.

Real ``flask baton worker`` subprocesses run a workflow whose ``fetch``
fails three times (two retries, then discarded, which cancels ``parse`` and
``store``) beside a step that completes, and the tests read the worker's
output: as text with and without ``-v``, and through the app's own JSON
handler (``tests.logging_app``), where each line's ``extra=`` fields show.
In-process, a real consumer shows each line is logged once even with the
old ``telemetry.attach_default_logger()`` attached.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_baton import Workflow, telemetry
from flask_baton.consumer import log_banner
from flask_baton.worklog import LOGGER_NAME

from .steps import baton, constant, fail_until, sum_inputs
from .support import ThreadConsumer, WorkerProcess, claim_as_dead_consumer, wait_finished, wait_for

sqlite_only = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
JSON_APP = "tests.logging_app:create_app"
#: A lease and sweep short enough for a rescue within the test.
FAST_SWEEP = {"BATON_LEASE_SECONDS": 2.0, "BATON_HEARTBEAT_SECONDS": 0.2, "BATON_SWEEP_INTERVAL": 1.0}
FAILING_EVENTS = ["step_retrying", "step_retrying", "step_discarded", "steps_cancelled", "workflow_failed"]


def _failing(name: str) -> Workflow:
    """``fetch`` fails on all three attempts; ``parse`` and ``store`` hang off it; ``ok`` completes."""
    return (
        Workflow(name)
        .add("fetch", fail_until.new(failures=5))
        .add("parse", sum_inputs.new(), deps=["fetch"])
        .add("store", sum_inputs.new(), deps=["parse"])
        .add("ok", constant.new(value=1))
    )


def _run_failing(app: Flask, settings: dict[str, Any], name: str, *args: str, **options: Any) -> tuple[str, str]:
    """Run ``_failing(name)`` on a worker subprocess to its end; its workflow id and the worker's output."""
    wf = _failing(name)
    with WorkerProcess(settings, *args, **options) as worker:
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "failed"
    return wf.workflow_id, worker.output


def _text_lines(output: str) -> list[tuple[str, str]]:
    """``(level, message)`` of each ``flask_baton.worker`` line of the worker's default text format."""
    marker = f" {LOGGER_NAME}: "
    return [(line.split()[2], line.split(marker, 1)[1]) for line in output.splitlines() if marker in line]


def test_worker_logs_each_failure_retry_discard_and_cascade_and_nothing_for_successes(
    app: Flask, settings: dict[str, Any]
) -> None:
    wid, output = _run_failing(app, settings, "logs:failing")
    fetch = f"step 'fetch' of workflow 'logs:failing' ({wid})"
    banner, *lines = _text_lines(output)
    assert banner == (
        "INFO",
        "flask_baton worker for app 'baton_tests' on queue 'default', runs the sweep every 60s; steps by queue:",
    ), output
    assert output.split("steps by queue:\n", 1)[1].splitlines()[:2] == [
        f"  default (this worker): {_names_on('default')}",
        f"  llm (flask baton worker --queue llm): {_names_on('llm')}",
    ]
    assert [level for level, _ in lines] == ["WARNING", "WARNING", "ERROR", "WARNING", "ERROR"], output
    messages = [message for _, message in lines]
    for attempt in (1, 2):
        assert re.fullmatch(
            rf"{re.escape(fetch)} failed on attempt {attempt}/3: RuntimeError: planned failure on attempt "
            rf"{attempt}; retrying in 50ms \(at \d\d:\d\d:\d\d\)",
            messages[attempt - 1],
        ), messages
    assert messages[2:] == [
        f"{fetch} discarded on attempt 3/3: RuntimeError: planned failure on attempt 3",
        f"workflow 'logs:failing' ({wid}): step 'fetch' discarded, so 2 dependent step(s) were cancelled: parse, store",
        f"workflow 'logs:failing' ({wid}) failed; failed steps: fetch, parse, store",
    ]
    # Quiet: no traceback, no line about the step that completed, none of Huey's lines per task.
    for noise in (
        "Traceback",
        "'ok'",
        "Executing",
        "executed in",
        "Added task",
        "Enqueueing periodic task",
        "commands are available",
    ):
        assert noise not in output, f"{noise!r} in the worker's output:\n{output}"


def _names_on(queue: str) -> str:
    """The app's steps on ``queue`` as the banner lists them (built-in steps left out)."""
    return ", ".join(sorted(name for name, step in baton.steps.items() if step.queue == queue and "." not in name))


def _step_id(app: Flask, workflow_id: str, step_name: str) -> str:
    return next(s.id for s in app.extensions["baton"].query.get_workflow_jobs(workflow_id) if s.step_name == step_name)


@sqlite_only
def test_verbose_worker_adds_tracebacks_successes_and_hueys_lines_per_task(
    app: Flask, settings: dict[str, Any]
) -> None:
    wid, output = _run_failing(app, settings, "logs:verbose", "-v")
    fetch = f"step 'fetch' of workflow 'logs:verbose' ({wid})"
    messages = [message for _, message in _text_lines(output)]
    for attempt in (1, 2, 3):
        failed = next(i for i, m in enumerate(messages) if m.startswith(f"{fetch} ") and f" {attempt}/3: " in m)
        assert messages.index(f"traceback of {fetch}, attempt {attempt}/3:") > failed  # after the failure's line
        traceback = output.split(f"traceback of {fetch}, attempt {attempt}/3:\n", 1)[1]
        assert traceback.startswith("Traceback (most recent call last):"), output
        assert f"RuntimeError: planned failure on attempt {attempt}\n" in traceback
    assert any(
        m.startswith(f"step 'ok' of workflow 'logs:verbose' ({wid}) completed on attempt 1/1 in ") for m in messages
    ), output
    assert " executed in " in output


@sqlite_only
def test_worker_logs_once_through_the_apps_own_json_handler_with_extra_fields(
    app: Flask, settings: dict[str, Any]
) -> None:
    since = time.time()
    wid, output = _run_failing(app, settings, "logs:json", factory=JSON_APP)
    lines = [line for line in output.splitlines() if line.strip()]
    assert [line for line in lines if not line.startswith("{")] == []  # no second, plain-text handler
    records = [json.loads(line) for line in lines]
    assert not any("executed in" in r["message"] for r in records)
    ours = [r for r in records if r["logger"] == LOGGER_NAME]
    started, *events = ours
    assert (started["baton_event"], started["queue"]) == ("worker_started", "default")
    assert list(started["steps_by_queue"]) == ["default", "llm"]
    assert ", ".join(started["steps_by_queue"]["llm"]) == _names_on("llm")
    assert [r["baton_event"] for r in events] == FAILING_EVENTS
    _assert_failing_fields(events, wid, "logs:json", _step_id(app, wid, "fetch"), since)
    assert all("traceback" not in r for r in records)


def _assert_failing_fields(events: list[dict[str, Any]], wid: str, label: str, fetch_id: str, since: float) -> None:
    """The ``extra=`` fields of ``FAILING_EVENTS`` logged after ``since``, as dicts (JSON or record attributes)."""
    same = {"workflow_id": wid, "workflow_label": label, "step": "fetch", "job_id": fetch_id, "max_attempts": 3}
    for record in events[:4]:
        assert {key: record[key] for key in same} == same
    for attempt, record in enumerate(events[:3], start=1):
        assert (record["attempt"], record["error_type"], record["error_message"]) == (
            attempt,
            "RuntimeError",
            f"planned failure on attempt {attempt}",
        )
    for record in events[:2]:
        assert record["retry_in"] == 0.05
        assert since < record["retry_at"] < time.time()  # epoch seconds; the retry ran since
    assert (events[3]["cause"], events[3]["cancelled"]) == ("fetch", ["parse", "store"])
    assert (events[4]["workflow_id"], events[4]["failed_steps"]) == (wid, ["fetch", "parse", "store"])


@sqlite_only
def test_sweep_rescue_is_one_worker_line_with_the_lost_consumer(app: Flask, settings: dict[str, Any]) -> None:
    wf = Workflow("logs:rescue").add("first", constant.new(value=2)).add("second", sum_inputs.new(), deps=["first"])
    first = wf.insert()[0]
    app.extensions["baton"].queues.huey().flush()  # its message went with the dead consumer
    claim_as_dead_consumer(app, first.id, time.time() - 10)
    with WorkerProcess({**settings, **FAST_SWEEP}, factory=JSON_APP) as worker:
        assert wait_finished(app, wf.workflow_id).state == "completed"
    ours = [json.loads(line) for line in worker.output.splitlines() if f'"logger": "{LOGGER_NAME}"' in line]
    assert [r["baton_event"] for r in ours] == ["worker_started", "step_rescued"], worker.output
    rescued = ours[1]
    assert re.fullmatch(
        rf"step 'first' of workflow 'logs:rescue' \({wf.workflow_id}\) rescued by the sweep after attempt 1/1: "
        r"its consumer gone-host:4242 was silent for 1\d\.\ds; it runs again now",
        rescued["message"],
    ), rescued["message"]
    assert (
        rescued["level"],
        rescued["step"],
        rescued["job_id"],
        rescued["attempt"],
        rescued["max_attempts"],
        rescued["lost_worker"],
    ) == ("WARNING", "first", first.id, 1, 1, "gone-host:4242")
    assert rescued["silent_for"] >= 10


@pytest.fixture
def worker_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog with the old default logger attached, the ``flask_baton`` logger's level restored after."""
    package = logging.getLogger("flask_baton")
    level = package.level
    telemetry.attach_default_logger()
    yield caplog
    package.setLevel(level)


def test_a_consumer_logs_each_failure_once_with_its_fields_even_with_the_old_default_logger(
    app: Flask, worker_records: pytest.LogCaptureFixture
) -> None:
    wf = _failing("logs:in-process")
    since = time.time()
    with ThreadConsumer(app, workers=2):
        fetch = wf.insert()[0]
        assert wait_finished(app, wf.workflow_id).state == "failed"

        def ours() -> list[logging.LogRecord]:
            return [r for r in worker_records.records if getattr(r, "workflow_id", None) == wf.workflow_id]

        wait_for(lambda: len(ours()) >= len(FAILING_EVENTS), "the worker's lines of the failed workflow")
    # Each event once, on the worker's logger: nothing from the old receivers on "flask_baton".
    assert [r.name for r in worker_records.records if wf.workflow_id in r.getMessage()] == [LOGGER_NAME] * 5
    assert [r.baton_event for r in ours()] == FAILING_EVENTS  # type: ignore[attr-defined]
    _assert_failing_fields([vars(r) for r in ours()], wf.workflow_id, "logs:in-process", fetch.id, since)


@sqlite_only
def test_banner_lists_the_workers_own_queue_first_and_warns_when_it_has_no_step(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    state = app.extensions["baton"]
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        log_banner(state, "llm")
        log_banner(state, "lmm")
    llm, lmm, warning = caplog.records
    assert llm.getMessage().splitlines() == [
        "flask_baton worker for app 'baton_tests' on queue 'llm'; steps by queue:",
        f"  llm (this worker): {_names_on('llm')}",
        f"  default (flask baton worker --queue default): {_names_on('default')}",
    ]
    assert lmm.getMessage().splitlines()[1] == "  lmm (this worker): -"
    assert (warning.levelname, warning.getMessage()) == (
        "WARNING",
        "no step of app 'baton_tests' runs on queue 'lmm'; its queues: default, llm",
    )
