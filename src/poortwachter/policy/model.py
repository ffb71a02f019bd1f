"""The policy as the school writes it: pydantic models that validate the YAML at the edge.

Every model forbids unknown keys, so a typo in a field name is an error with a line number rather
than a silently ignored rule. policy/schema.json is generated from these models
(`poortwachter policy-schema`), so editors check the YAML while the admin types.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from ..hosts import BadHost, normalize_host

NAME = r"^[a-z0-9][a-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME, max_length=64)]


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a network (geen geldig netwerk)") from None
    return value


SITE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*(/\S*)?$")
# what a host part may not hold before it is normalised: an authority's userinfo or port, IPv6
# brackets, percent-encoding, white space
_NOT_A_SITE_HOST = re.compile(r"[@:%\[\]\\?#\s]")


def _site(value: str) -> str:
    """A lower-case host name, optionally followed by /path. The host is spelled as every request
    is (poortwachter.hosts.normalize_host): an internationalised name such as "faß.de" becomes
    its A-label "xn--fa-hia.de", and an "xn--" label must already be canonical."""
    host, slash, path = value.partition("/")
    if host.isascii() and "xn--" not in host:
        spelled = host
    elif host != host.lower() or _NOT_A_SITE_HOST.search(host):
        spelled = ""
    else:
        try:
            spelled = normalize_host(host)
        except BadHost:
            spelled = ""
        if host.isascii() and spelled != host:
            spelled = ""
    site = spelled + slash + path
    if not spelled or not SITE.match(site):
        raise ValueError(f"{value!r} is not a site: a lower-case host name, optionally followed by /path")
    return site


Network = Annotated[str, AfterValidator(_network)]
Site = Annotated[str, AfterValidator(_site)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZoneKind(StrEnum):
    classroom = "classroom"
    public_area = "public_area"
    staff = "staff"
    exam_room = "exam_room"
    guest = "guest"


class Role(StrEnum):
    pupil = "pupil"
    staff = "staff"
    guest = "guest"


class Inspection(StrEnum):
    passthrough = "passthrough"
    intercept = "intercept"


class Action(StrEnum):
    allow = "allow"
    block = "block"
    allowlist_only = "allowlist_only"


class Ech(StrEnum):
    refuse = "refuse"
    allow = "allow"


class Zone(Strict):
    kind: ZoneKind
    role: Role
    cidrs: list[Network] = Field(min_length=1, description="IPv4 and IPv6 networks of this zone")
    inspection: Inspection = Inspection.passthrough
    safesearch: bool = Field(False, description="Force SafeSearch and YouTube Restricted Mode (intercept only)")
    ech: Ech = Field(Ech.refuse, description="TLS connections to an ECH front (Encrypted Client Hello: the real "
                                             "destination is hidden): refuse, or allow (staff, if the school wants)")
    description: str = ""

    @model_validator(mode="after")
    def _safesearch_needs_intercept(self) -> Zone:
        if self.safesearch and self.inspection is not Inspection.intercept:
            raise ValueError("safesearch needs inspection: intercept (the URL is not visible in passthrough)")
        return self


HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class PeriodKind(StrEnum):
    lesson = "lesson"
    break_ = "break"


class Period(Strict):
    name: Name
    start: HHMM
    end: HHMM
    kind: Literal["lesson", "break"]

    @model_validator(mode="after")
    def _order(self) -> Period:
        if self.end <= self.start:
            raise ValueError(f"period {self.name!r} ends before it starts")
        return self


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


class DateRange(Strict):
    name: Name
    start: dt.date = Field(alias="from")
    end: dt.date = Field(alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _order(self) -> DateRange:
        if self.end < self.start:
            raise ValueError(f"{self.name!r}: 'to' is before 'from'")
        return self


class SpecialDays(DateRange):
    kind: Literal["exam_week", "excursion", "study_day", "other"] = "other"
    schedule: Name | None = Field(None, description="day schedule to use instead of the weekday's (a key of timetable.schedules)")


class Timetable(Strict):
    timezone: str = "Europe/Amsterdam"
    schedules: dict[Name, list[Period]] = Field(description="named day schedules (lesson and break periods)")
    weekdays: dict[Weekday, Name] = Field(description="which schedule each school day follows; missing days have no school")
    holidays: list[DateRange] = []
    special_days: list[SpecialDays] = []

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Opener(StrEnum):
    """Who may open a category, and so how: a teacher for their own classroom (a classroom
    opening), the exam coordinator in an exam's allowlist, ICT with a grant on request."""

    docent = "docent"
    examencoordinator = "examencoordinator"
    ict = "ict"


