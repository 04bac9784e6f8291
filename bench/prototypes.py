"""Evidence for the proposed fixes: ``python -m bench.prototypes [--storage ...]``.

Nothing here changes flask_baton; each experiment measures the shipped code
and a variant side by side, on throw-away storage:

A. "release dependents" (the second UPDATE of ``transitions.complete``):
   its cost per completion against the workflow's width, with the shipped
   indexes and with ``ix_baton_edges_dep`` made covering
   (workflow_id, dep_name, step_name); on PostgreSQL also after ANALYZE.
B. ``transitions.claim`` and ``transitions.complete`` as shipped (statements
   built on every call) against re-executing the very statements they built.
C. SQLite write-lock waits: how long ``BEGIN IMMEDIATE`` waits while two
   other processes run short write transactions back to back, with the
   busy-timeout handler (what flask_baton uses) and with a short-sleep retry.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select, text, update

from . import ledger
from .storage import Storage, remove_workdir


def _wide(n: int) -> Any:
    from flask_baton import Workflow
    from .app import noop

    wf = Workflow(name=f"proto:wide-{n}")
    wf.add("root", noop.new(k="r"))
    for i in range(n):
        wf.add(f"p{i}", noop.new(k=str(i)), deps=["root"])
    wf.add("fanin", noop.new(k="f"), deps=[f"p{i}" for i in range(n)])
    return wf


def _time_release(conn: Any, workflow_id: str, dep: str, repeats: int = 30) -> float:
    """Median seconds of the shipped 'release dependents' UPDATE (rolled back)."""
    from flask_baton.schema import edges, nodes
    from flask_baton.states import StepState
    from sqlalchemy import case

    times = []
    for _ in range(repeats):
        trans = conn.begin()
        dependents = select(edges.c.step_name).where(edges.c.workflow_id == workflow_id, edges.c.dep_name == dep)
        starts = and_(nodes.c.deps_pending == 1, nodes.c.state == StepState.PENDING)
        stmt = (
            update(nodes)
            .where(nodes.c.workflow_id == workflow_id, nodes.c.step_name.in_(dependents))
            .values(
                deps_pending=nodes.c.deps_pending - 1,
                state=case((starts, StepState.AVAILABLE), else_=nodes.c.state),
                scheduled_at=case((starts, 1.0), else_=nodes.c.scheduled_at),
            )
            .returning(nodes.c.id, nodes.c.task, nodes.c.state, nodes.c.deps_pending)
        )
        t0 = time.perf_counter()
        conn.execute(stmt).all()
        times.append(time.perf_counter() - t0)
        trans.rollback()
    return statistics.median(times)


def experiment_release(storage: Storage, widths: list[int], out: Any) -> None:
    from .app import create_app

    print(f"\nA. release-dependents UPDATE per completion, {storage.label} (median of 30, rolled back)", file=out)
    variants = ["shipped indexes", "covering ix_baton_edges_dep"]
    if storage.kind == "redis":
        variants.append("shipped indexes + ANALYZE")
    for variant in variants:
        app = create_app(storage.baton_settings(f"rel{variants.index(variant)}"))
        state = app.extensions["baton"]
        state.baton.create_schema(app)
        with app.app_context():
            inserted = []
            for n in widths:
                wf = _wide(n)
                wf.insert()
                inserted.append((n, wf.workflow_id))
            with state.engine.connect() as conn:
                if variant.startswith("covering"):
                    conn.execute(text("DROP INDEX ix_baton_edges_dep"))
                    conn.execute(text("CREATE INDEX ix_baton_edges_dep ON baton_edges (workflow_id, dep_name, step_name)"))
                    conn.commit()
                if variant.endswith("ANALYZE"):
                    conn.execute(text("ANALYZE baton_nodes"))
                    conn.execute(text("ANALYZE baton_edges"))
                    conn.commit()
                cells = []
                for n, workflow_id in inserted:
                    # A middle step completing releases the fan-in (one dependent).
                    cells.append(f"width {n:>6}: {_time_release(conn, workflow_id, 'p1') * 1e6:8.0f} us")
                print(f"   {variant:<28} " + "  ".join(cells), file=out)
        state.queues.huey().storage.close()
        state.engine.dispose()


def experiment_release_plan(storage: Storage, out: Any, steps: int = 200, done: int = 100) -> None:
    """PostgreSQL: the plan of the release UPDATE on fresh (never analyzed)
    tables, mid-way through a chain, and after ANALYZE / with a covering index."""
    from .app import create_app
    from .profile import _chain_wf

    _fan_out_plan(storage, out)
    print(f"\nA2. release-dependents plan on PostgreSQL, {steps}-step chain with {done} steps done "
          f"(EXPLAIN ANALYZE, rolled back)", file=out)
    sql = ("UPDATE baton_nodes SET deps_pending = deps_pending - 1 WHERE workflow_id = %(w)s AND step_name IN "
           "(SELECT baton_edges.step_name FROM baton_edges WHERE baton_edges.workflow_id = %(w)s "
           "AND baton_edges.dep_name = %(d)s) RETURNING id")
    update_from = ("UPDATE baton_nodes SET deps_pending = baton_nodes.deps_pending - 1 FROM baton_edges "
                   "WHERE baton_edges.workflow_id = %(w)s AND baton_edges.dep_name = %(d)s "
                   "AND baton_nodes.workflow_id = baton_edges.workflow_id "
                   "AND baton_nodes.step_name = baton_edges.step_name RETURNING baton_nodes.id")
    two_step = ("UPDATE baton_nodes SET deps_pending = deps_pending - 1 WHERE workflow_id = %(w)s "
                "AND step_name = ANY(%(names)s) RETURNING id")
    for variant in ("fresh tables (as in the benchmark)", "after ANALYZE", "covering ix_baton_edges_dep",
                    "fresh, UPDATE ... FROM edges", "fresh, SELECT names then UPDATE = ANY"):
        app = create_app(storage.baton_settings("plan" + str(len(variant))))
        state = app.extensions["baton"]
        state.baton.create_schema(app)
        huey = state.queues.huey()
        huey.storage.blocking = False
        with app.app_context():
            wf = _chain_wf(steps, "plan")
            wf.insert()
            for _ in range(done):
                huey.execute(huey.dequeue())
            with state.engine.connect() as conn:
                if variant == "after ANALYZE":
                    conn.execute(text("ANALYZE baton_nodes"))
                    conn.execute(text("ANALYZE baton_edges"))
                    conn.commit()
                if variant.startswith("covering"):
                    conn.execute(text("DROP INDEX ix_baton_edges_dep"))
                    conn.execute(text("CREATE INDEX ix_baton_edges_dep ON baton_edges (workflow_id, dep_name, step_name)"))
                    conn.commit()
                cur = conn.connection.dbapi_connection.cursor()
                params: dict[str, Any] = {"w": wf.workflow_id, "d": f"s{done + 10}"}
                query = sql
                extra = 0.0
                if "FROM edges" in variant:
                    query = update_from
                if "ANY" in variant:
                    t0 = time.perf_counter()
                    cur.execute("SELECT step_name FROM baton_edges WHERE workflow_id = %(w)s AND dep_name = %(d)s",
                                params)
                    params["names"] = [row[0] for row in cur.fetchall()]
                    extra = time.perf_counter() - t0
                    query = two_step
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params)
                plan = [row[0] for row in cur.fetchall()]
                if extra:
                    plan.append(f"(+ {extra * 1e3:.3f} ms client-side for the SELECT of names, round trip included)")
                conn.connection.dbapi_connection.rollback()
        total = next((line for line in plan if line.startswith("Execution Time")), "?")
        join = next((line.strip() for line in plan[1:] if "->" in line), "?")
        scans = [line.strip().lstrip("-> ").split("  (")[0] for line in plan if "Scan" in line]
        buffers = next((line.strip() for line in plan if "Buffers" in line), "")
        note = next((line for line in plan if line.startswith("(+")), "")
        print(f"   {variant:<38} {total}; {join.split('  (')[0]}: {' / '.join(scans)}; {buffers} {note}", file=out)
        huey.storage.close()
        state.engine.dispose()


def _fan_out_plan(storage: Storage, out: Any, width: int = 400) -> None:
    """Fresh PostgreSQL tables, a fan-out half done in-process: cost per step and
    the plan of the next completion's release UPDATE."""
    from .app import create_app

    app = create_app(storage.baton_settings("fanplan"))
    state = app.extensions["baton"]
    state.baton.create_schema(app)
    huey = state.queues.huey()
    huey.storage.blocking = False
    half = width // 2
    with app.app_context():
        wf = _wide(width)
        wf.insert()
        huey.execute(huey.dequeue())  # the root
        t0 = time.perf_counter()
        for _ in range(half):
            huey.execute(huey.dequeue())
        per_step = (time.perf_counter() - t0) / half
        with state.engine.connect() as conn:
            cur = conn.connection.dbapi_connection.cursor()
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) UPDATE baton_nodes SET deps_pending = deps_pending - 1 "
                        "WHERE workflow_id = %(w)s AND step_name IN (SELECT step_name FROM baton_edges "
                        "WHERE workflow_id = %(w)s AND dep_name = %(d)s) RETURNING id",
                        {"w": wf.workflow_id, "d": f"p{width - 1}"})
            plan = [row[0] for row in cur.fetchall()]
            conn.connection.dbapi_connection.rollback()
    total = next((line for line in plan if line.startswith("Execution Time")), "?")
    buffers = next((line.strip() for line in plan if "Buffers" in line), "")
    loops = next((line.strip().split("  (")[0].lstrip("-> ") + " " + line.strip().split("actual")[1].split(")")[0]
                  for line in plan if "loops=" in line and "edges" in line), "")
    print(f"\nA1. PostgreSQL, fresh tables, fan-out {width}: {half} parallel steps run in one process at "
          f"{per_step * 1e3:.1f} ms/step; next release UPDATE: {total}, {buffers}; inner: {loops}", file=out)
    huey.storage.close()
    state.engine.dispose()


