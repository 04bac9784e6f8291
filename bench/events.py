"""Event latency: a step transition in a consumer process -> a subscriber in this one.

    python -m bench.events [--workflows 40] [--steps 5]

For each transport, a real ``flask baton worker`` subprocess runs chains of
no-op steps while this process listens with ``events.subscribe_all()``. The
latency of an event is the time it is received here minus the transition's
own ``timestamp`` (read by the consumer under its write lock, just before the
commit), so it covers the commit, the publication and the subscriber's wait.
Both processes share this machine's clock. Targets from the issue: median
<= 20 ms over Redis (now Streams), <= 250 ms over the database feed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from typing import Any

from flask_baton import Workflow, events

from .app import baton, create_app, environment_for, noop
from .consumers import Consumer, baton_command, stop_all
from .storage import Storage, make_workdir, remove_workdir

TARGETS_MS = {"database feed": 250.0, "redis streams": 20.0}


@dataclass(frozen=True)
class Variant:
    """One transport on one storage."""

    label: str
    storage: str  # "sqlite" or "redis" (PostgreSQL app DB + RedisHuey)
    pubsub: bool

    @property
    def transport(self) -> str:
        return "redis streams" if self.pubsub else "database feed"


VARIANTS = (
    Variant("database feed, SQLite", "sqlite", pubsub=False),
    Variant("database feed, PostgreSQL", "redis", pubsub=False),
    Variant("Redis Streams, PostgreSQL", "redis", pubsub=True),
)


def measure(variant: Variant, workflows: int, steps: int, workdir: Any) -> list[float]:
    """Latencies (seconds) of every event of ``workflows`` chains of ``steps`` steps."""
    storage = Storage(variant.storage, workdir)
    try:
        settings = storage.baton_settings(f"events{int(variant.pubsub)}")
        if not variant.pubsub:
            settings = {k: v for k, v in settings.items() if not k.startswith("BATON_PUBSUB")}
        app = create_app(settings)
        baton.create_schema(app)
        consumer = Consumer(variant.label, baton_command(), environment_for(settings), workdir / "events.log")
        try:
            with app.app_context(), events.subscribe_all() as subscription:
                _warm_up(subscription, consumer)
                latencies: list[float] = []
                for index in range(workflows):
                    workflow = Workflow("bench:events")
                    for step in range(steps):
                        workflow.add(f"s{step}", noop.new(k=f"e{index}:{step}"), deps=[f"s{step - 1}"] if step else [])
                    workflow.insert()
                    latencies += _listen_until_finished(subscription, workflow.workflow_id, consumer)
            return latencies
        finally:
            consumer.stop()
    finally:
        storage.cleanup()


def _warm_up(subscription: Any, consumer: Consumer) -> None:
    workflow = Workflow("bench:warm-up").add("only", noop.new(k="warm-up"))
    workflow.insert()
    _listen_until_finished(subscription, workflow.workflow_id, consumer, timeout=60.0)


def _listen_until_finished(
    subscription: Any, workflow_id: str, consumer: Consumer, timeout: float = 30.0
) -> list[float]:
    latencies = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = subscription.get(timeout=0.5)
        consumer.check_alive()
        if event is None or event.workflow_id != workflow_id:
            continue
        latencies.append(time.time() - event.payload["timestamp"])
        if event.name == events.WORKFLOW_FINISHED:
            return latencies
    raise TimeoutError(f"workflow {workflow_id} did not finish within {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__)
    parser.add_argument("--workflows", type=int, default=40, help="chains per transport (default %(default)s)")
    parser.add_argument("--steps", type=int, default=5, help="steps per chain (default %(default)s)")
    args = parser.parse_args(argv)
    workdir, _ = make_workdir(keep=False)
    rows = []
    try:
        for variant in VARIANTS:
            latencies = sorted(measure(variant, args.workflows, args.steps, workdir))
            median = statistics.median(latencies) * 1000
            p95 = latencies[int(len(latencies) * 0.95)] * 1000
            target = TARGETS_MS[variant.transport]
            rows.append((variant.label, len(latencies), median, p95, target, "PASS" if median <= target else "FAIL"))
    finally:
        stop_all()
        remove_workdir(workdir)
    print(f"\n{'transport':28} {'events':>7} {'median ms':>10} {'p95 ms':>8} {'target':>8}  result")
    for label, count, median, p95, target, verdict in rows:
        print(f"{label:28} {count:>7} {median:>10.1f} {p95:>8.1f} {'<= ' + f'{target:g}':>8}  {verdict}")
    return 0 if all(row[-1] == "PASS" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
