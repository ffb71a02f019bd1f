"""The timetable in Europe/Amsterdam wall-clock time, summer time included."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter.policy.load import load_policy, parse_policy
from poortwachter.policy.timetable import Clockwork

REPO = Path(__file__).resolve().parents[2]
AMS = ZoneInfo("Europe/Amsterdam")
UTC = dt.UTC


@pytest.fixture(scope="module")
def clock() -> Clockwork:
    return Clockwork(load_policy(REPO / "policy" / "default.yaml").timetable)


def test_first_lesson_at_0845_in_winter_and_in_summer_time(clock: Clockwork) -> None:
    winter = dt.datetime(2026, 3, 23, 7, 45, tzinfo=UTC)   # CET: 08:45 local
    summer = dt.datetime(2026, 3, 30, 6, 45, tzinfo=UTC)   # CEST since 29 March: 08:45 local
    assert clock.moment(winter).period == "1e-uur"
    assert clock.moment(summer).period == "1e-uur"
    # the same UTC time of day a week later is an hour later on the wall clock
    assert clock.moment(dt.datetime(2026, 3, 30, 7, 45, tzinfo=UTC)).period == "2e-uur"


def test_lesson_break_and_tags(clock: Clockwork) -> None:
    lesson = clock.moment(dt.datetime(2026, 11, 23, 10, 0, tzinfo=AMS))    # Monday
    assert lesson.period_kind == "lesson" and {"lesson", "2e-uur", "school_day", "school_hours"} <= lesson.tags
    assert lesson.period_end == dt.datetime(2026, 11, 23, 10, 10, tzinfo=AMS)
    pause = clock.moment(dt.datetime(2026, 11, 23, 10, 15, tzinfo=AMS))
    assert pause.period == "pauze" and "break" in pause.tags and "lesson" not in pause.tags


def test_outside_school_hours_weekend_holiday_and_wednesday(clock: Clockwork) -> None:
    evening = clock.moment(dt.datetime(2026, 11, 23, 19, 0, tzinfo=AMS))
    assert evening.period is None and "outside_school_hours" in evening.tags and "school_hours" not in evening.tags
    saturday = clock.moment(dt.datetime(2026, 11, 21, 10, 0, tzinfo=AMS))
    assert saturday.period is None and "weekend" in saturday.tags and "school_day" not in saturday.tags
    christmas = clock.moment(dt.datetime(2026, 12, 22, 10, 0, tzinfo=AMS))   # a Tuesday in the holiday
    assert christmas.period is None and {"holiday", "kerstvakantie"} <= christmas.tags
    wednesday_afternoon = clock.moment(dt.datetime(2026, 11, 25, 14, 0, tzinfo=AMS))
    assert wednesday_afternoon.period is None and "outside_school_hours" in wednesday_afternoon.tags


def test_special_day_with_its_own_schedule() -> None:
    text = (REPO / "policy" / "default.yaml").read_text().replace(
        "special_days: []",
        "special_days:\n    - {name: examenweek, from: 2026-11-23, to: 2026-11-27, kind: exam_week, schedule: woensdag}")
    clock = Clockwork(parse_policy(text, "t.yaml").timetable)
    monday_afternoon = clock.moment(dt.datetime(2026, 11, 23, 14, 0, tzinfo=AMS))
    assert {"exam_week", "examenweek"} <= monday_afternoon.tags
    assert monday_afternoon.period is None     # the short schedule ends at 13:30


def test_naive_time_is_refused(clock: Clockwork) -> None:
    with pytest.raises(ValueError):
        clock.moment(dt.datetime(2026, 11, 23, 10, 0))


@pytest.mark.parametrize("at,lesson", [
    ("08:00", "1e-uur"),       # before school: the first lesson
    ("09:00", "1e-uur"),       # in a lesson: that lesson
    ("10:15", "3e-uur"),       # in the break: the next lesson, not the end of the break
    ("14:30", "7e-uur"),       # the short afternoon break
    ("16:20", None),           # after the last lesson: none
])
def test_this_lesson_is_the_lesson_in_progress_or_after_a_break_the_next(clock: Clockwork, at: str,
                                                                         lesson: str | None) -> None:
    """004 art. 9: a teacher opening "until the end of this lesson" in the break means the coming lesson."""
    hour, minute = map(int, at.split(":"))
    found = clock.this_lesson(dt.datetime(2026, 11, 23, hour, minute, tzinfo=AMS))
    assert (found.name if found else None) == lesson
    if found is not None:
        assert found.end > dt.datetime(2026, 11, 23, hour, minute, tzinfo=AMS) and found.start < found.end


def test_no_lessons_on_a_holiday_or_a_weekend(clock: Clockwork) -> None:
    assert clock.lessons(dt.date(2026, 12, 21)) == []      # kerstvakantie
    assert clock.lessons(dt.date(2026, 11, 28)) == []      # a Saturday
    assert [x.name for x in clock.lessons(dt.date(2026, 11, 25))][-1] == "5e-uur"   # Wednesday's short day
