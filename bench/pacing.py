"""Pacing benchmark: a fan-out under rate and concurrency limits, on three consumer processes.

    python -m bench.pacing                               # 1,000 steps at 600 rpm, both backends (~2 min each)
    python -m bench.pacing --storage sqlite --steps 300 --rpm 120 --window 10   # a quick run

Two phases per backend, each on fresh storage with its own consumers
(``flask baton worker`` subprocesses):

- **rate**: ``BATON_RATE_LIMITS = {"openai": {"rpm": RPM, "tpm": TPM}}``, a
  root and ``--steps`` calls behind it, each estimating and recording
  ``--tokens`` tokens. Checked: no window of ``--window`` seconds starting at
  any call's count time holds more than ``rpm`` calls or ``tpm`` tokens;
  once saturated (the calls beyond the first ``rpm``), each is counted so
  soon after the window lets it in that the rate sustained is >= 95 % of
  ``rpm`` (``saturated_lag``); every step
  ran once, with attempt 1 (waiting spent no attempt).
- **concurrency**: ``{"openai": {"concurrency": N}}``, steps sleeping
  ``--pause`` seconds. Checked: at most N ran at once (from their recorded
  start and end), each once, with attempt 1.

``--storage sqlite``: SQLite alone (the buckets are a database row);
``--storage postgres``: PostgreSQL + RedisHuey, the buckets in Redis.
See bench/README.md ("Pacing").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask_baton import Workflow

from . import pacing_app
from .chaos import fresh_storage
from .consumers import Consumer, _tool, stop_all

#: Share of ``rpm`` the calls beyond the first ``rpm`` must sustain.
RATE_TARGET = 0.95
CONSUMERS = 3
WORKERS = 4  # threads per consumer


# -- checks (pure: recorded runs in, findings out) ------------------------------------------------


def window_peak(times: Sequence[float], weights: Sequence[int], window: float) -> tuple[int, int]:
    """The most calls and tokens counted in any window ``[t, t + window)`` starting at a call time ``t``.

    ``times`` sorted; ``weights[i]`` the tokens of call ``i``.
    """
    most_calls = most_tokens = 0
    tokens = end = 0
    for begin, at in enumerate(times):
        while end < len(times) and times[end] < at + window:
            tokens += weights[end]
            end += 1
        most_calls, most_tokens = max(most_calls, end - begin), max(most_tokens, tokens)
        tokens -= weights[begin]
    return most_calls, most_tokens


def saturated_lag(times: Sequence[float], window: float, rpm: int) -> float | None:
    """Mean seconds each call beyond the first ``rpm`` was counted after the window let it in.

    Call ``k`` may be counted no earlier than ``window`` after call ``k - rpm``
    (before that, ``rpm`` calls are already in its window): a perfect limiter
    with a backlog counts it then, lag 0, and sustains ``rpm`` calls per
    ``window``; a mean lag of ``L`` sustains ``rpm`` per ``window + L``.
    ``times`` sorted; None when there are no more than ``rpm`` calls.
    """
    lags = [times[k] - times[k - rpm] - window for k in range(rpm, len(times))]
    return sum(lags) / len(lags) if lags else None


def per_window(times: Sequence[float], window: float) -> list[int]:
    """Calls counted in each consecutive window from the first call: ``[600, 400]``."""
    if not times:
        return []
    counts: Counter[int] = Counter(int((at - times[0]) // window) for at in times)
    return [counts[n] for n in range(max(counts) + 1)]


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals ``(start, end)`` open at once (one ending as another starts: not overlapping)."""
    edges = sorted([(end, -1) for _start, end in intervals] + [(start, 1) for start, _end in intervals])
    most = running = 0
    for _at, step in edges:
        running += step
        most = max(most, running)
    return most


def mean_overlap(intervals: Sequence[tuple[float, float]]) -> float:
    """Steps running at once on average, from the first start to the last end."""
    if not intervals:
        return 0.0
    span = max(end for _s, end in intervals) - min(start for start, _e in intervals)
    return sum(end - start for start, end in intervals) / span if span > 0 else float(len(intervals))


