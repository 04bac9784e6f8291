"""Crontab arithmetic: parsing, the ticks around a moment, and which tick is due (no app, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flask_baton import ScheduleError
from flask_baton.cron import FIRST_RUN_WINDOW, due_tick, parse


def at(text: str) -> float:
    """Epoch seconds of a UTC ``YYYY-MM-DD HH:MM[:SS]``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def moment(epoch: float | None) -> str:
    assert epoch is not None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("expression", "now", "latest", "following"),
    [
        ("* * * * *", "2026-03-04 10:07:30", "2026-03-04 10:07", "2026-03-04 10:08"),
        ("*/5 * * * *", "2026-03-04 10:07:30", "2026-03-04 10:05", "2026-03-04 10:10"),
        ("*/5 * * * *", "2026-03-04 10:10:00", "2026-03-04 10:10", "2026-03-04 10:15"),
        ("0 3 * * *", "2026-03-04 02:59:59", "2026-03-03 03:00", "2026-03-04 03:00"),
        ("30 9 * * mon-fri", "2026-03-07 12:00", "2026-03-06 09:30", "2026-03-09 09:30"),  # a Saturday
        ("0 0 1 jan,jul *", "2026-03-04 00:00", "2026-01-01 00:00", "2026-07-01 00:00"),
        ("15 8-18/5 * * *", "2026-03-04 14:00", "2026-03-04 13:15", "2026-03-04 18:15"),
        ("0 0 29 2 *", "2026-03-04 00:00", "2024-02-29 00:00", "2028-02-29 00:00"),
        ("0 12 * * 7", "2026-03-04 00:00", "2026-03-01 12:00", "2026-03-08 12:00"),  # 7 is Sunday too
    ],
)
def test_a_crontab_knows_its_tick_before_and_after_a_moment(
    expression: str, now: str, latest: str, following: str
) -> None:
    crontab = parse(expression, "report")
    assert moment(crontab.latest(at(now))) == latest
    assert moment(crontab.next_after(at(now))) == following


def test_a_restricted_day_and_weekday_fire_on_either_as_in_cron() -> None:
    crontab = parse("0 9 13 * fri", "report")
    assert moment(crontab.next_after(at("2026-03-01 00:00"))) == "2026-03-06 09:00"  # the first Friday
    assert moment(crontab.next_after(at("2026-03-12 00:00"))) == "2026-03-13 09:00"  # the 13th (a Friday too)
    assert moment(crontab.next_after(at("2026-03-14 00:00"))) == "2026-03-20 09:00"


@pytest.mark.parametrize(
    ("expression", "field", "says"),
    [
        ("61 * * * *", "minute", "61 is out of range 0-59"),
        ("0 24 * * *", "hour", "24 is out of range 0-23"),
        ("0 0 0 * *", "day of month", "0 is out of range 1-31"),
        ("0 0 * 13 *", "month", "13 is out of range 1-12"),
        ("0 0 * * funday", "day of week", "'funday' is not a number"),
        ("*/0 * * * *", "minute", "the step in '*/0' must be at least 1"),
        ("0 10-2 * * *", "hour", "the range '10-2' runs backwards"),
        ("0 0 * * 1;2", "day of week", "'1;2' is not a value, a range or */n"),
    ],
)
def test_a_crontab_that_does_not_parse_names_the_schedule_and_the_field(expression: str, field: str, says: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse(expression, "nightly-report")
    assert raised.value.schedule == "nightly-report"
    assert raised.value.field == field
    assert str(raised.value) == f"schedule 'nightly-report': crontab {expression!r}, {field} field: {says}"


@pytest.mark.parametrize("expression", ["* * * *", "0 3 * * * *", "", "@daily"])
def test_a_crontab_needs_five_fields(expression: str) -> None:
    with pytest.raises(ScheduleError, match="it needs 5: minute hour day-of-month month day-of-week"):
        parse(expression, "report")


def test_a_crontab_that_never_fires_is_refused() -> None:
    with pytest.raises(ScheduleError, match="names no day that exists in its months; it never fires"):
        parse("0 0 30 2 *", "report")


def test_the_latest_tick_is_due_once() -> None:
    crontab = parse("*/5 * * * *", "report")
    assert due_tick(crontab, at("2026-03-04 10:05:01"), at("2026-03-04 10:00")) == at("2026-03-04 10:05")
    assert due_tick(crontab, at("2026-03-04 10:09:59"), at("2026-03-04 10:05")) is None


def test_after_downtime_only_the_latest_missed_tick_is_due() -> None:
    crontab = parse("*/5 * * * *", "report")
    assert due_tick(crontab, at("2026-03-04 13:02"), at("2026-03-04 10:00")) == at("2026-03-04 13:00")


def test_a_schedule_never_run_starts_with_a_recent_tick_but_does_not_catch_up() -> None:
    crontab = parse("0 3 * * *", "report")
    assert due_tick(crontab, at("2026-03-04 03:00:40"), None) == at("2026-03-04 03:00")
    assert due_tick(crontab, at("2026-03-04 03:00") + FIRST_RUN_WINDOW, None) is None
    assert due_tick(crontab, at("2026-03-04 15:00"), None) is None
