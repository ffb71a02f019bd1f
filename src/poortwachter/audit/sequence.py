"""The gateway's audit sequence numbers: strictly increasing, never reused, across crashes.

(gateway, seq) is what makes a replay idempotent, so a seq used twice would make the store throw
the second event away as a "replay". Numbers are reserved in blocks: the file holds the first
number not yet reserved, written (fsync, rename, fsync of the directory) before any number of a
new block is handed out. A restart continues at that mark, so the rest of the block in use when
the gateway stopped is skipped: gaps in seq mark restarts, they are not lost events (the Merkle
log, not seq, is what shows an event missing).

A fresh data directory (no file yet) starts at the time in microseconds, far above anything an
earlier installation of the same gateway name can have reached, so a lost data directory cannot
collide with the events already in a shared database either.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

BLOCK = 10_000


class SequenceFile:
    def __init__(self, path: Path, block: int = BLOCK, now: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.block = block
        self._lock = threading.Lock()
        try:
            start = int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):   # none yet, or unreadable: the time is safe either way
            start = int(now() * 1_000_000)
        self._next = start
        self._reserved = start           # nothing of this run reserved yet

    def next(self) -> int:
        with self._lock:
            if self._next >= self._reserved:
                self._write(self._next + self.block)
                self._reserved = self._next + self.block
            value = self._next
            self._next += 1
            return value

    def _write(self, mark: int) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{mark}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
