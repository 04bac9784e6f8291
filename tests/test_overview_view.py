"""The overview's pure parts: its bar charts' geometry and its view model, from records built here."""

from __future__ import annotations

import pytest

from flask_baton.dashboard.charts import HEIGHT, SLOT, Series, bar_chart, nice_ceiling
from flask_baton.dashboard.overview_view import SHOWN_STEP_NAMES, overview
from flask_baton.huey_compat import QueueDepth
from flask_baton.records import Activity, ConsumerRecord, RunningStep, StepDurations
from flask_baton.timeseries import duration_class, window

NOW = 1_700_000_123.0


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (0.07, 0.1), (1, 1), (2.2, 2.5), (3, 5), (7.5, 10), (120, 200), (2500, 2500)]
)
def test_a_chart_s_scale_ends_at_a_round_number_at_or_above_its_tallest_bar(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)


def test_a_chart_stacks_its_series_bottom_up_one_slot_per_bucket() -> None:
    span = window("1h", NOW)
    done = [0.0] * span.count
    failed: list[float | None] = [None] * span.count
    done[3], failed[3], done[5] = 3.0, 1.0, 2.0

    chart = bar_chart(
        "w", "Workflows", span, [Series("st-completed", "done", done), Series("st-failed", "failed", failed)], str, "s"
    )

    assert chart.width == span.count * SLOT and chart.top == "5.0" and not chart.empty
    bottom, top, alone = chart.bars
    assert (bottom.css, top.css, alone.css) == ("st-completed", "st-failed", "st-completed")
    assert bottom.x == top.x == 3 * SLOT + SLOT * 0.1 and alone.x == 5 * SLOT + SLOT * 0.1
    assert bottom.height == pytest.approx(HEIGHT * 3 / 5) and bottom.y + bottom.height == pytest.approx(HEIGHT)
    assert top.height == pytest.approx(HEIGHT / 5) and top.y + top.height == pytest.approx(bottom.y)
    assert bottom.title == top.title and bottom.title.endswith(": 3.0 done, 1.0 failed")
    assert [mark.kind for mark in chart.marks] == ["hm"] * 4  # times under it, localised by the browser


def test_a_chart_of_nothing_says_so() -> None:
    span = window("7d", NOW)
    chart = bar_chart("c", "Cost", span, [Series("cost", "an hour", [0.0] * span.count)], str, "s")
    assert chart.empty and chart.bars == () and chart.marks[0].kind == "dhm"


def _durations(*took: float, discarded: int = 0) -> StepDurations:
    classes: dict[int, int] = {}
    for seconds in took:
        classes[duration_class(seconds)] = classes.get(duration_class(seconds), 0) + 1
    return StepDurations(len(took) - discarded, discarded, classes, min(took), max(took))


def test_the_view_sums_the_range_and_lists_consumers_queues_and_steps() -> None:
    span = window("1h", NOW)
    activity = Activity(
        span.start,
        span.width,
        {0: 4, span.count - 1: 2},
        {(1, "completed"): 3, (2, "failed"): 1, (span.count - 1, "cancelled"): 1},
        {(1, "completed"): 9, (2, "discarded"): 1},
        {"fetch": _durations(1.0, 2.0, 3.0), "parse": _durations(0.5, 9.0, discarded=1)},
        {1: 0.25},
    )
    consumer = ConsumerRecord("host:1", ("default", "llm"), NOW - 120, NOW - 2)
    running = [
        RunningStep("w1", "brief", "fetch", "tasks.fetch", 1, "host:1", NOW - 5, NOW - 1),
        RunningStep("w2", "other", "parse", "tasks.parse", 2, "gone:9", NOW - 500, NOW - 400),
    ]

    page = overview(
        span,
        activity,
        [consumer],
        running,
        {"default": QueueDepth(7, 2), "llm": None, "idle": QueueDepth(0, 0)},
        lambda task: {"tasks.fetch": "default", "tasks.parse": "llm"}.get(task),
    )

    figures = {f.key: f.value for f in page.figures}
    assert figures == {"started": "6", "ended": "5", "failed": "1", "steps": "10", "cost": "$0.25"}
    assert [(q.name, q.waiting, q.scheduled, q.running, q.consumers) for q in page.queues] == [
        ("default", "7", "2", 1, 1),
        ("idle", "0", "0", 0, 0),
        ("llm", "?", "?", 1, 1),  # its depth could not be read
    ]
    live, silent = page.consumers
    assert (live.worker, live.queues, live.alive, [r.step_name for r in live.running]) == (
        "host:1",
        "default, llm",
        True,
        ["fetch"],
    )
    assert (silent.worker, silent.alive, [r.step_name for r in silent.running]) == ("gone:9", False, ["parse"])
    assert [(s.name, s.runs, s.failed, s.failure) for s in page.steps] == [
        ("fetch", 3, 0, "0 %"),
        ("parse", 2, 1, "50 %"),
    ]
    assert page.steps[0].p50_seconds == pytest.approx(2.0, rel=0.2) and page.steps[1].p95_seconds == 9.0
    assert "1 failed" in page.charts[0].summary


def test_the_view_lists_the_busiest_step_names_and_counts_the_rest() -> None:
    span = window("24h", NOW)
    durations = {f"item:{i:03d}": _durations(*([1.0] * (i + 1))) for i in range(SHOWN_STEP_NAMES + 7)}
    activity = Activity(span.start, span.width, {}, {}, {}, durations, {})

    page = overview(span, activity, [], [], {}, lambda task: None)

    assert len(page.steps) == SHOWN_STEP_NAMES and page.more_steps == 7
    assert page.steps[0].name == f"item:{SHOWN_STEP_NAMES + 6:03d}"  # the most runs first


def test_the_version_changes_with_what_is_shown_not_with_the_clock() -> None:
    activity = Activity(0.0, 60.0, {}, {}, {}, {}, {})

    def version(now: float, depth: int) -> str:
        span = window("1h", now)
        return overview(span, activity, [], [], {"default": QueueDepth(depth, 0)}, lambda task: None).version

    assert version(NOW, 1) == version(NOW + 5, 1)
    assert version(NOW, 1) != version(NOW, 2)
