"""What a timed run costs besides wall time: CPU by part, round trips, statements.

``Meter.begin(system)`` runs just before a scenario's clock starts and
``Meter.end(system)`` just after it stops (``System.clock_start/stop``).
Everything slow (``ss``, ``INFO``, ``pg_stat_activity``) happens before the
CPU readings at the start and after them at the end, so the CPU window is the
timed window plus a few reads of ``/proc``.

CPU is utime + stime from ``/proc/<pid>/stat`` (clock ticks, 10 ms on Linux:
summed over a run's processes, a few ticks of error per run), by part:

- ``consumers``: the timed system's consumer, its whole process group (the
  main process and its worker processes), plus the CPU of the children they
  reaped during the run (cutime + cstime): RQ forks a work horse per job,
  which lives and dies between two readings of ``/proc``;
- ``postgres``: the server's backends serving this system (found by the
  ``application_name`` its URL carries, ``Storage.application_name``) plus
  the server's own processes (postmaster, WAL writer, checkpointer,
  autovacuum...), which serve everyone;
- ``redis``: the ``redis-server`` process (its pid from ``INFO server``);
- ``driver``: this process (``getrusage``, microseconds);
- ``others``: the other systems' consumers, idle meanwhile: what is *not*
  charged to the timed system, to show the split is clean.

PostgreSQL round trips are the request segments (``data_segs_out``) of the
TCP connections the timed consumer holds to it (``ss -ti``, matched to its
processes by socket inode; the driver's are kept apart): with TCP_NODELAY
each request a client writes is one segment, as long as it is smaller than
the MSS, which a consumer's statements are. A connection closed during the
run is not counted. SQL statements, Redis commands and Redis round trips come
from the consumers' own counters (``bench/counters.py``: a Redis request, such
as a raw Huey chain's message carrying the rest of the chain, can span many
segments); ``INFO commandstats`` gives Redis's own count, by command,
server-wide: the driver's commands, and those of any other client of the same
Redis, add to it.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import counters
from .storage import POSTGRES_URL, REDIS_URL, Storage

CLK_TCK = os.sysconf("SC_CLK_TCK")
PARTS = ("consumers", "postgres", "redis", "driver", "others")
#: The parts made of consumer process groups (``cpu(..., reaped=True)``).
_CONSUMERS = ("consumers", "others")

Snapshot = dict[tuple[int, int], float]  # (pid, start time) -> CPU seconds


def _stat(pid: int) -> tuple[int, int, int, float, float] | None:
    """(ppid, pgrp, start time, CPU seconds, reaped children's CPU seconds) of a live process,
    from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # fields[0] is field 3, the state
    own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    return int(fields[1]), int(fields[2]), int(fields[19]), own / CLK_TCK, reaped / CLK_TCK


def cpu(pids: Iterable[int], reaped: bool = False) -> Snapshot:
    """CPU seconds per live process; with ``reaped``, plus the children each has reaped.

    Only for the consumers: the postmaster reaps every backend of the server,
    other clients' too, each with its whole lifetime's CPU.
    """
    out: Snapshot = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            out[(pid, stat[2])] = stat[3] + (stat[4] if reaped else 0.0)
    return out


def used(before: Snapshot, after: Snapshot) -> float:
    """CPU seconds spent between two snapshots; a process born since counts whole."""
    return sum(seconds - before.get(key, 0.0) for key, seconds in after.items())


def groups(pgids: Iterable[int]) -> dict[int, list[int]]:
    """Every live process of each process group (a consumer and its workers), in one pass over /proc."""
    out: dict[int, list[int]] = {pgid: [] for pgid in pgids}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and stat[1] in out:
                out[stat[1]].append(int(name))
    return out


def socket_inodes(pids: Iterable[int]) -> set[int]:
    inodes = set()
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


_INODE = re.compile(r"\bino:(\d+)")
_SEGS = re.compile(r"\bdata_segs_out:(\d+)")


def segments(ports: tuple[int, ...], prefix: list[str]) -> dict[int, tuple[int, int]]:
    """Socket inode -> (server port, request segments sent) of every TCP
    connection to ``ports`` (in the network namespace ``prefix`` enters)."""
    where = " or ".join(f"dport = :{port}" for port in ports)
    text = subprocess.run(
        [*prefix, "ss", "-tineH", "state", "established", f"( {where} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    out: dict[int, tuple[int, int]] = {}
    port, inode = 0, None
    for line in text.splitlines():
        if not line.startswith("\t"):
            peer = line.split()[3]
            port = int(peer.rsplit(":", 1)[1])
            found = _INODE.search(line)
            inode = int(found.group(1)) if found else None
        elif inode is not None:
            found = _SEGS.search(line)  # absent while zero
            out[inode] = (port, int(found.group(1)) if found else 0)
    return out


def _port(url: str, default: int) -> int:
    from sqlalchemy.engine import make_url

    return make_url(url).port or default


class Meter:
    """Samples one storage block's systems around each timed run (see the module doc)."""

    def __init__(self, storage: Storage, systems: list[Any], netns_prefix: list[str] | None = None) -> None:
        self.storage = storage
        self.systems = systems
        self.networked = storage.kind != "sqlite"
        self.netns_prefix = netns_prefix or []
        self.pg_port, self.redis_port = _port(POSTGRES_URL, 5432), _port(REDIS_URL, 6379)
        self._pg: Any = None
        self._redis: Any = None
        self.redis_pid: int | None = None
        self._start: dict[str, Any] = {}
        if self.networked:
            self._connect()

    def _connect(self) -> None:
        import psycopg
        import redis
        from sqlalchemy.engine import make_url

        url = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
        self._pg = psycopg.connect(url, autocommit=True, application_name="bench_meter")
        self._redis = redis.Redis.from_url(REDIS_URL)
        pid = int(self._redis.info("server")["process_id"])
        self.redis_pid = pid if _comm(pid).startswith("redis") else None  # a local server?

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
        if self._redis is not None:
            self._redis.close()

    # -- the parts -------------------------------------------------------------

    def _postgres_pids(self, system: Any) -> list[int]:
        """Backends of ``system`` plus the server's own processes (if it runs here)."""
        if self._pg is None:
            return []
        rows = self._pg.execute("SELECT pid, backend_type, application_name FROM pg_stat_activity").fetchall()
        wanted = self.storage.application_name(system.key)
        pids = [pid for pid, kind, app in rows if kind != "client backend" or app == wanted]
        servers = [pid for pid, kind, _ in rows if kind != "client backend"]
        stat = _stat(servers[0]) if servers else None
        if stat is None or not _comm(stat[0]).startswith("postgres"):
            return []  # not a local server: its CPU is out of sight
        return [stat[0], *pids]

    def _redis_commands(self) -> dict[str, int]:
        if self._redis is None:
            return {}
        stats = self._redis.info("commandstats")
        return {key[len("cmdstat_") :]: value["calls"] for key, value in stats.items() if key != "cmdstat_info"}

    def _segments(self, pids: dict[str, list[int]]) -> dict[str, dict[int, tuple[int, int]]]:
        """Per part (``consumers``, ``driver``): inode -> (port, request segments)."""
        if not self.networked:
            return {}
        found = segments((self.pg_port, self.redis_port), [])
        if self.netns_prefix:
            found |= segments((self.pg_port, self.redis_port), self.netns_prefix)
        return {part: {i: found[i] for i in socket_inodes(ps) if i in found} for part, ps in pids.items()}

    # -- around a run ----------------------------------------------------------

    def begin(self, system: Any) -> None:
        leaders = {other: other.consumer.process.pid for other in self.systems if other.consumer is not None}
        by_group = groups(leaders.values())
        pids = {
            "consumers": by_group.get(leaders.get(system, -1), []),
            "others": [pid for other, pgid in leaders.items() if other is not system for pid in by_group[pgid]],
            "postgres": self._postgres_pids(system),
            "redis": [self.redis_pid] if self.redis_pid else [],
        }
        start: dict[str, Any] = {
            "pids": pids,
            "commands": self._redis_commands(),
            "segments": self._segments({"consumers": pids["consumers"], "driver": [os.getpid()]}),
            "counted": counters.read_totals(system.count_dir),
        }
        # Last, so that the window holds nothing but these reads.
        start["cpu"] = {part: cpu(ps, reaped=part in _CONSUMERS) for part, ps in pids.items()}
        start["driver"] = _self_cpu()
        self._start[system.key] = start

    def end(self, system: Any) -> dict[str, Any]:
        """What the run since ``begin(system)`` cost (totals, not per step)."""
        driver = _self_cpu()
        start = self._start.pop(system.key)
        pids = start["pids"]
        after = {part: cpu(ps, reaped=part in _CONSUMERS) for part, ps in pids.items()}
        new_backends = set(self._postgres_pids(system)) - set(pids["postgres"])
        after["postgres"] |= cpu(new_backends)
        seconds = {part: used(start["cpu"][part], after[part]) for part in after}
        seconds["driver"] = driver - start["driver"]
        out: dict[str, Any] = {
            "cpu": {part: round(seconds[part], 4) for part in PARTS},
            "cpu_seen": {"postgres": bool(pids["postgres"]), "redis": self.redis_pid is not None},
        }
        totals, before = counters.read_totals(system.count_dir), start["counted"]
        if totals is not None:  # absent: this system's consumer does not count
            out["counted"] = {slot: totals[slot] - (before[slot] if before else 0) for slot in totals}
        if self.networked:
            commands = self._redis_commands()
            by_command = {k: v - start["commands"].get(k, 0) for k, v in commands.items()}
            out["redis_commands_server"] = sum(by_command.values())
            out["redis_by_command_server"] = {k: v for k, v in sorted(by_command.items(), key=lambda kv: -kv[1]) if v}
            segments = self._segments({"consumers": pids["consumers"], "driver": [os.getpid()]})
            out["segments"] = {
                part: self._per_server(start["segments"].get(part, {}), segments.get(part, {})) for part in segments
            }
        return out

    def _per_server(self, before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> dict[str, int]:
        out = {"postgres": 0, "redis": 0}
        for inode, (port, segs) in after.items():
            out["postgres" if port == self.pg_port else "redis"] += segs - before.get(inode, (port, 0))[1]
        return out


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
