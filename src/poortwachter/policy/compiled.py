"""A validated policy turned into structures that answer quickly on the hot path.

Compiling is done once per (re)load; nothing here reads files or the clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..state import Sites, suffix_in
from .model import OPENERS, Action, Inspection, Policy, Role, Rule, Service, Zone, ZoneKind
from .timetable import Clockwork

NONE: frozenset[str] = frozenset()
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ZoneView:
    name: str
    kind: str
    role: str
    inspection: str
    safesearch: bool
    ech: str = "refuse"


@dataclass(frozen=True, slots=True)
class CompiledService:
    """A service of the policy (traffic other than the web), ready to match a destination."""

    name: str
    source: str
    zones: frozenset[str]                       # zone names and kinds
    protocol: str                               # "tcp" or "udp"
    ports: tuple[tuple[int, int], ...]          # inclusive ranges
    nets: tuple[IPNetwork, ...]
    hosts: Sites

    def covers(self, zone: ZoneView, host: str, port: int, protocol: str) -> bool:
        """Is a stream from `zone` to host (a normalised name or IP literal) and port inside it?"""
        if protocol != self.protocol or (zone.name not in self.zones and zone.kind not in self.zones):
            return False
        if not any(low <= port <= high for low, high in self.ports):
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return bool(self.hosts) and self.hosts.covers(host, None, NONE)
        return any(addr.version == net.version and addr in net for net in self.nets)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    source: str
    action: str
    roles: frozenset[str] | None
    zones: frozenset[str] | None
    when: frozenset[str] | None
    categories: frozenset[str] | None
    sites: Sites | None
    ip_literal: bool | None
    allowlist: Sites | None

    @property
    def matches_everything(self) -> bool:
        return self.categories is None and self.sites is None and self.ip_literal is None

    def applies(self, zone: ZoneView, tags: frozenset[str]) -> bool:
        """Who, where, when: decided once per (zone, minute), not per request."""
        if self.roles is not None and zone.role not in self.roles:
            return False
        if self.zones is not None and zone.name not in self.zones and zone.kind not in self.zones:
            return False
        if self.when is not None and self.when.isdisjoint(tags):
            return False
        return True

    def hit(self, host: str, path: str | None, categories: frozenset[str], ip_literal: bool) -> str | None | bool:
        """What: returns the matching category name, True for a match without a category, or False."""
        if self.matches_everything:
            return True
        if self.categories is not None:
            common = self.categories & categories
            if common:
                return min(common)
        if self.sites is not None and self.sites.covers(host, path, NONE):
            return True
        if self.ip_literal is not None and self.ip_literal == ip_literal:
            return True
        return False


def _rule(rule: Rule) -> CompiledRule:
    return CompiledRule(
        name=rule.name,
        source=rule.source,
        action=rule.action.value,
        roles=frozenset(r.value for r in rule.roles) if rule.roles is not None else None,
        zones=frozenset(rule.zones) if rule.zones is not None else None,
        when=frozenset(rule.when) if rule.when is not None else None,
        categories=frozenset(rule.categories) if rule.categories is not None else None,
        sites=Sites.of(rule.sites) if rule.sites is not None else None,
        ip_literal=rule.ip_literal,
        allowlist=Sites.of(rule.allowlist.sites, rule.allowlist.categories) if rule.allowlist else None,
    )


class CompiledPolicy:
    def __init__(self, policy: Policy, generation: int = 0) -> None:
        self.policy = policy
        self.generation = generation
        self.settings = policy.settings
        self.clock = Clockwork(policy.timetable)
        self.default = policy.default
        self.default_source = policy.default_source
        self.rules = tuple(_rule(r) for r in policy.rules)
        self.zones = {name: _view(name, z) for name, z in policy.zones.items()}
        nets: list[tuple[IPNetwork, ZoneView]] = []
        for name, zone in policy.zones.items():
            for cidr in zone.cidrs:
                nets.append((ipaddress.ip_network(cidr, strict=False), self.zones[name]))
        # longest prefix first, so a /28 exam room inside a /16 school network wins
        nets.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._nets = tuple(nets)
        self._zone_cache: dict[IPAddress, ZoneView | None] = {}
        self.guest = ZoneView(policy.settings.guest_zone, ZoneKind.guest.value, Role.guest.value,
                              Inspection.passthrough.value, False)
        self.refuse_unknown = policy.settings.unknown_clients == "refuse"
        # list name -> policy categories that include it; school sites -> category
        self.list_to_categories: dict[str, frozenset[str]] = {}
        site_domains: dict[str, set[str]] = {}
        site_paths: list[tuple[str, str, str]] = []
        for cname, cat in policy.categories.items():
            for lname in cat.lists:
                self.list_to_categories[lname] = self.list_to_categories.get(lname, frozenset()) | {cname}
            for site in cat.sites:
                host, slash, rest = site.partition("/")
                if slash and rest:
                    site_paths.append((host, "/" + rest, cname))
                else:
                    site_domains.setdefault(host, set()).add(cname)
        self.site_domains = {k: frozenset(v) for k, v in site_domains.items()}
        self.site_paths = tuple(site_paths)
        self.titles = {name: cat.title for name, cat in policy.categories.items()}
        self.locked = frozenset(n for n, c in policy.categories.items() if not c.overridable)
        # per opener (docent, examencoordinator, ict): the categories it may NOT open; a request in
        # one of these is never opened by that opener's classroom opening, exam allowlist or grant
        self.closed_to = {opener: frozenset(n for n, c in policy.categories.items() if opener not in c.openers)
                          for opener in OPENERS}
        self.never = frozenset(n for n, c in policy.categories.items() if not c.openers)   # nobody opens these
        # category -> the rule that blocks it for everyone, everywhere, at every moment: an exam or a
        # restricted room that blocks such a request cites this rule (decide.py)
        self.forbidden = _forbidden(self.rules)
        self.articles = policy.articles
        self.locked_source = {n: c.source for n, c in policy.categories.items()}
        self.no_decrypt = Sites.of(policy.no_decrypt.sites, policy.no_decrypt.categories)
        self.school_environment = Sites.of(policy.school_environment.sites, policy.school_environment.categories)
        self.services = tuple(_service(s) for s in policy.services)
        self.connect_ports = frozenset(policy.settings.connect_ports)
        self.gate_source = policy.settings.gate_source
        self.missing_lists = policy.settings.missing_lists
        self.dns = policy.dns
        self.ech_fronts = frozenset(policy.dns.ech_fronts)
        self._combo_cache: dict[frozenset[str], frozenset[str]] = {}
        self._applicable: dict[tuple[str, frozenset[str]], tuple[CompiledRule, ...]] = {}

    # --- who and where -------------------------------------------------------------------
    def zone_of(self, client: IPAddress) -> ZoneView | None:
        try:
            return self._zone_cache[client]
        except KeyError:
            pass
        found = None
        for net, zone in self._nets:
            if client.version == net.version and client in net:
                found = zone
                break
        if len(self._zone_cache) >= 65536:
            self._zone_cache.clear()
        self._zone_cache[client] = found
        return found

    # --- what ----------------------------------------------------------------------------
    def categories_of_lists(self, lists: frozenset[str]) -> frozenset[str]:
        """Installed list names -> the policy's categories (cached: there are few distinct combos)."""
        hit = self._combo_cache.get(lists)
        if hit is None:
            out: set[str] = set()
            for lname in lists:
                out |= self.list_to_categories.get(lname, frozenset())
            hit = self._combo_cache[lists] = frozenset(out)
        return hit

    def site_domain_categories(self, host: str) -> frozenset[str]:
        """The school's own domain entries that cover host or a parent domain."""
        out: frozenset[str] = frozenset()
        h = host
        while True:
            cats = self.site_domains.get(h)
            if cats:
                out = out | cats
            dot = h.find(".")
            if dot < 0:
                return out
            h = h[dot + 1:]

    def site_path_categories(self, host: str, path: str | None) -> frozenset[str]:
        """The school's own domain/path entries; without a path (passthrough) they cover the host."""
        out: frozenset[str] = frozenset()
        for domain, prefix, cname in self.site_paths:
            if (host == domain or host.endswith("." + domain)) and (path is None or path.startswith(prefix)):
                out = out | {cname}
        return out

    # --- which rules can apply now ----------------------------------------------------------
    def applicable(self, zone: ZoneView, tags: frozenset[str]) -> tuple[CompiledRule, ...]:
        key = (zone.name, tags)
        hit = self._applicable.get(key)
        if hit is None:
            if len(self._applicable) > 4096:
                self._applicable.clear()
            hit = self._applicable[key] = tuple(r for r in self.rules if r.applies(zone, tags))
        return hit

    def service_for(self, zone: ZoneView, host: str, port: int, protocol: str = "tcp") -> CompiledService | None:
        """The first service that lets `zone` reach host:port over `protocol`, if any."""
        for service in self.services:
            if service.covers(zone, host, port, protocol):
                return service
        return None

    def openable(self, opener: str) -> frozenset[str]:
        """The categories `opener` (docent, examencoordinator, ict) may open (opened_by)."""
        return frozenset(self.titles) - self.closed_to[opener]

    def undecrypted(self, host: str, categories: frozenset[str]) -> bool:
        """Never intercept banking, health, government login, even in an intercept zone."""
        return bool(self.no_decrypt) and self.no_decrypt.covers(host, None, categories)