OPENERS = tuple(o.value for o in Opener)


class Category(Strict):
    title: str = Field(description="Dutch first, English second, e.g. 'Pornografie / Pornography'")
    lists: list[str] = Field([], description="installed list names (UT1 categories, hosts lists)")
    sites: list[Site] = Field([], description="the school's own entries: domains (with subdomains) or domain/path")
    overridable: bool = Field(True, description="false: no grant, opening or exception can ever open it")
    opened_by: list[Opener] | None = Field(
        None, description="who may open it: docent (a classroom opening), examencoordinator (an exam's allowlist), "
                          "ict (a grant on request, on a ground of the reglement); [] never; absent: [ict]")
    source: str = Field("", description="article that makes this category forbidden, shown when it blocks")

    @model_validator(mode="after")
    def _something(self) -> Category:
        if not self.lists and not self.sites:
            raise ValueError("a category needs lists, sites or both")
        if not self.overridable and self.opened_by:
            raise ValueError("a category that is not overridable can be opened by nobody: leave out opened_by")
        return self

    @property
    def openers(self) -> frozenset[str]:
        """Who may open it, as the policy means it (see opened_by)."""
        if not self.overridable:
            return frozenset()
        if self.opened_by is None:
            return frozenset({Opener.ict.value})
        return frozenset(o.value for o in self.opened_by)


# An article of the reglement as a verdict cites it: surrounding white space dropped, never empty.
Article = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Articles(Strict):
    """The articles of the school's reglement behind decisions that people take in the console:
    every verdict of a grant, a classroom opening, an exam or an exclusion that names no article of
    its own cites one of these. Without `articles:` in the policy the defaults apply: they name the
    kind of decision, not an article of any one school."""

    unblock: Article = Field("reglement: tijdelijke deblokkering via ICT / temporary unblock through ICT",
                             description="a site opened (temporarily) through ICT on request")
    classroom: Article = Field("reglement: de docent bepaalt het gebruik in de les / the teacher decides in class",
                               description="a teacher opens or restricts their classroom")
    exam: Article = Field("reglement: examens en toetsen / exams and tests",
                          description="exam mode: only the exam's allowlist")
    exclusion: Article = Field("reglement: uitsluiting van het netwerk / exclusion from the network",
                               description="a person or device excluded from the network as a sanction")


class Allowlist(Strict):
    categories: list[Name] = []
    sites: list[Site] = []


class Rule(Strict):
    name: Name
    source: Article = Field(description="the reglement article this rule enforces, e.g. '004 art. 9'")
    action: Action
    description: str = ""
    # who, where, when: each list matches if any element matches; an absent list matches everything
    roles: list[Role] | None = None
    zones: list[str] | None = Field(None, description="zone names or zone kinds")
    when: list[str] | None = Field(None, description="time tags: lesson, break, school_hours, outside_school_hours, weekend, holiday, a period or special-day name or kind")
    # what: absent means every request
    categories: list[Name] | None = None
    sites: list[Site] | None = None
    ip_literal: Literal[True] | None = Field(None, description="true: matches requests to a raw IP address")
    # only for allowlist_only: what stays reachable
    allowlist: Allowlist | None = None

    @model_validator(mode="after")
    def _allowlist(self) -> Rule:
        if self.action is Action.allowlist_only and self.allowlist is None:
            raise ValueError("action allowlist_only needs an allowlist")
        if self.action is not Action.allowlist_only and self.allowlist is not None:
            raise ValueError("an allowlist only belongs to action allowlist_only")
        return self


