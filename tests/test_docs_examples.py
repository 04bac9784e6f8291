"""The documentation runs as printed, with real consumers: README.md and every page of docs/.

The blocks are read from the Markdown at test time; no copy of them is kept here.

- A ```python block whose first line is ``# <name>.py`` is that file: it is
  written into an empty directory (the README Quick start's ``myapp.py``).
- The README's Quick start ```sh block then runs there, line by line, as
  subprocesses (``flask`` is this interpreter's ``python -m flask``):
  ``baton worker`` in the background, the others to completion. A command
  printing a workflow id is followed until ``baton status`` shows that
  workflow ``completed``.
- Every other ```python block runs as if typed into ``flask --app myapp shell``
  after ``from myapp import *``: in an app context of ``myapp.create_app()``,
  with ``workflow_id`` the Quick start's workflow, ``client`` an offline
  stand-in for ``openai.OpenAI()``, and real consumers of the default and
  ``llm`` queues in threads. Each document has a namespace of its own and runs
  its blocks in order, so a page must not lean on another page's names. A page
  of docs/ (one test per page) runs after the same Quick start commands ran in
  this process: ``flask`` commands through Flask's CLI runner, the consumer
  threads standing in for ``flask baton worker``. Every workflow the blocks
  start must then finish, none ``failed``, and every chat call be recorded.
- ``<!-- not-run: why -->`` on the line directly above a fence skips that
  block; the why is required.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shlex
import signal
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from blinker import Signal
from flask import Flask, g

from flask_baton import telemetry
from flask_baton.usage import Stats

from .docs_support import (
    NOT_RUN,
    README,
    ROOT,
    Block,
    OfflineChat,
    documents,
    fenced_blocks,
    pages_with_examples,
)
from .support import ThreadConsumer, wait_for

WORKFLOW_ID = re.compile(r"^[0-9a-f]{32}$")
#: Seconds a command, or a workflow started by the documentation, may take.
DEADLINE = 60.0
#: Fence languages under which Python would escape the tests; write ```python.
PYTHON_ALIASES = {"py", "python3", "py3", "pycon", "ipython"}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("document", documents(), ids=_name)
def test_every_not_run_marker_says_why_and_sits_on_a_fence(document: Path) -> None:
    lines = document.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        marker = NOT_RUN.match(line)
        if marker is None:
            continue
        assert marker["why"].strip(), f"{_name(document)}:{number}: a not-run marker must say why"
        assert number < len(lines) and lines[number].lstrip().startswith("```"), (
            f"{_name(document)}:{number}: not directly above a fence"
        )


@pytest.mark.parametrize("document", documents(), ids=_name)
def test_python_examples_are_fenced_as_python(document: Path) -> None:
    aliased = [b.where for b in fenced_blocks(document) if b.language in PYTHON_ALIASES]
    assert aliased == [], "fence these as ```python, so the tests run them"


def test_the_quick_start_is_a_file_and_its_commands() -> None:
    quick_start = [b for b in fenced_blocks(README) if b.heading == "Quick start"]
    assert [(b.language, b.file_name) for b in quick_start] == [("python", "myapp.py"), ("sh", None)]
    assert all(b.not_run is None for b in quick_start)


def test_the_examples_moved_from_the_readme_are_still_run() -> None:
    assert {"workflows.md", "events.md", "llm.md"} <= {page.name for page in pages_with_examples()}


# -- the Quick start's commands -------------------------------------------------


class Commands(Protocol):
    """Where the Quick start's ``flask`` commands run; ``words`` follow ``flask``."""

    def run(self, words: list[str]) -> str: ...

    def start_worker(self, words: list[str]) -> None: ...


def follow_quick_start(commands: Commands) -> str:
    """Run the Quick start's sh block through ``commands``; return the workflow it started."""
    (block,) = [b for b in fenced_blocks(README) if b.heading == "Quick start" and b.language == "sh"]
    workflow_id = ""
    worker_started = False
    for line in block.code.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "flask", f"the Quick start's commands are flask commands, got {line!r}"
        baton = words[words.index("baton") + 1] if "baton" in words[:-1] else None
        if baton == "worker":
            commands.start_worker(words[1:])
            worker_started = True
        elif baton == "status" and workflow_id:
            wait_for(
                lambda words=words, workflow_id=workflow_id: _completed_in_status(commands.run(words[1:]), workflow_id),
                f"`{line.split('#')[0].strip()}` to show {workflow_id} completed",
                DEADLINE,
            )
        else:
            last = (commands.run(words[1:]).strip().splitlines() or [""])[-1]
            workflow_id = last if WORKFLOW_ID.match(last) else workflow_id
    assert worker_started, "the Quick start starts no `flask baton worker`"
    assert workflow_id, "no Quick start command printed the id of the workflow it started"
    return workflow_id


def _completed_in_status(output: str, workflow_id: str) -> bool:
    rows = [line.split() for line in output.splitlines() if workflow_id in line]
    assert not rows or not {"failed", "cancelled"} & set(rows[0]), f"the workflow did not complete:\n{output}"
    return bool(rows) and "completed" in rows[0]


class Shell:
    """The commands as subprocesses in ``directory``, ``flask`` being this interpreter's ``python -m flask``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.worker: subprocess.Popen[str] | None = None

    def run(self, words: list[str]) -> str:
        command = [sys.executable, "-m", "flask", *words]
        done = subprocess.run(command, cwd=self.directory, capture_output=True, text=True, timeout=DEADLINE)
        assert done.returncode == 0, f"flask {shlex.join(words)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def start_worker(self, words: list[str]) -> None:
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "flask", *words],
            cwd=self.directory,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def stop_worker(self) -> None:
        """Ctrl-C the worker (Huey's graceful stop); it must have run without a traceback."""
        if self.worker is None:
            return
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGINT)
        try:
            output, _ = self.worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            output, _ = self.worker.communicate()
        assert self.worker.returncode == 0 and "Traceback" not in output, output


