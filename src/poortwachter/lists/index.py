"""CategoryIndex: the compiled category lists, memory-mapped, answering "which categories?".

Loading maps the files of one build (see build.py) instead of reading them, so a gateway is
ready in milliseconds even with millions of domains, and several gateway processes on one box
share the same page cache.
"""

from __future__ import annotations

import json
import mmap
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import marisa_trie

from poortwachter.lists.build import (
    CID_TYPECODE,
    COMBOS,
    DOMAINS_CID,
    DOMAINS_TRIE,
    EXPRESSIONS,
    FORMAT,
    URLS_CID,
    URLS_TRIE,
)
from poortwachter.lists.install import read_manifest
from poortwachter.lists.names import url_query_key

_EMPTY: frozenset[str] = frozenset()
_URL_BOUNDARY = frozenset("/?&")

_PrefixLookup = Callable[[str], Iterator[tuple[str, int]]]


class IndexLoadError(Exception):
    """The installed lists cannot be loaded (missing, wrong format, or inconsistent)."""


class IndexFormatError(IndexLoadError):
    """The installed lists were compiled in another format (see build.FORMAT): rebuild them."""

    def __init__(self, build: Path, found: object) -> None:
        super().__init__(f"unsupported lists format {found!r} in {build} (this version reads format {FORMAT})")
        self.found = found


_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


def _compile_expressions(raw: dict[str, list[str]]) -> list[tuple[str, re.Pattern[str]]]:
    """One alternation per category, so a URL costs one regex search per category.

    A pattern with a backreference is compiled on its own: inside an alternation its group
    numbers would point at another pattern's groups.
    """
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for name, patterns in sorted(raw.items()):
        name = sys.intern(name)
        plain = [p for p in patterns if not _BACKREFERENCE.search(p)]
        if plain:
            compiled.append((name, re.compile("|".join(f"(?:{p})" for p in plain))))
        compiled.extend((name, re.compile(p)) for p in patterns if _BACKREFERENCE.search(p))
    return compiled


def _no_prefixes(key: str) -> Iterator[tuple[str, int]]:
    return iter(())


