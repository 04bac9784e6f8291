"""``python -m bench.dashboard``: how fast the dashboard renders and how live it is.

1. **Index and overview render at 100,000 workflows.** 100,000
   ``baton_workflows`` rows, one every 30 s up to now (35 days), each with
   three ``baton_nodes`` rows (the steps the overview counts and times) and
   ``baton_step_stats`` rows for a third of them (so the cost column and
   the cost chart have work), are bulk-inserted with one SQLAlchemy
   ``executemany`` per table into a temporary SQLite database; then
   ``GET /baton`` (filtered, deep and time-ranged pages) and
   ``GET /baton/overview`` for each time range go through the Flask test
   client: the whole server side (queries, templates) of a page load,
   median of ``--repeats``. Targets: index <= 150 ms, overview <= 300 ms
   (its 7-day range aggregates some 60,000 steps).
2. **A 10,000-step workflow's page** (``dashboard_big``): its render,
   filtered, with a chain opened, and one live update. Target <= 300 ms.
3. **Transition -> DOM latency.** A real threaded server, a real consumer and
   headless Chromium (system Chromium via ``tests/browser.py``) on a
   workflow page; a chain of gated steps is released one by one, and a
   ``MutationObserver`` in the page notes when each step's row turns
   ``completed``. Latency = that moment minus the transition's timestamp
   (``finished_at``, the consumer's clock: same machine). Median over
   ``--transitions``. Targets: <= 300 ms on the embedded default (database
   event feed, polled every 50 ms), <= 100 ms with Redis Streams
   (``BATON_PUBSUB_URL``). Measured again on the page of a workflow of
   ``--big-steps`` steps (the gated chain, then ``dashboard_big``'s shape):
   the page re-reads every step on each transition, so this is what
   "stays live" costs at that size; same target.

4. **Streamed text -> DOM** (``bench.streaming``): chunks a second from a
   step's ``job.stream`` to its row in the browser, with each chunk's median
   and p95 latency, flat out and at 50 chunks a second, on the database feed
   (SQLite) and over Redis pub/sub (PostgreSQL). No target: figures.

Options: ``--workflows N``, ``--repeats N``, ``--transitions N``,
``--big-steps N``, ``--skip-browser``, ``--skip-redis``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_baton import Baton, Job, Workflow
from flask_baton.dashboard import EXTENSION_KEY
from flask_baton.dashboard.layout import node_key
from flask_baton.dashboard.reads import PAGE_SIZE
from flask_baton.store.tables import nodes, step_stats, workflows
from flask_baton.timeseries import RANGES

from .dashboard_big import PAGE_TARGET_MS, add_big, bench_big_page

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
INDEX_TARGET_MS = 150.0
OVERVIEW_TARGET_MS = 300.0
FEED_TARGET_MS = 300.0
REDIS_TARGET_MS = 100.0

baton = Baton()


@baton.step()
def gate(job: Job) -> dict[str, int]:
    """Wait until the driver creates ``job.args["path"]`` (polling every 2 ms)."""
    wait_for_file(job.args["path"])
    return {"released": job.args["index"]}


def wait_for_file(name: str, timeout: float = 30.0) -> None:
    """Poll every 2 ms until the file ``name`` exists (a step held until the driver releases it)."""
    path = Path(name)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.002)


@baton.step()
def noop(job: Job) -> None:
    """The big workflow's steps (never run: they wait behind the gates)."""


def create_app(workdir: Path, **config: Any) -> Flask:
    app = Flask("baton_dashboard_bench")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{workdir / 'app.db'}",
        BATON_HUEY_URL=f"sqlite:///{workdir / 'huey.db'}",
        BATON_DASHBOARD_AUTH=lambda: True,
        SECRET_KEY="bench",
    )
    app.config.update(config)  # may replace the storage: PostgreSQL and Redis
    db = SQLAlchemy()
    db.init_app(app)
    baton.init_app(app, db=db)
    baton.create_schema(app)
    return app


@contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="baton-dashboard-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Row:
    what: str
    value: str
    target: str
    verdict: str
    note: str = ""


# -- 1. index render -----------------------------------------------------------------

