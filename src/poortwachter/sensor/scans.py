"""Port scans and sweeps (004 art. 12: niet hacken), only from clients in a zone.

- scan: one client tries `ports` distinct ports on one host within `window` seconds;
- sweep: one client tries one port on `hosts` distinct hosts within `window` seconds.

A try is a SYN without ACK. When the host accepts (SYN-ACK) it is an ordinary connection and
no longer counts, so a browser opening many connections to sites that answer is not a sweep, and
passive FTP is not a scan; a scanner mostly meets closed ports (RST) or silence. Once found, a
scan or sweep counts once per window for that client and target, however long it goes on.

Memory is bounded: each target set holds fewer than its threshold of entries (it is emptied
when it reaches it), and at most `max_keys` sets are kept, the least recently active dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from ..policy.model import Sensor
from .observations import SYN, SYN_ACK, Finding, IpPacket

MAX_KEYS = 50_000   # per table; about 300 bytes each, up to 1.5 KB with a full set of targets


class _Tries:
    __slots__ = ("targets", "quiet_until", "last")

    def __init__(self) -> None:
        self.targets: dict[Hashable, float] = {}  # target -> time of the last try, oldest first
        self.quiet_until = 0.0                    # found: no second finding before this time
        self.last = 0.0


class _Table:
    """(client, fixed part) -> distinct targets tried within the window."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.rows: OrderedDict[tuple[str, Hashable], _Tries] = OrderedDict()

    def add(self, key: tuple[str, Hashable], target: Hashable, now: float, window: float, limit: int) -> bool:
        """Record a try; True when it makes `limit` distinct targets within the window."""
        rows = self.rows
        row = rows.get(key)
        if row is None:
            row = rows[key] = _Tries()
            if len(rows) > self.max_keys:
                rows.popitem(last=False)
        else:
            rows.move_to_end(key)
        row.last = now
        if now < row.quiet_until:
            return False
        targets = row.targets
        cutoff = now - window
        while targets:
            first = next(iter(targets))
            if targets[first] >= cutoff:
                break
            del targets[first]
        targets.pop(target, None)
        targets[target] = now
        if len(targets) < limit:
            return False
        targets.clear()
        row.quiet_until = now + window
        return True

    def answered(self, key: tuple[str, Hashable], target: Hashable) -> None:
        row = self.rows.get(key)
        if row is not None:
            row.targets.pop(target, None)
            if not row.targets and not row.quiet_until:
                del self.rows[key]   # all answered: ordinary browsing leaves nothing behind

    def prune(self, now: float, window: float) -> None:
        rows = self.rows
        cutoff = now - window
        while rows:
            key, row = next(iter(rows.items()))
            if row.last >= cutoff or row.quiet_until > now:
                return
            del rows[key]

    def __len__(self) -> int:
        return len(self.rows)


class ScanWatch:
    def __init__(self, settings: Sensor, zone_of: Callable[[str], str | None], *, max_keys: int = MAX_KEYS) -> None:
        self.ports = _Table(max_keys)   # (client, host) -> ports
        self.hosts = _Table(max_keys)   # (client, port) -> hosts
        self.configure(settings, zone_of)

    def configure(self, settings: Sensor, zone_of: Callable[[str], str | None]) -> None:
        self.window = float(settings.scans.window)
        self.port_limit = settings.scans.ports
        self.host_limit = settings.scans.hosts
        self.zone_of = zone_of

    def observe(self, packet: IpPacket) -> list[Finding]:
        if packet.tcp == SYN:
            return self._try(packet.src, packet.dst, packet.dport, packet.time)
        if packet.tcp == SYN_ACK:   # the host accepted: from packet.src to the client packet.dst
            self.ports.answered((packet.dst, packet.src), packet.sport)
            self.hosts.answered((packet.dst, packet.sport), packet.src)
        return []

    def _try(self, client: str, host: str, port: int, now: float) -> list[Finding]:
        zone = self.zone_of(client)
        if zone is None:
            return []
        found = []
        if self.ports.add((client, host), port, now, self.window, self.port_limit):
            found.append(Finding("port_scan", "scan", zone))
        if self.hosts.add((client, port), host, now, self.window, self.host_limit):
            found.append(Finding("port_scan", "sweep", zone))
        return found

    def prune(self, now: float) -> None:
        self.ports.prune(now, self.window)
        self.hosts.prune(now, self.window)
