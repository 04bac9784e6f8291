"""The pacing benchmark's checks on made-up runs: windows counted right, a violation found (no timing)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.pacing import (
    Phase,
    check_concurrency,
    check_rate,
    max_overlap,
    per_window,
    run_problems,
    saturated_lag,
    window_peak,
)


def _runs(times: list[float], tokens: int = 100, pause: float = 0.0) -> list[dict[str, Any]]:
    return [
        {"step": f"call:{n}", "attempt": 1, "at": at, "tokens": tokens, "start": at, "end": at + pause}
        for n, at in enumerate(times)
    ]


def test_every_window_starting_at_a_call_is_counted_with_its_end_left_out() -> None:
    times = [0.0, 1.0, 59.9, 60.0, 61.0]
    # [0, 60) leaves 60.0 out (3 calls, not 4); the most tokens are in [59.9, 119.9): 30 + 40 + 50.
    assert window_peak(times, [10, 20, 30, 40, 50], 60.0) == (3, 120)
    assert window_peak([0.0, 60.0, 120.0], [5, 5, 5], 60.0) == (1, 5)  # a call a window later is in the next one
    assert window_peak([], [], 60.0) == (0, 0)
    assert per_window(times, 60.0) == [3, 2]


def test_a_limiter_that_waits_exactly_its_turn_sustains_the_limit_and_a_late_one_less() -> None:
    exact = [0.0, 0.1, 0.2, 60.0, 60.1, 60.2, 120.0]  # rpm 3: each call a window after the one 3 before
    assert saturated_lag(exact, 60.0, 3) == pytest.approx(0.0)
    late = [0.0, 0.1, 0.2, 66.0, 66.1, 66.2]
    assert saturated_lag(late, 60.0, 3) == pytest.approx(6.0)
    assert saturated_lag(exact[:3], 60.0, 3) is None  # never saturated

    phase = Phase("rate", "sqlite", len(late), 70.0)
    check_rate(phase, _runs(late), rpm=3, tpm=1000, window=60.0)
    assert phase.problems == ["saturated rate 90.9% of the limit < 95%"]  # 3 per 66 s of 3 per 60 s
    tokens = Phase("rate", "sqlite", 5, 130.0)
    check_rate(tokens, _runs([0.0, 0.1, 60.0, 60.1, 120.0], tokens=400), rpm=10, tpm=1000, window=60.0)
    assert tokens.ok and tokens.figures["lag"] == pytest.approx(0.0)  # tpm lets 2 calls of 400 a window


def test_a_window_over_rpm_or_tpm_and_a_step_run_twice_or_retried_are_problems() -> None:
    phase = Phase("rate", "postgres", 4, 1.0)
    runs = _runs([0.0, 1.0, 2.0, 3.0], tokens=300)
    runs[3] |= {"step": "call:2", "attempt": 2}
    check_rate(phase, runs, rpm=3, tpm=1000, window=60.0)
    assert phase.problems == [
        "a window held 4 calls > 3 rpm",
        "a window held 1,200 tokens > 1,000 tpm",
        "1 step(s) ran more than once: call:2",
        "1 step(s) never ran",
        "1 run(s) with attempt > 1 (an attempt spent): call:2",
    ]
    assert not phase.ok and "PROBLEM: a window held 4 calls" in phase.format()
    assert run_problems(_runs([0.0, 1.0]), 2) == []


def test_overlap_counts_steps_running_at_once_but_not_one_ending_as_another_starts() -> None:
    assert max_overlap([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == 1
    assert max_overlap([(0.0, 2.0), (0.5, 1.5), (1.0, 3.0), (2.5, 4.0)]) == 3
    phase = Phase("concurrency", "sqlite", 3, 1.0)
    check_concurrency(phase, _runs([0.0, 0.1, 0.2], pause=0.5), limit=2, pause=0.5)
    assert phase.problems == ["3 steps ran at once > concurrency 2"]
    assert phase.figures["max_overlap"] == 3
