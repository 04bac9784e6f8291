"""Operating from a terminal: ``flask baton cancel / retry / status / prune`` and their exit codes.

Flask's CLI runner on real SQLite files and PostgreSQL, real consumers in
threads where a workflow must run; a real process (and a real terminal, a
pty) where Ctrl-C or a confirmation prompt is what is tested. Every refusal
exits non-zero and leaves the stored workflows as they were.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import func
from sqlalchemy import select as sql_select

from flask_baton import Workflow
from flask_baton.cli import render
from flask_baton.store.maintenance import TABLES
from flask_baton.store.tables import metadata

from .apps import environment_for
from .steps import always_fail, constant, fails_while_file_exists, raise_message, sum_inputs, wait_for_file
from .support import ThreadConsumer, wait_finished, wait_for

ROOT = Path(__file__).resolve().parent.parent


def cli(app: Flask, *args: str, **options: Any) -> Result:
    return app.test_cli_runner().invoke(args=["baton", *args], **options)


def stored(app: Flask, workflow_id: str) -> tuple[Any, ...]:
    """Everything a refused command must leave alone: the workflow's row and each step's."""
    query = app.extensions["baton"].query
    return query.get_workflow(workflow_id), tuple(query.get_workflow_jobs(workflow_id))


def waiting(path: Path, name: str = "cli:waiting", last: Any = None) -> Workflow:
    """``gate`` runs until ``path`` exists, then ``last`` (a ``sum_inputs`` by default) runs after it."""
    wf = (
        Workflow(name)
        .add("gate", wait_for_file.new(path=str(path), value=1))
        .add("last", (last or sum_inputs).new(), deps=["gate"])
    )
    wf.insert()
    return wf


def fixable(app: Flask, blocker: Path) -> Workflow:
    """A finished, ``failed`` workflow: ``fix`` was discarded (while ``blocker`` existed), ``after`` cancelled."""
    blocker.touch()
    wf = (
        Workflow("cli:fixable")
        .add("root", constant.new(value=1))
        .add("fix", fails_while_file_exists.new(path=str(blocker)), deps=["root"])
        .add("after", constant.new(value=2), deps=["fix"])
    )
    with ThreadConsumer(app):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "failed"
    return wf


def completed(app: Flask, name: str = "cli:done") -> Workflow:
    wf = Workflow(name).add("root", constant.new(value=1)).add("leaf", sum_inputs.new(), deps=["root"])
    with ThreadConsumer(app):
        wf.insert()
        assert wait_finished(app, wf.workflow_id).state == "completed"
    return wf


def named_after(output: str, marker: str) -> set[str]:
    """The step names a command printed after ``marker`` (``... re-armed: a, b``)."""
    return set(output.strip().split(marker, 1)[1].split(", "))


@pytest.fixture
def release_when_watched(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Arrange to create a path right after a watch first shows the workflow.

    The watch runs in the test's thread, the consumer in its own: so the
    watch shows the workflow running first, and it settles while watched.
    Released at the first view the watch prints, not at its first read: a
    reading the workflow moved in (the consumer claimed a step) is read again.
    """

    def arrange(path: Path) -> None:
        for name in ("workflow_detail", "workflow_detail_json"):
            monkeypatch.setattr(render, name, _then_touch(getattr(render, name), path))

    return arrange


def _then_touch(show: Callable[..., str], path: Path) -> Callable[..., str]:
    def shown(*args: Any, **kwargs: Any) -> str:
        text = show(*args, **kwargs)
        path.touch()
        return text

    return shown


