"""The audit spool: an append-only on-disk queue of records for when the store cannot take them.

Layout: a directory of segment files `000000000001.spool`, `000000000002.spool`, ... oldest first.
Each segment starts with MAGIC, then records, each `length (4, big-endian) | CRC-32 (4) | payload`.

- `append` writes a whole batch with one write() and one fdatasync (the data and the file size it
  needs, not the times): once it returns, the batch survives a crash or a power cut (a new
  segment's directory entry is fsynced too).
- `oldest` (or `read` of a given segment) hands out a segment's records (closing it for appends
  if it is the one being written), `ack` (`remove`) deletes it once the store has committed them.
  A crash between the commit and the ack replays that segment again: the store's insert is
  idempotent, so nothing is doubled.
- `last_record` is the last valid record found when the spool was opened (what a crashed run
  wrote last), or None if it was empty.
- A crash in the middle of a write leaves a torn record at the end of the newest segment. Opening
  the spool finds it (short header, length past the end, zero length or a CRC mismatch), truncates
  it away and says how many bytes it dropped: a torn record is never replayed, and records
  appended later are never hidden behind it. Appends after a restart go to a new segment.
- One process at a time: the directory is locked (flock) while a Spool is open.

Pure stdlib; knows nothing about what the records mean.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("poortwachter")

MAGIC = b"PWSPOOL1"
HEADER = struct.Struct(">II")     # payload length, CRC-32 of the payload
MAX_RECORD = 1 << 20              # anything longer is garbage in a length field, not a record
SEGMENT_BYTES = 8 << 20
SUFFIX = ".spool"


class SpoolLocked(RuntimeError):
    """Another open Spool (another gateway process) holds this directory."""


@dataclass(frozen=True)
class Segment:
    path: Path
    records: list[bytes]


def parse(data: bytes) -> tuple[list[bytes], int]:
    """The records of a segment's bytes, and the offset where the valid part ends."""
    if not data.startswith(MAGIC):
        return [], 0
    records: list[bytes] = []
    pos = len(MAGIC)
    end = len(data)
    while pos + HEADER.size <= end:
        length, crc = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        # zero length: a zero-filled tail (some file systems leave one after a crash) would
        # otherwise parse as a run of valid empty records, CRC-32 of b"" being 0
        if length == 0 or length > MAX_RECORD or start + length > end:
            break
        payload = data[start:start + length]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload)
        pos = start + length
    return records, pos


def read_segment(path: Path) -> list[bytes]:
    return parse(path.read_bytes())[0]


def read_records(directory: Path) -> Iterator[bytes]:
    """Every valid record under `directory`, oldest first, without locking or changing anything
    (for inspection, e.g. of a copy of a crashed gateway's spool)."""
    for path in _segments(directory):
        yield from read_segment(path)


def _segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit())


_datasync = getattr(os, "fdatasync", os.fsync)      # fsync where there is no fdatasync


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolLocked(f"spool in use by another process: {self.directory}") from None
        self._fd: int | None = None          # the segment being appended to
        self._active: Path | None = None
        self._active_size = 0
        self._sizes: dict[Path, int] = {}
        self.last_record: bytes | None = None
        self.dropped_bytes = self._recover()
        self._next = int(_segments(self.directory)[-1].stem) + 1 if self._sizes else 1

    # --- state ---------------------------------------------------------------------------
    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def empty(self) -> bool:
        return not self._sizes

    @property
    def active(self) -> Path | None:
        """The segment appends go to, if one is open."""
        return self._active

    def segments(self) -> list[Path]:
        """The segments, oldest first."""
        return sorted(self._sizes)

    def size_of(self, path: Path) -> int:
        return self._sizes.get(path, 0)

    # --- writing ---------------------------------------------------------------------------
    def append(self, records: Sequence[bytes]) -> None:
        """Append a batch durably (one write, one fsync). Raises OSError (e.g. disk full) with
        the segment left as it was before the call."""
        if not records:
            return
        parts: list[bytes] = []
        for record in records:
            if not 0 < len(record) <= MAX_RECORD:
                raise ValueError(f"spool record of {len(record)} bytes")
            parts.append(HEADER.pack(len(record), zlib.crc32(record)))
            parts.append(record)
        data = b"".join(parts)
        if self._fd is None or (self._active_size > len(MAGIC)
                                and self._active_size + len(data) > self.segment_bytes):
            self._roll()
        assert self._fd is not None and self._active is not None
        before = self._active_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            _datasync(self._fd)
        except OSError:
            # best effort: no torn record left behind for the next append to hide behind
            try:
                os.ftruncate(self._fd, before)
                os.fsync(self._fd)
            except OSError:
                pass
            raise
        self._active_size = before + len(data)
        self._sizes[self._active] = self._active_size

    def roll(self) -> None:
        """Appends go to a new segment from the next one on (this one can then be removed once
        its records are committed)."""
        self._close_active()

    def _roll(self) -> None:
        self._close_active()
        path = self.directory / f"{self._next:012d}{SUFFIX}"
        self._next += 1
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            os.write(fd, MAGIC)
            os.fsync(fd)
            _fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._active, self._active_size = fd, path, len(MAGIC)
        self._sizes[path] = len(MAGIC)

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._active, self._active_size = None, None, 0

    # --- replaying ---------------------------------------------------------------------------
    def oldest(self) -> Segment | None:
        """The oldest segment's records, or None if the spool is empty. Appends go to a new
        segment from here on if this was the one being written."""
        while self._sizes:
            segment = self.read(min(self._sizes))
            if segment is not None:
                return segment
        return None

    def read(self, path: Path) -> Segment | None:
        """One segment's records (None, and the segment removed, if it never got one). Appends go
        to a new segment from here on if this was the one being written."""
        if path == self._active:
            self._close_active()
        records = read_segment(path)
        if records:
            return Segment(path, records)
        self.remove(path)
        return None

    def ack(self, segment: Segment) -> None:
        """The store has committed `segment`'s records: they are never handed out again."""
        self.remove(segment.path)

    def remove(self, path: Path) -> None:
        """Delete a segment (closing it first if it is being written)."""
        if path == self._active:
            self._close_active()
        path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._sizes.pop(path, None)

    # --- opening and closing -------------------------------------------------------------------
    def _recover(self) -> int:
        dropped = 0
        for path in _segments(self.directory):
            data = path.read_bytes()
            records, end = parse(data)
            if end < len(data):
                dropped += len(data) - end
                if not records:
                    path.unlink()
                    continue
                with open(path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
                log.warning("audit spool: dropped a torn record at the end of %s (%d bytes)",
                            path.name, len(data) - end)
            elif not records:
                path.unlink()
                continue
            self._sizes[path] = end
            self.last_record = records[-1]
        if dropped:
            _fsync_dir(self.directory)
        return dropped

    def close(self) -> None:
        self._close_active()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)     # releases the flock
            self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
