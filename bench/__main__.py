"""``python -m bench [--storage sqlite|redis|all] [--quick] [--netem] [--peers]``: flask_baton vs raw Huey.

See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import consumers, peers, raw
from .costs import print_costs, summarize
from .history import HISTORY
from .inserts import insert_times, validation_times
from .meter import Meter
from .netem import Link
from .rows import Report, insert_rows, print_table, storage_rows, validation_rows
from .storage import POSTGRES_URL, REDIS_URL, Storage, make_workdir, remove_workdir
from .systems import BatonSystem, Measurement, RawSystem, System

REFERENCE = (
    "reference per-hop latency (from the issue): raw Huey ~1.5 ms SQLite, ~0.8 ms Redis; Celery ~2.9 ms; RQ ~4.9 ms"
)


@dataclass
class Plan:
    chain_steps: int = 200
    chain_repeats: int = 5
    fan_width: int = 1000
    fan_repeats: int = 3
    throughput_n: int = 5000
    throughput_repeats: int = 1
    insert_steps: int = 10_000
    insert_repeats: int = 3
    validate_sizes: tuple[int, int] = (10_000, 100_000)
    validate_repeats: int = 5
    # Per-run deadlines: a run that exceeds one is reported as "> deadline"
    # (FAIL) and the consumer is restarted on an emptied queue.
    chain_timeout: float = 60.0
    fan_timeout: float = 150.0
    throughput_timeout: float = 300.0


QUICK = Plan(
    chain_repeats=2,
    fan_repeats=1,
    throughput_n=1000,
    insert_repeats=1,
    validate_repeats=2,
    chain_timeout=30.0,
    fan_timeout=40.0,
    throughput_timeout=60.0,
)


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:
        return "n/a"


def _fmt_run(m: Measurement) -> str:
    text = f"{m.seconds:.3f}s"
    if m.extra.get("timed_out"):
        return "> " + text + " (TIMEOUT)"
    return text + (f" (insert {m.insert_seconds:.3f}s)" if m.insert_seconds > 0.05 else "")


def run_storage(
    systems: list[System], plan: Plan, log: Any, analyze: bool, link: Link | None = None
) -> dict[str, dict[str, list[Measurement]]]:
    """Start every system's consumer (behind ``link`` with ``--netem``), warm
    them up, run scenarios 1-3 with the meter on (``bench/meter.py``), stop them.

    Both consumers run for the whole storage block (an idle one costs next to
    nothing: Redis workers block in BRPOP, SQLite workers poll at most every
    50 ms) and the systems take turns run by run (raw, baton, raw, baton...),
    so a change in background load hits both sides alike.
    """
    out = {system.key: {"chain": [], "fan_out": [], "throughput": []} for system in systems}
    scenarios = (
        ("chain", plan.chain_repeats, plan.chain_steps, plan.chain_timeout),
        ("fan_out", plan.fan_repeats, plan.fan_width, plan.fan_timeout),
        ("throughput", plan.throughput_repeats, plan.throughput_n, plan.throughput_timeout),
    )
    current: System | None = None
    meter: Meter | None = None
    try:
        for system in systems:
            current = system
            system.link = link
            log(f"  starting {system.name} consumer: {' '.join(system.consumer_command())}")
            system.start()
            t0 = time.perf_counter()
            system.warm_up()
            if analyze and hasattr(system, "analyze") and system.storage.kind != "sqlite":
                system.analyze()
                log(
                    f"  {system.name}: {HISTORY:,} finished workflows of history, then ANALYZE "
                    "(steady state; --fresh skips both)"
                )
            log(f"  {system.name}: consumer up and warm ({time.perf_counter() - t0:.1f}s)")
        meter = Meter(systems[0].storage, systems, link.ns_prefix() if link else None)
        for system in systems:
            system.meter = meter
        for name, repeats, size, timeout in scenarios:
            gave_up: set[str] = set()
            for _ in range(repeats):
                for system in systems:
                    if system.key in gave_up:
                        continue
                    current = system
                    for other in systems:
                        other.ensure_idle()
                    try:
                        measured = getattr(system, name)(size, timeout=timeout)
                        if system.usage is not None:
                            measured.extra["usage"] = system.usage
                        out[system.key][name].append(measured)
                    except TimeoutError as exc:
                        steps = size + 2 if name == "fan_out" else size
                        out[system.key][name].append(Measurement(timeout, steps, 0.0, {"timed_out": True}))
                        log(
                            f"  {system.name}: {name} exceeded its {timeout:.0f}s deadline ({exc}); restarting "
                            "its consumer on an emptied queue, skipping this scenario's other repeats"
                        )
                        system.recover()
                        gave_up.add(system.key)
            for system in systems:
                log(
                    f"  {system.name}: {name} x{len(out[system.key][name])}: "
                    + ", ".join(_fmt_run(m) for m in out[system.key][name])
                )
        for system in systems:
            current = system
            system.ensure_idle()
    except Exception:
        if current is not None and current.consumer is not None:
            log(f"  --- last lines of the {current.name} consumer log ---\n{current.consumer.log_tail(12)}")
        raise
    finally:
        for system in systems:
            system.stop()
        if meter is not None:
            meter.close()
    return out


def _ports() -> tuple[int, ...]:
    from sqlalchemy.engine import make_url

    return (make_url(POSTGRES_URL).port or 5432, make_url(REDIS_URL).port or 6379)


def _open_link(args: argparse.Namespace, log: Any) -> Link | None:
    """``--netem``: the consumers' namespace, or None (after saying why) if it cannot be built here."""
    reason = Link.unavailable()
    link = Link(args.netem_delay, _ports())
    if reason is None:
        try:
            link.open()
        except RuntimeError as exc:
            reason = str(exc)
    if reason is not None:
        log(f"--netem skipped: {reason}")
        return None
    log(f"--netem: {link.describe()}")
    return link


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--storage", choices=["sqlite", "redis", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 1,000-step throughput (< ~2 min)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite files)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw numbers as JSON")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="PostgreSQL: no ANALYZE after the warm-up, so the planner has no statistics, "
        "as in a new install's first minute (before autovacuum analyzes the tables)",
    )
    parser.add_argument(
        "--netem",
        action="store_true",
        help="PostgreSQL + Redis only, the consumers in a network namespace behind a veth pair with tc netem "
        "delay (needs root, ip, tc, nft; skipped with the reason otherwise)",
    )
    parser.add_argument("--netem-delay", type=float, default=0.5, metavar="MS", help="delay each way (default 0.5)")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run Celery and RQ on the same Redis (the redis block; needs the bench extra)",
    )
    parser.add_argument(
        "--raw-sqlite-synchronous",
        choices=["OFF", "NORMAL", "FULL"],
        metavar="LEVEL",
        help="raw Huey's SQLite file at this synchronous level (OFF, NORMAL, FULL) instead of Huey's default "
        "(FULL in recent Huey); flask_baton's runs at BATON_SQLITE_SYNCHRONOUS, NORMAL by default",
    )
    args = parser.parse_args(argv)
    if args.raw_sqlite_synchronous:
        os.environ[raw.SYNCHRONOUS_ENV] = args.raw_sqlite_synchronous  # the raw consumers inherit it
    if args.peers and args.storage == "sqlite":
        parser.error("--peers runs Celery and RQ on Redis: use --storage redis or all")
    if args.peers and (why := peers.missing()):
        parser.exit(2, f"python -m bench: {why}\n")

    plan = QUICK if args.quick else Plan()
    kinds = ["sqlite", "redis"] if args.storage == "all" else [args.storage]
    if args.netem:
        if args.storage == "sqlite":
            parser.error("--netem puts a network between the consumers and PostgreSQL + Redis: not with SQLite")
        kinds = ["redis"]
    import huey
    import sqlalchemy

    import flask_baton

    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    link = _open_link(args, log) if args.netem else None
    if args.netem and link is None:
        return 0

    workdir, keep = make_workdir(args.keep)
    peer_table: peers.PeerTable | None = None
    report = Report()
    costs: list[tuple[str, dict[str, Any]]] = []
    names: dict[str, str] = {}
    log(
        f"flask_baton vs raw Huey, {'quick' if args.quick else 'full'} run, storage: {', '.join(kinds)}"
        f"{' (--fresh: PostgreSQL without planner statistics)' if args.fresh else ''}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, huey {huey.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, flask_baton from {Path(flask_baton.__file__).parent}"
    )
    if "sqlite" in kinds:
        level = args.raw_sqlite_synchronous or "Huey's default"
        log(f"SQLite files: flask_baton's database and queue at synchronous=NORMAL, raw Huey's queue at {level}")
    log(f"workdir {workdir}; load average before starting: {_load()}")
    ok = True
    try:
        for kind in kinds:
            storage = Storage(kind, workdir, network=f"netem {args.netem_delay:g} ms" if link else "")
            log(f"== {storage.label}")
            try:
                systems: list[System] = [cls(storage, workdir) for cls in (RawSystem, BatonSystem)]
                with_peers = args.peers and kind == "redis"
                if with_peers:
                    systems += peers.systems(storage, workdir)
                names |= {system.key: system.name for system in systems}
                results = run_storage(systems, plan, log, not args.fresh, link)
                storage_rows(storage, results["raw"], results["baton"], plan, report)
                costs.append((storage.short, summarize(results)))
                report.data[kind] = {
                    "runs": {
                        sys_key: {sc: [m.__dict__ for m in ms] for sc, ms in res.items()}
                        for sys_key, res in results.items()
                    },
                    "cost_per_step": costs[-1][1],
                }
                if with_peers:
                    peer_table = peers.table(results, storage.short)
                    report.failures += peer_table.failures
                    report.data["peers"] = peer_table.data
                if link is None:  # the driver inserts on the host: no link to cross
                    log(f"  insert {plan.insert_steps:,}- and {2 * plan.insert_steps:,}-step workflows")
                    ins = insert_times(storage, plan.insert_steps, plan.insert_repeats)
                    insert_rows(storage, ins, plan.insert_steps, report)
                    report.data[kind]["insert"] = ins
            finally:
                storage.cleanup()
        if link is None:
            log(f"validate {plan.validate_sizes[0]:,} vs {plan.validate_sizes[1]:,} steps")
            val = validation_times(plan.validate_sizes, plan.validate_repeats)
            validation_rows(val, plan.validate_sizes, report)
            report.data["validate"] = {shape: {str(n): t for n, t in d.items()} for shape, d in val.items()}
    except BaseException as exc:
        ok = False
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            traceback.print_exc()
        print(f"benchmark aborted: {exc!r}", file=sys.stderr)
        if not keep:
            keep = True
            print(f"keeping {workdir} (consumer logs) for inspection", file=sys.stderr)
    finally:
        consumers.stop_all()
        if link is not None:
            link.close()
        if not keep:
            remove_workdir(workdir)

    if report.rows:
        print()
        print_table(report)
        print()
        print_costs(costs, names)
        print()
        print(REFERENCE)
        print(
            f"consumers: flask_baton `{' '.join(consumers.baton_command()[1:])}`; "
            f"raw Huey `{' '.join(consumers.raw_command()[1:])}` "
            f"({consumers.WORKERS} worker processes each, same polling settings)"
            + (f"; {link.describe()}" if link else "")
        )
    if peer_table is not None:
        print()
        print(peer_table.format())
    for failure in report.failures:
        print(f"HEALTH: {failure}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "plan": plan.__dict__,
                    "netem": link.describe() if link else None,
                    "rows": [r.__dict__ for r in report.rows],
                    "data": report.data,
                    "failures": report.failures,
                },
                indent=2,
                default=str,
            )
        )
    log(
        f"done in {time.perf_counter() - started:.0f}s; load average now: {_load()} "
        "(this machine's other processes compete with the consumers for CPU)"
    )
    failed_rows = [row for row in report.rows if row.verdict == "FAIL"]
    if failed_rows:
        print(f"{len(failed_rows)} row(s) missed their target")
    if peer_table is not None and peer_table.behind:
        print(f"flask_baton is not ahead of both peers on: {', '.join(peer_table.behind)}")
    peers_behind = peer_table is not None and bool(peer_table.behind)
    return 0 if ok and not report.failures and not failed_rows and not peers_behind else 1


if __name__ == "__main__":
    sys.exit(main())
