"""Where UT1 lists come from: a directory in UT1 layout, a tarball, or a download.

Tarballs are read in place (never extracted to disk), so a hostile archive cannot write outside
the build directory; member paths are only used as category labels, and those are validated.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, Self

import httpx

UT1_URL = "http://dsi.ut-capitole.fr/blacklists/download/blacklists.tar.gz"

# Shown wherever lists derived from UT1 are installed or shown (CC BY-SA 4.0 asks for it).
UT1_ATTRIBUTION: dict[str, str] = {
    "work": "UT1 blacklists",
    "author": "Université Toulouse Capitole (Fabrice Prigent)",
    "homepage": "https://dsi.ut-capitole.fr/blacklists/",
    "license": "CC BY-SA 4.0",
    "license_url": "https://creativecommons.org/licenses/by-sa/4.0/",
    "notice": (
        "Category lists from the UT1 blacklists by Université Toulouse Capitole, licensed under "
        "CC BY-SA 4.0. Lists derived from them are shared under the same license."
    ),
}

LIST_KINDS = ("domains", "urls", "expressions", "usage")
GLOBAL_USAGE = "global_usage"
CATEGORY_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class SourceError(Exception):
    """The source cannot be read at all (as opposed to a malformed line, which is counted)."""


class Bar(Protocol):
    """The part of a tqdm progress bar the update uses."""

    def update(self, n: float = 1) -> object: ...

    def close(self) -> None: ...


BarFactory = Callable[[str, int | None, str], Bar]


@dataclass(frozen=True)
class SourceEntry:
    """One list file of a UT1 source. `category` is "" for global_usage."""

    category: str
    kind: str
    size: int
    ref: str


class Ut1Source(Protocol):
    location: str

    def __enter__(self) -> Self: ...

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def entries(self) -> list[SourceEntry]: ...

    def open(self, entry: SourceEntry) -> IO[bytes]: ...


def _entry_for(parts: tuple[str, ...], size: int, ref: str) -> SourceEntry | None:
    if parts and parts[-1] == GLOBAL_USAGE:
        return SourceEntry("", GLOBAL_USAGE, size, ref)
    if len(parts) >= 2 and parts[-1] in LIST_KINDS and CATEGORY_RE.fullmatch(parts[-2]):
        return SourceEntry(parts[-2], parts[-1], size, ref)
    return None


class DirectorySource:
    """A directory in UT1 layout: <root>/<category>/{domains,urls,expressions,usage}.

    `root` may also be the parent of a `blacklists/` directory (an unpacked tarball).
    Symlinked category directories are UT1's aliases (porn -> adult) and are skipped, so a
    category is not installed twice under two names.
    """

    def __init__(self, root: Path) -> None:
        if (root / "blacklists").is_dir() and not (root / GLOBAL_USAGE).exists():
            root = root / "blacklists"
        self.root = root
        self.location = str(root)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def entries(self) -> list[SourceEntry]:
        found: list[SourceEntry] = []
        global_usage = self.root / GLOBAL_USAGE
        if global_usage.is_file():
            found.append(SourceEntry("", GLOBAL_USAGE, global_usage.stat().st_size, str(global_usage)))
        for cat_dir in sorted(self.root.iterdir()):
            if cat_dir.is_symlink() or not cat_dir.is_dir():
                continue
            for kind in LIST_KINDS:
                path = cat_dir / kind
                if path.is_file():
                    entry = _entry_for((cat_dir.name, kind), path.stat().st_size, str(path))
                    if entry is not None:
                        found.append(entry)
        if not any(e.category for e in found):
            raise SourceError(f"no UT1 category lists in {self.root}")
        return found

    def open(self, entry: SourceEntry) -> IO[bytes]:
        return open(entry.ref, "rb")


class TarballSource:
    """A UT1 tarball (.tar.gz as UT1 publishes it; other tar compressions work too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> Self:
        try:
            # Random access ("r:*", not the "r|*" stream mode) so that file members stored as
            # links to another member can be read through extractfile().
            self._tar = tarfile.open(self.path, "r:*")
        except (OSError, tarfile.TarError) as exc:
            raise SourceError(f"cannot read tarball {self.path}: {exc}") from exc
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def _opened(self) -> tarfile.TarFile:
        if self._tar is None:
            raise RuntimeError("TarballSource used outside its with-block")
        return self._tar

    def entries(self) -> list[SourceEntry]:
        found: list[SourceEntry] = []
        try:
            members = self._opened().getmembers()
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise SourceError(f"cannot read tarball {self.path}: {exc}") from exc
        for member in members:
            if not (member.isfile() or member.issym() or member.islnk()):
                continue
            parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
            entry = _entry_for(parts, member.size, member.name)
            if entry is not None:
                found.append(entry)
        if not any(e.category for e in found):
            raise SourceError(f"no UT1 category lists in tarball {self.path}")
        return found

    def open(self, entry: SourceEntry) -> IO[bytes]:
        try:
            stream = self._opened().extractfile(entry.ref)
        except (KeyError, tarfile.TarError) as exc:
            raise SourceError(f"cannot read {entry.ref} from {self.path}: {exc}") from exc
        if stream is None:
            raise SourceError(f"{entry.ref} in {self.path} is not a file")
        return stream


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def open_ut1(path: Path) -> Ut1Source:
    if path.is_dir():
        return DirectorySource(path)
    if path.is_file():
        return TarballSource(path)
    raise SourceError(f"{path} does not exist")


def download(url: str, dest: Path, make_bar: BarFactory, timeout: float = 60.0) -> None:
    """Stream `url` to `dest`, showing bytes received."""
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as response:
            response.raise_for_status()
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            with dest.open("wb") as out, closing(make_bar("download", total, "B")) as bar:
                seen = 0
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    # num_bytes_downloaded counts wire bytes, which is what content-length
                    # announces even when the server adds a Content-Encoding.
                    bar.update(response.num_bytes_downloaded - seen)
                    seen = response.num_bytes_downloaded
    except httpx.HTTPStatusError as exc:
        raise SourceError(f"download of {url} failed: HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise SourceError(f"download of {url} failed: {exc}") from exc
