"""The benchmark's cost figures (``bench/meter.py``, ``bench/counters.py``, ``bench/netem.py``).

What ``python -m bench`` reports besides wall time must count what it says:
a process group's CPU, PostgreSQL requests, the statements a consumer sends
(its forked workers' too), nothing at all when the benchmark did not ask;
and ``--netem``'s namespace must reach the servers and leave nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bench import counters, meter
from bench.netem import Link

from .conftest import POSTGRES_URL, REDIS_URL, require_service
from .support import LINUX_PROC, wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = LINUX_PROC


def _python(code: str, count_dir: Path | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """``code`` in a fresh interpreter, counting statements into ``count_dir`` if given."""
    env = {key: value for key, value in os.environ.items() if key != counters.ENV}
    env["PYTHONPATH"] = str(ROOT)
    if count_dir is not None:
        env[counters.ENV] = str(count_dir)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True, **kwargs)


def test_statement_counters_count_every_process_forked_workers_included(tmp_path: Path) -> None:
    child = _python(
        f"""
        import os, sqlite3
        from bench import counters
        counters.install_from_env()
        conn = sqlite3.connect({str(tmp_path / "db.sqlite")!r})
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")  # opens a transaction: BEGIN is not counted
        conn.commit()
        pid = os.fork()
        if pid == 0:  # a worker process: its own file
            for i in range(5):
                conn.execute("SELECT count(*) FROM t").fetchone()
            os._exit(0)
        os.waitpid(pid, 0)
        """,
        count_dir=tmp_path,
    )
    assert child.wait(timeout=30) == 0
    assert len(list(tmp_path.glob("[0-9]*"))) == 2  # the parent's and the worker's counters
    assert counters.read_totals(tmp_path) == {
        "statements": 7,
        "commits": 1,
        "redis_commands": 0,
        "redis_round_trips": 0,
    }


def test_statement_counters_patch_nothing_unless_the_benchmark_asks(tmp_path: Path) -> None:
    child = _python(
        """
        import sqlite3, psycopg
        connect, execute = sqlite3.connect, psycopg.Cursor.execute
        from bench import counters
        counters.install_from_env()
        assert sqlite3.connect is connect and psycopg.Cursor.execute is execute
        assert sqlite3.connect(":memory:") is not None
        """,
        cwd=str(tmp_path),
    )
    assert child.wait(timeout=30) == 0
    assert list(tmp_path.iterdir()) == []


def test_meter_charges_a_process_group_the_cpu_of_all_its_processes(tmp_path: Path) -> None:
    """A consumer and the worker it forked, each burning 0.3 s of CPU (CPU time, not wall time)."""
    burner = _python(
        f"""
        import os, time
        leader = os.getpid()
        os.fork()  # the worker
        ready = {str(tmp_path)!r} + "/ready-" + str(os.getpid())
        open(ready, "w").close()
        while not os.path.exists({str(tmp_path / "go")!r}):
            time.sleep(0.01)
        start = time.process_time()
        while time.process_time() - start < 0.3:
            pass
        open({str(tmp_path)!r} + "/done-" + str(os.getpid()), "w").close()
        time.sleep(60)
        """,
        start_new_session=True,
    )
    try:
        wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 2, "both processes started")
        pids = meter.groups([burner.pid])[burner.pid]
        assert len(pids) == 2 and burner.pid in pids
        before = meter.cpu(pids)
        (tmp_path / "go").touch()
        wait_for(lambda: len(list(tmp_path.glob("done-*"))) == 2, "both processes burned their CPU")
        spent = meter.used(before, meter.cpu(pids))
        assert 0.58 <= spent < 5.0  # 0.6 s, less up to a clock tick per process
    finally:
        os.killpg(burner.pid, signal.SIGKILL)
        burner.wait(timeout=10)


@pytest.mark.postgres
def test_postgres_round_trips_are_the_requests_a_connection_writes() -> None:
    require_service("postgres", POSTGRES_URL, 5432)
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_URL)
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        inode = os.fstat(conn.pgconn.socket).st_ino
        assert inode in meter.socket_inodes([os.getpid()])

        def sent() -> int:
            port, segments = meter.segments((url.port or 5432,), [])[inode]
            assert port == (url.port or 5432)
            return segments

        before = sent()
        for _ in range(10):
            conn.execute("SELECT 1", prepare=False).fetchone()  # prepared, one would cost two
        with conn.transaction():  # BEGIN, the statement, COMMIT: three round trips
            conn.execute("SELECT 2", prepare=False).fetchone()
        assert sent() - before == 13


def test_netem_rewrites_only_the_local_servers_in_the_consumers_urls() -> None:
    link = Link(0.5, (5432, 6379))
    env = {
        "DB": "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx",
        "HUEY": "redis://localhost:6379/0",
        "FILE": "sqlite:////tmp/127.0.0.1/huey.db",
        "OTHER": "redis://10.1.2.3:6379/0",
    }
    rewritten = link.rewrite(env)
    assert rewritten["DB"] == f"postgresql+psycopg://postgres@{link.host_ip}:5432/test?options=-csearch_path%3Dx"
    assert rewritten["HUEY"] == f"redis://{link.host_ip}:6379/0"
    assert rewritten["FILE"] == env["FILE"] and rewritten["OTHER"] == env["OTHER"]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(Link.unavailable() is not None, reason=f"--netem: {Link.unavailable()}")
def test_netem_namespace_reaches_postgres_and_redis_and_leaves_nothing_behind() -> None:
    require_service("postgres", POSTGRES_URL, 5432)
    require_service("redis", REDIS_URL, 6379)
    from sqlalchemy.engine import make_url

    pg = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    link = Link(0.0, (make_url(POSTGRES_URL).port or 5432, make_url(REDIS_URL).port or 6379))  # no delay: any kernel
    link.open()
    try:
        env = link.rewrite({"PG": pg, "REDIS": REDIS_URL})
        assert link.host_ip in env["PG"] and link.host_ip in env["REDIS"]
        check = subprocess.run(
            link.wrap(
                [
                    sys.executable,
                    "-c",
                    "import os, psycopg, redis\n"
                    "with psycopg.connect(os.environ['PG']) as c:\n"
                    "    assert c.execute('SELECT inet_client_addr()').fetchone()[0] is not None\n"
                    "r = redis.Redis.from_url(os.environ['REDIS']); assert r.ping(); r.close()\n"
                    "print('reached')",
                ]
            ),
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        assert check.stdout.strip() == "reached"
        direct = subprocess.run(link.wrap(["ip", "-o", "addr"]), capture_output=True, text=True, check=True).stdout
        assert link.ns_ip in direct and link.host_ip not in direct  # its own namespace, not the host's
    finally:
        link.close()
    assert link.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert link.name not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", link.host_if], capture_output=True).returncode != 0