LABELS = ("brief:", "import:customers-", "digest:weekly-", "embed:docs-", "sync:crm-")
STATE_MIX = (("completed", 0.90), ("failed", 0.05), ("cancelled", 0.03), ("running", 0.02))


def fill(app: Flask, count: int, seed: int = 7) -> list[str]:
    """Bulk-insert ``count`` workflows (their steps and stats rows); return their ids, oldest first."""
    rng = random.Random(seed)
    now = time.time()
    start_ms = int((now - count * 30) * 1000)  # one every 30 s, ending now
    ids, rows, stats, steps = [], [], [], []
    states = [state for state, share in STATE_MIX for _ in range(int(share * 100))]
    for index in range(count):
        created = (start_ms + index * 30_000) / 1000
        workflow_id = f"{start_ms + index * 30_000:012x}{rng.getrandbits(80):020x}"
        state = rng.choice(states)
        total = rng.choice((3, 5, 11, 42))
        unsettled = rng.randint(1, total) if state == "running" else 0
        steps += _steps(rng, workflow_id, state, created)
        rows.append(
            {
                "id": workflow_id,
                "name": f"{rng.choice(LABELS)}{index:06d}",
                "state": state,
                "total_steps": total,
                "unsettled": unsettled,
                "created_at": created,
                "finished_at": None if state == "running" else created + rng.uniform(2, 90),
            }
        )
        if index % 3 == 0:
            for step in range(3):
                stats.append(
                    {
                        "workflow_id": workflow_id,
                        "node_id": "0" * 32,
                        "step_name": f"step{step}",
                        "attempt": 1,
                        "model": "gpt-4o-mini",
                        "input_tokens": 1200,
                        "output_tokens": 300,
                        "cached_input_tokens": 0,
                        "cost_usd": 0.0009,
                        "latency": 1.0,
                        "created_at": created,
                    }
                )
        ids.append(workflow_id)
    engine = app.extensions["baton"].engine
    with engine.begin() as conn:
        conn.execute(workflows.insert(), rows)
        conn.execute(nodes.insert(), steps)
        conn.execute(step_stats.insert(), stats)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return ids


#: How the third step of a workflow ended (or stands), by the workflow's state.
LAST_STEP = {"completed": "completed", "failed": "discarded", "cancelled": "cancelled", "running": "executing"}


def _steps(rng: random.Random, workflow_id: str, state: str, created: float) -> list[dict[str, Any]]:
    """Three steps in a chain (fetch, summarize, publish), the last one ending as the workflow did."""
    rows, at = [], created
    for position, name in enumerate(("fetch", "summarize", "publish")):
        step_state = "completed" if position < 2 else LAST_STEP[state]
        ran = step_state != "cancelled"
        took = rng.lognormvariate(0, 1) * (1 + 3 * position)
        rows.append(
            {
                "id": f"{workflow_id[:28]}{position:04x}",
                "workflow_id": workflow_id,
                "step_name": name,
                "position": position,
                "task": f"bench.{name}",
                "args": "{}",
                "state": step_state,
                "attempt": 1 if ran else 0,
                "deps_pending": 0,
                "worker": "bench:1" if ran else None,
                "created_at": created,
                "scheduled_at": at if ran else None,
                "started_at": at if ran else None,
                "finished_at": at + took if ran and step_state != "executing" else None,
                "dependents_version": 0,
            }
        )
        at += took
    return rows


def time_get(app: Flask, path: str, repeats: int) -> tuple[float, list[float]]:
    client = app.test_client()
    assert client.get(path).status_code == 200  # warm caches (templates, pages)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times), times


