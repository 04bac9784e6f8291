"""Opt-in count of the SQL statements a consumer process sends, for the per-step figures.

The benchmark sets ``BENCH_COUNT_DIR`` in its consumers' environment only;
``install_from_env()`` (called when ``bench.app`` or ``bench.raw`` is
imported) then patches, in that process:

- ``sqlite3.connect``: every connection opened afterwards (Huey's
  ``SqliteStorage`` and SQLAlchemy's pysqlite alike) gets a trace callback,
  which SQLite calls once per statement it starts, BEGIN and COMMIT included;
- ``psycopg.Cursor.execute`` / ``executemany``: flask_baton's hot path sends
  its statements straight to psycopg's cursor, past SQLAlchemy's events;
- redis-py: its command packers (every command, alone or in a pipeline, is
  packed once) and ``send_packed_command`` (one call per request written: a
  command, or a whole pipeline, so one round trip). ``INFO commandstats``
  counts every client of the server, other users of a shared Redis
  included, and a request's TCP segments grow with its size (a raw Huey
  chain's message carries the rest of the chain).

Without the variable nothing is patched, so nothing costs anything. With it,
a statement costs one Python call more (about a microsecond).

Each process counts into its own small file (``<dir>/<pid>-<random>``, memory-mapped),
re-opened in a forked worker (``os.register_at_fork``), so no process talks
to another; the driver sums the files before and after a run
(``read_totals``).
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

ENV = "BENCH_COUNT_DIR"

#: Counter slots, 8 bytes each: SQL statements other than transaction
#: control, commits (SQLite only: psycopg sends its BEGIN/COMMIT past the
#: cursor), Redis commands, Redis requests written (round trips).
SLOTS = ("statements", "commits", "redis_commands", "redis_round_trips")
_FORMAT = "<" + "q" * len(SLOTS)
_SIZE = struct.calcsize(_FORMAT)

#: Statements SQLite traces that are not the work itself.
_CONTROL = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")

_dir: str | None = None
_view: Any = None  # memoryview of int64 counters for this process
_map: mmap.mmap | None = None


def _open() -> None:
    """Counters of this process (a fresh file after a fork)."""
    global _view, _map
    assert _dir is not None
    # The pid, then a random suffix: a consumer that forks a process per job
    # (RQ) can see a pid again within a run, whose file must not be reset.
    path = os.path.join(_dir, f"{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, _SIZE)
        _map = mmap.mmap(fd, _SIZE)
    finally:
        os.close(fd)
    _view = memoryview(_map).cast("q")


def _trace(sql: str) -> None:
    head = sql.lstrip()[:9].upper()
    if head.startswith("--"):  # a statement run by a trigger
        return
    if head.startswith(("COMMIT", "END")):
        _view[1] += 1
    elif not head.startswith(_CONTROL):
        _view[0] += 1


def _patch_sqlite() -> None:
    import sqlite3
    import sqlite3.dbapi2

    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = original(*args, **kwargs)
        conn.set_trace_callback(_trace)
        return conn

    # Huey calls ``sqlite3.connect``, SQLAlchemy ``sqlite3.dbapi2.connect``.
    sqlite3.connect = sqlite3.dbapi2.connect = connect


def _patch_psycopg() -> None:
    try:
        import psycopg
    except ImportError:
        return
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany

    def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        _view[0] += 1
        return execute(self, *args, **kwargs)

    def counted_executemany(self: Any, query: Any, params_seq: Any, *args: Any, **kwargs: Any) -> Any:
        params_seq = list(params_seq)
        _view[0] += len(params_seq)
        return executemany(self, query, params_seq, *args, **kwargs)

    psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
    psycopg.Cursor.executemany = counted_executemany  # type: ignore[method-assign]


def _patch_redis() -> None:
    try:
        from redis import connection
    except ImportError:
        return
    for name in ("PythonRespSerializer", "HiredisRespSerializer"):
        packer = getattr(connection, name, None)
        if packer is not None:
            packer.pack = _counted(packer.pack, 2)
    sender = connection.AbstractConnection
    sender.send_packed_command = _counted(sender.send_packed_command, 3)  # type: ignore[method-assign]


def _counted(method: Any, slot: int) -> Any:
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _view[slot] += 1
        return method(self, *args, **kwargs)

    return counted


def install_from_env() -> None:
    """Count this process's statements if the benchmark asked for it (once)."""
    global _dir
    wanted = os.environ.get(ENV)
    if not wanted or _dir is not None:
        return
    _dir = wanted
    _open()
    os.register_at_fork(after_in_child=_open)
    _patch_sqlite()
    _patch_psycopg()
    _patch_redis()


def read_totals(directory: Path) -> dict[str, int] | None:
    """Every process's counters in ``directory``, summed (dead processes' too);
    None if no process counted there (a consumer that does not install them)."""
    files = list(directory.glob("[0-9]*"))
    if not files:
        return None
    totals = dict.fromkeys(SLOTS, 0)
    for path in files:
        data = path.read_bytes()
        if len(data) == _SIZE:
            for slot, value in zip(SLOTS, struct.unpack(_FORMAT, data)):
                totals[slot] += value
    return totals