class _Table:
    """One trie plus its key id -> combo id array, both memory-mapped."""

    def __init__(self, trie_path: Path, cid_path: Path) -> None:
        self.lookup: _PrefixLookup = _no_prefixes
        self.size = 0
        self._mm: mmap.mmap | None = None
        self.cids: memoryview[int] = memoryview(b"").cast(CID_TYPECODE)
        if cid_path.stat().st_size == 0:
            return  # marisa cannot mmap a trie without keys; nothing to look up
        trie = marisa_trie.Trie()
        trie.mmap(str(trie_path))
        with open(cid_path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.cids = memoryview(self._mm).cast(CID_TYPECODE)
        if len(self.cids) != len(trie):
            raise IndexLoadError(f"{cid_path.name} does not match {trie_path.name}")
        self.trie = trie
        self.lookup = trie.iter_prefixes_with_ids
        self.size = len(trie)


class CategoryIndex:
    """Category lookups for host names (domains, hosts files) and URLs (urls, expressions)."""

    def __init__(
        self,
        domains: _Table | None,
        urls: _Table | None,
        combos: list[frozenset[str]],
        expressions: list[tuple[str, re.Pattern[str]]],
        manifest: dict[str, Any],
    ) -> None:
        self._domains = domains
        self._urls = urls
        self._combos = combos
        self._expressions = expressions
        self._expr_cache: dict[frozenset[str], list[tuple[str, re.Pattern[str]]]] = {}
        self._manifest = manifest
        self._domain_lookup: _PrefixLookup = domains.lookup if domains else _no_prefixes
        self._domain_cids: memoryview[int] = domains.cids if domains else memoryview(b"").cast(CID_TYPECODE)
        self._url_lookup: _PrefixLookup = urls.lookup if urls else _no_prefixes
        self._url_cids: memoryview[int] = urls.cids if urls else memoryview(b"").cast(CID_TYPECODE)
        cats: dict[str, Any] = manifest.get("categories", {})
        self._categories = frozenset(cats)
        self._sizes = {
            name: int(c.get("domains", 0)) + int(c.get("urls", 0)) + int(c.get("expressions", 0))
            for name, c in cats.items()
        }
        self._generation = str(manifest.get("generation", "empty"))

    @classmethod
    def load(cls, lists_dir: Path) -> CategoryIndex:
        """Map the build `lists_dir` points to (usually data_dir/lists/current)."""
        try:
            # Resolve the `current` symlink once, so every file comes from the same build even
            # if an update switches `current` while we are loading.
            build = lists_dir.resolve(strict=True)
            manifest = read_manifest(build)
            if manifest.get("format") != FORMAT:
                raise IndexFormatError(build, manifest.get("format"))
            with open(build / COMBOS, encoding="utf-8") as f:
                raw_combos: list[list[str]] = json.load(f)
            with open(build / EXPRESSIONS, encoding="utf-8") as f:
                raw_expressions: dict[str, list[str]] = json.load(f)
            domains = _Table(build / DOMAINS_TRIE, build / DOMAINS_CID)
            urls = _Table(build / URLS_TRIE, build / URLS_CID)
        except (OSError, ValueError) as exc:
            raise IndexLoadError(f"cannot load lists from {lists_dir}: {exc}") from exc
        # Interned names: every combo set refers to the same few string objects.
        combos = [frozenset(sys.intern(name) for name in names) for names in raw_combos]
        try:
            expressions = _compile_expressions(raw_expressions)
        except re.error as exc:
            raise IndexLoadError(f"cannot load lists from {lists_dir}: expressions: {exc}") from exc
        return cls(domains, urls, combos, expressions, manifest)

    @classmethod
    def empty(cls) -> CategoryIndex:
        return cls(None, None, [], [], {"generation": "empty", "categories": {}})

    def host_categories(self, host: str) -> frozenset[str]:
        """Categories whose domain lists contain `host` or one of its parent domains.

        `host` must be normalised (lower-case ASCII, no trailing dot). The result is a shared
        frozenset unless several listed suffixes with different categories match.
        """
        found = _EMPTY
        first = -1
        cids = self._domain_cids
        for _key, key_id in self._domain_lookup(host[::-1] + "."):
            combo = cids[key_id]
            if first < 0:
                first = combo
                found = self._combos[combo]
            elif combo != first:
                found = found | self._combos[combo]
        return found

    def url_categories(self, host: str, path: str, only: frozenset[str] | None = None) -> frozenset[str]:
        """Categories whose urls or expressions lists match host + path (path starts with "/").

        Domain lists are not consulted: combine with host_categories() for the full answer.
        `only`: the lists the caller cares about; expressions of other lists are not searched
        (a regular expression over every URL is the costly part of a lookup).
        """
        url = host.lower() + path.lower()
        found = _EMPTY
        first = -1
        cids = self._url_cids
        # Same host form as the url entries: www./web./ftp. and the port dropped.
        key = url_query_key(host, path) if self._url_lookup is not _no_prefixes else ""
        for prefix, key_id in self._url_lookup(key):
            end = len(prefix)
            # An entry matches a whole path segment or query parameter, not a longer name:
            # "example.com/games" matches "/games", "/games/x" and "/games?x", not "/gamesite".
            if end == len(key) or prefix[-1] == "/" or key[end] in _URL_BOUNDARY:
                combo = cids[key_id]
                if first < 0:
                    first = combo
                    found = self._combos[combo]
                elif combo != first:
                    found = found | self._combos[combo]
        for name, pattern in self._expressions if only is None else self._expressions_for(only):
            if name not in found and pattern.search(url) is not None:
                found = found | {name}
        return found

    def _expressions_for(self, only: frozenset[str]) -> list[tuple[str, re.Pattern[str]]]:
        hit = self._expr_cache.get(only)
        if hit is None:
            hit = self._expr_cache[only] = [(n, p) for n, p in self._expressions if n in only]
        return hit

    @property
    def categories(self) -> frozenset[str]:
        return self._categories

    def sizes(self) -> dict[str, int]:
        """Entries per category (domains + urls + expressions), for a metric."""
        return dict(self._sizes)

    @property
    def generation(self) -> str:
        """Identifies the installed build; changes with every `lists update`."""
        return self._generation

    @property
    def manifest(self) -> dict[str, Any]:
        """The build's manifest.json (sources, counts, malformed lines, attribution)."""
        return self._manifest
