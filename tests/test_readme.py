"""README.md runs as printed, from an empty directory, with real consumers.

The blocks are read from README.md at test time; no copy of them is kept here.

- A ```python block whose first line is ``# <name>.py`` is that file: it is
  written into an empty directory (the Quick start's ``myapp.py``).
- The Quick start's ```sh block then runs there, line by line, as subprocesses
  (``flask`` is this interpreter's ``python -m flask``): ``baton worker`` in the
  background, the others to completion. A command printing a workflow id is
  followed until ``baton status`` shows that workflow ``completed``.
- Every other ```python block runs, in README order, in one namespace, as if
  typed into ``flask --app myapp shell`` after ``from myapp import *``: in an
  app context of ``myapp.create_app()``, with ``workflow_id`` the Quick start's
  workflow, ``client`` an offline stand-in for ``openai.OpenAI()``, and real
  consumers of the default and ``llm`` queues in threads. Every workflow the
  blocks start must then finish, none ``failed``.
- ``<!-- not-run: why -->`` on the line directly above a fence skips that
  block; the why is required.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import signal
import sys
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from blinker import Signal
from flask import Flask, g

from flask_baton import telemetry
from flask_baton.usage import Stats

from .support import ThreadConsumer, wait_for

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>\S*)\s*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<why>.*?)-->\s*$")
FILE_LINE = re.compile(r"^# (?P<name>[\w./-]+\.py)$")
WORKFLOW_ID = re.compile(r"^[0-9a-f]{32}$")
#: Seconds a command, or a workflow started by the README, may take.
DEADLINE = 60.0


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    language: str
    code: str
    line: int  # README line of the block's first line of code
    heading: str  # the nearest heading above it
    not_run: str | None  # the why of a not-run marker above it

    @property
    def file_name(self) -> str | None:
        """The file this block is, when its first line names one (``# myapp.py``)."""
        first = self.code.splitlines()[0] if self.code else ""
        match = FILE_LINE.match(first)
        return match["name"] if match else None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, dedented by its fence's indent."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = ""
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            if lines[index].startswith("#"):
                heading = lines[index].lstrip("#").strip()
            index += 1
            continue
        indent = fence["indent"]
        end = lines.index(f"{indent}```", index + 1)
        marker = NOT_RUN.match(lines[index - 1]) if index else None
        code = "\n".join(line[len(indent):] for line in lines[index + 1:end]) + "\n"
        blocks.append(Block(fence["language"], code, index + 2, heading, marker["why"].strip() if marker else None))
        index = end + 1
    return blocks


def test_every_not_run_marker_says_why_and_sits_on_a_fence() -> None:
    lines = README.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        marker = NOT_RUN.match(line)
        if marker is None:
            continue
        assert marker["why"].strip(), f"README.md:{number}: a not-run marker must say why"
        assert number < len(lines) and FENCE.match(lines[number]), f"README.md:{number}: not directly above a fence"


def test_the_quick_start_is_a_file_and_its_commands() -> None:
    quick_start = [b for b in readme_blocks(README.read_text()) if b.heading == "Quick start"]
    assert [(b.language, b.file_name) for b in quick_start] == [("python", "myapp.py"), ("sh", None)]
    assert all(b.not_run is None for b in quick_start)


# -- running it ------------------------------------------------------------------


class OfflineChat:
    """Stands in for ``openai.OpenAI()``: the same call and response shape, no network.

    Its answer is the five longest words of the prompt, one per line; its usage
    counts words as tokens, a quarter of them cached.
    """

    def __init__(self) -> None:
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))
        self.calls: list[str] = []

    def _create(self, *, model: str, messages: list[dict[str, str]], timeout: float) -> Any:
        self.calls.append(model)
        words = {w.strip(".,:;()[]{}\"'`").lower() for w in messages[-1]["content"].split()} - {""}
        answer = sorted(words, key=lambda w: (-len(w), w))[:5]
        prompt_tokens = len(messages[-1]["content"].split())
        body = {
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "\n".join(answer)}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(answer),
                      "prompt_tokens_details": {"cached_tokens": prompt_tokens // 4}},
        }
        response = _as_object(body)
        response.model_dump = lambda: body
        return response


