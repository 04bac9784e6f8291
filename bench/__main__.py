"""``python -m bench [--storage sqlite|redis|all] [--quick]``: flask_baton vs raw Huey.

See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import consumers
from .inserts import insert_times, validation_times
from .storage import Storage, make_workdir, remove_workdir
from .systems import HISTORY, INSERT_BATCH, BatonSystem, Measurement, RawSystem, System

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


@dataclass
class Row:
    scenario: str
    metric: str
    raw: str
    baton: str
    ratio: str
    target: str
    verdict: str
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _median(ms: list[Measurement]) -> float:
    return statistics.median(m.seconds for m in ms)


def _spread(values: list[float], fmt: str) -> str:
    if len(values) < 2:
        return ""
    return f"range {fmt.format(min(values))}-{fmt.format(max(values))}"


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:
        return "n/a"


def _prefixed(prefix: str, text: str) -> str:
    return prefix + text if text else ""


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _fmt_run(m: Measurement) -> str:
    text = f"{m.seconds:.3f}s"
    if m.extra.get("timed_out"):
        return "> " + text + " (TIMEOUT)"
    return text + (f" (insert {m.insert_seconds:.3f}s)" if m.insert_seconds > 0.05 else "")


def run_storage(systems: list[System], plan: Plan, log: Any, analyze: bool) -> dict[str, dict[str, list[Measurement]]]:
    """Start every system's consumer, warm them up, run scenarios 1-3, stop them.

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
    try:
        for system in systems:
            current = system
            log(f"  starting {system.name} consumer: {' '.join(system.consumer_command())}")
            system.start()
            t0 = time.perf_counter()
            system.warm_up()
            if analyze and hasattr(system, "analyze"):
                system.analyze()
                log(
                    f"  {system.name}: {HISTORY:,} finished workflows of history, then ANALYZE "
                    "(steady state; --fresh skips both)"
                )
            log(f"  {system.name}: consumer up and warm ({time.perf_counter() - t0:.1f}s)")
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
                        out[system.key][name].append(getattr(system, name)(size, timeout=timeout))
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
    return out


def _timed_out(ms: list[Measurement]) -> bool:
    return any(m.extra.get("timed_out") for m in ms)


def _gt(ms: list[Measurement], value: float, fmt: str) -> str:
    """A median, marked as a lower bound when a run hit its deadline."""
    return ("> " if _timed_out(ms) else "") + fmt.format(value)


