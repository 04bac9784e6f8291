"""One table of all four systems, each as a ratio to raw Huey.

A row per shape (chain per hop, fan-out -> fan-in total, throughput) with
each system's median and its ratio to raw Huey, and whether flask_baton is
ahead of both peers there: the issue's target, so a shape where it is not
counts as a failed row in the exit status. A last row checks that every
system's fan-in ran exactly once per run; a peer job that ran other than
once, or a fan-in that did not read every result, is a HEALTH failure (its
timing would not measure the same work).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..systems import Measurement

#: Column order: the baseline first, then flask_baton, then the peers.
SYSTEMS = (("raw", "raw Huey"), ("baton", "flask_baton"), ("celery", "Celery"), ("rq", "RQ"))
PEERS = ("celery", "rq")


@dataclass(frozen=True)
class Shape:
    scenario: str
    label: str
    metric: str
    value: Callable[[Measurement], float]
    #: True when a bigger figure is better (a rate), False for a time.
    higher_is_better: bool = False
    fmt: str = "{:.2f}"


SHAPES = (
    Shape("chain", "chain per hop", "ms", lambda m: m.seconds / m.steps * 1000),
    Shape("fan_out", "fan-out -> fan-in total", "s", lambda m: m.seconds, fmt="{:.3f}"),
    Shape("throughput", "throughput", "jobs/s", lambda m: m.steps / m.seconds, higher_is_better=True, fmt="{:.0f}"),
)


@dataclass
class PeerTable:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    #: The same figures as numbers, for ``--json``.
    data: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    #: Shapes where flask_baton is not ahead of both peers.
    behind: list[str] = field(default_factory=list)

    def format(self) -> str:
        widths = [max(len(cell) for cell in column) for column in zip(self.headers, *self.rows)]
        lines = [self.headers, ["-" * w for w in widths], *self.rows]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def _timed_out(ms: list[Measurement]) -> bool:
    return any(m.extra.get("timed_out") for m in ms)


def _cell(shape: Shape, key: str, median: float, ratio: float, timed_out: bool) -> str:
    """``1.70 (2.00x)``; a bound (``>`` a time, ``<`` a rate) when a run hit its deadline."""
    bound = ("< " if shape.higher_is_better else "> ") if timed_out else ""
    return bound + shape.fmt.format(median) + ("" if key == "raw" else f" ({ratio:.2f}x)")


def table(results: dict[str, dict[str, list[Measurement]]], storage: str) -> PeerTable:
    """The comparison for one storage block's runs (all four systems ran in it)."""
    out = PeerTable(["shape", "metric", *(label for _, label in SYSTEMS), "flask_baton ahead of both", "result"])
    for shape in SHAPES:
        medians = {key: statistics.median(shape.value(m) for m in results[key][shape.scenario]) for key, _ in SYSTEMS}
        late = {key: _timed_out(results[key][shape.scenario]) for key, _ in SYSTEMS}
        ratios = {key: medians[key] / medians["raw"] for key, _ in SYSTEMS}
        better = (lambda a, b: a > b) if shape.higher_is_better else (lambda a, b: a < b)
        ahead = not late["baton"] and all(better(medians["baton"], medians[peer]) for peer in PEERS)
        runs = len(results["raw"][shape.scenario])
        out.rows.append(
            [
                f"{shape.label} [{storage}]",
                f"{shape.metric}, median of {runs}",
                *(_cell(shape, key, medians[key], ratios[key], late[key]) for key, _ in SYSTEMS),
                "yes" if ahead else "no",
                "PASS" if ahead else "FAIL",
            ]
        )
        out.data.append(
            {
                "shape": shape.scenario,
                "metric": shape.metric,
                "median": medians,
                "ratio_to_raw": ratios,
                "timed_out": late,
                "baton_ahead_of_both": ahead,
            }
        )
        if not ahead:
            out.behind.append(shape.label)
    _check_fan_ins(results, storage, out)
    return out


def _check_fan_ins(results: dict[str, dict[str, list[Measurement]]], storage: str, out: PeerTable) -> None:
    """Every fan-in ran once per run; every peer job ran once and the fan-in read every result."""
    runs: dict[str, str] = {}
    ok = True
    for key, label in SYSTEMS[1:]:
        finished = [m for m in results[key]["fan_out"] if not m.extra.get("timed_out")]
        counts = [m.extra["fanin_runs"] for m in finished]
        runs[key] = "/".join(map(str, counts)) or "n/a"
        ok = ok and bool(counts) and all(c == 1 for c in counts)
        if key not in PEERS:
            continue
        for scenario, ms in results[key].items():
            for m in ms:
                if m.extra.get("timed_out"):
                    continue
                if m.extra["executions"] != m.steps:
                    out.failures.append(
                        f"{label} {scenario} [{storage}]: {m.extra['executions']} runs of {m.steps} jobs"
                    )
        for m in finished:
            if m.extra["fanin_result"] != m.extra["fan_width"]:
                out.failures.append(
                    f"{label} fan_out [{storage}]: the fan-in summed {m.extra['fanin_result']!r} "
                    f"from {m.extra['fan_width']} results of 1"
                )
    verdict = "PASS" if ok else "FAIL"
    out.rows.append(
        [f"fan-in ran [{storage}]", "times per run", "-", *(runs[key] for key, _ in SYSTEMS[1:]), "-", verdict]
    )
    if not ok:
        out.behind.append("fan-in ran exactly once")
