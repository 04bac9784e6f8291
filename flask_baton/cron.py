"""Crontab expressions: what one says, and the minutes it fires at (pure arithmetic, UTC).

Huey's own ``crontab()`` only answers "does this minute match?", as a
closure: a schedule also needs the tick before a moment (which tick is due)
and the tick after it (the next run, shown by ``flask baton schedules`` and
the dashboard), which that answer alone gives only by testing minute after
minute. So the expression is parsed here into its sets of values, in the
syntax Huey accepts (``*``, ``*/n``, ``n``, ``a-b``, ``a-b/n``, lists of
those) plus month and weekday names, and the ticks are found a day at a time.

As in cron, when both the day of month and the day of week are restricted, a
day matching either one fires (``0 9 1 * mon``: the 1st, and every Monday).
Times are UTC, whatever the servers' zones, so every consumer agrees on a tick.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from .errors import ScheduleError

#: Each field's name and range, in the expression's order.
FIELDS: tuple[tuple[str, int, int], ...] = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),  # 0 and 7 are both Sunday
)
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NAMES: dict[str, dict[str, int]] = {"month": _MONTHS, "day of week": _WEEKDAYS}
_PIECE = re.compile(r"(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?")
#: How far to look for a tick: past the eight years between two 29ths of February (2096, 2104).
HORIZON_DAYS = 366 * 9


@dataclass(frozen=True)
class Crontab:
    """A parsed five-field expression: the values each field allows, in order."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    #: Whether the day-of-month / day-of-week field was something other than ``*``.
    days_restricted: bool
    weekdays_restricted: bool

    def fires_on(self, day: date) -> bool:
        """Whether the expression fires at some minute of ``day``."""
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_day or by_weekday
        return by_day and by_weekday

    def latest(self, moment: float) -> float | None:
        """The last tick at or before ``moment`` (epoch seconds); None if there is none in the horizon."""
        start = _minute_of(moment)
        return _first(self._ticks(start, backwards=True))

    def next_after(self, moment: float) -> float | None:
        """The first tick strictly after ``moment`` (epoch seconds); None if there is none in the horizon."""
        start = _minute_of(moment) + timedelta(minutes=1)
        return _first(self._ticks(start, backwards=False))

    def _ticks(self, start: datetime, *, backwards: bool) -> Iterator[float]:
        """Ticks from ``start`` (included) onwards, or backwards, a day at a time."""
        step = timedelta(days=-1 if backwards else 1)
        hours: Sequence[int] = self.hours[::-1] if backwards else self.hours
        minutes: Sequence[int] = self.minutes[::-1] if backwards else self.minutes
        day = start.date()
        for _ in range(HORIZON_DAYS):
            if self.fires_on(day):
                for hour in hours:
                    for minute in minutes:
                        tick = datetime.combine(day, time(hour, minute), UTC)
                        if (tick <= start) if backwards else (tick >= start):
                            yield tick.timestamp()
            day += step


def parse(expression: str, schedule: str) -> Crontab:
    """Parse a five-field crontab; ``ScheduleError`` naming ``schedule`` and the field at fault."""
    if not isinstance(expression, str):
        raise ScheduleError(schedule, f"a crontab must be a string like '*/5 * * * *', got {expression!r}")
    parts = expression.lower().split()
    if len(parts) != len(FIELDS):
        raise ScheduleError(
            schedule,
            f"crontab {expression!r} has {len(parts)} field(s); it needs 5: minute hour day-of-month month day-of-week",
        )
    values = [_field(part, field, schedule, expression) for part, field in zip(parts, FIELDS, strict=True)]
    minutes, hours, days, months, weekdays = values
    crontab = Crontab(
        expression=" ".join(expression.split()),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(day % 7 for day in weekdays),
        days_restricted=parts[2] != "*",
        weekdays_restricted=parts[4] != "*",
    )
    if not crontab.weekdays_restricted and not any(
        day <= calendar.monthrange(2000, month)[1] for month in crontab.months for day in crontab.days
    ):
        raise ScheduleError(schedule, f"crontab {expression!r} names no day that exists in its months; it never fires")
    return crontab


def _field(text: str, field: tuple[str, int, int], schedule: str, expression: str) -> set[int]:
    """The values one field allows."""
    name, low, high = field
    found: set[int] = set()
    for piece in text.split(","):
        match = _PIECE.fullmatch(piece)
        if match is None:
            raise _bad(schedule, expression, name, f"{piece!r} is not a value, a range or */n")
        every = int(match["step"] or 1)
        if every < 1:
            raise _bad(schedule, expression, name, f"the step in {piece!r} must be at least 1")
        if match["range"] == "*":
            first, last = low, high if name != "day of week" else 6
        else:
            start, _, end = match["range"].partition("-")
            first = _value(start, field, schedule, expression)
            last = _value(end, field, schedule, expression) if end else (high if match["step"] else first)
            if last < first:
                raise _bad(schedule, expression, name, f"the range {piece!r} runs backwards")
        found.update(range(first, last + 1, every))
    return found


def _value(text: str, field: tuple[str, int, int], schedule: str, expression: str) -> int:
    name, low, high = field
    number = _NAMES.get(name, {}).get(text)
    if number is None:
        if not text.isdigit():
            raise _bad(schedule, expression, name, f"{text!r} is not a number")
        number = int(text)
    if not low <= number <= high:
        raise _bad(schedule, expression, name, f"{number} is out of range {low}-{high}")
    return number


def _bad(schedule: str, expression: str, field: str, problem: str) -> ScheduleError:
    return ScheduleError(schedule, f"crontab {expression!r}, {field} field: {problem}", field=field)


def _minute_of(moment: float) -> datetime:
    """The UTC minute ``moment`` falls in."""
    return datetime.fromtimestamp(moment, UTC).replace(second=0, microsecond=0)


def _first(ticks: Iterator[float]) -> float | None:
    return next(ticks, None)


#: A schedule that never ran starts with a tick at most this old (two periodic
#: checks, so a consumer checking once a minute cannot step over it), never an older one.
FIRST_RUN_WINDOW = 120.0


def due_tick(crontab: Crontab, now: float, last_tick: float | None) -> float | None:
    """The tick to run at ``now``, given the last one recorded (run or skipped); None if none is due.

    Only the latest tick is ever due: after downtime the ticks missed are
    not run one by one, the latest of them runs once. A schedule with no
    tick recorded yet does not catch up at all (``FIRST_RUN_WINDOW``).
    """
    tick = crontab.latest(now)
    if tick is None:
        return None
    if last_tick is None:
        return tick if now - tick < FIRST_RUN_WINDOW else None
    return tick if tick > last_tick else None


def utc_minute(moment: float | None) -> str:
    """A tick as schedules show it: ``2026-03-04 03:00 UTC`` (``-`` for none)."""
    return "-" if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")
