"""Where flask_baton's time goes: ``python -m bench.profile [--storage ...]``.

Runs the consumer's code path in this one process — ``huey.dequeue()`` then
``huey.execute(task)``, exactly what a Huey worker does — so that cProfile
sees all of it and a SQLAlchemy ``before_cursor_execute`` listener counts
every SQL statement flask_baton sends, attributed to the flask_baton call
chain that sent it. Raw Huey runs the same loop for comparison.

Printed per storage:
- wall time per step (no profiler) for a chain, flask_baton vs raw Huey;
- SQL statements, transactions and connection checkouts per step, by call
  chain, for a chain hop, a fan-in, and a single-step workflow (insert+run);
- the cProfile of the chain: flask_baton functions by cumulative time, and
  the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

from . import ledger
from .storage import Storage, remove_workdir

PKG = str(Path(__import__("flask_baton").__file__).parent)
_SKIP = ("store/engine.py", "store/core.py", "contextlib")


def _chain_of_frames() -> str:
    """The flask_baton functions on the stack, outermost first (``module.func``)."""
    frame = sys._getframe(2)
    names: list[str] = []
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(PKG) and not filename.endswith(_SKIP):
            module = filename[len(PKG) + 1 :].removesuffix(".py").replace("/", ".")
            names.append(f"{module}.{frame.f_code.co_name}")
        frame = frame.f_back
    names.reverse()
    # Drop the entry points every statement shares, keep what tells them apart.
    return " > ".join(n for n in names if n not in ("extension.run",)) or "(outside flask_baton)"


def _kind(statement: str) -> str:
    text = statement.strip()
    upper = text.upper()
    if upper.startswith("UPDATE"):
        table = text.split()[1].strip('"')
        return f"UPDATE {table}" + (" RETURNING" if " RETURNING " in upper else "")
    if upper.startswith("INSERT"):
        table = text.split()[2].strip('"')
        return f"INSERT {table}"
    if upper.startswith("DELETE"):
        return f"DELETE {text.split()[2].strip(chr(34))}"
    if upper.startswith("SELECT"):
        match = re.search(r"\bFROM\s+\"?(\w+)", text, re.I)
        return f"SELECT {match.group(1) if match else '?'}"
    return " ".join(text.split()[:2]).upper()


class SqlCounter:
    """Counts statements (by kind and call chain), transactions and checkouts."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.by_chain: Counter[tuple[str, str]] = Counter()
        self.seconds_by_chain: Counter[tuple[str, str]] = Counter()
        self._key: tuple[str, str] | None = None
        self.statements = 0
        self.sql_seconds = 0.0
        self.commits = 0
        self.rollbacks = 0
        self.checkouts = 0
        self.pings = 0
        self.cache: Counter[str] = Counter()
        self._t0 = 0.0
        self.active = False
        self.on_sql: Any = None
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)
        event.listen(engine.pool, "checkout", self._checkout)
        dialect = engine.dialect
        original_ping = dialect.do_ping

        def counting_ping(dbapi_connection: Any) -> Any:
            if self.active:
                self.pings += 1
            return original_ping(dbapi_connection)

        dialect.do_ping = counting_ping

    def reset(self) -> None:
        self.by_chain.clear()
        self.seconds_by_chain.clear()
        self.cache.clear()
        self.statements = self.commits = self.rollbacks = self.checkouts = self.pings = 0
        self.sql_seconds = 0.0

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self.active:
            return
        self.statements += 1
        self._key = (_chain_of_frames(), _kind(statement) + (" (executemany)" if executemany else ""))
        self.by_chain[self._key] += 1
        hit = getattr(context, "cache_hit", None)
        if hit is not None:
            self.cache[str(hit).split(".")[-1]] += 1
        self._t0 = time.perf_counter()

    def _after(self, *args: Any) -> None:
        if self.active:
            seconds = time.perf_counter() - self._t0
            self.sql_seconds += seconds
            if self._key is not None:
                self.seconds_by_chain[self._key] += seconds
            if self.on_sql is not None:
                self.on_sql(seconds)

    def _commit(self, conn: Any) -> None:
        if self.active:
            self.commits += 1

    def _rollback(self, conn: Any) -> None:
        if self.active:
            self.rollbacks += 1

    def _checkout(self, *args: Any) -> None:
        if self.active:
            self.checkouts += 1

    def report(self, per: int, title: str, out: Any) -> None:
        print(
            f"\n  {title}: {self.statements / per:.2f} statements, {self.commits / per:.2f} commits, "
            f"{self.rollbacks / per:.2f} rollbacks, {self.checkouts / per:.2f} pool checkouts, "
            f"{self.pings / per:.2f} pre-pings per unit; {self.sql_seconds / per * 1e6:.0f} us in cursor.execute; "
            f"compile cache: {dict(self.cache)}",
            file=out,
        )
        print(
            "    per unit  statement                                avg us  sent from (flask_baton call chain)",
            file=out,
        )
        for (chain, kind), count in sorted(self.by_chain.items(), key=lambda kv: (-kv[1], kv[0])):
            avg = self.seconds_by_chain[(chain, kind)] / count * 1e6
            chain = chain.replace("queues.task > extension.<lambda> > ", "")
            print(f"    {count / per:6.2f}    {kind:<40} {avg:6.0f}  {chain}", file=out)