class NoDecrypt(Strict):
    categories: list[Name] = []
    sites: list[Site] = []


def _port(value: int | str) -> str:
    """A port or a range of ports, as "443" or "3478-3481"."""
    low, dash, high = str(value).partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise ValueError(f"{value!r} is not a port or a range like 3478-3481") from None
    if not 0 < first <= last < 65536:
        raise ValueError(f"{value!r}: ports are 1-65535, the first of a range not above the last")
    return f"{first}-{last}" if last != first else str(first)


def _not_a_bool(value: object) -> object:
    """YAML reads `yes`, `on` and `true` as booleans, which pydantic would take for port 1."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a port")
    return value


Port = Annotated[int | str, BeforeValidator(_not_a_bool), AfterValidator(_port)]
ConnectPort = Annotated[int, Field(ge=1, le=65535), BeforeValidator(_not_a_bool)]


class Fairness(Strict):
    """How much of the gateway one client address may hold (addons/fairness.py), so that a broken
    or hostile device cannot take it from every other client."""

    max_connections_per_client: int = Field(
        256, ge=16, le=100_000, strict=True,
        description="connections one client address may have open at once; one more is refused at once (a "
                    "browser uses at most about 32 through the proxy, 256 when redirected)")
    shared_addresses: dict[Network, Annotated[int, Field(ge=16, le=1_000_000, strict=True)]] = Field(
        {}, description="addresses or networks behind which many devices share one address (a NAT'd guest "
                        "network, a terminal server), each with its own cap per address, e.g. {10.99.0.1: 4000}")
    header_seconds: int = Field(
        15, ge=1, le=300, strict=True,
        description="seconds a client has to send a whole request head, from connecting (or the tunnel "
                    "opening, or the first byte of its next request); then the connection is closed")
    idle_seconds: int = Field(
        60, ge=1, le=3600, strict=True,
        description="seconds a kept-alive connection may wait for its next request")
    max_request_line_bytes: int = Field(
        16_384, ge=1024, le=1_048_576, strict=True,
        description="longest request line (method, target, version); a longer one gets 414")
    max_header_bytes: int = Field(
        65_536, ge=4096, le=4_194_304, strict=True,
        description="largest header section of a request (every header line); a larger one gets 431")

    @model_validator(mode="after")
    def _shared_above_default(self) -> Fairness:
        for network, cap in self.shared_addresses.items():
            if cap < self.max_connections_per_client:
                raise ValueError(f"shared_addresses: {network}: {cap} is below max_connections_per_client "
                                 f"({self.max_connections_per_client}); a shared address needs more, not fewer")
        return self


class Settings(Strict):
    unblock_url: str = Field("http://127.0.0.1:8090/deblokkeren", description="block page link to request an unblock")
    unknown_clients: Literal["guest", "refuse"] = "guest"
    guest_zone: Name = Field("onbekend", description="zone name reported for clients outside every zone")
    contact: str = Field("de ICT-afdeling / the ICT department", description="who to contact, shown on the block page")
    connect_ports: list[ConnectPort] = Field(
        [443, 80], min_length=1, description="ports an explicit-proxy CONNECT or plain HTTP request may go to "
                                           "(the zone's services add their own)")
    missing_lists: Literal["block", "allow"] = Field(
        "block", description="when a list the policy names is not installed or empty: block (only the school "
                             "environment and no-decrypt sites work, page 'filter niet gereed') or allow (with a warning)")
    unlock: list[Name] = Field(
        [], description="categories that were never to be opened (overridable: false) and that this version of the "
                        "policy deliberately stops blocking; without this a running gateway refuses such a reload")
    gate_source: str = Field(
        "", description="article behind refusing what the gateway cannot judge: other ports, streams that are "
                        "not web traffic, hidden ECH destinations, names that do not match the address dialled")
    fairness: Fairness = Field(Fairness(), description="what one client address may hold: connections, and time "
                                                       "and bytes for a request head")


class Service(Strict):
    """Traffic other than the web that a zone may send: the firewall opens it (`to` addresses) and
    the proxy lets such a stream through a CONNECT or a transparent redirect (`to` or `hosts`)."""

    name: Name
    source: Article = Field(description="the reglement article or decision that allows it")
    description: str = ""
    zones: list[str] = Field(min_length=1, description="zone names or zone kinds whose clients may use it")
    protocol: Literal["tcp", "udp"]
    ports: list[Port] = Field(min_length=1, description="ports or ranges, e.g. [22] or [\"3478-3481\"]")
    to: list[Network] = Field([], description="destination networks (IPv4, IPv6); [\"0.0.0.0/0\", \"::/0\"] is anywhere")
    hosts: list[Site] = Field([], description="destination names (with subdomains), for the proxy only: a "
                                              "firewall cannot follow names")

    @model_validator(mode="after")
    def _somewhere(self) -> Service:
        if not self.to and not self.hosts:
            raise ValueError("a service needs `to` (networks), `hosts` (names) or both")
        if any("/" in host for host in self.hosts):
            raise ValueError("service hosts are names, without a /path")
        if self.protocol == "udp" and not self.to:
            raise ValueError("a udp service needs `to`: only the firewall carries udp, and it knows no names")
        return self


def _ip_of_family(version: int):  # type: ignore[no-untyped-def]
    def check(value: str) -> str:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address (geen geldig IP-adres)") from None
        if addr.version != version:
            raise ValueError(f"{value!r} is not an IPv{version} address")
        return str(addr)
    return check


def _upstream(value: str) -> str:
    """A resolver as "9.9.9.9", "9.9.9.9:53", "2620:fe::fe" or "[2620:fe::fe]:53"."""
    host, port = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r} is not a resolver address like 9.9.9.9 or [2620:fe::fe]:53")
        port = rest[1:] if rest else "53"
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r} is not a resolver address like 9.9.9.9 or [2620:fe::fe]:53") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: not a port")
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


class Dns(Strict):
    """The school's resolver on the gateway (`poortwachter run --dns`): every name a client asks is
    decided by this policy before it resolves."""

    upstream: list[Annotated[str, AfterValidator(_upstream)]] = Field(
        [], description="resolvers the gateway asks, in order; []: the gateway's own (/etc/resolv.conf)")
    block_address: Annotated[str, AfterValidator(_ip_of_family(4))] | None = Field(
        None, description="IPv4 answer for a blocked name: an address the firewall sends to the gateway, so the "
                          "client gets the block page; absent: 0.0.0.0 (the connection fails at once)")
    block_address6: Annotated[str, AfterValidator(_ip_of_family(6))] | None = Field(
        None, description="IPv6 answer for a blocked name; absent: ::")
    block_ttl: int = Field(10, ge=1, le=3600, description="seconds a client may keep the answer for a blocked name")
    binding_grace: int = Field(30, ge=0, le=3600, description="seconds past an answer's TTL that a connection "
                                                              "to its address may still name it")
    ech_fronts: list[Site] = Field(["cloudflare-ech.com"], description="known outer names of Encrypted Client "
                                   "Hello, besides those the resolver learns from HTTPS records")
    forward: dict[Site, list[Annotated[str, AfterValidator(_upstream)]]] = Field(
        {}, description="names under these zones go to these resolvers instead (the school's own domain, "
                        "Active Directory), e.g. {ad.school.nl: [10.99.0.10]}")


class SchoolEnvironment(Strict):
    categories: list[Name] = []
    sites: list[Site] = []


MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address (geen geldig IP-adres)") from None


def _mac(value: str) -> str:
    value = value.strip().lower().replace("-", ":")
    if not MAC.match(value):
        raise ValueError(f"{value!r} is not a MAC address like 02:00:5e:00:00:01 (geen geldig MAC-adres)")
    return value


def _address_or_mac(value: str) -> str:
    return _mac(value) if MAC.match(value.strip().lower().replace("-", ":")) else _address(value)


def _ipv4(value: str) -> str:
    value = _address(value)
    if ":" in value:
        raise ValueError(f"{value!r}: ARP spoofing is an IPv4 matter, give the router's IPv4 address")
    return value


Mac = Annotated[str, AfterValidator(_mac)]


class SensorGateway(Strict):
    address: Annotated[str, AfterValidator(_ipv4)] = Field(description="the router's IPv4 address clients use")
    mac: Mac = Field(description="the router's MAC address; any other MAC claiming the address is ARP spoofing")


class SensorScans(Strict):
    window: int = Field(60, ge=1, le=86400, description="seconds")
    ports: int = Field(25, ge=2, le=1024, description="distinct unanswered ports on one host from one client: a port scan")
    hosts: int = Field(25, ge=2, le=4096, description="distinct unanswered hosts on one port from one client: a sweep")


class ExcessiveDownload(Strict):
    window: int = Field(3600, ge=60, le=86400, description="seconds of the sliding window")
    bytes: int = Field(2_000_000_000, ge=1, description="bytes one client may receive within the window")
    action: Literal["alert", "limit"] = Field(
        "alert", description="alert: count it; limit: also impose a download limit on the client until the end of the day")
    max_download: int = Field(50_000_000, ge=1, description="largest response a limited client may fetch (action: limit)")
    source: str = Field("004 art. 13: overmatig downloaden", min_length=1, max_length=500, description="the article this enforces")


class Sensor(Strict):
    """The network sensor (`poortwachter sensor`): what it watches on the client VLANs."""

    gateways: list[SensorGateway] = Field([], description="routers the clients use, with their MAC addresses")
    dhcp_servers: list[Annotated[str, AfterValidator(_address_or_mac)]] | None = Field(
        None, description="addresses and/or MACs DHCP replies may come from (the server or relay); "
                          "[]: no DHCP on these networks; absent: the first server seen is taken as the school's")
    scans: SensorScans = SensorScans()
    excessive_download: ExcessiveDownload = ExcessiveDownload()
    source: str = Field("004 art. 12: het netwerk niet verstoren, geen virussen, niet hacken", min_length=1,
                        description="the article behind ARP spoofing, rogue DHCP and scan findings")


class Policy(Strict):
    school: str
    reglement: str = Field("", description="title or link of the reglement this policy enforces")
    settings: Settings = Settings()
    zones: dict[Name, Zone]
    timetable: Timetable
    categories: dict[Name, Category] = {}
    no_decrypt: NoDecrypt = NoDecrypt()
    school_environment: SchoolEnvironment = Field(
        SchoolEnvironment(), description="the school's own environment (Magister, Office 365, the ELO): stays "
                                         "reachable while the filter is not ready and when a teacher restricts a room")
    articles: Articles = Field(Articles(), description="the articles behind grants, classroom openings, exams and "
                                                       "exclusions")
    services: list[Service] = Field([], description="traffic other than the web that zones may send")
    dns: Dns = Dns()
    rules: list[Rule] = Field(description="first match wins; a policy must say them ([] for none): a file cut "
                                          "off before its rules is not a policy")
    default: Literal["allow", "block"] = Field(description="what happens when no rule matches (required)")
    default_source: str = Field("", description="article behind the default, if any")
    sensor: Sensor | None = Field(None, description="the network sensor; without it: defaults, no gateway or DHCP list")


Path = tuple[str | int, ...]


BUILTIN_TIME_TAGS = frozenset({"lesson", "break", "school_day", "school_hours", "outside_school_hours",
                               "weekend", "holiday", "exam_week", "excursion", "study_day", "other"})


def time_tags(policy: Policy) -> frozenset[str]:
    """Every word a rule's `when` may use with this timetable (see policy/timetable.py)."""
    tt = policy.timetable
    words = set(BUILTIN_TIME_TAGS)
    words.update(p.name for periods in tt.schedules.values() for p in periods)
    words.update(h.name for h in tt.holidays)
    words.update(s.name for s in tt.special_days)
    return frozenset(words)


