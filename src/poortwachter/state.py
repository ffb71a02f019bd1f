"""The live state a decision reads besides the policy: exclusions, grants, classroom openings, exams,
and the download limits the gateway applies to responses.

The store keeps these; the gateway holds an immutable snapshot of the active ones in memory, so it
goes on deciding when the database is away. Everything here is plain data and pure functions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
OpeningMode = Literal["open", "allowlist"]   # Opening.mode; the store checks its column against it


@dataclass(frozen=True, slots=True)
class Sites:
    """A set of sites: domains (matching subdomains) and domain/path prefixes, plus policy categories."""

    domains: frozenset[str] = frozenset()
    paths: tuple[tuple[str, str], ...] = ()   # (domain, "/path" prefix)
    categories: frozenset[str] = frozenset()

    @classmethod
    def of(cls, sites: list[str] | tuple[str, ...] = (), categories: list[str] | tuple[str, ...] = ()) -> Sites:
        domains: set[str] = set()
        paths: list[tuple[str, str]] = []
        for site in sites:
            host, slash, rest = site.partition("/")
            if slash and rest:
                paths.append((host, "/" + rest))
            else:
                domains.add(host)
        return cls(frozenset(domains), tuple(paths), frozenset(categories))

    def __bool__(self) -> bool:
        return bool(self.domains or self.paths or self.categories)

    def covers(self, host: str, path: str | None, categories: frozenset[str]) -> bool:
        """True if the request is inside this set. Without a path (CONNECT, SNI), a path entry
        covers its whole host: the gateway cannot see further in passthrough."""
        if self.categories and not self.categories.isdisjoint(categories):
            return True
        if self.domains and suffix_in(host, self.domains):
            return True
        for domain, prefix in self.paths:
            if host == domain or host.endswith("." + domain):
                if path is None or path.startswith(prefix):
                    return True
        return False


def suffix_in(host: str, domains: frozenset[str] | dict[str, object]) -> bool:
    """Is host or one of its parent domains (on a label boundary) in domains?"""
    while True:
        if host in domains:
            return True
        dot = host.find(".")
        if dot < 0:
            return False
        host = host[dot + 1:]


@dataclass(frozen=True, slots=True)
class Ban:
    """Uitsluiting van het netwerk: a device (address or network) excluded until a moment."""

    id: int
    subject: str                 # client address or network, e.g. "10.1.2.3" or "10.1.2.0/28"
    until: dt.datetime
    source: str = ""             # the article / decision behind it
    start: dt.datetime | None = None

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.subject, strict=False)


@dataclass(frozen=True, slots=True)
class Grant:
    """A temporary unblock approved by ICT: sites opened for some zones and roles, for a window."""

    id: int
    sites: Sites
    start: dt.datetime
    end: dt.datetime
    zones: frozenset[str] = frozenset()     # zone names or kinds; empty = every zone
    roles: frozenset[str] = frozenset()     # empty = every role
    source: str = ""                        # verdicts cite the policy's articles.unblock


@dataclass(frozen=True, slots=True)
class Opening:
    """A teacher's decision for their own classroom until a moment (usually the end of the lesson):
    `open` lets the sites through; `allowlist` restricts the room to only those sites."""

    id: int
    zone: str
    mode: OpeningMode
    sites: Sites
    until: dt.datetime
    source: str = ""                        # verdicts cite the policy's articles.classroom
    start: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Exam:
    """Exam mode for a zone: only the exam allowlist is reachable until the exam ends."""

    id: int
    zone: str
    allowlist: Sites
    until: dt.datetime
    source: str = ""                        # verdicts cite the policy's articles.exam
    start: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class DownloadLimit:
    """Downloadlimiet (004 art. 13): the network sensor found this client downloading excessively;
    until `until` it may not fetch a response larger than `max_bytes`."""

    id: int
    address: str                 # one client address, canonical ("10.1.2.3")
    max_bytes: int
    until: dt.datetime
    start: dt.datetime | None = None

    def active(self, now: dt.datetime) -> bool:
        return _active(self.start, self.until, now)


def _active(start: dt.datetime | None, end: dt.datetime, now: dt.datetime) -> bool:
    return (start is None or start <= now) and now < end


@dataclass(frozen=True, slots=True)
class State:
    bans: tuple[Ban, ...] = ()
    grants: tuple[Grant, ...] = ()
    openings: tuple[Opening, ...] = ()
    exams: tuple[Exam, ...] = ()
    download_limits: tuple[DownloadLimit, ...] = ()
    _ban_nets: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Ban], ...] = field(default=(), repr=False)
    any: bool = field(default=False, init=False)   # a plain attribute: read on every decision
    # client address -> its download limit; the enforcer's only cost for clients without one is a
    # lookup here (empty dict: not even that). Download limits do not change decisions, so they
    # leave `any` alone.
    limits: dict[IPAddress, DownloadLimit] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ban_nets", tuple((b.network(), b) for b in self.bans))
        object.__setattr__(self, "any", bool(self.bans or self.grants or self.openings or self.exams))
        limits: dict[IPAddress, DownloadLimit] = {}
        for limit in self.download_limits:
            client = ipaddress.ip_address(limit.address)
            known = limits.get(client)
            # two at once should not happen (imposing is idempotent); if so, the stricter counts
            if known is None or (limit.max_bytes, -limit.until.timestamp()) < (known.max_bytes,
                                                                               -known.until.timestamp()):
                limits[client] = limit
        object.__setattr__(self, "limits", limits)

    def __bool__(self) -> bool:
        return self.any or bool(self.download_limits)

    def download_limit_for(self, client: IPAddress, now: dt.datetime) -> DownloadLimit | None:
        limit = self.limits.get(client)
        return limit if limit is not None and limit.active(now) else None

    def ban_for(self, client: ipaddress.IPv4Address | ipaddress.IPv6Address, now: dt.datetime) -> Ban | None:
        for net, ban in self._ban_nets:
            if client.version == net.version and client in net and _active(ban.start, ban.until, now):
                return ban
        return None

    def exam_for(self, zone: str, now: dt.datetime) -> Exam | None:
        for exam in self.exams:
            if exam.zone == zone and _active(exam.start, exam.until, now):
                return exam
        return None

    def openings_for(self, zone: str, now: dt.datetime) -> list[Opening]:
        return [o for o in self.openings if o.zone == zone and _active(o.start, o.until, now)]

    def opening_for(self, zone: str, now: dt.datetime) -> Opening | None:
        """The room's decision in force: of its running openings the one that started last (one
        planned for this lesson), else the one made last (a restriction made after an opening
        replaces it, and the other way round)."""
        running = self.openings_for(zone, now)
        return max(running, key=lambda o: (o.start.timestamp() if o.start else 0.0, o.id)) if running else None

    def grant_for(self, zone: str, kind: str, role: str, host: str, path: str | None,
                  categories: frozenset[str], now: dt.datetime) -> Grant | None:
        for grant in self.grants:
            if not _active(grant.start, grant.end, now):
                continue
            if grant.zones and zone not in grant.zones and kind not in grant.zones:
                continue
            if grant.roles and role not in grant.roles:
                continue
            if grant.sites.covers(host, path, categories):
                return grant
        return None


EMPTY = State()


# --- a snapshot on disk -------------------------------------------------------------------------
# The gateway keeps its last snapshot in the data directory too, so a gateway restarted while
# the database is away still enforces the bans, exams and grants it knew.

def _sites_dict(sites: Sites) -> dict[str, object]:
    return {"domains": sorted(sites.domains), "paths": [list(p) for p in sites.paths],
            "categories": sorted(sites.categories)}


def _sites(data: dict[str, object]) -> Sites:
    return Sites(frozenset(data["domains"]), tuple((d, p) for d, p in data["paths"]),  # type: ignore[union-attr,misc]
                 frozenset(data["categories"]))  # type: ignore[arg-type]


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def state_to_dict(state: State) -> dict[str, object]:
    iso = lambda t: t.isoformat() if t else None  # noqa: E731
    return {
        "bans": [{"id": b.id, "subject": b.subject, "until": iso(b.until), "source": b.source, "start": iso(b.start)}
                 for b in state.bans],
        "grants": [{"id": g.id, "sites": _sites_dict(g.sites), "start": iso(g.start), "end": iso(g.end),
                    "zones": sorted(g.zones), "roles": sorted(g.roles), "source": g.source} for g in state.grants],
        "openings": [{"id": o.id, "zone": o.zone, "mode": o.mode, "sites": _sites_dict(o.sites), "until": iso(o.until),
                      "source": o.source, "start": iso(o.start)} for o in state.openings],
        "exams": [{"id": e.id, "zone": e.zone, "allowlist": _sites_dict(e.allowlist), "until": iso(e.until),
                   "source": e.source, "start": iso(e.start)} for e in state.exams],
        "download_limits": [{"id": d.id, "address": d.address, "max_bytes": d.max_bytes, "until": iso(d.until),
                             "start": iso(d.start)} for d in state.download_limits],
    }


def state_from_dict(data: dict[str, list[dict[str, object]]]) -> State:
    return State(
        bans=tuple(Ban(b["id"], b["subject"], _time(b["until"]), b["source"], _time(b["start"]))  # type: ignore[arg-type]
                   for b in data["bans"]),
        grants=tuple(Grant(g["id"], _sites(g["sites"]), _time(g["start"]), _time(g["end"]),  # type: ignore[arg-type]
                           frozenset(g["zones"]), frozenset(g["roles"]), g["source"])  # type: ignore[arg-type]
                     for g in data["grants"]),
        openings=tuple(Opening(o["id"], o["zone"], o["mode"], _sites(o["sites"]), _time(o["until"]),  # type: ignore[arg-type]
                               o["source"], _time(o["start"])) for o in data["openings"]),  # type: ignore[arg-type]
        exams=tuple(Exam(e["id"], e["zone"], _sites(e["allowlist"]), _time(e["until"]), e["source"],  # type: ignore[arg-type]
                         _time(e["start"])) for e in data["exams"]),  # type: ignore[arg-type]
        # absent in snapshots saved before download limits existed
        download_limits=tuple(DownloadLimit(d["id"], d["address"], d["max_bytes"], _time(d["until"]),  # type: ignore[arg-type]
                                            _time(d["start"])) for d in data.get("download_limits", ())),
    )
