"""A cross-process, append-only record of what ran, for timing and counting.

Every benchmark task (flask_baton step or raw Huey task) appends one short
line when its function runs (``x <key>``), and a Huey ``SIGNAL_EXECUTING``
handler appends one line per Huey delivery (``d <first task arg>``). Writes
use ``O_APPEND`` so lines from worker processes never interleave.

The driver tails the file: a cheap ``read()`` every millisecond tells it when
the last task ran without querying the database or the queue in a tight loop
(which would steal CPU from the two worker processes on a small machine).
"""

from __future__ import annotations

import os
import time
from collections import Counter

_path: str | None = os.environ.get("BENCH_LEDGER") or None
_fd: int | None = None
_pid: int | None = None


def set_path(path: str | None) -> None:
    """Point this process's writes at ``path`` (the profile runs in-process)."""
    global _path, _fd, _pid
    if _fd is not None and _pid == os.getpid():
        os.close(_fd)
    _path, _fd, _pid = path, None, None


def write(kind: str, key: str) -> None:
    """Append ``<kind> <key>`` (no-op when no ledger is configured)."""
    global _fd, _pid
    if _path is None:
        return
    if _fd is None or _pid != os.getpid():  # first write, or a forked worker
        _fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _pid = os.getpid()
    os.write(_fd, f"{kind} {key}\n".encode())


class Tail:
    """The driver's view of a ledger: new lines since the last look."""

    def __init__(self, path: str) -> None:
        self.path = path
        open(path, "ab").close()
        self._file = open(path, "rb")
        self._partial = b""
        self.lines: list[str] = []

    def mark(self) -> int:
        """Consume what is there now; return the index where new lines start."""
        self.poll()
        return len(self.lines)

    def poll(self) -> int:
        """Read what was appended; return how many new complete lines arrived."""
        data = self._file.read()
        if not data:
            return 0
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        self.lines.extend(line.decode() for line in complete)
        return len(complete)

    def wait_count(self, start: int, prefix: str, count: int, deadline: float, alive=None) -> float:
        """Block (polling every ~1 ms) until ``count`` lines starting with
        ``prefix`` exist from index ``start``; return ``time.perf_counter()``
        when they were first seen."""
        seen = sum(1 for line in self.lines[start:] if line.startswith(prefix))
        checked = len(self.lines)
        while True:
            self.poll()
            if len(self.lines) > checked:
                seen += sum(1 for line in self.lines[checked:] if line.startswith(prefix))
                checked = len(self.lines)
            if seen >= count:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TimeoutError(f"saw {seen}/{count} ledger lines starting with {prefix!r}")
            if alive is not None:
                alive()
            time.sleep(0.001)

    def counts(self, start: int = 0) -> Counter[str]:
        """How many times each whole line occurs from index ``start``."""
        self.poll()
        return Counter(self.lines[start:])

    def close(self) -> None:
        self._file.close()
