"""The decision: (request, context) -> verdict. Pure and deterministic; no I/O, no proxy, no database.

Precedence, first hit wins (see README, "The decision"):
 1. an exclusion (ban) of the client           -> block everything
    the filter not ready (a list is missing)   -> only the school environment and no-decrypt sites
 2. a category that is not overridable         -> block
 3. an exam running in the client's zone       -> only the exam allowlist
 4. the room's latest classroom opening, then an ICT grant -> allow (a restriction: only its sites
    and the school environment); a category its opener may not open (`opened_by`) stays shut
 5. the policy's rules, in the order written   -> allow / block / allowlist_only
 6. the policy's default
Every verdict names the rule and the reglement article, so the block page, `poortwachter explain`
and the audit log tell the same story. A run-time decision (1, 3, 4) cites its own article, else the
policy's `articles:` for its kind. When an exam or a restricted room blocks a request that a rule
forbids for everyone at every moment (`CompiledPolicy.forbidden`), the verdict names that rule.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .policy.compiled import CompiledPolicy, ZoneView
from .state import EMPTY, State

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NO_CATEGORIES: frozenset[str] = frozenset()


class Index(Protocol):
    def host_categories(self, host: str) -> frozenset[str]: ...
    def url_categories(self, host: str, path: str, only: frozenset[str] | None = None) -> frozenset[str]: ...


# NamedTuples rather than frozen dataclasses: just as immutable, and several times cheaper to
# build, which matters at hundreds of thousands of decisions per second.
class Request(NamedTuple):
    client: IPAddress
    host: str                 # normalised (poortwachter.hosts.normalize_host)
    path: str | None = None   # None when only the host is known: CONNECT, SNI, passthrough


class Verdict(NamedTuple):
    action: str               # "allow" or "block"
    rule: str
    source: str
    category: str | None
    zone: str
    role: str
    period: str | None
    inspection: str = "passthrough"
    categories: frozenset[str] = frozenset()

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def as_dict(self) -> dict[str, object]:
        out = self._asdict()
        out["categories"] = sorted(self.categories)
        return out


def _is_ip(host: str) -> bool:
    # on normalised hosts: IPv6 has ':', IPv4 is a dotted quad (a domain's last label is never all digits)
    return ":" in host or (host[-1:].isdigit() and host.replace(".", "").isdigit())


class Categorizer:
    """Request -> the policy's categories, from the installed lists and the school's own sites.

    Host-level answers are cached per host (bounded): pupils visit the same few hundred hosts all day.
    A new instance is made whenever the policy or the lists change, so the cache never goes stale.
    """

    MAX = 250_000

    def __init__(self, policy: CompiledPolicy, index: Index) -> None:
        self.policy = policy
        self.index = index
        self._hosts: dict[str, frozenset[str]] = {}
        self._wanted = frozenset(policy.list_to_categories)   # lists the policy uses at all

    def host(self, host: str) -> frozenset[str]:
        hit = self._hosts.get(host)
        if hit is None:
            cats = self.policy.categories_of_lists(self.index.host_categories(host))
            sites = self.policy.site_domain_categories(host) if self.policy.site_domains else NO_CATEGORIES
            hit = cats | sites if sites else cats
            if len(self._hosts) >= self.MAX:
                self._hosts.clear()
            self._hosts[host] = hit
        return hit

    def request(self, host: str, path: str | None) -> frozenset[str]:
        cats = self.host(host)
        extra = NO_CATEGORIES
        if path is not None:
            extra = self.policy.categories_of_lists(self.index.url_categories(host, path, self._wanted))
        if self.policy.site_paths:
            extra = extra | self.policy.site_path_categories(host, path)
        return cats | extra if extra else cats


@dataclass(frozen=True, slots=True)
class Context:
    policy: CompiledPolicy
    categorizer: Categorizer
    state: State = EMPTY
    not_ready: bool = False     # a list the policy names is missing and settings.missing_lists is block


NOT_READY = "filter-niet-gereed"


def decide(req: Request, ctx: Context, now: dt.datetime) -> Verdict:
    policy = ctx.policy
    zone = policy.zone_of(req.client)
    period = policy.clock.moment(now)
    if zone is None:
        if policy.refuse_unknown:
            guest = policy.guest
            return Verdict("block", "onbekend-netwerk", "", None, guest.name, guest.role, period.period)
        zone = policy.guest
    host, path = req.host, req.path
    cats = ctx.categorizer.request(host, path)
    # the verdict's fields that do not depend on which step decides
    tail: Tail = (zone.name, zone.role, period.period, zone.inspection, cats)
    first = min(cats) if cats else None

    state = ctx.state
    if state.any:
        ban = state.ban_for(req.client, now)
        if ban is not None:
            return Verdict("block", "uitsluiting", _cited(ban.source, policy.articles.exclusion), first, *tail)
    if ctx.not_ready and not (policy.school_environment.covers(host, path, cats)
                              or policy.no_decrypt.covers(host, None, cats)):
        return Verdict("block", NOT_READY, policy.gate_source, first, *tail)
    if cats:
        locked = cats & policy.locked
        if locked:
            name = min(locked)
            return Verdict("block", "niet-te-openen", policy.locked_source.get(name, ""), name, *tail)
    if state.any:   # the decision's own article where it names one, else the policy's for its kind
        articles = policy.articles
        exam = state.exam_for(zone.name, now)
        if exam is not None:
            source = _cited(exam.source, articles.exam)
            if exam.allowlist.covers(host, path, cats) and not cats & policy.closed_to["examencoordinator"]:
                return Verdict("allow", "examen-toegestaan", source, first, *tail)
            return _forbidden(policy, cats, tail) or Verdict("block", "examen", source, first, *tail)
        opening = state.opening_for(zone.name, now)
        if opening is not None:
            source = _cited(opening.source, articles.classroom)
            inside = opening.sites.covers(host, path, cats) and not cats & policy.closed_to["docent"]
            if opening.mode == "open" and inside:
                return Verdict("allow", "lokaal-open", source, first, *tail)
            if opening.mode == "allowlist":
                # the school's own environment stays reachable in a restricted room
                if inside or policy.school_environment.covers(host, path, cats):
                    return Verdict("allow", "lokaal-allowlist", source, first, *tail)
                return _forbidden(policy, cats, tail) or Verdict("block", "lokaal-allowlist", source, first, *tail)
        grant = state.grant_for(zone.name, zone.kind, zone.role, host, path, cats, now)
        if grant is not None and not cats & policy.closed_to["ict"]:
            return Verdict("allow", "deblokkering", _cited(grant.source, articles.unblock), first, *tail)

    ip_literal = _is_ip(host)
    for rule in policy.applicable(zone, period.tags):
        hit = rule.hit(host, path, cats, ip_literal)
        if hit is False:
            continue
        category = hit if isinstance(hit, str) else first
        action = rule.action
        if action == "allowlist_only":
            assert rule.allowlist is not None
            action = "allow" if rule.allowlist.covers(host, path, cats) else "block"
        return Verdict(action, rule.name, rule.source, category, *tail)
    return Verdict(policy.default, "standaard", policy.default_source, first, *tail)


def _cited(own: str, policys: str) -> str:
    """A run-time decision's own article, else the policy's for its kind (never empty: the policy
    model requires it)."""
    return own if own and not own.isspace() else policys


# a verdict's last fields, those that do not depend on which step decides: zone, role, period,
# inspection, categories
Tail = tuple[str, str, str | None, str, frozenset[str]]


def _forbidden(policy: CompiledPolicy, cats: frozenset[str], tail: Tail) -> Verdict | None:
    """An exam or a restricted room blocks a request that a rule of the policy blocks anyway, for
    everyone at every moment (pornography, hacking): the verdict names that rule and its article,
    the reason the request could never have passed."""
    hit = cats & policy.forbidden.keys() if cats and policy.forbidden else None
    if not hit:
        return None
    name = min(hit)
    rule = policy.forbidden[name]
    return Verdict("block", rule.name, rule.source, name, *tail)


def refusal(ctx: Context, client: IPAddress, rule: str, now: dt.datetime, host: str | None = None) -> Verdict:
    """The verdict on how a connection is made rather than on where it goes: a port the policy
    does not open, a stream that is not web traffic, a hidden ECH destination. It blocks, names
    the policy's gate article, and carries the client's zone like every other verdict."""
    policy = ctx.policy
    zone = zone_for(policy, client)
    cats = ctx.categorizer.host(host) if host is not None else NO_CATEGORIES
    return Verdict("block", rule, policy.gate_source, min(cats) if cats else None, zone.name, zone.role,
                   policy.clock.moment(now).period, zone.inspection, cats)


def stricter(a: Verdict, b: Verdict) -> Verdict:
    """Two views of one connection (CONNECT target vs SNI vs Host header): the stricter one counts."""
    if a.blocked or not b.blocked:
        return a
    return b


def zone_for(policy: CompiledPolicy, client: IPAddress) -> ZoneView:
    return policy.zone_of(client) or policy.guest
