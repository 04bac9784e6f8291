"""``python -m bench.streaming``: ``job.stream`` from a step to a browser, on both transports.

A real threaded server, a real consumer (both in this process, as in
``bench.dashboard``'s latency section) and headless Chromium on the
workflow's page. The step streams ``--chunks`` pieces, each carrying its
number and the time it was passed to ``job.stream`` (``"17@1733400000123.4 "``);
a ``MutationObserver`` in the page notes when each first shows in the step's
row. Per chunk, latency = shown minus streamed (one machine, one clock);
throughput = chunks / (last shown - first streamed).

Two paces: as fast as the step can call ``job.stream`` (throughput), and
``--rate`` chunks a second, a fast model's pace (latency as users see it).
Transports: the database feed on SQLite (the embedded default: pieces held
``BATON_STREAM_FLUSH_SECONDS`` = 0.1 s, then one row; pages poll every 50 ms)
and Redis pub/sub with PostgreSQL (``BENCH_POSTGRES_URL``, ``BENCH_REDIS_URL``).

Options: ``--chunks N`` (default 1000), ``--rate N`` (default 50), ``--paced-chunks N`` (default 250).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask_baton import Job, Workflow
from flask_baton.dashboard.layout import node_key

from .dashboard import Row, baton, chromium_page, live_app, wait_for_file, workdir
from .storage import Storage

#: The page notes, per chunk number, [streamed ms, shown ms].
OBSERVER = """
(selector) => {
  window.__chunks = {};
  window.__count = 0;
  let seen = 0;
  const note = () => {
    const box = document.querySelector(selector);
    if (!box) return;
    const now = performance.timeOrigin + performance.now();
    const text = box.textContent;
    if (text.length < seen) seen = 0;  // the row was redrawn: read it all again
    for (const token of text.slice(seen).split(' ')) {
      const at = token.indexOf('@');
      if (at > 0 && !(token.slice(0, at) in window.__chunks)) {
        window.__chunks[token.slice(0, at)] = [parseFloat(token.slice(at + 1)), now];
        window.__count++;
      }
    }
    seen = text.lastIndexOf(' ') + 1;
  };
  new MutationObserver(note).observe(document.getElementById('steps-table'),
                                     {subtree: true, childList: true, characterData: true});
  note();
}
"""


@baton.step()
def stream_chunks(job: Job) -> int:
    """Wait for ``start``, stream ``chunks`` pieces (``rate`` a second, or at once with 0), wait for ``end``."""
    wait_for_file(job.args["start"])
    count, rate = int(job.args["chunks"]), float(job.args["rate"])
    began = time.monotonic()
    for index in range(count):
        if rate:
            time.sleep(max(began + index / rate - time.monotonic(), 0))
        job.stream(f"{index}@{time.time() * 1000:.1f} ")
    wait_for_file(job.args["end"], timeout=120)  # the page shows the text, not the result, until measured
    return count


@dataclass(frozen=True)
class Measured:
    """One run: per-chunk latencies (ms) and the throughput."""

    latencies: list[float]
    chunks_per_second: float

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def measure(config: dict[str, Any], path: Path, chunks: int, rate: float) -> Measured:
    """Stream ``chunks`` pieces at ``rate`` (0: flat out) to an open workflow page."""
    run = uuid.uuid4().hex[:8]
    start, end = path / f"start-{run}", path / f"end-{run}"
    with live_app(path, **config) as (app, url):
        try:
            with app.app_context():
                wf = Workflow("bench:stream").add(
                    "answer", stream_chunks.new(start=str(start), end=str(end), chunks=chunks, rate=rate)
                )
                wf.insert()
            with chromium_page() as page:
                page.goto(f"{url}/baton/workflows/{wf.workflow_id}")
                page.wait_for_selector(f"#s-{node_key('answer')}[data-state=executing]")
                page.wait_for_selector("body[data-live=open]")
                page.evaluate(OBSERVER, f"#so-{node_key('answer')}")
                start.touch()
                page.wait_for_function(f"() => window.__count >= {chunks}", timeout=max(60_000, chunks * 100))
                seen = page.evaluate("window.__chunks")
        finally:
            start.touch()
            end.touch()
    pairs = list(seen.values())
    first_streamed = min(streamed for streamed, _ in pairs)
    last_shown = max(shown for _, shown in pairs)
    return Measured([shown - streamed for streamed, shown in pairs], chunks / ((last_shown - first_streamed) / 1000))


def variants(path: Path, redis: bool) -> list[tuple[str, dict[str, Any], Storage | None]]:
    """(label, app config, storage to clean up) of each transport (Redis's if ``redis``)."""
    found: list[tuple[str, dict[str, Any], Storage | None]] = [("database feed, SQLite", {}, None)]
    if redis:
        storage = Storage("redis", path)
        found.append(("Redis pub/sub, PostgreSQL", storage.baton_settings("stream"), storage))
    return found


def run(chunks: int, rate: float, paced_chunks: int, log: Any, redis: bool = True) -> list[Row]:
    """Each transport, flat out and paced: one row each."""
    rows = []
    with workdir() as path:
        for label, config, storage in variants(path, redis):
            try:
                for pace, count in ((0.0, chunks), (rate, paced_chunks)):
                    measured = measure(config, path, count, pace)
                    what = f"stream -> DOM, {label}, {f'{pace:g}/s' if pace else 'flat out'}"
                    median, p95 = statistics.median(measured.latencies), measured.percentile(0.95)
                    note = f"latency median {median:.0f} ms, p95 {p95:.0f} ms, {count} chunks"
                    log(f"  {what}: {measured.chunks_per_second:,.0f} chunks/s, {note}")
                    rows.append(Row(what, f"{measured.chunks_per_second:,.0f} chunks/s", "", "INFO", note))
            finally:
                if storage is not None:
                    storage.cleanup()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streaming", description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--paced-chunks", type=int, default=250)
    args = parser.parse_args(argv)
    rows = run(args.chunks, args.rate, args.paced_chunks, lambda text: print(text, file=sys.stderr, flush=True))
    print()
    for row in rows:
        print(f"{row.what:55} {row.value:>16}  {row.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
