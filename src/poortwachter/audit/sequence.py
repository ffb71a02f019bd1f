"""The gateway's audit sequence numbers: strictly increasing, never reused, across crashes; and
how the previous run ended.

(gateway, seq) is what makes a replay idempotent, so a seq used twice would make the store throw
the second event away as a "replay". Numbers are reserved in blocks: the file holds the first
number not yet reserved, written (fsync, rename, fsync of the directory) before any number of a
new block is handed out. A run that stops cleanly writes the exact next number instead
(`stop`), so a clean restart leaves no gap; a crash leaves one (the rest of the block in use).

The file says how the run that wrote it ended, for the next run's restart marker
(audit/record.py, `Restart`): `<number> <state>[ dropped=<n>]`, state one of
- "stopped": stopped cleanly, every event it numbered is in the store or the spool (`dropped`:
  how many it had to give up while stopping, counted again by the next run);
- "durable" / "fast": running (or crashed) in that recording mode;
- "degraded": running (or crashed) while events were answered before they were on disk.
An older file holds the number only ("unknown"); no file at all is a new data directory ("new").

A fresh data directory starts at the time in microseconds, far above anything an earlier
installation of the same gateway name can have reached, so a lost data directory cannot collide
with the events already in a shared database either.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

BLOCK = 10_000
STATES = ("stopped", "durable", "fast", "degraded")


class Ended(NamedTuple):
    """How the previous run in this data directory ended (read when the file is opened)."""

    state: str          # one of STATES, "unknown" (an older or unreadable file) or "new" (no file)
    next: int | None    # the number the file held: exact after "stopped", a block mark otherwise
    dropped: int        # events the previous run gave up while stopping


def parse(text: str) -> Ended:
    parts = text.split()
    try:
        number = int(parts[0])
    except (IndexError, ValueError):
        return Ended("unknown", None, 0)
    state = parts[1] if len(parts) > 1 and parts[1] in STATES else "unknown"
    dropped = 0
    for part in parts[2:]:
        key, _, value = part.partition("=")
        if key == "dropped" and value.isdigit():
            dropped = int(value)
    return Ended(state, number, dropped)


class SequenceFile:
    def __init__(self, path: Path, block: int = BLOCK, now: Callable[[], float] = time.time,
                 mode: str = "durable") -> None:
        if mode not in STATES or mode == "stopped":
            raise ValueError(f"not a recording mode: {mode!r}")
        self.path = Path(path)
        self.block = block
        self.mode = mode
        self._lock = threading.Lock()
        try:
            self.previous = parse(self.path.read_text())
        except FileNotFoundError:
            self.previous = Ended("new", None, 0)
        except (OSError, UnicodeDecodeError):
            self.previous = Ended("unknown", None, 0)
        # none yet, or unreadable: the time is safe either way
        start = self.previous.next if self.previous.next is not None else int(now() * 1_000_000)
        self._next = start
        self._reserved = start           # nothing of this run reserved yet

    def next(self) -> int:
        with self._lock:
            if self._next >= self._reserved:
                self._write(self._next + self.block, self.mode)
                self._reserved = self._next + self.block
            value = self._next
            self._next += 1
            return value

    def give_back(self, value: int) -> None:
        """`value`, the last number handed out, was not used after all (its event could not be
        built): the next event takes it, so no gap stands for an event that never existed."""
        with self._lock:
            if value == self._next - 1:
                self._next = value

    def set_mode(self, mode: str) -> None:
        """Record another running state (e.g. "degraded" while events are answered before they are
        on disk). Raises OSError if the file cannot be written."""
        with self._lock:
            if mode == self.mode:
                return
            self.mode = mode
            if self._reserved > self._next:
                self._write(self._reserved, mode)

    def stop(self, dropped: int = 0) -> None:
        """The run ends cleanly: the next run continues at the exact next number. Raises OSError
        if the file cannot be written (the next run then sees a crash)."""
        with self._lock:
            self._write(self._next, "stopped", f" dropped={dropped}" if dropped else "")
            self._reserved = self._next

    def _write(self, mark: int, state: str, extra: str = "") -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{mark} {state}{extra}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