def warnings(policy: Policy) -> list[tuple[Path, str]]:
    """What is valid but probably not what the school means, each with the path to look at."""
    found: list[tuple[Path, str]] = []
    always_blocked: dict[str, str] = {}       # category -> a rule that blocks it everywhere at every moment
    for rule in policy.rules:
        if rule.action is Action.block and rule.when is None and rule.zones is None:
            for cat in rule.categories or []:
                always_blocked.setdefault(cat, rule.name)
    for name, cat in policy.categories.items():
        rule = always_blocked.get(name)
        if rule is not None and Opener.docent in (cat.opened_by or []):
            found.append((("categories", name, "opened_by"),
                          f"waarschuwing: een docent kan deze verboden categorie openzetten (regel {rule!r} blokkeert "
                          f"haar altijd) / warning: a teacher can open this forbidden category (rule {rule!r} "
                          f"blocks it at all times)"))
    return found


def cross_references(policy: Policy) -> list[tuple[Path, str]]:
    """Checks that span several parts of the policy, each with the path of the offending value."""
    problems: list[tuple[Path, str]] = []
    tt = policy.timetable
    for day, schedule in tt.weekdays.items():
        if schedule not in tt.schedules:
            problems.append((("timetable", "weekdays", day), f"no schedule named {schedule!r}"))
    for i, special in enumerate(tt.special_days):
        if special.schedule is not None and special.schedule not in tt.schedules:
            problems.append((("timetable", "special_days", i, "schedule"), f"no schedule named {special.schedule!r}"))
    for name, periods in tt.schedules.items():
        ordered = sorted(range(len(periods)), key=lambda k: periods[k].start)
        for a, b in zip(ordered, ordered[1:]):
            if periods[b].start < periods[a].end:
                problems.append((("timetable", "schedules", name, b),
                                 f"overlaps {periods[a].name!r} (periods must not overlap)"))
    zone_words = set(policy.zones) | {k.value for k in ZoneKind}
    time_words = time_tags(policy)
    seen_rules: set[str] = set()
    for i, rule in enumerate(policy.rules):
        if rule.name in seen_rules:
            problems.append((("rules", i, "name"), f"duplicate rule name {rule.name!r}"))
        seen_rules.add(rule.name)
        for j, zone in enumerate(rule.zones or []):
            if zone not in zone_words:
                problems.append((("rules", i, "zones", j), f"no zone or zone kind named {zone!r}"))
        for j, word in enumerate(rule.when or []):
            if word not in time_words:
                problems.append((("rules", i, "when", j), f"no time tag, period or special day named {word!r}"))
        for j, cat in enumerate(rule.categories or []):
            if cat not in policy.categories:
                problems.append((("rules", i, "categories", j), f"unknown category {cat!r}"))
        for j, cat in enumerate(rule.allowlist.categories if rule.allowlist else []):
            if cat not in policy.categories:
                problems.append((("rules", i, "allowlist", "categories", j), f"unknown category {cat!r}"))
    for j, cat in enumerate(policy.no_decrypt.categories):
        if cat not in policy.categories:
            problems.append((("no_decrypt", "categories", j), f"unknown category {cat!r}"))
    for j, cat in enumerate(policy.school_environment.categories):
        if cat not in policy.categories:
            problems.append((("school_environment", "categories", j), f"unknown category {cat!r}"))
    seen_services: set[str] = set()
    for i, service in enumerate(policy.services):
        if service.name in seen_services:
            problems.append((("services", i, "name"), f"duplicate service name {service.name!r}"))
        seen_services.add(service.name)
        for j, zone in enumerate(service.zones):
            if zone not in zone_words:
                problems.append((("services", i, "zones", j), f"no zone or zone kind named {zone!r}"))
    seen: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str] = {}
    for zname, zone in policy.zones.items():
        for j, cidr in enumerate(zone.cidrs):
            net = ipaddress.ip_network(cidr, strict=False)
            if net in seen:
                problems.append((("zones", zname, "cidrs", j), f"{cidr} is also in zone {seen[net]!r}"))
            seen[net] = zname
    gateways: set[str] = set()
    for j, gateway in enumerate(policy.sensor.gateways if policy.sensor else []):
        if gateway.address in gateways:
            problems.append((("sensor", "gateways", j, "address"), "gateway listed twice (één MAC per gateway-adres)"))
        gateways.add(gateway.address)
    return problems
