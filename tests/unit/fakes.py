"""A small in-memory list index for decision tests: the thing under test there is the policy and
the decision, not the compiled lists (those have their own tests)."""

from __future__ import annotations


class DictIndex:
    def __init__(self, lists: dict[str, set[str]], urls: dict[str, set[str]] | None = None) -> None:
        self.lists = lists
        self.urls = urls or {}

    def host_categories(self, host: str) -> frozenset[str]:
        found = set()
        h = host
        while True:
            found |= {name for name, domains in self.lists.items() if h in domains}
            if "." not in h:
                return frozenset(found)
            h = h.split(".", 1)[1]

    def url_categories(self, host: str, path: str, only: frozenset[str] | None = None) -> frozenset[str]:
        url = host + path
        return frozenset(n for n, prefixes in self.urls.items() if any(url.startswith(p) for p in prefixes))
