"""The overview's arithmetic (``flask_baton.timeseries``): buckets, rates, duration classes, percentiles."""

from __future__ import annotations

import math
import random

import pytest

from flask_baton.timeseries import (
    DURATION_EDGES,
    RANGES,
    bucket_of,
    dense,
    duration_class,
    per_hour,
    per_minute,
    percentile,
    ratios,
    window,
)

NOW = 1_700_000_123.0  # not on a bucket boundary of any range


@pytest.mark.parametrize("key", sorted(RANGES))
def test_a_window_covers_its_whole_range_in_aligned_buckets_ending_with_now(key: str) -> None:
    span, width = RANGES[key]
    found = window(key, NOW)
    assert found.start % width == 0, "buckets start on multiples of their width"
    assert found.start <= NOW - span < found.start + width
    assert found.bucket_start(found.count - 1) <= NOW < found.bucket_start(found.count)
    assert found.count == math.ceil(span / width) + 1  # the range, plus the part of a bucket before it


def test_a_window_keeps_its_buckets_when_reloaded_a_little_later() -> None:
    first, later = window("1h", NOW), window("1h", NOW + 5)
    assert (first.start, first.width, first.count) == (later.start, later.width, later.count)


def test_a_moment_falls_in_the_bucket_whose_start_is_at_or_before_it() -> None:
    assert bucket_of(100.0, 100.0, 60.0) == 0
    assert bucket_of(159.999, 100.0, 60.0) == 0
    assert bucket_of(160.0, 100.0, 60.0) == 1
    assert bucket_of(99.0, 100.0, 60.0) == -1


def test_dense_fills_empty_buckets_with_zero_and_drops_what_lies_outside() -> None:
    found = window("1h", NOW)
    values = dense(found, {0: 3, 5: 1, found.count: 9, -1: 9})
    assert len(values) == found.count
    assert values[0] == 3 and values[5] == 1 and sum(values) == 4


def test_rates_are_per_minute_of_each_bucket_and_the_last_bucket_counts_only_its_time_so_far() -> None:
    found = window("6h", NOW)  # 5-minute buckets
    counts = [0.0] * found.count
    counts[0], counts[-1] = 10.0, 10.0
    rates = per_minute(found, counts)
    assert rates[0] == pytest.approx(2.0)
    assert NOW - found.bucket_start(found.count - 1) == 23.0
    assert rates[-1] == pytest.approx(10.0), "23 s into its bucket: counted as a minute, not as a burst"
    assert per_hour(found, counts)[0] == pytest.approx(120.0)

    week = window("7d", NOW)  # 2-hour buckets
    elapsed = NOW - week.bucket_start(week.count - 1)
    assert 60 < elapsed < 7200
    assert per_minute(week, [0.0] * (week.count - 1) + [30.0])[-1] == pytest.approx(30.0 / (elapsed / 60))


def test_a_ratio_is_none_where_nothing_ended() -> None:
    assert ratios([1, 0, 0], [4, 0, 2]) == [0.25, None, 0.0]


def test_duration_classes_are_19_percent_wide_from_a_millisecond_to_a_day() -> None:
    assert DURATION_EDGES[0] == pytest.approx(0.001)
    assert DURATION_EDGES[-1] > 86_400
    for lower, upper in zip(DURATION_EDGES, DURATION_EDGES[1:]):
        assert upper / lower == pytest.approx(2**0.25)
    assert duration_class(0.0) == 0
    assert duration_class(0.001) == 1  # an edge belongs to the class above it
    assert duration_class(1e9) == len(DURATION_EDGES)


def _histogram(durations: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for took in durations:
        counts[duration_class(took)] = counts.get(duration_class(took), 0) + 1
    return counts


def _nearest_rank(durations: list[float], fraction: float) -> float:
    ordered = sorted(durations)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fraction", [0.5, 0.95])
def test_a_percentile_from_classes_is_within_one_class_of_the_exact_one(seed: int, fraction: float) -> None:
    rng = random.Random(seed)
    durations = [rng.lognormvariate(0, 1.5) for _ in range(rng.randint(20, 2000))]
    exact = _nearest_rank(durations, fraction)
    estimate = percentile(_histogram(durations), fraction, min(durations), max(durations))
    assert exact / 2**0.25 <= estimate <= exact * 2**0.25


def test_one_run_s_percentiles_are_its_duration_exactly() -> None:
    assert percentile({duration_class(1.234): 1}, 0.5, 1.234, 1.234) == 1.234
    assert percentile({duration_class(1.234): 1}, 0.95, 1.234, 1.234) == 1.234


def test_a_percentile_stays_within_the_shortest_and_longest_run() -> None:
    durations = [0.0101, 0.0102, 0.0103, 300.0]
    histogram = _histogram(durations)
    assert 0.0101 <= percentile(histogram, 0.5, 0.0101, 300.0) <= 0.0103 * 2**0.25
    assert percentile(histogram, 0.95, 0.0101, 300.0) == pytest.approx(300.0, rel=0.2)
    assert percentile({len(DURATION_EDGES): 2}, 0.95, 90_000.0, 100_000.0) <= 100_000.0


def test_no_run_has_no_percentile() -> None:
    with pytest.raises(ValueError):
        percentile({}, 0.5, 0.0, 0.0)


def test_the_first_and_last_ranks_are_the_shortest_and_longest_run_exactly() -> None:
    durations = [0.5, 0.51, 9.0]
    histogram = _histogram(durations)
    assert percentile(histogram, 0.95, 0.5, 9.0) == 9.0  # rank 3 of 3: the slowest
    assert percentile(histogram, 0.2, 0.5, 9.0) == 0.5  # rank 1 of 3: the fastest
    assert 0.5 <= percentile(histogram, 0.5, 0.5, 9.0) <= 0.51 * 2**0.25