class InProcess:
    """The commands in this process: through the app's CLI runner, consumer threads for the worker."""

    def __init__(self, app: Flask, stack: contextlib.ExitStack) -> None:
        self.app = app
        self.stack = stack

    @staticmethod
    def _after_app_option(words: list[str]) -> list[str]:
        return words[2:] if words[:1] == ["--app"] else words

    def run(self, words: list[str]) -> str:
        result = self.app.test_cli_runner().invoke(args=self._after_app_option(words))
        assert result.exit_code == 0, f"flask {shlex.join(words)} exited {result.exit_code}:\n{result.output}"
        return result.output

    def start_worker(self, words: list[str]) -> None:
        self.stack.enter_context(ThreadConsumer(self.app, workers=4))
        self.stack.enter_context(ThreadConsumer(self.app, workers=4, queue="llm"))


# -- the examples -----------------------------------------------------------------


def run_examples(blocks: list[Block], app: Flask, workflow_id: str, client: OfflineChat) -> None:
    """Run ``blocks`` in order in one shell-like namespace; wait for every workflow to finish."""
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec("from myapp import *", namespace)
    namespace.update(app=app, g=g, workflow_id=workflow_id, client=client)
    for block in blocks:
        # Padded so a traceback names the document's own line numbers.
        code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            error.add_note(f"in the block at {block.where}")
            raise
    query = app.extensions["baton"].query
    wait_for(
        lambda: not query.list_workflows(state="running", limit=1).workflows,
        "every workflow the examples started to finish",
        DEADLINE,
    )


def check_outcomes(app: Flask, client: OfflineChat) -> None:
    """No workflow failed, each naming its steps' errors; every chat call is recorded usage."""
    state = app.extensions["baton"]
    workflows = state.query.list_workflows(limit=1000).workflows
    failed = {
        f"{w.name} ({w.state.value})": {s.step_name: s.error for s in state.query.get_workflow_jobs(w.id)}
        for w in workflows
        if w.state.value not in ("completed", "cancelled")
    }
    usage = Stats(state.engine).total()
    assert failed == {}
    assert usage.calls == len(client.calls), usage
    assert usage.cost_usd is None or not client.calls or usage.cost_usd > 0, usage


@contextlib.contextmanager
def closing_state(app: Flask) -> Iterator[None]:
    """Release what flask_baton opened for the app at the end (``Baton.close``), as a process exit would.

    Its Huey storage too: Python 3.13 warns about a SQLite connection left to
    the garbage collector, and the suite treats that warning as an error.
    """
    state = app.extensions["baton"]
    try:
        yield
    finally:
        state.close()


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def backend_environment(settings: dict[str, Any]) -> dict[str, str]:
    """``FLASK_*`` variables that move the Quick start's app onto the backend under test.

    SQLite runs on the Quick start's own defaults (files in its instance
    folder); ``postgres-redis`` on the test's fresh schema and Redis names.
    """
    if settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return {}
    return {f"FLASK_{key}": str(value) for key, value in settings.items() if key != "TEST_LEDGER"}


@pytest.fixture
def quick_start_directory(
    tmp_path: Path, backend_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """An empty directory holding the README's files, the working directory, on ``sys.path``.

    The ``myapp`` module imported from it is forgotten afterwards, as a new shell would.
    """
    directory = tmp_path / "project"
    directory.mkdir()
    for block in fenced_blocks(README):
        if block.language == "python" and block.file_name and block.not_run is None:
            (directory / block.file_name).write_text(block.code)
    for key, value in backend_environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(directory)
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    sys.modules.pop("myapp", None)


@pytest.fixture
def restored_telemetry() -> Iterator[None]:
    """Disconnect the receivers the examples connect, and restore the logger's level."""
    signals = [
        *(telemetry.step_signal(s) for s in telemetry.STEP_STATES),
        telemetry.workflow_finished,
        telemetry.plugin_rescued,
        telemetry.plugin_pruned,
    ]
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


# -- the tests that run them ----------------------------------------------------------


def test_readme_runs_as_printed_from_an_empty_directory(
    quick_start_directory: Path, backend_environment: dict[str, str], restored_telemetry: None
) -> None:
    shell = Shell(quick_start_directory)
    try:
        workflow_id = follow_quick_start(shell)
    finally:
        shell.stop_worker()
    if not backend_environment:  # the Quick start's defaults: its files in its instance folder
        assert {"app.db", "baton-huey.db"} <= {p.name for p in (quick_start_directory / "instance").iterdir()}

    # The rest runs from the same directory, as `flask shell` would.
    client = OfflineChat()
    app = importlib.import_module("myapp").create_app()
    with closing_state(app), app.app_context():
        with ThreadConsumer(app, workers=4), ThreadConsumer(app, workers=4, queue="llm"):
            run_examples([b for b in fenced_blocks(README) if b.runs], app, workflow_id, client)
        check_outcomes(app, client)
        assert app.extensions["baton"].query.get_workflow(workflow_id).state.value == "completed"


@pytest.mark.parametrize("page", pages_with_examples(), ids=_name)
def test_docs_page_runs_as_printed_after_the_quick_start(
    page: Path, quick_start_directory: Path, restored_telemetry: None
) -> None:
    client = OfflineChat()
    app = importlib.import_module("myapp").create_app()
    with closing_state(app), app.app_context():
        with contextlib.ExitStack() as consumers:
            workflow_id = follow_quick_start(InProcess(app, consumers))
            run_examples([b for b in fenced_blocks(page) if b.runs], app, workflow_id, client)
        check_outcomes(app, client)