def _as_object(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**{key: _as_object(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_as_object(item) for item in value]
    return value


@pytest.fixture
def backend_environment(settings: dict[str, Any]) -> dict[str, str]:
    """``FLASK_*`` variables that move the Quick start's app onto the backend under test.

    SQLite runs on the Quick start's own defaults (files in its instance
    folder); ``postgres-redis`` on the test's fresh schema and Redis names.
    """
    if settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return {}
    return {f"FLASK_{key}": str(value) for key, value in settings.items() if key != "TEST_LEDGER"}


def _command(line: str) -> tuple[list[str], str | None]:
    """The line as this interpreter's ``python -m flask ...``, and its ``baton`` subcommand if any."""
    words = shlex.split(line, comments=True)
    assert words and words[0] == "flask", f"the Quick start's commands are flask commands, got {line!r}"
    baton = words[words.index("baton") + 1] if "baton" in words[:-1] else None
    return [sys.executable, "-m", "flask", *words[1:]], baton


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, f"{shlex.join(command[2:])} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _completed_in_status(command: list[str], cwd: Path, env: dict[str, str], workflow_id: str) -> str | None:
    output = _run(command, cwd, env)
    rows = [line.split() for line in output.splitlines() if workflow_id in line]
    assert not rows or not {"failed", "cancelled"} & set(rows[0]), f"the workflow did not complete:\n{output}"
    return output if rows and "completed" in rows[0] else None


def run_quick_start_commands(directory: Path, env: dict[str, str]) -> str:
    """Run the Quick start's sh block in ``directory``; return the workflow it started."""
    (commands,) = [b for b in readme_blocks(README.read_text()) if b.heading == "Quick start" and b.language == "sh"]
    lines = [line for line in commands.code.splitlines() if shlex.split(line, comments=True)]
    worker: subprocess.Popen[str] | None = None
    workflow_id = ""
    try:
        for line in lines:
            command, baton = _command(line)
            if baton == "worker":
                worker = subprocess.Popen(command, cwd=directory, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            elif baton == "status" and workflow_id:
                wait_for(lambda: _completed_in_status(command, directory, env, workflow_id),
                         f"`{line.split('#')[0].strip()}` to show {workflow_id} completed", DEADLINE)
            else:
                last = (_run(command, directory, env).strip().splitlines() or [""])[-1]
                workflow_id = last if WORKFLOW_ID.match(last) else workflow_id
    finally:
        output = _stop(worker)
    assert worker is not None, "the Quick start starts no `flask baton worker`"
    assert workflow_id, "no Quick start command printed the id of the workflow it started"
    assert worker.returncode == 0 and "Traceback" not in output, output
    return workflow_id


def _stop(worker: subprocess.Popen[str] | None) -> str:
    """Ctrl-C the worker (Huey's graceful stop); return what it printed."""
    if worker is None:
        return ""
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
    try:
        output, _ = worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        output, _ = worker.communicate()
    return output


@pytest.fixture
def restored_telemetry() -> Iterator[None]:
    """Disconnect the receivers README blocks connect, and restore the logger's level."""
    signals = [*(telemetry.step_signal(s) for s in telemetry.STEP_STATES), telemetry.workflow_finished,
               telemetry.plugin_rescued, telemetry.plugin_pruned]
    before = {sig: set(sig.receivers) for sig in signals}
    level = telemetry.logger.level
    yield
    telemetry.logger.setLevel(level)
    for sig in signals:
        for key in set(sig.receivers) - before[sig]:
            _disconnect(sig, sig.receivers[key])


def _disconnect(sig: Signal, receiver: Any) -> None:
    target = receiver() if isinstance(receiver, weakref.ref) else receiver
    if target is not None:
        sig.disconnect(target)


@pytest.fixture
def quick_start_module() -> Iterator[None]:
    """Forget the Quick start's ``myapp`` module after the test, as a new shell would."""
    yield
    sys.modules.pop("myapp", None)


def run_python_blocks(workflow_id: str, client: OfflineChat) -> Flask:
    """Run every python block that is not a file, in order, in one shell-like namespace; return its app."""
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec("from myapp import *", namespace)
    app = sys.modules["myapp"].create_app()
    namespace.update(app=app, g=g, workflow_id=workflow_id, client=client)
    blocks = [b for b in readme_blocks(README.read_text())
              if b.language == "python" and b.file_name is None and b.not_run is None]
    with app.app_context(), ThreadConsumer(app, workers=4), ThreadConsumer(app, workers=4, queue="llm"):
        for block in blocks:
            # Padded so a traceback names the README's own line numbers.
            code = compile("\n" * (block.line - 1) + block.code, str(README), "exec")
            try:
                exec(code, namespace)
            except Exception as error:
                error.add_note(f"in the README block at line {block.line}, under {block.heading!r}")
                raise
        _wait_all_finished(app)
    return app


def _wait_all_finished(app: Flask) -> None:
    query = app.extensions["baton"].query

    def all_finished() -> bool:
        return not query.list_workflows(state="running", limit=1).workflows

    wait_for(all_finished, "every workflow the README started to finish", DEADLINE)


def test_readme_runs_as_printed_from_an_empty_directory(
    tmp_path: Path,
    backend_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    restored_telemetry: None,
    quick_start_module: None,
) -> None:
    directory = tmp_path / "project"
    directory.mkdir()
    for block in readme_blocks(README.read_text()):
        if block.language == "python" and block.file_name and block.not_run is None:
            (directory / block.file_name).write_text(block.code)
    for key, value in backend_environment.items():
        monkeypatch.setenv(key, value)
    workflow_id = run_quick_start_commands(directory, dict(os.environ))
    if not backend_environment:  # the Quick start's defaults: its files in its instance folder
        assert {"app.db", "baton-huey.db"} <= {p.name for p in (directory / "instance").iterdir()}

    # The rest runs from the same directory, as `flask shell` would.
    monkeypatch.chdir(directory)
    monkeypatch.syspath_prepend(str(directory))
    client = OfflineChat()
    app = run_python_blocks(workflow_id, client)
    state = app.extensions["baton"]
    try:
        with app.app_context():
            workflows = state.query.list_workflows(limit=1000).workflows
            failed = {  # with each step's error, to say why
                f"{w.name} ({w.state.value})": {s.step_name: s.error for s in state.query.get_workflow_jobs(w.id)}
                for w in workflows if w.state.value not in ("completed", "cancelled")
            }
            usage = Stats(state.engine).total()
    finally:
        state.events.close()
        state.engine.dispose()
    assert len(workflows) > 1, "the README's blocks started no workflow"
    assert failed == {}
    assert usage.calls == len(client.calls) > 0 and usage.cost_usd > 0, usage
