"""`poortwachter lists update` without the command line: fetch, parse, compile, install."""

from __future__ import annotations

import io
import secrets
import shutil
import tarfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from poortwachter.lists.build import Builder, Category
from poortwachter.lists.install import install, lists_root, new_build_dir, update_lock
from poortwachter.lists.parse import (
    Tally,
    iter_domains,
    iter_expressions,
    iter_hosts,
    iter_urls,
    parse_global_usage,
    parse_usage,
)
from poortwachter.lists.sources import (
    CATEGORY_RE,
    GLOBAL_USAGE,
    UT1_ATTRIBUTION,
    UT1_URL,
    Bar,
    BarFactory,
    SourceError,
    Ut1Source,
    download,
    is_url,
    open_ut1,
)

_PROGRESS_EVERY = 1 << 16  # lines between progress bar updates


@dataclass(frozen=True)
class NamedFile:
    """A list file installed as (part of) one category: `--hosts NAME=FILE`."""

    category: str
    path: Path


@dataclass(frozen=True)
class UpdateRequest:
    source: str | None = UT1_URL  # URL, tarball or directory in UT1 layout; None: no UT1
    hosts: tuple[NamedFile, ...] = ()
    extra_domains: tuple[NamedFile, ...] = ()
    only: frozenset[str] | None = None  # UT1 categories to install; None: all


class _NullBar:
    def update(self, n: float = 1) -> object:
        return None

    def close(self) -> None:
        return None


def null_bar(desc: str, total: int | None, unit: str) -> Bar:
    return _NullBar()


def run_update(
    request: UpdateRequest, data_dir: Path, make_bar: BarFactory = null_bar
) -> dict[str, Any]:
    """Build the requested lists and install them under data_dir; returns the manifest.

    Raises SourceError (or OSError) when a source cannot be read; the installed lists are then
    left untouched.
    """
    for named in request.hosts + request.extra_domains:
        if not CATEGORY_RE.fullmatch(named.category):
            raise SourceError(f"invalid category name {named.category!r}")
    root = lists_root(data_dir)
    with update_lock(root):
        build_dir = new_build_dir(root)
        try:
            builder = Builder()
            sources: list[dict[str, Any]] = []
            if request.source is not None:
                _ingest_ut1_source(request.source, request.only, builder, build_dir, make_bar)
                only = sorted(request.only) if request.only else None
                sources.append({"kind": "ut1", "location": request.source, "only": only})
            for named in request.hosts:
                _ingest_file(builder, named, "hosts", iter_hosts, make_bar)
                sources.append({"kind": "hosts", "category": named.category, "location": str(named.path)})
            for named in request.extra_domains:
                _ingest_file(builder, named, "domains", iter_domains, make_bar)
                sources.append({"kind": "domains", "category": named.category, "location": str(named.path)})
            if not builder.categories:
                raise SourceError("no lists to install")
            generation = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
            header: dict[str, Any] = {
                "generation": generation,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sources": sources,
                "attribution": [UT1_ATTRIBUTION] if request.source is not None else [],
            }
            with closing(make_bar("compile", Builder.WRITE_STEPS, "step")) as bar:
                manifest = builder.write(build_dir, header, on_step=lambda: bar.update(1))
            install(root, build_dir, generation)
            return manifest
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise


def _ingest_ut1_source(
    source: str, only: frozenset[str] | None, builder: Builder, build_dir: Path, make_bar: BarFactory
) -> None:
    if is_url(source):
        path = build_dir / "download.tar.gz"
        download(source, path, make_bar)
        try:
            with open_ut1(path) as ut1:
                _ingest_ut1(ut1, only, builder, make_bar)
        finally:
            path.unlink(missing_ok=True)  # not part of the build
    else:
        with open_ut1(Path(source)) as ut1:
            _ingest_ut1(ut1, only, builder, make_bar)


def _ingest_ut1(ut1: Ut1Source, only: frozenset[str] | None, builder: Builder, make_bar: BarFactory) -> None:
    try:
        _read_ut1(ut1, only, builder, make_bar)
    except (EOFError, tarfile.TarError, zlib.error) as exc:
        # A damaged archive can also surface while reading a member, after the index was read.
        raise SourceError(f"cannot read {ut1.location}: {exc}") from exc


def _read_ut1(ut1: Ut1Source, only: frozenset[str] | None, builder: Builder, make_bar: BarFactory) -> None:
    entries = ut1.entries()
    if only is not None:
        missing = only - {e.category for e in entries}
        if missing:
            raise SourceError(f"categories not in {ut1.location}: {', '.join(sorted(missing))}")
        entries = [e for e in entries if e.category in only or e.kind == GLOBAL_USAGE]
    labels: dict[str, dict[str, str]] = {}
    with closing(make_bar("UT1", sum(e.size for e in entries), "B")) as bar:
        for entry in entries:
            with ut1.open(entry) as raw:
                lines = _counted(_text_lines(raw), bar)
                if entry.kind == GLOBAL_USAGE:
                    labels = parse_global_usage(lines)
                    continue
                cat = builder.category(entry.category, "ut1")
                if entry.kind == "domains":
                    builder.add_domains(cat, iter_domains(lines, cat.tally("domains")))
                elif entry.kind == "urls":
                    builder.add_urls(cat, iter_urls(lines, cat.tally("urls")))
                elif entry.kind == "expressions":
                    builder.add_expressions(cat, iter_expressions(lines, cat.tally("expressions")))
                elif entry.kind == "usage":
                    cat.usage = parse_usage(lines)
    for name, cat_labels in labels.items():
        if name in builder.categories:
            builder.categories[name].labels = cat_labels


def _ingest_file(
    builder: Builder,
    named: NamedFile,
    origin: str,
    parse: Callable[[Iterable[str], Tally], Iterator[str]],
    make_bar: BarFactory,
) -> None:
    try:
        raw = open(named.path, "rb")  # noqa: SIM115  (closed by the with-block below)
        size = named.path.stat().st_size
    except OSError as exc:
        raise SourceError(f"cannot read {named.path}: {exc.strerror}") from exc
    with raw, closing(make_bar(named.category, size, "B")) as bar:
        cat: Category = builder.category(named.category, origin)
        builder.add_domains(cat, parse(_counted(_text_lines(raw), bar), cat.tally("domains")))


def _text_lines(raw: IO[bytes]) -> Iterator[str]:
    # Lists are ASCII by convention; anything else is decoded leniently and then rejected as a
    # malformed line by the parser instead of aborting the whole update.
    yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)


def _counted(lines: Iterable[str], bar: Bar) -> Iterator[str]:
    """Pass lines through, advancing `bar` by their length (≈ bytes for ASCII lists)."""
    pending = 0
    count = 0
    for line in lines:
        pending += len(line)
        count += 1
        if count == _PROGRESS_EVERY:
            bar.update(pending)
            pending = count = 0
        yield line
    bar.update(pending)