def bench_index(count: int, repeats: int, log: Any) -> list[Row]:
    rows = []
    with workdir() as path:
        app = create_app(path)
        started = time.perf_counter()
        ids = fill(app, count)
        log(f"  inserted {count:,} workflows in {time.perf_counter() - started:.1f}s")
        cases = [
            ("GET /baton", "/baton"),
            ("GET /baton?state=running", "/baton?state=running"),
            ("GET /baton?state=failed", "/baton?state=failed"),
            ("GET /baton?q=brief", "/baton?q=brief"),
            ("GET /baton?q=<no match> (full scan)", "/baton?q=nothing-matches-this"),
            (f"GET /baton?before=<middle> (page {count // 2 // PAGE_SIZE:,})", f"/baton?before={ids[len(ids) // 2]}"),
            ("GET /baton?range=24h", "/baton?range=24h"),
            ("GET /baton?range=1h&state=failed", "/baton?range=1h&state=failed"),
        ]
        for label, url in cases:
            median, times = time_get(app, url, repeats)
            rows.append(_timed_row(f"index render, {count:,} workflows: {label}", median, times, INDEX_TARGET_MS, 1))
            log(f"  {label}: median {median:.1f} ms")
        for key in RANGES:
            label = f"GET /baton/overview?range={key}"
            median, times = time_get(app, f"/baton/overview?range={key}", repeats)
            rows.append(_timed_row(f"overview, {count:,} workflows: {label}", median, times, OVERVIEW_TARGET_MS, 1))
            log(f"  {label}: median {median:.1f} ms")
        app.extensions["baton"].engine.dispose()
    return rows


# -- 2. transition -> DOM latency --------------------------------------------------------

OBSERVER = """
() => {
  window.__completed = {};
  const note = () => {
    const now = performance.timeOrigin + performance.now();
    document.querySelectorAll('#steps-body tr[data-state="completed"]').forEach(row => {
      if (!(row.id in window.__completed)) window.__completed[row.id] = now;
    });
  };
  new MutationObserver(note).observe(document.getElementById('steps-table'),
                                    {subtree: true, childList: true, attributes: true});
  note();
}
"""


@contextmanager
def live_app(path: Path, **config: Any) -> Iterator[tuple[Flask, str]]:
    """The app on a real threaded server with a real consumer (2 worker threads) in this process; it and its URL.

    On exit the consumer stops (release any step still waiting first), then
    the server, once every dashboard socket has noticed its page went away.
    """
    from werkzeug.serving import WSGIRequestHandler, make_server

    from flask_baton.consumer import create_consumer

    class QuietHandler(WSGIRequestHandler):
        def log(self, *args: Any) -> None:
            pass

    app = create_app(path, **config)
    state = app.extensions["baton"]
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    consumer = create_consumer(
        state,
        workers=2,
        worker_type="thread",
        initial_delay=0.002,
        backoff=1.2,
        max_delay=0.02,
        periodic=False,
        check_worker_health=False,
    )
    consumer.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        consumer.stop(graceful=True)
        server.shutdown()
        server.server_close()
        _wait(lambda: app.extensions[EXTENSION_KEY].sockets.count == 0, "sockets to close")
        state.events.close()
        state.engine.dispose()


@contextmanager
def chromium_page() -> Iterator[Any]:
    """A page of a headless system Chromium (``tests/browser.py``), waiting up to 10 s for anything."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.browser import launch_browser

    with sync_playwright() as playwright, launch_browser(playwright) as browser:
        browser.page.set_default_timeout(10_000)
        yield browser.page


def bench_latency(transitions: int, pubsub: str | None, log: Any, big: int = 0) -> tuple[float, list[float]]:
    """Median ms from a step's completion to its row changing in the browser (on a ``big``-step page if given)."""
    config: dict[str, Any] = {}
    if pubsub:
        config.update(BATON_PUBSUB_URL=pubsub, BATON_PUBSUB_PREFIX=f"bench-{uuid.uuid4().hex[:8]}:")
    with workdir() as path, live_app(path, **config) as (app, url):
        state = app.extensions["baton"]
        gates = [path / f"gate-{i}" for i in range(transitions + 2)]  # the last holds ``big``'s steps back
        try:
            with app.app_context():
                wf = Workflow("latency-chain")
                for i in range(transitions + 1):
                    wf.add(f"s{i:02d}", gate.new(path=str(gates[i]), index=i), deps=[f"s{i - 1:02d}"] if i else [])
                if big:
                    wf.add("hold", gate.new(path=str(gates[-1]), index=-1), deps=[f"s{transitions:02d}"])
                    add_big(wf, noop, big - transitions - 2, after="hold")
                wf.insert()
            with chromium_page() as page:
                page.goto(f"{url}/baton/workflows/{wf.workflow_id}")
                page.wait_for_selector("body[data-live=open]")
                page.evaluate(OBSERVER)
                gates[0].touch()  # the first transition warms things up; not measured
                page.wait_for_selector(f"#s-{node_key('s00')}[data-state=completed]")
                latencies = []
                for i in range(1, transitions + 1):
                    step = f"s{i:02d}"
                    _wait(lambda step=step: _state(state, wf.workflow_id, step) == "executing", f"{step} to run")
                    time.sleep(0.03)  # let the page settle on "executing" first
                    gates[i].touch()
                    row = f"s-{node_key(step)}"
                    page.wait_for_function(f"() => '{row}' in window.__completed")
                    shown_ms = page.evaluate(f"window.__completed['{row}']")
                    (finished,) = state.query.get_workflow_jobs(wf.workflow_id, [step])
                    latencies.append(shown_ms - finished.finished_at * 1000)
                done = "document.querySelectorAll('#steps-body tr[data-state=completed]').length"
                assert page.evaluate(done) == transitions + 1
        finally:
            for g in gates:
                g.touch()
    where = f"{'redis streams' if pubsub else 'database feed'}{f', {big:,}-step page' if big else ''}"
    log(f"  {where}: " + ", ".join(f"{ms:.0f}" for ms in latencies) + " ms")
    return statistics.median(latencies), latencies