ALL_ROLES = frozenset(r.value for r in Role)


def _forbidden(rules: tuple[CompiledRule, ...]) -> dict[str, CompiledRule]:
    """Category -> the first rule that blocks it for every role in every zone at every moment, and
    that no earlier allowing rule can go before (one that may let a request of it through)."""
    found: dict[str, CompiledRule] = {}
    passable: set[str] | None = set()      # categories an earlier allowing rule may pass; None: any
    for rule in rules:
        if rule.action == Action.block.value:
            everyone = rule.roles is None or rule.roles >= ALL_ROLES
            if everyone and rule.zones is None and rule.when is None and rule.categories and passable is not None:
                for name in rule.categories - passable:
                    found.setdefault(name, rule)
        elif passable is not None:
            if rule.categories is None or rule.sites is not None or rule.ip_literal is not None:
                passable = None
            else:
                passable |= rule.categories
    return found


def _view(name: str, zone: Zone) -> ZoneView:
    return ZoneView(name, zone.kind.value, zone.role.value, zone.inspection.value, zone.safesearch, zone.ech.value)


def _service(service: Service) -> CompiledService:
    ports = []
    for port in service.ports:
        low, _, high = str(port).partition("-")
        ports.append((int(low), int(high or low)))
    return CompiledService(
        name=service.name, source=service.source, zones=frozenset(service.zones), protocol=service.protocol,
        ports=tuple(ports), nets=tuple(ipaddress.ip_network(n, strict=False) for n in service.to),
        hosts=Sites.of(service.hosts))


__all__ = ["Action", "CompiledPolicy", "CompiledRule", "CompiledService", "ZoneView", "suffix_in"]
