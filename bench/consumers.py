"""Consumer subprocesses: start them, watch them, and always stop them.

Each consumer runs in its own session (process group), so stopping it also
stops the worker processes Huey forked. Every started consumer is tracked
here and stopped by ``stop_all()`` (called from the driver's ``finally``,
from ``atexit`` and from its SIGTERM handler); on Linux the consumer also
gets SIGTERM if the driver dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# The polling settings both consumers get (identical on purpose).
WORKERS = 2
WORKER_TYPE = "process"
INITIAL_DELAY = 0.001
MAX_DELAY = 0.05

_running: list[Consumer] = []


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


def baton_command() -> list[str]:
    return [
        _tool("flask"),
        "--app",
        "bench.app:create_app",
        "baton",
        "worker",
        "-w",
        str(WORKERS),
        "-k",
        WORKER_TYPE,
        "--delay",
        str(INITIAL_DELAY),
        "--max-delay",
        str(MAX_DELAY),
    ]


def raw_command() -> list[str]:
    return [
        _tool("huey_consumer"),
        "bench.raw.huey",
        "-w",
        str(WORKERS),
        "-k",
        WORKER_TYPE,
        "-d",
        str(INITIAL_DELAY),
        "-m",
        str(MAX_DELAY),
    ]


class Consumer:
    """One consumer subprocess (and its forked workers), logging to a file."""

    def __init__(self, label: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.label = label
        self.command = command
        self.log_path = log_path
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        _running.append(self)

    def check_alive(self) -> None:
        """Raise if the consumer exited (with the tail of its log)."""
        code = self.process.poll()
        if code is not None:
            raise RuntimeError(f"{self.label} consumer exited with code {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Graceful stop (SIGINT), then SIGTERM, then SIGKILL, to the whole group."""
        pgid = self.process.pid  # session leader: its pid is the group id
        for sig, wait in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            if self.process.poll() is None or _group_alive(pgid):
                try:
                    if sig == signal.SIGINT:
                        self.process.send_signal(sig)  # the consumer's own graceful stop
                    else:
                        os.killpg(pgid, sig)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and (self.process.poll() is None or _group_alive(pgid)):
                    time.sleep(0.02)
        self.process.poll()
        self._log.close()
        if self in _running:
            _running.remove(self)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader keeps the group "alive" until reaped.
    return True


def stop_all() -> None:
    for consumer in list(_running):
        try:
            consumer.stop()
        except Exception as exc:  # keep stopping the others
            print(f"warning: could not stop {consumer.label}: {exc}", file=sys.stderr)


atexit.register(stop_all)