def storage_rows(
    storage: Storage, raw: dict[str, list[Measurement]], baton: dict[str, list[Measurement]], plan: Plan, report: Report
) -> None:
    s = storage.short
    # 1. chain
    raw_hop = _median(raw["chain"]) / plan.chain_steps * 1000
    bat_hop = _median(baton["chain"]) / plan.chain_steps * 1000
    ratio = bat_hop / raw_hop
    timed_out = _timed_out(raw["chain"] + baton["chain"])
    report.rows.append(
        Row(
            f"1. chain {plan.chain_steps} [{s}]",
            "per-hop latency, ms",
            _gt(raw["chain"], raw_hop, "{:.2f}"),
            _gt(baton["chain"], bat_hop, "{:.2f}"),
            f"{ratio:.2f}x",
            "<= 2.0x",
            _verdict(ratio <= 2.0 and not timed_out),
            f"median of {len(raw['chain'])}"
            + _prefixed("; raw ", _spread([m.seconds / plan.chain_steps * 1000 for m in raw["chain"]], "{:.2f}"))
            + _prefixed("; baton ", _spread([m.seconds / plan.chain_steps * 1000 for m in baton["chain"]], "{:.2f}")),
        )
    )
    # 2. fan-out / fan-in
    raw_t = _median(raw["fan_out"])
    bat_t = _median(baton["fan_out"])
    ratio = bat_t / raw_t
    timed_out = _timed_out(raw["fan_out"] + baton["fan_out"])
    finished = [m for m in baton["fan_out"] if not m.extra.get("timed_out")]
    report.rows.append(
        Row(
            f"2. fan-out {plan.fan_width} -> fan-in [{s}]",
            "total time, s",
            _gt(raw["fan_out"], raw_t, "{:.3f}"),
            _gt(baton["fan_out"], bat_t, "{:.3f}"),
            ("> " if _timed_out(baton["fan_out"]) else "") + f"{ratio:.2f}x",
            "<= 1.5x",
            _verdict(ratio <= 1.5 and not timed_out),
            f"median of {len(raw['fan_out'])}"
            + _prefixed("; baton ", _spread([m.seconds for m in baton["fan_out"]], "{:.2f}"))
            + (
                f"; baton insert {statistics.median(m.insert_seconds for m in finished) * 1000:.0f} ms"
                if finished
                else ""
            )
            + f", raw enqueue {statistics.median(m.insert_seconds for m in raw['fan_out']) * 1000:.0f} ms"
            + (
                f"; {sum(1 for m in baton['fan_out'] if m.extra.get('timed_out'))} baton run(s) hit the "
                f"{plan.fan_timeout:.0f}s deadline"
                if _timed_out(baton["fan_out"])
                else ""
            ),
        )
    )
    if finished:
        runs = [m.extra["fanin_runs"] for m in finished]
        not_run = [m.extra["fanin_not_run"] for m in finished]
        snoozes = [m.extra["fanin_snoozes"] for m in finished]
        deliveries = [m.extra["fanin_deliveries"] for m in finished]
        report.rows.append(
            Row(
                f"   fan-in step ran [{s}]",
                "times per workflow",
                "-",
                "/".join(map(str, runs)),
                "-",
                "== 1",
                _verdict(all(r == 1 for r in runs)),
                f"attempt {'/'.join(str(m.extra['fanin_attempt']) for m in finished)}, "
                f"result {'/'.join(str(m.extra['fanin_result']) for m in finished)}",
            )
        )
        report.rows.append(
            Row(
                f"   fan-in claimed-not-run/snoozed [{s}]",
                "times per workflow",
                "-",
                "/".join(map(str, not_run)),
                "-",
                "== 0",
                _verdict(all(n == 0 for n in not_run)),
                f"Huey deliveries of the fan-in {'/'.join(map(str, deliveries))}, "
                f"snoozes {'/'.join(map(str, snoozes))}",
            )
        )
    else:
        report.rows.append(
            Row(
                f"   fan-in step ran [{s}]",
                "times per workflow",
                "-",
                "n/a",
                "-",
                "== 1",
                "FAIL",
                "no fan-out run finished before its deadline",
            )
        )
    # 3. throughput
    raw_rate = statistics.median(m.steps / m.seconds for m in raw["throughput"])
    bat_rate = statistics.median(m.steps / m.seconds for m in baton["throughput"])
    ratio = bat_rate / raw_rate
    timed_out = _timed_out(raw["throughput"] + baton["throughput"])
    done = [m for m in baton["throughput"] if not m.extra.get("timed_out")]
    raw_done = [m for m in raw["throughput"] if not m.extra.get("timed_out")]
    note = ""
    if done and raw_done:
        b, r = done[0].extra, raw_done[0].extra
        note = (
            f"insert phase {statistics.median(m.insert_seconds for m in done):.2f}s vs raw enqueue "
            f"{statistics.median(m.insert_seconds for m in raw_done):.2f}s (flask_baton: Workflow.insert_many, "
            f"{INSERT_BATCH} a batch); per workflow p50/p99 "
            f"{b['insert_p50_ms']:.2f}/{b['insert_p99_ms']:.1f} ms vs raw {r['insert_p50_ms']:.2f}/"
            f"{r['insert_p99_ms']:.1f} ms"
        )
    report.rows.append(
        Row(
            f"3. throughput {plan.throughput_n} [{s}]",
            "steps/s",
            ("< " if _timed_out(raw["throughput"]) else "") + f"{raw_rate:.0f}",
            ("< " if _timed_out(baton["throughput"]) else "") + f"{bat_rate:.0f}",
            f"{ratio:.2f}x",
            ">= 0.5x",
            _verdict(ratio >= 0.5 and not timed_out),
            note,
        )
    )
    # Health: every task ran exactly once.
    for name, results in (("raw Huey", raw), ("flask_baton", baton)):
        for scenario, ms in results.items():
            for m in ms:
                if m.extra.get("timed_out"):
                    continue
                if m.extra.get("executions") not in (None, m.steps):
                    report.failures.append(
                        f"{name} {scenario} [{s}]: {m.extra['executions']} executions for {m.steps} steps"
                    )
                if "deliveries" in m.extra and m.extra["deliveries"] != m.steps:
                    report.failures.append(
                        f"{name} {scenario} [{s}]: {m.extra['deliveries']} Huey deliveries for {m.steps} steps"
                    )


