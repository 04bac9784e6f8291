"""The cost table: CPU per step by part, and round trips and statements per step.

Built from the ``usage`` each timed run carries (``bench/meter.py``), summed
over a scenario's runs (timed-out ones left out) and divided by their steps.
"""

from __future__ import annotations

import sys
from typing import Any

from . import counters
from .meter import PARTS
from .systems import Measurement

SCENARIOS = ("chain", "fan_out", "throughput")

COLUMNS = (
    # (header, key in a per-step summary, format)
    ("consumers", "cpu_consumers", "{:.3f}"),
    ("postgres", "cpu_postgres", "{:.3f}"),
    ("redis", "cpu_redis", "{:.3f}"),
    ("driver", "cpu_driver", "{:.3f}"),
    ("total", "cpu_total", "{:.3f}"),
    ("others idle", "cpu_others", "{:.3f}"),
    ("SQL", "statements", "{:.2f}"),
    ("commits", "commits", "{:.2f}"),
    ("PG rt", "pg_round_trips", "{:.2f}"),
    ("Redis rt", "redis_round_trips", "{:.2f}"),
    ("Redis cmds", "redis_commands", "{:.2f}"),
    ("server cmds", "redis_commands_server", "{:.2f}"),
)


def per_step(runs: list[Measurement]) -> dict[str, Any] | None:
    """One system's runs of one scenario, as costs per step (None if none was metered)."""
    metered = [m for m in runs if "usage" in m.extra]
    if not metered:
        return None
    steps = sum(m.steps for m in metered)
    usages = [m.extra["usage"] for m in metered]
    first = usages[0]
    out: dict[str, Any] = {"runs": len(metered), "steps": steps}
    for part in PARTS:
        seen = first["cpu_seen"].get(part, True)
        out[f"cpu_{part}"] = sum(u["cpu"][part] for u in usages) / steps * 1e3 if seen else None
    out["cpu_total"] = sum(out[f"cpu_{part}"] or 0.0 for part in PARTS if part != "others")
    networked = "segments" in first  # PostgreSQL + Redis, not SQLite
    for slot in counters.SLOTS:
        applies = networked if slot.startswith("redis") else slot != "commits" or not networked
        counted = applies and all("counted" in u for u in usages)
        out[slot] = sum(u["counted"][slot] for u in usages) / steps if counted else None
    if networked:
        # A request to PostgreSQL is one segment (small statements); Redis's
        # big messages span several, so its round trips are counted in-process.
        out["pg_round_trips"] = sum(u["segments"]["consumers"]["postgres"] for u in usages) / steps
        out["redis_segments"] = sum(u["segments"]["consumers"]["redis"] for u in usages) / steps
        out["driver_segments"] = {
            server: sum(u["segments"]["driver"][server] for u in usages) / steps for server in ("postgres", "redis")
        }
        out["redis_commands_server"] = sum(u["redis_commands_server"] for u in usages) / steps
        by_command: dict[str, int] = {}
        for u in usages:
            for command, calls in u["redis_by_command_server"].items():
                by_command[command] = by_command.get(command, 0) + calls
        ordered = sorted(by_command.items(), key=lambda kv: -kv[1])
        out["redis_by_command_server"] = {k: round(v / steps, 3) for k, v in ordered}
    return out


def summarize(results: dict[str, dict[str, list[Measurement]]]) -> dict[str, dict[str, Any]]:
    """``{scenario: {system key: per-step costs}}`` for the scenarios that were metered."""
    out: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        for key, by_scenario in results.items():
            cost = per_step(by_scenario.get(scenario, []))
            if cost is not None:
                out.setdefault(scenario, {})[key] = cost
    return out


def print_costs(tables: list[tuple[str, dict[str, Any]]], names: dict[str, str], out: Any = sys.stdout) -> None:
    """One line per storage, scenario and system; "-" where a part does not apply."""
    headers = ["scenario", "system", *(header for header, _, _ in COLUMNS)]
    rows = []
    for label, summary in tables:
        for scenario, by_system in summary.items():
            for key, cost in by_system.items():
                cells = [f"{scenario} [{label}]", names.get(key, key)]
                for _, field, fmt in COLUMNS:
                    value = cost.get(field)
                    cells.append("-" if value is None else fmt.format(value))
                rows.append(cells)
    if not rows:
        return
    widths = [max(len(c) for c in col) for col in zip(headers, *rows)]
    print("  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths))), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for cells in rows:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))), file=out)
    print(
        "CPU: ms per step (utime+stime from /proc, 10 ms ticks, summed over a scenario's timed runs): consumers = "
        "the timed system's process group; postgres = its backends + the server's own processes; others idle = the "
        "other systems' consumers meanwhile (charged to nobody). Per step, sent by the timed consumers: SQL "
        "statements (excluding BEGIN/COMMIT) and commits (SQLite only), counted in-process; PG rt = request "
        "segments on their PostgreSQL connections; Redis rt / cmds = requests / commands, counted in-process; "
        "server cmds = Redis INFO commandstats, every client of that Redis (the driver too).",
        file=out,
    )
