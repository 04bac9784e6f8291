"""Scenario 4: inserting one big workflow, and validating big graphs.

Runs in the driver with no consumer: the app has its own database and a
Huey queue nobody reads, so ``insert()`` is measured alone (validation +
one transaction writing every node and edge + enqueueing the root).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from typing import Any

from .storage import Storage


def _wide(n: int) -> Any:
    from flask_baton import Workflow

    from .app import noop

    wf = Workflow(name=f"bench:wide-{n}")
    wf.add("root", noop.new(k="root"))
    for i in range(n - 1):
        wf.add(f"s{i}", noop.new(k=str(i)), deps=["root"])
    return wf


def _mixed(n: int, seed: int = 7) -> Any:
    """Each step depends on 1-3 steps among the 50 before it (a layered mix)."""
    from flask_baton import Workflow

    from .app import noop

    rng = random.Random(seed)
    wf = Workflow(name=f"bench:mixed-{n}")
    for i in range(n):
        if i == 0:
            deps: list[str] = []
        else:
            window = range(max(0, i - 50), i)
            deps = [f"s{j}" for j in sorted(rng.sample(window, min(len(window), rng.randint(1, 3))))]
        wf.add(f"s{i}", noop.new(k=str(i)), deps=deps)
    return wf


def _chain(n: int) -> Any:
    from flask_baton import Workflow

    from .app import noop

    wf = Workflow(name=f"bench:chain-{n}")
    for i in range(n):
        wf.add(f"s{i}", noop.new(k=str(i)), deps=[f"s{i - 1}"] if i else [])
    return wf


def insert_times(storage: Storage, steps: int, repeats: int) -> dict[str, Any]:
    """Median/min seconds of ``Workflow.insert()``, keyed ``"<shape>/<steps>"``:
    wide at ``steps`` and twice that (taking turns, so background load hits
    both alike), and mixed at ``steps``."""
    from .app import baton, create_app

    settings = storage.baton_settings("insert")
    app = create_app(settings)
    state = app.extensions["baton"]
    baton.create_schema(app)
    cases = (("wide", _wide, steps), ("wide", _wide, 2 * steps), ("mixed", _mixed, steps))
    times: dict[str, list[float]] = {f"{shape}/{n}": [] for shape, _, n in cases}
    builds: dict[str, list[float]] = {key: [] for key in times}
    edges: dict[str, int] = {}
    try:
        with app.app_context():
            # Warm the engine (connection, statement compile cache) once.
            _wide(10).insert()
            for _ in range(repeats):
                for shape, build, n in cases:
                    key = f"{shape}/{n}"
                    t0 = time.perf_counter()
                    wf = build(n)
                    builds[key].append(time.perf_counter() - t0)
                    edges[key] = sum(len(d) for d in wf._deps.values())
                    t0 = time.perf_counter()
                    wf.insert()
                    times[key].append(time.perf_counter() - t0)
                    del wf
    finally:
        huey = state.queues.huey()
        try:
            huey.flush()
        except Exception:
            pass
        huey.storage.close()
        state.engine.dispose()
    return {
        key: {
            "shape": key.split("/")[0],
            "steps": int(key.split("/")[1]),
            "median": statistics.median(runs),
            "min": min(runs),
            "max": max(runs),
            "build_median": statistics.median(builds[key]),
            "edges": edges[key],
        }
        for key, runs in times.items()
    }


def _plain_pass(deps_of: dict[str, Any]) -> dict[str, int]:
    """Touch every step and edge once with a dict lookup: the floor any check pays."""
    seen: dict[str, int] = {}
    for name, deps in deps_of.items():
        seen[name] = 0
        for dep in deps:
            seen[dep] = seen.get(dep, 0)
    return seen


def validation_times(sizes: tuple[int, ...], repeats: int) -> dict[str, dict[int, float]]:
    """Best-of-``repeats`` seconds per shape and size, of ``Workflow.validate()``
    (key ``"<shape>"``) and of a plain pass over the same graph (``"<shape>/pass"``).

    The plain pass shows what bigger dicts cost by themselves (cache misses,
    fresh memory): per-step time grows with size even for it. The workflow
    is built before timing; the collector runs as users have it
    (``validate()`` holds it off by itself).
    """
    out: dict[str, dict[int, float]] = {}
    for shape, build in (("chain", _chain), ("wide", _wide), ("mixed", _mixed)):
        out[shape], out[f"{shape}/pass"] = {}, {}
        for n in sizes:
            wf = build(n)
            for key, measure in ((shape, wf.validate), (f"{shape}/pass", lambda wf=wf: _plain_pass(wf._deps))):
                best = float("inf")
                for _ in range(repeats):
                    gc.collect()
                    t0 = time.perf_counter()
                    size = len(measure())
                    best = min(best, time.perf_counter() - t0)
                    assert size == n
                out[key][n] = best
            del wf
    return out