class HueyCounter:
    """Counts Huey storage calls (queue round trips) by wrapping the storage."""

    def __init__(self, huey: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.active = False
        storage = huey.storage
        for name in ("enqueue", "dequeue", "add_to_schedule", "put_data", "peek_data", "pop_data", "has_data_for_key"):
            original = getattr(storage, name)
            setattr(storage, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self.active:
                self.calls[name] += 1
            return original(*args, **kwargs)

        return counted


class Timers:
    """Inclusive wall time (and SQL time inside) of chosen functions, no profiler.

    Functions are wrapped wherever a flask_baton module holds them (module
    attributes and ``from x import y`` copies), so the breakdown survives
    refactors; names that no longer exist are skipped.
    """

    def __init__(self, sql: SqlCounter) -> None:
        self.sql = sql
        self.wall: Counter[str] = Counter()
        self.sql_in: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.stack: list[str] = []
        self._undo: list[tuple[Any, str, Any]] = []
        sql.on_sql = self._on_sql
        self.active = False

    def _on_sql(self, seconds: float) -> None:
        for name in set(self.stack):
            self.sql_in[name] += seconds

    def wrap(self, label: str, owner: Any, attr: str) -> None:
        original = getattr(owner, attr, None)
        if original is None:
            return
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not timers.active:
                return original(*args, **kwargs)
            timers.stack.append(label)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers.wall[label] += time.perf_counter() - t0
                timers.calls[label] += 1
                timers.stack.pop()

        # Replace every reference flask_baton modules hold to this function.
        targets = [(owner, attr)]
        if isinstance(owner, type(sys)):
            for mod_name, module in list(sys.modules.items()):
                if mod_name.startswith("flask_baton") and module is not owner:
                    for name, value in list(vars(module).items()):
                        if value is original:
                            targets.append((module, name))
        for target, name in targets:
            self._undo.append((target, name, getattr(target, name)))
            setattr(target, name, timed)

    def wrap_cm(self, label: str, owner: Any, attr: str) -> None:
        """Time a ``@contextmanager`` function's whole ``with`` block."""
        import contextlib

        original = getattr(owner, attr, None)
        if original is None:
            return
        timers = self

        @contextlib.contextmanager
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not timers.active:
                with original(*args, **kwargs) as value:
                    yield value
                return
            timers.stack.append(label)
            t0 = time.perf_counter()
            try:
                with original(*args, **kwargs) as value:
                    yield value
            finally:
                timers.wall[label] += time.perf_counter() - t0
                timers.calls[label] += 1
                timers.stack.remove(label)

        if isinstance(owner, type):  # a method: patch the class
            self._undo.append((owner, attr, original))
            setattr(owner, attr, timed)
            return
        for mod_name, module in list(sys.modules.items()):
            if mod_name.startswith("flask_baton"):
                for name, value in list(vars(module).items()):
                    if value is original:
                        self._undo.append((module, name, value))
                        setattr(module, name, timed)

    def undo(self) -> None:
        for target, name, value in reversed(self._undo):
            setattr(target, name, value)
        self._undo.clear()

    def report(self, per: int, out: Any, order: list[str]) -> None:
        print("    inclusive time per hop (us), and the part spent in cursor.execute:", file=out)
        for label in order:
            if self.calls[label]:
                wall = self.wall[label] / per * 1e6
                in_sql = self.sql_in[label] / per * 1e6
                print(
                    f"      {label:<58} {wall:8.0f} us  (SQL {in_sql:6.0f} us, other {wall - in_sql:6.0f} us)"
                    f"  {self.calls[label] / per:5.2f} calls",
                    file=out,
                )


def drain(huey: Any) -> int:
    """Run queued tasks in this process until the queue is empty (a worker's loop)."""
    ran = 0
    while True:
        task = huey.dequeue()
        if task is None:
            return ran
        huey.execute(task)
        ran += 1


def _chain_wf(n: int, tag: str) -> Any:
    from flask_baton import Workflow

    from .app import noop

    wf = Workflow(name="profile:chain")
    for i in range(n):
        wf.add(f"s{i}", noop.new(k=f"{tag}:{i}"), deps=[f"s{i - 1}"] if i else [])
    return wf


def _fan_wf(n: int, tag: str) -> Any:
    from flask_baton import Workflow

    from .app import fan_in, noop, value

    wf = Workflow(name="profile:fan")
    wf.add("root", noop.new(k=f"{tag}:root"))
    for i in range(n):
        wf.add(f"p{i}", value.new(k=f"{tag}:{i}"), deps=["root"])
    wf.add("fanin", fan_in.new(k=f"{tag}:fanin"), deps=[f"p{i}" for i in range(n)])
    return wf


def profile_storage(storage: Storage, steps: int, top: int, out: Any) -> None:
    from flask_baton import Workflow

    from . import raw
    from .app import baton, create_app, noop

    app = create_app(storage.baton_settings("profile"))
    state = app.extensions["baton"]
    baton.create_schema(app)
    huey = state.queues.huey()
    sql = SqlCounter(state.engine)
    queue = HueyCounter(huey)
    kind, name, target = storage.raw_target("profile-raw")
    raw_huey, raw_task = raw.build(kind, name, target)
    # In one process a blocking dequeue (Redis BRPOP) would wait out its 1 s
    # timeout on the empty queue at the end of every drain: poll instead.
    huey.storage.blocking = False
    raw_huey.storage.blocking = False
    print(f"\n=== {storage.label}: in-process consumer loop (dequeue + execute), {steps}-step chain", file=out)
    try:
        with app.app_context():
            # Warm up both (connections, compile caches, imports).
            _chain_wf(10, "warm").insert()
            drain(huey)
            raw_huey.enqueue(raw_task.s("warm"))
            drain(raw_huey)

            # 1. Wall time per hop, no profiler.
            walls = []
            for _ in range(3):
                wf = _chain_wf(steps, "wall")
                t0 = time.perf_counter()
                wf.insert()
                drain(huey)
                walls.append((time.perf_counter() - t0) / steps)
            raw_walls = []
            for _ in range(3):
                pipeline = raw_task.s("r:0")
                tail = pipeline
                for i in range(1, steps):
                    tail.then(raw_task, f"r:{i}")
                    tail = tail.on_complete
                t0 = time.perf_counter()
                raw_huey.enqueue(pipeline)
                drain(raw_huey)
                raw_walls.append((time.perf_counter() - t0) / steps)
            b, r = min(walls) * 1e3, min(raw_walls) * 1e3
            print(
                f"\n  per hop, one process, no profiler (best of 3): flask_baton {b:.3f} ms, raw Huey {r:.3f} ms "
                f"({b / r:.1f}x); flask_baton overhead {b - r:.3f} ms/hop",
                file=out,
            )

            # 2. SQL per chain hop.
            wf = _chain_wf(steps, "sql")
            wf.insert()
            sql.reset()
            queue.calls.clear()
            sql.active = queue.active = True
            drain(huey)
            sql.active = queue.active = False
            sql.report(steps, f"chain hop (claim + run + complete, x{steps}; insert not counted)", out)
            print(
                "    Huey storage calls per hop: "
                + ", ".join(f"{k} {v / steps:.2f}" for k, v in sorted(queue.calls.items())),
                file=out,
            )

            # 2b. Where a hop's time goes, no profiler: wrapped functions.
            from sqlalchemy.engine import Connection as SAConnection

            import flask_baton.appstate as m_appstate
            import flask_baton.cascade as m_cascade
            import flask_baton.dispatch as m_dispatch
            import flask_baton.queues as m_queues
            import flask_baton.transitions as m_transitions
            from flask_baton.store import Store

            timers = Timers(sql)
            order = []

            def add(label: str, owner: Any, attr: str, cm: bool = False) -> None:
                (timers.wrap_cm if cm else timers.wrap)(label, owner, attr)
                order.append(label)

            add("huey.execute (whole hop minus dequeue)", huey, "execute")
            add("huey.dequeue", huey, "dequeue")
            add("dispatch.commit (a transition + after-commit work)", m_dispatch, "commit")
            add("Store.write (BEGIN..COMMIT block)", Store, "write", cm=True)
            add("sqlalchemy Connection.commit", SAConnection, "commit")
            add("transitions.claim", m_transitions, "claim")
            add("transitions.complete (incl. settle)", m_transitions, "complete")
            add("cascade.settle", m_cascade, "settle")
            try:
                from flask_baton.events.database import DatabaseTransport

                add("events: DatabaseTransport.stage (feed INSERT)", DatabaseTransport, "stage")
            except ImportError:
                pass
            add("dispatch.step_event (payload)", m_dispatch, "step_event")
            add("dispatch._after_commit (enqueue, publish, signals)", m_dispatch, "_after_commit")
            add("queues.Queues.enqueue (Huey enqueue)", m_queues.Queues, "enqueue")
            add("dispatch.make_job", m_dispatch, "make_job")
            add("appstate.AppState.label", m_appstate.AppState, "label")
            wf = _chain_wf(steps, "timed")
            wf.insert()
            sql.reset()
            sql.active = timers.active = True
            t0 = time.perf_counter()
            drain(huey)
            hop = (time.perf_counter() - t0) / steps
            sql.active = timers.active = False
            timers.undo()
            print(
                f"\n  chain hop timed without profiler: {hop * 1e6:.0f} us/hop "
                f"({sql.sql_seconds / steps * 1e6:.0f} us in cursor.execute)",
                file=out,
            )
            timers.report(steps, out, order)

            # 3. SQL of a fan-in over 200 deps (the fan-in step alone, by difference).
            width = 200
            wf = _fan_wf(width, "fan")
            wf.insert()
            sql.reset()
            sql.active = True
            drain(huey)
            sql.active = False
            sql.report(width + 2, f"fan-out {width} -> fan-in, per step (root + {width} + fan-in)", out)

            # 4. Single-step workflows: insert + run, per workflow.
            n = 200
            wfs = [Workflow(name="profile:single").add("only", noop.new(k=f"one:{i}")) for i in range(n)]
            sql.reset()
            queue.calls.clear()
            sql.active = queue.active = True
            t0 = time.perf_counter()
            for one in wfs:
                one.insert()
            t_ins = time.perf_counter() - t0
            sql.active = queue.active = False
            sql.report(n, f"insert() of a single-step workflow ({t_ins / n * 1e3:.2f} ms each, no contention)", out)
            # A consumer process did not insert these: it has no cached labels.
            getattr(state, "_labels", {}).clear()
            sql.reset()
            queue.calls.clear()
            sql.active = queue.active = True
            t0 = time.perf_counter()
            drain(huey)
            t_run = time.perf_counter() - t0
            sql.active = queue.active = False
            sql.report(n, f"running a single-step workflow ({t_run / n * 1e3:.2f} ms each)", out)
            print(
                "    Huey storage calls per workflow: "
                + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(queue.calls.items())),
                file=out,
            )

            # 5. cProfile of a chain.
            wf = _chain_wf(steps, "prof")
            profiler = cProfile.Profile()
            profiler.enable()
            wf.insert()
            drain(huey)
            profiler.disable()
            _print_profile(profiler, steps, top, out)
    finally:
        raw_huey.storage.close()
        huey.storage.close()
        state.engine.dispose()


def _print_profile(profiler: cProfile.Profile, steps: int, top: int, out: Any) -> None:
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    print(
        f"\n  cProfile of insert + {steps} hops: {total:.3f}s profiled ({total / steps * 1e3:.2f} ms/hop "
        f"with profiler overhead)",
        file=out,
    )
    rows = []
    for (filename, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((filename, line, func, tt, ct, _nc))
    print("  flask_baton + huey + sqlalchemy entry points by cumulative time (% of total, us per hop):", file=out)
    interesting = [
        r
        for r in rows
        if PKG in r[0]
        or "/huey/api.py" in r[0]
        or "/huey/storage.py" in r[0]
        or (r[2] in ("execute", "commit") and "sqlalchemy/engine/base.py" in r[0])
        or (r[2] in ("connect",) and "sqlalchemy/engine/base.py" in r[0])
        or ("logging/__init__.py" in r[0] and r[2] in ("info", "_log"))
    ]
    interesting.sort(key=lambda r: -r[4])
    for filename, line, func, _tt, ct, nc in interesting[:top]:
        short = filename.split("site-packages/")[-1].replace(PKG, "flask_baton")
        print(
            f"    {100 * ct / total:5.1f}%  {ct / steps * 1e6:8.0f} us  {nc / steps:6.2f} calls  {short}:{line} {func}",
            file=out,
        )
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(top)
    print("  top functions by own time:", file=out)
    for text_line in buf.getvalue().splitlines():
        if re.match(r"\s*\d", text_line) or "ncalls" in text_line:
            text_line = re.sub(r"\S*site-packages/", "", text_line.replace(PKG, "flask_baton"))
            print("    " + text_line, file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--storage", choices=["sqlite", "redis", "all"], default="all")
    parser.add_argument("--steps", type=int, default=200, help="chain length (default 200)")
    parser.add_argument("--top", type=int, default=30, help="rows of profile output")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="baton-profile-"))
    ledger.set_path(str(workdir / "ledger.log"))
    kinds = ["sqlite", "redis"] if args.storage == "all" else [args.storage]
    try:
        for kind in kinds:
            storage = Storage(kind, workdir)
            try:
                profile_storage(storage, args.steps, args.top, sys.stdout)
            finally:
                storage.cleanup()
    finally:
        ledger.set_path(None)
        remove_workdir(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