def experiment_prebuilt(storage: Storage, out: Any) -> None:
    """Shipped transitions vs executing the very statements they built, kept.

    The statements each shipped function sends are captured (SQLAlchemy
    ``before_execute``) and then re-executed as they are: same SQL, same
    parameters, but built once, so SQLAlchemy reuses its memoized cache key.
    The difference is what building statements on every call costs.
    """
    from sqlalchemy import event

    from flask_baton import transitions
    from .app import create_app

    app = create_app(storage.baton_settings("prebuilt"))
    state = app.extensions["baton"]
    state.baton.create_schema(app)
    engine = state.engine
    captured: list[tuple[Any, Any]] = []

    def capture(conn: Any, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any) -> None:
        if multiparams and len(multiparams) == 1:
            captured.append((clauseelement, multiparams[0]))
        else:
            captured.append((clauseelement, list(multiparams) if multiparams else (params or None)))

    def bench(fn: Any, n: int = 200) -> float:
        for _ in range(20):
            fn()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - t0) / n)
        return best

    with app.app_context():
        wf = _wide(10)
        jobs = wf.insert()
        root = next(j.id for j in jobs if j.step_name == "root")
        blocked = next(j.id for j in jobs if j.step_name == "fanin")
        with engine.connect() as conn:
            claimed = transitions.claim(conn, root, "bench-worker", time.time())
            conn.commit()
            assert claimed is not None

            def claim_shipped() -> None:
                with conn.begin():
                    transitions.claim(conn, blocked, "w", time.time())

            def complete_shipped() -> None:
                trans = conn.begin()
                transitions.complete(conn, claimed, None, [], time.time())
                trans.rollback()

            results = []
            for label, shipped in (("claim (row not claimable)", claim_shipped),
                                   ("complete (rolled back)", complete_shipped)):
                captured.clear()
                event.listen(engine, "before_execute", capture)
                shipped()
                event.remove(engine, "before_execute", capture)
                statements = list(captured)
                rollback = label.startswith("complete")

                def replay(statements: list[tuple[Any, Any]] = statements, rollback: bool = rollback) -> None:
                    trans = conn.begin()
                    for stmt, params in statements:
                        conn.execute(stmt, params)
                    trans.rollback() if rollback else trans.commit()

                results.append((label, len(statements), bench(shipped), bench(replay)))
    print(f"\nB. shipped transitions vs the same statements built once, {storage.label} "
          f"(best of 3 x 200 calls, each in its own transaction)", file=out)
    for label, count, shipped_s, replay_s in results:
        print(f"   {label:<28} {count} statement(s): shipped {shipped_s * 1e6:6.0f} us, "
              f"prebuilt {replay_s * 1e6:6.0f} us per call (saves {(shipped_s - replay_s) * 1e6:.0f} us, "
              f"{100 * (1 - replay_s / shipped_s):.0f}%)", file=out)
    state.queues.huey().storage.close()
    engine.dispose()


