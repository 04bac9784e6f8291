"""What the peers share: one consumer on Redis, timed exactly as raw Huey is.

A peer only says how to send a chain, a fan-out and one job, and how to read
the fan-in's stored result; the timing is the same for both and the same as
``RawSystem``'s: ``clock_start()`` just before the first send, until the
ledger shows the last job ran (``clock_stop()``; the meter reads CPU, round
trips and commands around that span, as for the other systems). That stops the clock before the peer stores
that job's result, so a peer is, if anything, timed in its favour.

Every Redis key a peer makes contains ``self.tag`` (unique per system and
run); ``stop()`` deletes them, and ``recover()`` drops what is queued.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..storage import REDIS_URL, Storage
from ..systems import Measurement, System, _percentiles, _run_tag


class PeerSystem(System):
    """A peer queue's consumer and its three scenarios."""

    def __init__(self, storage: Storage, workdir: Path) -> None:
        super().__init__(storage, workdir)
        import redis

        self.url = REDIS_URL
        self.tag = f"bench-{storage.tag}-{self.key}"
        self.redis = redis.Redis.from_url(self.url)

    # -- what each peer provides ---------------------------------------------

    def environment(self) -> dict[str, str]:
        """What the consumer subprocess needs to build the same client."""
        return {}

    def send_chain(self, run: str, n: int) -> None:
        """Send ``n`` jobs, each run only after the previous one finished."""
        raise NotImplementedError

    def send_fan_out(self, run: str, n: int) -> Any:
        """Send ``n`` parallel jobs (each returns 1) and one fan-in reading them; return its handle."""
        raise NotImplementedError

    def fan_in_result(self, handle: Any) -> Any | None:
        """The fan-in's stored result, None while not stored yet."""
        raise NotImplementedError

    def send_one(self, key: str) -> None:
        """Send one independent no-op job."""
        raise NotImplementedError

    def purge(self) -> None:
        """Drop every queued or deferred job (after a run that hit its deadline)."""
        raise NotImplementedError

    # -- the shared part -------------------------------------------------------

    def start(self) -> None:
        self.launch(self.consumer_command(), {**self.environment(), "BENCH_LEDGER": str(self.ledger_path)})

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.delete_keys()
            self.redis.close()

    def delete_keys(self) -> None:
        """Every key of this system and run (all contain ``self.tag``)."""
        keys = list(self.redis.scan_iter(match=f"*{self.tag}*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def recover(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        self.purge()
        self.start()
        self.warm_up()

    def _executions(self, start: int, run: str) -> int:
        return sum(c for line, c in self.tail.counts(start).items() if line.startswith(f"x {run}:"))

    def chain(self, n: int, timeout: float = 120.0) -> Measurement:
        run = _run_tag()
        start = self.tail.mark()
        t0 = self.clock_start()
        self.send_chain(run, n)
        t_ins = time.perf_counter()
        self.tail.wait_count(start, f"x {run}:{n - 1}", 1, time.monotonic() + timeout, self.alive)
        t1 = self.clock_stop()
        return Measurement(t1 - t0, n, t_ins - t0, {"executions": self._executions(start, run)})

    def fan_out(self, n: int, timeout: float = 300.0) -> Measurement:
        run = _run_tag()
        start = self.tail.mark()
        t0 = self.clock_start()
        handle = self.send_fan_out(run, n)
        t_ins = time.perf_counter()
        deadline = time.monotonic() + timeout
        self.tail.wait_count(start, f"x {run}:fanin", 1, deadline, self.alive)
        t1 = self.clock_stop()
        result = self.fan_in_result(handle)
        while result is None:  # stored just after the ledger line
            if time.monotonic() > deadline:
                raise TimeoutError("the fan-in ran but its result was not stored")
            self.alive()
            time.sleep(0.001)
            result = self.fan_in_result(handle)
        time.sleep(0.05)  # let any stray (late) run of the fan-in reach the ledger
        return Measurement(
            t1 - t0,
            n + 1,
            t_ins - t0,
            {
                "fan_width": n,
                "fanin_runs": self.tail.counts(start).get(f"x {run}:fanin", 0),
                "fanin_result": result,
                "executions": self._executions(start, run),
            },
        )

    def throughput(self, n: int, timeout: float = 600.0) -> Measurement:
        run = _run_tag()
        start = self.tail.mark()
        latencies = []
        t0 = self.clock_start()
        for i in range(n):
            a = time.perf_counter()
            self.send_one(f"{run}:{i}")
            latencies.append(time.perf_counter() - a)
        t_ins = time.perf_counter()
        self.tail.wait_count(start, f"x {run}:", n, time.monotonic() + timeout, self.alive)
        t1 = self.clock_stop()
        return Measurement(
            t1 - t0, n, t_ins - t0, {"executions": self._executions(start, run), **_percentiles(latencies)}
        )