def insert_rows(storage: Storage, ins: dict[str, Any], report: Report) -> None:
    s = storage.short
    for shape in ("wide", "mixed"):
        r = ins[shape]
        is_target = storage.kind == "sqlite" and shape == "wide"
        desc = "root + 9,999 deps on root" if shape == "wide" else "each step: 1-3 deps among the 50 before it"
        report.rows.append(
            Row(
                f"4. insert {r['steps']:,} {shape} [{s}]",
                "insert() seconds",
                "-",
                f"{r['median']:.3f}",
                "-",
                "<= 1 s" if is_target else "(info)",
                _verdict(r["median"] <= 1.0) if is_target else "info",
                f"{desc}; {r['edges']:,} edges; min {r['min']:.3f}s; building it: {r['build_median']:.3f}s",
            )
        )


#: Per-step growth from the small to the big graph still called linear. An
#: O(n log n) check would grow 1.25x, a quadratic one 10x; a plain dict pass
#: over the same graph already grows ~1.5x (memory hierarchy), shown alongside.
LINEAR_GROWTH = 3.0


def validation_rows(val: dict[str, dict[int, float]], sizes: tuple[int, int], report: Report) -> None:
    """Linear means per-step time stays flat, up to what bigger dicts cost anyway."""
    small, big = sizes
    for shape, times in val.items():
        if shape.endswith("/pass"):
            continue
        floor = val[f"{shape}/pass"]
        per_small, per_big = (times[n] / n * 1e6 for n in sizes)
        floor_small, floor_big = (floor[n] / n * 1e6 for n in sizes)
        report.rows.append(
            Row(
                f"4. validate {shape}",
                f"us/step {small // 1000}k -> {big // 1000}k",
                "-",
                f"{per_small:.2f} -> {per_big:.2f}",
                f"{per_big / per_small:.1f}x per step",
                f"per-step <= {LINEAR_GROWTH:g}x",
                _verdict(per_big <= LINEAR_GROWTH * per_small),
                f"Workflow.validate(): {times[small] * 1000:.1f} ms -> {times[big] * 1000:.1f} ms for 10x the steps; "
                f"a plain dict pass over the same graph: {floor_small:.2f} -> {floor_big:.2f} us/step (best of runs)",
            )
        )


def print_table(report: Report, out: Any = sys.stdout) -> None:
    headers = ["scenario", "metric", "raw Huey", "flask_baton", "ratio", "target", "result", "notes"]
    rows = [[r.scenario, r.metric, r.raw, r.baton, r.ratio, r.target, r.verdict, r.note] for r in report.rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    line = "  ".join("-" * w for w in widths[:-1])
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), file=out)
    print(line, file=out)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)


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
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else Plan()
    kinds = ["sqlite", "redis"] if args.storage == "all" else [args.storage]
    import huey
    import sqlalchemy

    import flask_baton

    workdir, keep = make_workdir(args.keep)
    report = Report()
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", flush=True)

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)

    log(
        f"flask_baton vs raw Huey, {'quick' if args.quick else 'full'} run, storage: {', '.join(kinds)}"
        f"{' (--fresh: PostgreSQL without planner statistics)' if args.fresh else ''}; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, huey {huey.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}, flask_baton from {Path(flask_baton.__file__).parent}"
    )
    log(f"workdir {workdir}; load average before starting: {_load()}")
    ok = True
    try:
        for kind in kinds:
            storage = Storage(kind, workdir)
            log(f"== {storage.label}")
            try:
                systems: list[System] = []
                for cls in (RawSystem, BatonSystem):
                    systems.append(cls(storage, workdir))
                results = run_storage(systems, plan, log, not args.fresh)
                storage_rows(storage, results["raw"], results["baton"], plan, report)
                log(f"  insert {plan.insert_steps:,}-step workflows x{plan.insert_repeats}")
                ins = insert_times(storage, plan.insert_steps, plan.insert_repeats)
                insert_rows(storage, ins, report)
                report.data[kind] = {
                    "runs": {
                        sys_key: {sc: [m.__dict__ for m in ms] for sc, ms in res.items()}
                        for sys_key, res in results.items()
                    },
                    "insert": ins,
                }
            finally:
                storage.cleanup()
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
        if not keep:
            remove_workdir(workdir)

    if report.rows:
        print()
        print_table(report)
        print()
        print(REFERENCE)
        print(
            f"consumers: flask_baton `{' '.join(consumers.baton_command()[1:])}`; "
            f"raw Huey `{' '.join(consumers.raw_command()[1:])}` "
            f"({consumers.WORKERS} worker processes each, same polling settings)"
        )
    for failure in report.failures:
        print(f"HEALTH: {failure}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "plan": plan.__dict__,
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
    return 0 if ok and not report.failures and not failed_rows else 1


if __name__ == "__main__":
    sys.exit(main())
