"""Names bind to addresses: which names the school's resolver gave each client for each address.

In transparent mode a client dials an address and then claims a name (the TLS SNI, the Host
header). The claim is believed only when this gateway's resolver recently answered that name with
that address to that client (the answer's TTL plus a grace the policy sets); otherwise the
connection is judged as going to the bare address (an IP literal). A pupil who writes
`Host: office.com` on a connection to any other address gains nothing.

Memory is bounded: past `max_entries` the expired bindings go first, then the oldest. Losing a
binding never opens anything; it only makes the gateway check the claim another way (see
addons/enforce.py). Times are the caller's monotonic seconds, so the table is pure and testable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Key = tuple[IPAddress, IPAddress]          # (client, address it was told)


class NameBindings:
    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._table: dict[Key, dict[str, float]] = {}   # insertion order: oldest first
        self._entries = 0

    def __len__(self) -> int:
        return self._entries

    def learn(self, client: IPAddress, names: Iterable[str], addresses: Iterable[IPAddress],
              until: float, now: float) -> None:
        """The resolver told `client` that `names` (the question and its CNAME chain) are at
        `addresses`, valid until `until` (monotonic seconds, grace included)."""
        names = tuple(names)
        if not names:
            return
        for address in addresses:
            key = (client, address)
            known = self._table.pop(key, None)     # re-inserted last: the freshest stays longest
            if known is None:
                known = {}
            for name in names:
                if name not in known:
                    self._entries += 1
                known[name] = max(until, known.get(name, 0.0))
            self._table[key] = known
        if self._entries > self.max_entries:
            self._shrink(now)

    def bound(self, client: IPAddress, address: IPAddress, name: str, now: float) -> bool:
        known = self._table.get((client, address))
        if known is None:
            return False
        until = known.get(name)
        return until is not None and until >= now

    def _shrink(self, now: float) -> None:
        for key in list(self._table):
            known = self._table[key]
            for name in [n for n, until in known.items() if until < now]:
                del known[name]
                self._entries -= 1
            if not known:
                del self._table[key]
        target = self.max_entries * 3 // 4
        while self._entries > target and self._table:
            key = next(iter(self._table))
            self._entries -= len(self._table.pop(key))


class BlockedBecause:
    """Why the resolver sent a client's name to the block page: a name can be blocked for another
    one (a CNAME to a blocked name). The enforcer judges that name too when the client comes to the
    block page's address, so the page shows the real rule. Bounded like NameBindings."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._because: dict[tuple[IPAddress, str], tuple[str, float]] = {}

    def learn(self, client: IPAddress, name: str, because: str, until: float, now: float) -> None:
        self._because.pop((client, name), None)
        self._because[(client, name)] = (because, until)
        if len(self._because) > self.max_entries:
            for key in [k for k, (_, u) in self._because.items() if u < now]:
                del self._because[key]
            while len(self._because) > self.max_entries * 3 // 4:
                del self._because[next(iter(self._because))]

    def reason(self, client: IPAddress, name: str, now: float) -> str | None:
        found = self._because.get((client, name))
        return found[0] if found is not None and found[1] >= now else None
