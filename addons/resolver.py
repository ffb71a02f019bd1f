"""The school's resolver: mitmproxy's DNS mode (`poortwachter run --dns HOST:PORT`), with every
name decided by the policy before it resolves.

- A blocked name never resolves to the real site: A and AAAA get `dns.block_address(6)` (an
  address the firewall sends to the gateway, so the client meets the block page; absent: 0.0.0.0
  and ::, so the connection fails at once), every other type gets no data.
- An allowed question goes, unchanged, to the resolvers the policy names (poortwachter.dnsforward);
  a name its answer points to through a CNAME is judged too (a CNAME cannot launder a blocked name).
- HTTPS and SVCB records lose their ECH configuration; the outer names found in it are remembered
  as ECH fronts (the enforcer refuses TLS to them where the zone says so).
- Every address handed to a client is remembered with the names it stands for (poortwachter.bindings),
  so that in transparent mode a later connection to that address may claim those names.
- The network's signals (poortwachter.dnsnames) are answered as a school network must.
- Counted in poortwachter_dns_queries_total by zone, role, category and action; a block is an
  audit event (kind "dns"), an allowed answer one only where the audit records everything.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import dns
from mitmproxy.net.dns import https_records

from poortwachter import dnsnames, metrics
from poortwachter.audit.record import Seen
from poortwachter.bindings import BlockedBecause, NameBindings
from poortwachter.decide import Verdict
from poortwachter.dnsforward import Resolver, UpstreamError, build_query, exchange, parse_resolver, system_resolvers
from poortwachter.ech import EchFronts, public_names
from poortwachter.gateway import client_address
from poortwachter.hosts import BadHost, normalize_host

from .engine import EngineAddon

log = logging.getLogger("poortwachter")

SVCB, HTTPS = 64, 65
MANDATORY, IPV4HINT, ECH, IPV6HINT = 0, 4, 5, 6          # SvcParamKeys (RFC 9460)
ADDRESS_TYPES = (dns.types.A, dns.types.AAAA)


class SchoolResolver:
    def __init__(self, engine: EngineAddon, bindings: NameBindings, fronts: EchFronts,
                 because: BlockedBecause) -> None:
        self.engine = engine
        self.bindings = bindings
        self.fronts = fronts
        self.because = because
        self.audit: Callable[[Seen], None] | None = None      # set by build(): the audit hand-off
        self._resolvers: tuple[tuple[str, ...], list[Resolver]] = ((), [])

    async def dns_request(self, flow: dns.DNSFlow) -> None:
        if flow.response is not None or flow.error is not None:
            return
        try:
            flow.response = await self._answer(flow)
        except Exception as exc:   # a bug or a hostile message: refuse the question, never crash
            log.error("dns_request failed (%s): question refused", type(exc).__name__)
            metrics.ERRORS.labels("internal").inc()
            flow.response = flow.request.fail(dns.response_codes.SERVFAIL)

    async def _answer(self, flow: dns.DNSFlow) -> dns.DNSMessage:
        query = flow.request
        question = query.question
        if (not query.query or query.op_code != dns.op_codes.QUERY or question is None
                or question.class_ != dns.classes.IN or len(query.questions) != 1):
            return query.fail(dns.response_codes.REFUSED)
        signal = dnsnames.signal(question.name)
        if signal is not None:
            return query.fail(dns.response_codes.NXDOMAIN) if signal == dnsnames.NXDOMAIN else query.succeed([])
        engine = self.engine.current()
        client = client_address(flow.client_conn.peername[0])
        try:
            host = normalize_host(dnsnames.judged_name(question.name))
        except BadHost:
            return query.fail(dns.response_codes.REFUSED)
        verdict = engine.decide_name(client, host)
        if verdict.blocked:
            return self._blocked(query, client, host, host, verdict)
        try:
            raw = await exchange(query.packed, self._upstreams(engine.policy.dns.upstream))
            answer = dns.DNSMessage.unpack(raw)
        except (UpstreamError, struct.error, ValueError) as exc:
            metrics.DNS_UPSTREAM_ERRORS.inc()
            log.warning("no upstream resolver answered (geen antwoord van de resolver): %s", exc)
            return query.fail(dns.response_codes.SERVFAIL)
        names = [host, *self._aliases(answer)]
        for alias in names[1:]:
            alias_verdict = engine.decide_name(client, alias)
            if alias_verdict.blocked:
                return self._blocked(query, client, host, alias, alias_verdict)
        self._strip_ech(answer)
        self._remember(client, names, answer, engine.policy.dns.binding_grace)
        self._count(verdict, Seen(time.time(), "dns", verdict, client, [host], None))
        return answer

    # --- blocked names -----------------------------------------------------------------------
    def _blocked(self, query: dns.DNSMessage, client: Any, host: str, because: str,
                 verdict: Verdict) -> dns.DNSMessage:
        """The answer for `host`, blocked because of `because` (itself, or the blocked name a
        CNAME of it points to)."""
        settings = self.engine.current().policy.dns
        question = query.question
        assert question is not None
        answers: list[dns.ResourceRecord] = []
        if question.type == dns.types.A:
            address = ipaddress.IPv4Address(settings.block_address or "0.0.0.0")
            answers.append(dns.ResourceRecord.A(question.name, address, ttl=settings.block_ttl))
        elif question.type == dns.types.AAAA:
            address6 = ipaddress.IPv6Address(settings.block_address6 or "::")
            answers.append(dns.ResourceRecord.AAAA(question.name, address6, ttl=settings.block_ttl))
        # The block page's address stands for the blocked name: the enforcer then judges the name
        # (and shows why) instead of judging a bare address.
        sinkhole = [ipaddress.ip_address(a) for a in (settings.block_address, settings.block_address6) if a]
        if sinkhole:
            now = time.monotonic()
            until = now + settings.block_ttl + settings.binding_grace
            self.bindings.learn(client, [host], sinkhole, until, now)
            if because != host:
                self.because.learn(client, host, because, until, now)
        self._count(verdict, Seen(time.time(), "dns", verdict, client, [host] if because == host else [host, because],
                                  None))
        return query.succeed(answers)

    # --- allowed names -----------------------------------------------------------------------
    def _upstreams(self, configured: list[str]) -> list[Resolver]:
        self._resolvers = (tuple(configured), _upstreams(self._resolvers, configured))
        return self._resolvers[1]

    @staticmethod
    def _aliases(answer: dns.DNSMessage) -> list[str]:
        """The CNAME targets of an answer, normalised (those that cannot be are left out: they
        are never a host a client names)."""
        found: list[str] = []
        for record in answer.answers:
            if record.type == dns.types.CNAME:
                try:
                    found.append(normalize_host(record.domain_name))
                except (BadHost, struct.error, ValueError):
                    continue
        return found

    def _strip_ech(self, answer: dns.DNSMessage) -> None:
        """ECH leaves HTTPS and SVCB records; a record that cannot be read leaves with it."""
        now = time.monotonic()
        for section in (answer.answers, answer.authorities, answer.additionals):
            keep: list[dns.ResourceRecord] = []
            for record in section:
                if record.type in (SVCB, HTTPS):
                    try:
                        parsed = https_records.unpack(record.data)
                    except (struct.error, ValueError, IndexError):
                        continue
                    ech = parsed.params.pop(ECH, None)
                    if ech is not None:
                        self.fronts.learn(self._fronts(ech), now)
                        mandatory = parsed.params.get(MANDATORY)
                        if mandatory is not None:   # a record may name ech mandatory: no longer
                            keys = [mandatory[i:i + 2] for i in range(0, len(mandatory) - 1, 2)]
                            kept = b"".join(k for k in keys if k != ECH.to_bytes(2, "big"))
                            if kept:
                                parsed.params[MANDATORY] = kept
                            else:           # an empty `mandatory` is malformed (RFC 9460 section 8)
                                del parsed.params[MANDATORY]
                        record.data = https_records.pack(parsed)
                keep.append(record)
            section[:] = keep
        metrics.ECH_FRONTS.set(len(self.fronts.learnt(now)))

    @staticmethod
    def _fronts(ech: bytes) -> list[str]:
        names: list[str] = []
        for name in public_names(ech):
            try:
                names.append(normalize_host(name))
            except BadHost:
                continue
        return names

    def _remember(self, client: Any, names: list[str], answer: dns.DNSMessage, grace: int) -> None:
        addresses: list[Any] = []
        ttl: int | None = None
        for record in answer.answers:
            if record.type in ADDRESS_TYPES and len(record.data) in (4, 16):
                addresses.append(ipaddress.ip_address(record.data))
                ttl = record.ttl if ttl is None else min(ttl, record.ttl)
            elif record.type in (SVCB, HTTPS):
                addresses.extend(_hints(record.data))
                ttl = record.ttl if ttl is None else min(ttl, record.ttl)
        if addresses and ttl is not None:
            now = time.monotonic()
            self.bindings.learn(client, names, addresses, now + ttl + grace, now)

    def _count(self, verdict: Verdict, seen: Seen) -> None:
        metrics.DNS_QUERIES.labels(verdict.zone, verdict.role, verdict.category or "none", verdict.action).inc()
        if self.audit is not None:     # AUDIT HAND-OFF
            self.audit(seen)


def _hints(data: bytes) -> list[Any]:
    """The ipv4hint and ipv6hint addresses of an HTTPS or SVCB record: clients may dial them."""
    try:
        params = https_records.unpack(data).params
    except (struct.error, ValueError, IndexError):
        return []
    found: list[Any] = []
    for key, size in ((IPV4HINT, 4), (IPV6HINT, 16)):
        raw = params.get(key, b"")
        for at in range(0, len(raw) - size + 1, size):
            found.append(ipaddress.ip_address(raw[at:at + size]))
    return found




class Lookup:
    """The gateway's own lookup: does `name` resolve to `address`? It confirms the claim of a
    transparent connection that the school's resolver did not bind (after a restart, or for a
    client that resolved elsewhere before the firewall sent its DNS here). A confirmation is the
    upstream's own answer, so it proves the same thing a binding does. Answers are kept for their
    TTL (between MIN_KEEP and MAX_KEEP seconds), failures for MIN_KEEP, at most MAX_NAMES."""

    MIN_KEEP, MAX_KEEP, MAX_NAMES, TIMEOUT = 5, 300, 50_000, 1.0

    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine
        self._known: dict[tuple[str, int], tuple[frozenset[Any], float]] = {}
        self._resolvers: tuple[tuple[str, ...], list[Resolver]] = ((), [])

    async def confirms(self, name: str, address: Any) -> bool:
        qtype = dns.types.A if address.version == 4 else dns.types.AAAA
        now = time.monotonic()
        known = self._known.get((name, qtype))
        if known is None or known[1] < now:
            known = await self._resolve(name, qtype, now)
        return address in known[0]

    async def _resolve(self, name: str, qtype: int, now: float) -> tuple[frozenset[Any], float]:
        found: set[Any] = set()
        keep = self.MIN_KEEP
        try:
            upstreams = _upstreams(self._resolvers, self.engine.current().policy.dns.upstream)
            self._resolvers = (tuple(self.engine.current().policy.dns.upstream), upstreams)
            answer = dns.DNSMessage.unpack(await exchange(build_query(name, qtype), upstreams, self.TIMEOUT))
            ttls = [r.ttl for r in answer.answers if r.type == qtype and len(r.data) in (4, 16)]
            found = {ipaddress.ip_address(r.data) for r in answer.answers if r.type == qtype and len(r.data) in (4, 16)}
            if ttls:
                keep = max(self.MIN_KEEP, min(self.MAX_KEEP, min(ttls)))
        except (UpstreamError, struct.error, ValueError, UnicodeEncodeError):
            metrics.DNS_UPSTREAM_ERRORS.inc()
        if len(self._known) >= self.MAX_NAMES:
            self._known.clear()
        entry = (frozenset(found), now + keep)
        self._known[(name, qtype)] = entry
        return entry


def _upstreams(cached: tuple[tuple[str, ...], list[Resolver]], configured: list[str]) -> list[Resolver]:
    """The resolvers a policy names, parsed once per policy (the gateway's own when it names none)."""
    if tuple(configured) == cached[0] and cached[1]:
        return cached[1]
    return [parse_resolver(v) for v in configured] if configured else system_resolvers()
