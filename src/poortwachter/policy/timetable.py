"""Where in the school day a moment falls: lesson, break, outside school hours, weekend, holiday.

Times in the policy are wall-clock times in the school's time zone (Europe/Amsterdam), so summer
time is handled by zoneinfo: 08:30 is 08:30 in March and in November.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .model import Period, Timetable

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Moment:
    """What the timetable says about one minute."""

    tags: frozenset[str]          # every word a rule's `when` may use for this minute
    period: str | None            # the lesson or break name, or None
    period_kind: str | None       # "lesson", "break" or None
    period_end: dt.datetime | None  # when the current period ends (for "until the end of this lesson")


@dataclass(frozen=True, slots=True)
class Lesson:
    name: str
    start: dt.datetime
    end: dt.datetime


def _at(day: dt.date, hhmm: str, tz: ZoneInfo) -> dt.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


class Clockwork:
    """Answers `moment(when)` for a timetable; pure apart from a small per-minute cache."""

    def __init__(self, timetable: Timetable) -> None:
        self.tt = timetable
        self.tz = ZoneInfo(timetable.timezone)
        self._cache: dict[int, Moment] = {}
        # the time asked last: the gateway's clock hands out one datetime object per second
        self._last_when: dt.datetime | None = None
        self._last: Moment | None = None

    def moment(self, when: dt.datetime) -> Moment:
        if when is self._last_when and self._last is not None:
            return self._last
        if when.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        key = int(when.timestamp()) // 60
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            hit = self._cache[key] = self._compute(when.astimezone(self.tz))
        self._last_when, self._last = when, hit
        return hit

    def lessons(self, day: dt.date) -> list[Lesson]:
        """The lessons of a school day, in order (none on a holiday or a day without school)."""
        return [Lesson(p.name, _at(day, p.start, self.tz), _at(day, p.end, self.tz))
                for p in self._periods(day) if p.kind == "lesson"]

    def this_lesson(self, when: dt.datetime) -> Lesson | None:
        """What "this lesson" means to a teacher at `when`: the lesson in progress, or in a break
        (or before the first lesson) the next lesson of the day; None after the last one."""
        for lesson in self.lessons(when.astimezone(self.tz).date()):
            if when < lesson.end:
                return lesson
        return None

    def _periods(self, day: dt.date) -> list[Period]:
        holiday, schedule_name, _ = self._day(day)
        if holiday or schedule_name is None:
            return []
        return sorted(self.tt.schedules[schedule_name], key=lambda p: p.start)

    def _day(self, day: dt.date) -> tuple[bool, str | None, set[str]]:
        """(a holiday?, the day's schedule name, the day's tags)."""
        tags: set[str] = set()
        for holiday in self.tt.holidays:
            if holiday.start <= day <= holiday.end:
                tags.update(("holiday", holiday.name))
        schedule_name = self.tt.weekdays.get(WEEKDAYS[day.weekday()])  # type: ignore[call-overload]
        if day.weekday() >= 5:
            tags.add("weekend")
        for special in self.tt.special_days:
            if special.start <= day <= special.end:
                tags.update((special.kind, special.name))
                if special.schedule is not None:
                    schedule_name = special.schedule
        return "holiday" in tags, schedule_name, tags

    def _compute(self, local: dt.datetime) -> Moment:
        day = local.date()
        holiday, schedule_name, tags = self._day(day)
        if holiday or schedule_name is None:
            return Moment(frozenset(tags), None, None, None)
        periods = self._periods(day)
        tags.add("school_day")
        hhmm = local.strftime("%H:%M")
        if periods and periods[0].start <= hhmm < periods[-1].end:
            tags.add("school_hours")
        else:
            tags.add("outside_school_hours")
        for period in periods:
            if period.start <= hhmm < period.end:
                tags.update((period.kind, period.name))
                return Moment(frozenset(tags), period.name, period.kind, _at(day, period.end, self.tz))
        return Moment(frozenset(tags), None, None, None)