def _timed_row(what: str, median: float, values: list[float], target: float, digits: int = 0) -> Row:
    return Row(
        what,
        f"{median:.{digits}f} ms",
        f"<= {target:.0f} ms",
        "PASS" if median <= target else "FAIL",
        f"median of {len(values)}; {min(values):.{digits}f}-{max(values):.{digits}f} ms",
    )


def _state(state: Any, workflow_id: str, step: str) -> str:
    return str(state.query.get_workflow_jobs(workflow_id, [step])[0].state)  # one step: the server shares our GIL


def _wait(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _redis_up(url: str) -> bool:
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


# -- the report ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--transitions", type=int, default=20)
    parser.add_argument("--big-steps", type=int, default=10_000)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    rows: list[Row] = []
    log("1. index render")
    rows += bench_index(args.workflows, args.repeats, log)
    log(f"2. a {args.big_steps:,}-step workflow's page")
    with workdir() as path:
        app = create_app(path)
        for what, median, times in bench_big_page(app, noop, args.big_steps, args.repeats, time_get, log):
            rows.append(_timed_row(what, median, times, PAGE_TARGET_MS, 1))
        app.extensions["baton"].engine.dispose()
    if not args.skip_browser:
        log("3. transition -> DOM latency (headless Chromium)")
        median, values = bench_latency(args.transitions, None, log)
        rows.append(_timed_row("transition -> DOM, database event feed (default)", median, values, FEED_TARGET_MS))
        median, values = bench_latency(args.transitions, None, log, big=args.big_steps)
        what = f"transition -> DOM, database event feed, {args.big_steps:,}-step page"
        rows.append(_timed_row(what, median, values, FEED_TARGET_MS))
        if not args.skip_redis and not _redis_up(REDIS_URL):
            rows.append(
                Row(
                    "transition -> DOM, Redis Streams",
                    "n/a",
                    f"<= {REDIS_TARGET_MS:.0f} ms",
                    "SKIP",
                    f"no Redis at {REDIS_URL} (BENCH_REDIS_URL)",
                )
            )
        elif not args.skip_redis:
            median, values = bench_latency(args.transitions, REDIS_URL, log)
            what = "transition -> DOM, Redis Streams (BATON_PUBSUB_URL)"
            rows.append(_timed_row(what, median, values, REDIS_TARGET_MS))
        log("4. streamed text -> DOM (headless Chromium)")
        from .streaming import run as bench_streaming  # here: bench.streaming imports this module

        rows += bench_streaming(1000, 50.0, 250, log, redis=not args.skip_redis and _redis_up(REDIS_URL))

    headers = ("measurement", "result", "target", "verdict", "note")
    table = [headers] + [(r.what, r.value, r.target, r.verdict, r.note) for r in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(headers))]
    print()
    for index, line in enumerate(table):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
