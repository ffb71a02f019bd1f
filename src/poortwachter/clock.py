"""Where the gateway gets the time from: the system clock, or a clock file for tests and drills.

A clock file holds one ISO-8601 time. It lets an end-to-end test (or an ICT admin rehearsing an
exam morning) move the gateway through the timetable without touching the system clock.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

Clock = Callable[[], dt.datetime]


_second = -1
_now = dt.datetime.now(dt.UTC)


def system_clock() -> dt.datetime:
    """The time, to the second: one datetime object per second, so the per-minute timetable
    lookup can recognise it by identity instead of converting it on every request."""
    global _second, _now
    t = time.time()
    if int(t) != _second:
        _second = int(t)
        _now = dt.datetime.fromtimestamp(_second, dt.UTC)
    return _now


def parse_time(text: str) -> dt.datetime:
    """ISO-8601; a time without offset is taken as Europe/Amsterdam wall-clock time."""
    from zoneinfo import ZoneInfo

    when = dt.datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    return when


class FileClock:
    """Reads the time from a file; re-reads only when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._time = system_clock()

    def __call__(self) -> dt.datetime:
        try:
            st = os.stat(self.path)
        except OSError:
            return system_clock()
        # the inode too: a file replaced by rename within one mtime tick, with a time of the same
        # length ("09:00" -> "10:15"), would otherwise look unchanged
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            try:
                self._time = parse_time(self.path.read_text())
                self._stamp = stamp
            except (OSError, ValueError):
                return self._time
        return self._time


def make_clock(clock_file: str | None) -> Clock:
    return FileClock(Path(clock_file)) if clock_file else system_clock