# -- C. SQLite lock waits ----------------------------------------------------


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _hammer(path: str, stop_at: float, hold: float, gap: float, counter: Any) -> None:
    """A worker: a write transaction holding the lock ``hold`` s, then ``gap`` s of other work."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    done = 0
    while time.time() < stop_at:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE t SET v = v + 1 WHERE id = 1")
        _busy(hold)  # Python work inside the transaction (building statements, payloads)
        conn.execute("COMMIT")
        done += 1
        _busy(gap)  # work outside it (dequeue, enqueue, the step function)
    with counter.get_lock():
        counter.value += done


def _acquire_busy_timeout(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _acquire_spin(conn: sqlite3.Connection) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.0001)


def experiment_sqlite_lock(out: Any, seconds: float = 3.0) -> None:
    """Two 'workers' (processes) alternate write transactions and other work,
    like flask_baton's consumers; a third process times its BEGIN IMMEDIATE.
    ``hold`` 1.2 ms is about what a flask_baton transition holds the lock for
    today (statement building inside the transaction), 0.2 ms what it would
    with prebuilt statements."""
    workdir = Path(tempfile.mkdtemp(prefix="baton-lock-"))
    try:
        path = str(workdir / "lock.db")
        setup = sqlite3.connect(path, isolation_level=None)
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
        setup.execute("INSERT INTO t VALUES (1, 0)")
        setup.close()
        print(f"\nC. SQLite BEGIN IMMEDIATE wait of a 3rd writer while 2 worker processes alternate "
              f"write transactions (hold) and 0.8 ms of other work", file=out)
        gap = 0.0008
        for hold in (0.0012, 0.0002):
            for label, acquire, timeout in (("busy_timeout handler (shipped)", _acquire_busy_timeout, 30.0),
                                            ("busy_timeout=0 + 0.1 ms sleep retry", _acquire_spin, 0.0)):
                ctx = multiprocessing.get_context("fork")
                stop_at = time.time() + seconds
                counter = ctx.Value("i", 0)
                procs = [ctx.Process(target=_hammer, args=(path, stop_at, hold, gap, counter), daemon=True)
                         for _ in range(2)]
                for p in procs:
                    p.start()
                try:
                    time.sleep(0.2)
                    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
                    waits = []
                    while time.time() < stop_at - 0.2:
                        t0 = time.perf_counter()
                        acquire(conn)
                        waits.append(time.perf_counter() - t0)
                        conn.execute("UPDATE t SET v = v + 1 WHERE id = 1")
                        conn.execute("COMMIT")
                        time.sleep(0.0005)
                    conn.close()
                finally:
                    for p in procs:
                        p.join(seconds + 5)
                        if p.is_alive():
                            p.kill()
                waits.sort()
                print(f"   hold {hold * 1e3:.1f} ms, {label:<36} 3rd writer's wait p50 {waits[len(waits) // 2] * 1e3:5.2f} ms, "
                      f"p90 {waits[int(len(waits) * 0.9)] * 1e3:5.2f} ms, max {waits[-1] * 1e3:6.1f} ms "
                      f"({len(waits)} txns); workers' txns/s {counter.value / seconds:5.0f}", file=out)
    finally:
        remove_workdir(workdir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prototypes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", choices=["sqlite", "redis", "all"], default="all")
    parser.add_argument("--widths", default="100,1000,10000", help="fan-out widths for experiment A")
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="baton-proto-"))
    ledger.set_path(None)
    try:
        for kind in (["sqlite", "redis"] if args.storage == "all" else [args.storage]):
            storage = Storage(kind, workdir)
            try:
                experiment_release(storage, widths, sys.stdout)
                if kind == "redis":
                    experiment_release_plan(storage, sys.stdout)
                experiment_prebuilt(storage, sys.stdout)
            finally:
                storage.cleanup()
        if args.storage in ("sqlite", "all"):
            experiment_sqlite_lock(sys.stdout)
    finally:
        remove_workdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
