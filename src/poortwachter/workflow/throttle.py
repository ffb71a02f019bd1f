"""Login throttling without lockout: growing delays, never a locked account.

Threat model. Anyone on the school network can reach the login form and knows, or guesses, user
names. A lock per username would let any pupil keep a teacher out all day, so nothing locks: a
failed login only makes the *next* attempt wait, and two brakes decide how long:

- per source address (SourceThrottle, in the console's memory; no client address is ever
  written to the database): after 3 failures from one address the next attempt waits 1 s, and
  each further failure doubles the wait, up to 15 minutes. A stranger guessing from one machine
  slows only that machine; the real user on their own machine is not affected by it.
- per username (the `login_throttle` table, accounts.authenticate): after 10 failures from
  anywhere the next attempt waits 1 s, doubling up to 1 minute. It slows guessing spread over
  many addresses, and keeps the real user waiting at most a minute after the last guess. An
  address that logged in to that account before (remembered in memory) is not held by it.

Attempts made while a wait runs are refused without checking the password and are not counted,
so hammering neither lengthens the wait nor learns anything. Failures are forgotten after a day
without one, and a success clears that username's failures (also those of its address).
Both brakes hold against parallel guesses: the source brake counts an attempt before its
password is checked (under a lock), the username brake serialises logins per username.
The console must see real client addresses: behind a reverse proxy, start it with
--proxy-headers, or every visitor shares one address and one brake.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import Throttled

FORGET = dt.timedelta(days=1)        # failures older than this (with none since) no longer count
KNOWN_FOR = dt.timedelta(days=30)    # how long a successful address stays exempt from the username brake
MAX_SOURCES = 10_000                 # addresses remembered; the oldest are dropped first
MAX_KNOWN = 10_000
MAX_NAMES_PER_SOURCE = 64            # usernames tracked per address; beyond that failures still count


@dataclass(frozen=True)
class Schedule:
    """After `free` failures the next attempt waits `first`; every further failure doubles it, up
    to `cap`."""

    free: int
    first: dt.timedelta
    cap: dt.timedelta

    def wait(self, failures: int) -> dt.timedelta:
        if failures < self.free:
            return dt.timedelta(0)
        return min(self.cap, self.first * 2 ** min(failures - self.free, 30))

    def retry_after(self, failures: int, last_failure: dt.datetime, now: dt.datetime) -> int:
        """Whole seconds until the next attempt may be checked (0: now). Never more than the
        schedule's wait: a clock stepped back (NTP) must not turn a short wait into hours."""
        elapsed = max(now - last_failure, dt.timedelta(0))
        if elapsed >= FORGET:
            return 0
        left = (self.wait(failures) - elapsed).total_seconds()
        return max(0, int(-(-left // 1)))


SOURCE = Schedule(free=3, first=dt.timedelta(seconds=1), cap=dt.timedelta(minutes=15))
ACCOUNT = Schedule(free=10, first=dt.timedelta(seconds=1), cap=dt.timedelta(minutes=1))


@dataclass
class _Source:
    failures: int = 0
    last: dt.datetime | None = None
    by_name: dict[str, int] = field(default_factory=dict)   # failures per username, to clear on success


@dataclass
class Attempt:
    """One login attempt admitted by SourceThrottle.attempt(); counted as a failure unless the
    caller says `succeeded()`."""

    known: bool                 # this address logged in as this username before: no username brake
    succeeded_at: dt.datetime | None = None

    def succeeded(self, now: dt.datetime) -> None:
        self.succeeded_at = now


class SourceThrottle:
    """The per-address brake, in memory, shared by the console's worker threads. `address` is
    the caller's canonical form of the client address."""

    def __init__(self, schedule: Schedule = SOURCE) -> None:
        self.schedule = schedule
        self._lock = threading.Lock()
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], dt.datetime] = OrderedDict()

    @contextmanager
    def attempt(self, address: str, username: str, now: dt.datetime) -> Iterator[Attempt]:
        """Admit one attempt or raise Throttled. The attempt counts as a failure from the start
        (parallel guesses from one address see each other); it is cleared when the block calls
        `succeeded`, and taken back when the block raises (the password was not judged)."""
        with self._lock:
            source = self._sources.get(address)
            if source is not None and source.last is not None:
                wait = self.schedule.retry_after(source.failures, source.last, now)
                if wait:
                    raise Throttled(wait)
            self._record(address, username, now)
            known = self._is_known(address, username, now)
        outcome = Attempt(known=known)
        try:
            yield outcome
        except BaseException:
            with self._lock:
                self._take_back(address, username)
            raise
        if outcome.succeeded_at is not None:
            with self._lock:
                self._clear(address, username, outcome.succeeded_at)

    def _record(self, address: str, username: str, now: dt.datetime) -> None:
        source = self._sources.pop(address, None)
        if source is None or source.last is None or now - source.last >= FORGET:
            source = _Source()
        self._sources[address] = source            # most recent last
        while len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)
        source.failures += 1
        source.last = now
        if username in source.by_name or len(source.by_name) < MAX_NAMES_PER_SOURCE:
            source.by_name[username] = source.by_name.get(username, 0) + 1

    def _take_back(self, address: str, username: str) -> None:
        source = self._sources.get(address)
        if source is None:
            return
        source.failures = max(0, source.failures - 1)
        if source.by_name.get(username, 0) > 1:
            source.by_name[username] -= 1
        else:
            source.by_name.pop(username, None)

    def _clear(self, address: str, username: str, now: dt.datetime) -> None:
        source = self._sources.get(address)
        if source is not None:
            source.failures = max(0, source.failures - source.by_name.pop(username, 0))
        self._known.pop((address, username), None)
        self._known[(address, username)] = now
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)

    def _is_known(self, address: str, username: str, now: dt.datetime) -> bool:
        since = self._known.get((address, username))
        return since is not None and now - since < KNOWN_FOR