def run_problems(runs: Sequence[Mapping[str, Any]], steps: int) -> list[str]:
    """Steps that ran twice or never, and runs with an attempt other than 1."""
    problems = []
    counts = Counter(str(run["step"]) for run in runs)
    twice = sorted(step for step, n in counts.items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} step(s) ran more than once: {', '.join(twice[:5])}")
    if len(counts) != steps:
        problems.append(f"{steps - len(counts)} step(s) never ran")
    spent = sorted(str(run["step"]) for run in runs if run["attempt"] != 1)
    if spent:
        problems.append(f"{len(spent)} run(s) with attempt > 1 (an attempt spent): {', '.join(spent[:5])}")
    return problems


@dataclass
class Phase:
    """What one phase measured and what failed."""

    name: str
    storage: str
    steps: int
    seconds: float  # insert to last step's end
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        head = f"{self.storage} {self.name}: {'ok' if self.ok else 'FAILED'}, {self.steps} steps in {self.seconds:.1f}s"
        return "\n".join([head, *(f"  {line}" for line in self.lines), *(f"  PROBLEM: {p}" for p in self.problems)])


def check_rate(phase: Phase, runs: Sequence[Mapping[str, Any]], rpm: int, tpm: int, window: float) -> None:
    """Fill ``phase`` with the rate phase's figures and problems.

    The calls a window can hold, ``cap``, is ``rpm`` or, when the tokens
    bind first, ``tpm`` over the largest call's tokens.
    """
    ordered = sorted(runs, key=lambda run: float(run["at"]))
    times = [float(run["at"]) for run in ordered]
    calls, tokens = window_peak(times, [int(run["tokens"]) for run in ordered], window)
    cap = min(rpm, tpm // max((int(run["tokens"]) for run in runs), default=1) or rpm)
    lag = saturated_lag(times, window, cap)
    held = None if lag is None else window / (window + lag)
    span = times[-1] - times[0] if times else 0.0
    phase.figures.update(fullest_calls=calls, fullest_tokens=tokens, lag=lag, saturated_rate=held, span=span)
    phase.lines += [
        f"fullest {window:g}s window: {calls} calls, {tokens:,} tokens (limits {rpm} rpm, {tpm:,} tpm)",
        f"calls per window from the first: {per_window(times, window)}; first to last call {span:.1f}s"
        + (f" ({(len(times) - 1) / span * window:.0f} per {window:g}s)" if span > 0 else ""),
        "once saturated: "
        + (
            "n/a (never saturated: give more --steps than --rpm)"
            if held is None or lag is None
            else f"each call {lag:.2f}s after its turn on average: {held:.1%} of the limit ({cap} a window) sustained"
        ),
    ]
    if calls > rpm:
        phase.problems.append(f"a window held {calls} calls > {rpm} rpm")
    if tokens > tpm:
        phase.problems.append(f"a window held {tokens:,} tokens > {tpm:,} tpm")
    if held is not None and held < RATE_TARGET:
        phase.problems.append(f"saturated rate {held:.1%} of the limit < {RATE_TARGET:.0%}")
    phase.problems += run_problems(runs, phase.steps)


def check_concurrency(phase: Phase, runs: Sequence[Mapping[str, Any]], limit: int, pause: float) -> None:
    """Fill ``phase`` with the concurrency phase's figures and problems."""
    intervals = [(float(run["start"]), float(run["end"])) for run in runs]
    most, mean = max_overlap(intervals), mean_overlap(intervals)
    phase.figures.update(max_overlap=most, mean_overlap=mean)
    phase.lines.append(
        f"at most {most} running at once (limit {limit}), {mean:.2f} on average; "
        f"ideal {phase.steps * pause / limit:.1f}s for {phase.steps} x {pause:g}s"
    )
    if most > limit:
        phase.problems.append(f"{most} steps ran at once > concurrency {limit}")
    phase.problems += run_problems(runs, phase.steps)


# -- running ---------------------------------------------------------------------------------------


def run_phase(
    storage: str,
    workdir: Path,
    limit: Mapping[str, int],
    steps: int,
    tokens: int,
    pause: float,
    window: float,
    timeout: float,
) -> tuple[list[dict[str, Any]], float]:
    """Run one fan-out under ``limit`` on fresh storage with ``CONSUMERS`` consumers; its runs and seconds."""
    workdir.mkdir(parents=True)
    ledger = workdir / "ledger.jsonl"
    with fresh_storage(storage, workdir) as base:
        settings = {
            **base,
            "BATON_RATE_LIMITS": {pacing_app.KEY: dict(limit)},
            "BATON_DASHBOARD_PREFIX": None,
            "PACING_LEDGER": str(ledger),
            "PACING_WINDOW": window,
        }
        app = pacing_app.create_app(settings)
        baton = pacing_app.baton
        baton.create_schema(app)
        command = [
            _tool("flask"),
            "--app",
            "bench.pacing_app:create_app",
            "baton",
            "worker",
            "-w",
            str(WORKERS),
            "-k",
            "thread",
            "--delay",
            "0.001",
            "--max-delay",
            "0.05",
        ]
        env = {pacing_app.ENV_SETTINGS: json.dumps(settings)}
        consumers = [Consumer(f"c{n}", command, env, workdir / f"c{n}.log") for n in range(CONSUMERS)]
        try:
            with app.app_context():
                wf = Workflow("pacing").add("start", pacing_app.start.new())
                for n in range(steps):
                    wf.add(f"call:{n:04d}", pacing_app.call.new(tokens=tokens, pause=pause), deps=["start"])
                began = time.time()
                wf.insert()
                deadline = time.monotonic() + timeout
                while (record := baton.query.get_workflow(wf.workflow_id)) and record.state.value == "running":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{storage}: the fan-out did not finish within {timeout:.0f}s")
                    for consumer in consumers:
                        consumer.check_alive()
                    time.sleep(0.5)
                if record is None or record.state.value != "completed":
                    raise RuntimeError(f"{storage}: the fan-out ended {record and record.state.value}")
        finally:
            stop_all()
            baton.close(app)  # every connection, so the schema can be dropped
            with app.app_context():
                for engine in app.extensions["sqlalchemy"].engines.values():
                    engine.dispose()
    runs = [json.loads(line) for line in ledger.read_text().splitlines()]
    return runs, max(float(run["end"]) for run in runs) - began


def run_storage(storage: str, args: argparse.Namespace, workdir: Path) -> list[Phase]:
    """The rate phase, then the concurrency phase, on ``storage``."""
    rate_limit = {"rpm": args.rpm, "tpm": args.tpm}
    timeout = args.steps / args.rpm * args.window * 2 + 120
    runs, seconds = run_phase(
        storage, workdir / f"{storage}-rate", rate_limit, args.steps, args.tokens, 0.0, args.window, timeout
    )
    rate = Phase("rate", storage, args.steps, seconds)
    check_rate(rate, runs, args.rpm, args.tpm, args.window)
    print(rate.format(), flush=True)
    timeout = args.steps * args.pause / args.concurrency * 4 + 120
    runs, seconds = run_phase(
        storage,
        workdir / f"{storage}-concurrency",
        {"concurrency": args.concurrency},
        args.steps,
        args.tokens,
        args.pause,
        args.window,
        timeout,
    )
    slots = Phase("concurrency", storage, args.steps, seconds)
    check_concurrency(slots, runs, args.concurrency, args.pause)
    print(slots.format(), flush=True)
    return [rate, slots]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pacing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--tpm", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=100, help="each call's estimate and recorded usage")
    parser.add_argument("--window", type=float, default=60.0, help="seconds rpm and tpm count in (default 60)")
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds each step sleeps in the concurrency phase")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (ledgers, consumer logs)")
    args = parser.parse_args(argv)
    storages = ["sqlite", "postgres"] if args.storage == "both" else [args.storage]
    workdir = Path(tempfile.mkdtemp(prefix="baton-pacing-"))
    print(f"pacing: {args.steps} steps, {CONSUMERS} consumers x {WORKERS} threads; work dir {workdir}", flush=True)
    phases: list[Phase] = []
    try:
        for storage in storages:
            phases += run_storage(storage, args, workdir)
        if args.json:
            figures = [{"storage": p.storage, "phase": p.name, "seconds": p.seconds, **p.figures} for p in phases]
            args.json.write_text(json.dumps(figures, indent=2))
        return 0 if all(phase.ok for phase in phases) else 1
    finally:
        stop_all()
        if args.keep or not phases or not all(phase.ok for phase in phases):
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
