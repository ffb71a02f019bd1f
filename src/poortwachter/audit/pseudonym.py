"""Joinable pseudonyms: one subject's events can be selected without unsealing anyone else's.

pseudonym = HMAC-SHA256(period_key, subject), hex, first 32 characters (128 bits). The key is
random per period (an ISO week in Europe/Amsterdam) and the gateway keeps it only while the period
runs; afterwards only its sealed copy in the database remains, so linking a subject's events
across periods, or testing a guessed subject, needs the escrow key, i.e. an approved case.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

from .seal import seal, unseal

SCHOOL_TZ = ZoneInfo("Europe/Amsterdam")
KEY_LEN = 32
PSEUDONYM_LEN = 32
_PERIOD_RE = re.compile(r"^(\d{4})-W(\d{2})$")
_FILE_PREFIX = "pseudonym-key-"
_FILE_SUFFIX = ".key"


class PeriodClosed(LookupError):
    """The key of a period that has ended is gone from the gateway (only its sealed copy remains)."""


def period_of(when: dt.datetime) -> str:
    """The ISO week of `when` on the school's wall clock, e.g. "2026-W48"."""
    if when.tzinfo is None or when.utcoffset() is None:
        # A naive time could be UTC or local; guessing would put events near midnight on Sunday
        # in the wrong period.
        raise ValueError("period_of needs a timezone-aware datetime")
    year, week, _ = when.astimezone(SCHOOL_TZ).isocalendar()
    return f"{year:04d}-W{week:02d}"


def period_start(period: str) -> dt.datetime:
    """Monday 00:00 Europe/Amsterdam of an ISO-week period."""
    year, week = _parse_period(period)
    return dt.datetime.combine(dt.date.fromisocalendar(year, week, 1), dt.time(), SCHOOL_TZ)


def periods_between(start: dt.datetime, end: dt.datetime) -> list[str]:
    """Every period that overlaps [start, end], oldest first (a case window spans these)."""
    if end < start:
        raise ValueError("end before start")
    first = start.astimezone(SCHOOL_TZ).date()
    last = end.astimezone(SCHOOL_TZ).date()
    monday = first - dt.timedelta(days=first.weekday())
    periods = []
    while monday <= last:
        year, week, _ = monday.isocalendar()
        periods.append(f"{year:04d}-W{week:02d}")
        monday += dt.timedelta(days=7)
    return periods


def pseudonym(period_key: bytes, subject: str) -> str:
    """HMAC-SHA256(period_key, subject) as hex, truncated to 32 characters."""
    if len(period_key) != KEY_LEN:
        raise ValueError(f"period key must be {KEY_LEN} bytes, got {len(period_key)}")
    return hmac.new(period_key, subject.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_LEN]


def period_key_aad(period: str) -> bytes:
    """Associated data of a sealed period key: a sealed key cannot be passed off as another week's."""
    return b"poortwachter/period-key/v1/" + period.encode("ascii")


def open_period_key(escrow_private: bytes, period: str, sealed: bytes) -> bytes:
    """For a case: recover a period key from its sealed copy (raises SealError if not that period's)."""
    key = unseal(escrow_private, sealed, period_key_aad(period))
    if len(key) != KEY_LEN:
        raise ValueError("sealed period key has the wrong length")
    return key


class PeriodKeys:
    """The gateway's per-period pseudonym keys.

    A key is made at random when its period is first needed, kept in memory and in a file in the
    data directory (so a restart within the week keeps the pseudonyms joinable), and erased from
    both as soon as a newer period's key is made. The database gets it only sealed to the escrow
    key (`sealed_period_key`). Thread-safe: recording may run off the proxy's event loop.
    """

    def __init__(self, escrow_public: bytes, directory: Path | None = None) -> None:
        if len(escrow_public) != 32:
            raise ValueError("escrow public key must be 32 bytes")
        self._escrow_public = escrow_public
        self._directory = directory
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()
        if directory is not None:
            self._load(directory)

    @property
    def periods(self) -> list[str]:
        """Periods whose key the gateway still holds, oldest first."""
        with self._lock:
            return sorted(self._keys)

    def key(self, period: str) -> bytes:
        """The key of `period`, made if needed; older periods' keys are erased when it is made."""
        _parse_period(period)
        with self._lock:
            existing = self._keys.get(period)
            if existing is not None:
                return existing
            if any(held > period for held in self._keys):
                raise PeriodClosed(f"period {period} has ended; its key is no longer held")
            key = secrets.token_bytes(KEY_LEN)
            if self._directory is not None:
                self._write(self._directory, period, key)
            self._keys[period] = key
            for old in [held for held in self._keys if held < period]:
                self._erase(old)
            return key

    def pseudonym(self, subject: str, when: dt.datetime) -> tuple[str, str]:
        """(period, pseudonym) of `subject` at `when`."""
        period = period_of(when)
        return period, pseudonym(self.key(period), subject)

    def sealed_period_key(self, period: str) -> bytes:
        """The key of a period still held, sealed to the escrow key (for the database)."""
        with self._lock:
            key = self._keys.get(period)
        if key is None:
            raise PeriodClosed(f"no key held for period {period}")
        return seal(self._escrow_public, key, period_key_aad(period))

    def _erase(self, period: str) -> None:
        del self._keys[period]
        if self._directory is not None:
            (self._directory / f"{_FILE_PREFIX}{period}{_FILE_SUFFIX}").unlink(missing_ok=True)

    def _load(self, directory: Path) -> None:
        if not directory.is_dir():
            return
        for path in directory.glob(f"{_FILE_PREFIX}*{_FILE_SUFFIX}"):
            period = path.name[len(_FILE_PREFIX) : -len(_FILE_SUFFIX)]
            if not _PERIOD_RE.match(period):
                continue
            key = path.read_bytes()
            if len(key) == KEY_LEN:
                self._keys[period] = key
        # Only the newest can still be running; anything older survived a crash mid-rotation.
        if self._keys:
            newest = max(self._keys)
            for old in [held for held in self._keys if held < newest]:
                self._erase(old)

    @staticmethod
    def _write(directory: Path, period: str, key: bytes) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = directory / f"{_FILE_PREFIX}{period}{_FILE_SUFFIX}"
        tmp = final.with_name(final.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)


def _parse_period(period: str) -> tuple[int, int]:
    match = _PERIOD_RE.match(period)
    if not match:
        raise ValueError(f"not a period (YYYY-Www): {period!r}")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        dt.date.fromisocalendar(year, week, 1)
    except ValueError as exc:
        raise ValueError(f"no such ISO week: {period!r}") from exc
    return year, week
