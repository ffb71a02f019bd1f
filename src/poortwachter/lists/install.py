"""Where compiled lists live and how a new build replaces the old one atomically.

  <data_dir>/lists/current           symlink -> builds/<generation>
  <data_dir>/lists/builds/<generation>/   one compiled build (see build.py)
  <data_dir>/lists/.build-*          a build in progress (removed on failure)

A new build is written next to the old one and `current` is switched with one rename(2) of a
symlink, so a gateway opening `current` sees either the old build or the new one, never a
mix. The previous build is kept until the next update: a gateway that resolved `current` just
before the switch can still open it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from poortwachter.lists.build import MANIFEST

CURRENT = "current"
BUILDS = "builds"


def lists_root(data_dir: Path) -> Path:
    return data_dir / "lists"


def lists_dir(data_dir: Path) -> Path:
    """The installed lists the gateway loads: data_dir / "lists" / "current"."""
    return lists_root(data_dir) / CURRENT


class UpdateBusy(Exception):
    """Another `lists update` holds the lock."""


@contextmanager
def update_lock(root: Path) -> Iterator[None]:
    """Serialise updates of one lists directory (two at once would prune each other's builds)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UpdateBusy(str(root)) from exc
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def new_build_dir(root: Path) -> Path:
    """An empty directory on the same file system as the installed builds (so rename works)."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".build-", dir=root))


def install(root: Path, build_dir: Path, generation: str) -> Path:
    """Make `build_dir` the current build; returns its final path."""
    builds = root / BUILDS
    builds.mkdir(exist_ok=True)
    final = builds / generation
    os.rename(build_dir, final)
    current = root / CURRENT
    previous = current.resolve() if current.is_symlink() else None
    if current.exists() and not current.is_symlink():
        # A real directory in the way (installed by hand): move it aside into builds/.
        os.rename(current, builds / f"manual-{time.strftime('%Y%m%dT%H%M%S')}")
    link = root / f".current-{generation}"
    os.symlink(f"{BUILDS}/{generation}", link)
    os.replace(link, current)
    _fsync_dir(builds)
    _fsync_dir(root)
    _prune(builds, keep={final.resolve(), previous})
    return final


def _prune(builds: Path, keep: set[Path | None]) -> None:
    for path in builds.iterdir():
        if path.resolve() not in keep:
            shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an installed build; FileNotFoundError when nothing is installed."""
    with open(directory / MANIFEST, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data