def flask_baton(settings: dict[str, Any], *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """``flask baton ARGS`` as a real process on the test app's storage."""
    env = {**os.environ, **environment_for(settings), "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "flask", "--app", "tests.apps:create_app", "baton", *args]
    return subprocess.Popen(argv, cwd=ROOT, env=env, **popen)


def read_until(fd: int, text: str | None, timeout: float = 60.0) -> str:
    """Read ``fd`` until ``text`` appeared, or (``None``) until the writer closed it; fail at the deadline."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text is None or text.encode() not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {text!r}; got {seen.decode(errors='replace')!r}")
        if select.select([fd], [], [], remaining)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # a pty whose other end closed
                chunk = b""
            if not chunk:
                if text is None:
                    break
                raise AssertionError(f"closed before {text!r} appeared; got {seen.decode(errors='replace')!r}")
            seen += chunk
    return seen.decode(errors="replace")


# -- cancel ------------------------------------------------------------------------


def test_cancel_stops_a_running_workflow_and_names_the_steps_it_cancelled(app: Flask, tmp_path: Path) -> None:
    wf = waiting(tmp_path / "never")
    result = cli(app, "cancel", wf.workflow_id[:16])
    assert result.exit_code == 0, result.output
    assert f"cancelled workflow {wf.workflow_id} (cli:waiting)" in result.output
    assert named_after(result.output, "2 step(s) cancelled: ") == {"gate", "last"}
    record, steps = stored(app, wf.workflow_id)
    assert record.state == "cancelled"
    assert {s.state for s in steps} == {"cancelled"} and {s.error for s in steps} == {"cancelled from the command line"}


def test_cancel_of_a_finished_workflow_fails_and_changes_nothing(app: Flask) -> None:
    wf = completed(app)
    before = stored(app, wf.workflow_id)
    result = cli(app, "cancel", wf.workflow_id)
    assert result.exit_code == 1
    assert f"workflow {wf.workflow_id} is completed; only a running workflow can be cancelled" in result.output
    assert stored(app, wf.workflow_id) == before


# -- retry -------------------------------------------------------------------------


def test_retry_runs_a_failed_workflows_failed_steps_again_to_completion(app: Flask, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    wf = fixable(app, blocker)
    blocker.unlink()
    with ThreadConsumer(app):
        result = cli(app, "retry", wf.workflow_id[:16])
        assert result.exit_code == 0, result.output
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert f"retrying workflow {wf.workflow_id} (cli:fixable): 2 step(s) re-armed" in result.output
    assert named_after(result.output, "re-armed: ") == {"fix", "after"}


def test_retry_of_one_step_rearms_it_and_the_dependents_its_failure_cancelled(app: Flask, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    wf = fixable(app, blocker)
    blocker.unlink()
    with ThreadConsumer(app):
        result = cli(app, "retry", wf.workflow_id, "fix")
        assert result.exit_code == 0, result.output
        assert wait_finished(app, wf.workflow_id).state == "completed"
    assert named_after(result.output, "re-armed: ") == {"fix", "after"}
    assert result.output.split("re-armed: ")[1].startswith("fix")  # the retried step first


def test_retry_that_is_not_allowed_fails_naming_the_reason_and_changes_nothing(app: Flask, tmp_path: Path) -> None:
    wf = fixable(app, tmp_path / "blocker")
    still = waiting(tmp_path / "never")
    before = stored(app, wf.workflow_id), stored(app, still.workflow_id)
    refusals = [
        ((wf.workflow_id, "root"), "'root' is completed"),  # a step that did not fail
        ((wf.workflow_id, "nope"), f"workflow {wf.workflow_id} has no step named 'nope'"),
        ((still.workflow_id,), "is still running"),  # a workflow not finished
    ]
    for args, message in refusals:
        result = cli(app, "retry", *args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
    assert (stored(app, wf.workflow_id), stored(app, still.workflow_id)) == before


# -- status ------------------------------------------------------------------------


def test_status_lists_only_workflows_in_the_state_given(app: Flask, tmp_path: Path) -> None:
    done = completed(app)
    broken = fixable(app, tmp_path / "blocker")
    pending = waiting(tmp_path / "never")
    for state, expected in (("failed", broken), ("COMPLETED", done), ("running", pending)):
        result = cli(app, "status", "--state", state)
        assert result.exit_code == 0, result.output
        listed = {w.workflow_id for w in (done, broken, pending) if w.workflow_id in result.output}
        assert listed == {expected.workflow_id}, state


def test_status_label_keeps_workflows_whose_label_contains_the_text_in_any_case(app: Flask, tmp_path: Path) -> None:
    report = waiting(tmp_path / "a", name="nightly:report")
    export = waiting(tmp_path / "b", name="Nightly:Export")
    other = waiting(tmp_path / "c", name="adhoc")
    cli(app, "cancel", export.workflow_id)
    result = cli(app, "status", "--label", "NIGHTLY")
    assert report.workflow_id in result.output and export.workflow_id in result.output
    assert other.workflow_id not in result.output
    result = cli(app, "status", "--label", "nightly", "--state", "running")
    assert report.workflow_id in result.output and export.workflow_id not in result.output


def test_status_state_with_an_id_keeps_only_the_steps_in_that_state(app: Flask, tmp_path: Path) -> None:
    wf = fixable(app, tmp_path / "blocker")
    output = cli(app, "status", wf.workflow_id, "--state", "discarded").output
    table = output.splitlines()[3:]  # after the status, the outcome and the header
    assert [row.split()[0] for row in table if row and not row.startswith(" ")] == ["fix"]
    document = json.loads(cli(app, "status", wf.workflow_id, "--state", "cancelled", "--json").stdout)
    assert [step["name"] for step in document["steps"]] == ["after"]


def test_status_refuses_bad_options_with_usage_errors(app: Flask, tmp_path: Path) -> None:
    wf = waiting(tmp_path / "never")
    refusals = [
        (["--state", "exploded"], "'exploded' is not a workflow state; choose one of: running, completed, failed"),
        ([wf.workflow_id, "--state", "running"], "'running' is not a step state; choose one of: pending, available"),
        ([wf.workflow_id, "--label", "x"], "--label filters the list of workflows"),
        (["--watch"], "--watch needs a WORKFLOW_ID"),
        ([wf.workflow_id, "--watch", "--interval", "0"], "--interval"),
    ]
    for args, message in refusals:
        result = cli(app, "status", *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output


def test_status_json_lists_workflows_with_export_keys_and_the_next_page(app: Flask, tmp_path: Path) -> None:
    older = waiting(tmp_path / "a", name="older")
    newer = waiting(tmp_path / "b", name="newer")
    result = cli(app, "status", "--json", "--limit", "1")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["next_before"] == newer.workflow_id
    [listed] = document["workflows"]
    assert listed == {
        "id": newer.workflow_id,
        "name": "newer",
        "state": "running",
        "total_steps": 2,
        "settled_steps": 0,
        "created_at": listed["created_at"],
        "finished_at": None,
        "unique_key": None,
    }
    second = json.loads(cli(app, "status", "--json", "--state", "running").stdout)
    assert [w["id"] for w in second["workflows"]] == [newer.workflow_id, older.workflow_id]


def test_status_json_of_one_workflow_gives_counts_and_every_step(app: Flask, tmp_path: Path) -> None:
    wf = fixable(app, tmp_path / "blocker")
    pending = waiting(tmp_path / "never")
    document = json.loads(cli(app, "status", wf.workflow_id[:20], "--json").stdout)
    workflow = document["workflow"]
    assert (workflow["id"], workflow["state"], workflow["settled_steps"]) == (wf.workflow_id, "failed", 3)
    assert {k: v for k, v in workflow["counts"].items() if v} == {"completed": 1, "discarded": 1, "cancelled": 1}
    assert {"duration", "cost_usd", "created_at", "finished_at", "unique_key"} <= set(workflow)
    steps = {step["name"]: step for step in document["steps"]}
    assert list(steps) == ["root", "fix", "after"]
    assert steps["fix"]["state"] == "discarded" and "RuntimeError: blocked by" in steps["fix"]["error"]
    assert steps["after"]["deps"] == ["fix"] and steps["after"]["error"] == "dependency 'fix' discarded"
    pending_steps = json.loads(cli(app, "status", pending.workflow_id, "--json").stdout)["steps"]
    assert {s["name"]: s["waiting_on"] for s in pending_steps} == {"gate": [], "last": ["gate"]}


def test_status_shows_a_long_error_whole_wrapped_in_its_column(app: Flask) -> None:
    message = " ".join(f"word{index:02d}" for index in range(40))
    wf = Workflow("cli:long").add("boom", raise_message.new(message=message))
    with ThreadConsumer(app):
        wf.insert()
        wait_finished(app, wf.workflow_id)
    result = cli(app, "status", wf.workflow_id, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()[2:]  # after the status and outcome lines
    column = header.index("ERROR")
    assert len(rows) > 1 and all(len(row) <= 120 for row in rows)
    assert all(row[:column].strip() == "" for row in rows[1:])  # continuation lines stay in the column
    assert " ".join(row[column:] for row in rows) == f"RuntimeError: {message}"


def test_status_errors_prints_the_traceback_of_each_failed_step(app: Flask, tmp_path: Path) -> None:
    wf = fixable(app, tmp_path / "blocker")
    result = cli(app, "status", wf.workflow_id, "--errors")
    assert result.exit_code == 0, result.output
    traceback = result.output.split("--- fix (discarded, attempt 1) ---\n", 1)[1]
    assert traceback.startswith("Traceback (most recent call last):")
    assert "in fails_while_file_exists" in traceback and "RuntimeError: blocked by" in traceback
    assert "--- after" not in result.output  # cancelled, it raised nothing
    assert "no step failed" in cli(app, "status", completed(app).workflow_id, "--errors").output


# -- status --watch ----------------------------------------------------------------


def test_watch_redraws_until_the_workflow_completes_then_exits_0(
    app: Flask, tmp_path: Path, release_when_watched: Callable[[Path], None]
) -> None:
    release_when_watched(tmp_path / "go")
    with ThreadConsumer(app):
        wf = waiting(tmp_path / "go")
        result = cli(app, "status", wf.workflow_id, "--watch", "--interval", "0.02")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("cli:waiting (")]
    assert ": running," in lines[0] and ": completed," in lines[-1]


def test_watch_json_prints_a_document_per_change_and_exits_3_when_the_workflow_fails(
    app: Flask, tmp_path: Path, release_when_watched: Callable[[Path], None]
) -> None:
    release_when_watched(tmp_path / "go")
    with ThreadConsumer(app):
        wf = waiting(tmp_path / "go", last=always_fail)
        result = cli(app, "status", wf.workflow_id, "--watch", "--json", "--interval", "0.02")
    assert result.exit_code == 3, result.output
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert documents[0]["workflow"]["state"] == "running" and documents[-1]["workflow"]["state"] == "failed"
    assert len({json.dumps(d["steps"]) for d in documents}) == len(documents)  # printed on changes only


def test_watch_of_a_cancelled_workflow_exits_4(app: Flask, tmp_path: Path) -> None:
    wf = waiting(tmp_path / "never")
    cli(app, "cancel", wf.workflow_id)
    result = cli(app, "status", wf.workflow_id, "--watch")
    assert result.exit_code == 4, result.output
    assert "cli:waiting (" in result.output and ": cancelled," in result.output


def test_watch_stops_cleanly_on_ctrl_c_with_exit_130(app: Flask, settings: dict[str, Any], tmp_path: Path) -> None:
    wf = waiting(tmp_path / "never")
    watch = flask_baton(
        settings,
        "status",
        wf.workflow_id,
        "--watch",
        "--interval",
        "0.05",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert watch.stdout is not None
        assert ": running," in read_until(watch.stdout.fileno(), "WAITING ON")
        watch.send_signal(signal.SIGINT)
        _, errors = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 130
    assert errors.decode().strip() == "stopped watching"
    assert stored(app, wf.workflow_id)[0].state == "running"


# -- prune -------------------------------------------------------------------------


def rows_of(app: Flask, workflow_id: str) -> dict[str, int]:
    """Rows per table that belong to a workflow, read directly."""
    counts = {}
    with app.extensions["baton"].engine.connect() as conn:
        for name in TABLES:
            table = metadata.tables[name]
            column = table.c.id if name == "baton_workflows" else table.c.workflow_id
            counts[name] = conn.execute(sql_select(func.count()).where(column == workflow_id)).scalar_one()
    return counts


def printed_counts(output: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in output.splitlines() if line.startswith("  baton_")}


def old_and_running(app: Flask, tmp_path: Path) -> tuple[Workflow, Workflow]:
    """A finished workflow (older than the ``--max-age 0.001`` the tests pass) and a running one."""
    old = completed(app, "cli:old")
    finished_at = stored(app, old.workflow_id)[0].finished_at
    wait_for(lambda: time.time() > finished_at + 0.01, "the finished workflow to age")
    return old, waiting(tmp_path / "never")


def test_prune_dry_run_prints_rows_per_table_and_deletes_nothing(app: Flask, tmp_path: Path) -> None:
    old, running = old_and_running(app, tmp_path)
    expected = rows_of(app, old.workflow_id)
    assert (expected["baton_workflows"], expected["baton_nodes"], expected["baton_edges"]) == (1, 2, 1)
    result = cli(app, "prune", "--max-age", "0.001", "--dry-run")  # no --yes, no terminal: never asks
    assert result.exit_code == 0, result.output
    assert result.output.startswith("would remove:\n")
    assert printed_counts(result.output) == expected
    assert rows_of(app, old.workflow_id) == expected


def test_prune_without_yes_or_a_terminal_refuses_and_deletes_nothing(app: Flask, tmp_path: Path) -> None:
    old, _ = old_and_running(app, tmp_path)
    expected = rows_of(app, old.workflow_id)
    result = cli(app, "prune", "--max-age", "0.001")
    assert result.exit_code == 1
    assert "standard input is not a terminal; pass --yes to delete" in result.output
    assert printed_counts(result.output) == expected
    assert rows_of(app, old.workflow_id) == expected


def test_prune_yes_deletes_what_it_counted_and_keeps_running_workflows(app: Flask, tmp_path: Path) -> None:
    old, running = old_and_running(app, tmp_path)
    expected = rows_of(app, old.workflow_id)
    kept = stored(app, running.workflow_id)
    result = cli(app, "prune", "--max-age", "0.001", "--yes")
    assert result.exit_code == 0, result.output
    counted, removed = result.output.split("removed:\n")
    assert printed_counts(counted) == printed_counts("removed:\n" + removed) == expected
    assert set(rows_of(app, old.workflow_id).values()) == {0}
    assert stored(app, running.workflow_id) == kept
    again = cli(app, "prune", "--max-age", "0.001")
    assert again.exit_code == 0 and again.output == "nothing to prune\n"


def test_prune_on_a_terminal_asks_and_deletes_only_when_told_yes(
    app: Flask, settings: dict[str, Any], tmp_path: Path
) -> None:
    old, _ = old_and_running(app, tmp_path)
    expected = rows_of(app, old.workflow_id)
    for answer, exit_code in ((b"n\n", 1), (b"y\n", 0)):
        controller, terminal = pty.openpty()
        prune = flask_baton(settings, "prune", "--max-age", "0.001", stdin=terminal, stdout=terminal, stderr=terminal)
        os.close(terminal)
        try:
            asked = read_until(controller, "[y/N]: ")
            assert printed_counts(asked.replace("\r\n", "\n")) == expected
            assert f"Delete these {sum(expected.values())} row(s)?" in asked
            os.write(controller, answer)
            read_until(controller, None)  # the rest, until it exits and closes the terminal
            assert prune.wait(timeout=30) == exit_code
        finally:
            if prune.poll() is None:
                prune.kill()
            os.close(controller)
        after = rows_of(app, old.workflow_id)
        assert after == (expected if answer == b"n\n" else dict.fromkeys(expected, 0))


# -- status --step -------------------------------------------------------------------


def test_status_step_lists_every_run_of_a_step_and_their_tracebacks(app: Flask, tmp_path: Path) -> None:
    wf = fixable(app, tmp_path / "blocker")
    (tmp_path / "blocker").unlink()
    assert cli(app, "retry", wf.workflow_id, "fix").exit_code == 0
    with ThreadConsumer(app):
        wait_finished(app, wf.workflow_id)

    result = cli(app, "status", wf.workflow_id[:12], "--step", "fix", "--errors", env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    header, first, second, *rest = result.output.splitlines()
    assert header.split() == ["RUN", "OUTCOME", "STARTED", "DURATION", "WORKER", "ERROR"]
    assert first.split()[:2] == ["#1", "discarded"] and "RuntimeError: blocked by" in first
    assert second.split()[:2] == ["#1", "completed"]
    traceback = result.output.split("--- run 1 (attempt 1, discarded) ---\n", 1)[1]
    assert traceback.startswith("Traceback (most recent call last):") and "in fails_while_file_exists" in traceback
    document = json.loads(cli(app, "status", wf.workflow_id, "--step", "fix", "--json").stdout)
    assert [(a["attempt"], a["outcome"]) for a in document["attempts"]] == [(1, "discarded"), (1, "completed")]
    assert (document["step_name"], document["attempts"][1]["error"]) == ("fix", None)


def test_status_step_refuses_an_unknown_step_and_options_for_the_step_list(app: Flask, tmp_path: Path) -> None:
    wf = waiting(tmp_path / "never")
    unknown = cli(app, "status", wf.workflow_id, "--step", "nope")
    assert unknown.exit_code == 1 and "has no step named 'nope'" in unknown.output
    for args in (["--step", "gate"], [wf.workflow_id, "--step", "gate", "--watch"]):
        refused = cli(app, "status", *args)
        assert refused.exit_code == 2, refused.output
    assert "this step has not run yet" in cli(app, "status", wf.workflow_id, "--step", "last").output
