"""The school's resolver (`poortwachter run --dns HOST:PORT`, option poortwachter_dns): DNS over
UDP and TCP on the proxy's event loop (poortwachter.dnsserver), every name decided by the policy
before it resolves.

- A blocked name never resolves to the real site: A and AAAA get `dns.block_address(6)` (an
  address the firewall sends to the gateway, so the client meets the block page; absent: 0.0.0.0
  and ::, so the connection fails at once), every other type gets no data.
- An allowed question goes, unchanged, to the resolvers the policy names (poortwachter.dnsforward;
  names under a zone of `dns.forward` to that zone's resolvers, e.g. the school's own Active
  Directory); a name its answer points to through a CNAME is judged too (a CNAME cannot launder a
  blocked name). An answer that needs no change goes back byte for byte as the upstream sent it.
- HTTPS and SVCB records lose their ECH configuration; the outer names found in it are remembered
  as ECH fronts (the enforcer refuses TLS to them where the zone says so).
- Every address handed to a client is remembered with the names it stands for (poortwachter.bindings),
  so that in transparent mode a later connection to that address may claim those names.
- The network's signals (poortwachter.dnsnames) are answered as a school network must.
- Counted in poortwachter_dns_queries_total by zone, role, category and action; a block is an
  audit event (kind "dns"), an allowed answer one only where the audit records everything.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mitmproxy import ctx, dns, exceptions
from mitmproxy.net.dns import https_records

from poortwachter import dnsnames, metrics
from poortwachter.audit.record import Seen
from poortwachter.bindings import BlockedBecause, NameBindings
from poortwachter.decide import Verdict
from poortwachter.dnsforward import Resolver, UpstreamError, build_query, exchange, parse_resolver, system_resolvers
from poortwachter.dnsserver import DnsServer
from poortwachter.ech import EchFronts, public_names
from poortwachter.gateway import client_address
from poortwachter.hosts import BadHost, normalize_host

from .engine import EngineAddon

log = logging.getLogger("poortwachter")

SVCB, HTTPS = 64, 65
MANDATORY, IPV4HINT, ECH, IPV6HINT = 0, 4, 5, 6          # SvcParamKeys (RFC 9460)
OPT = 41
ADDRESS_TYPES = (dns.types.A, dns.types.AAAA)


class SchoolResolver:
    def __init__(self, engine: EngineAddon, bindings: NameBindings, fronts: EchFronts,
                 because: BlockedBecause) -> None:
        self.engine = engine
        self.bindings = bindings
        self.fronts = fronts
        self.because = because
        # set by build(): the audit hand-off; returns what the answer awaits (durable recording)
        self.audit: Callable[[Seen], Awaitable[None] | None] | None = None
        self.server: DnsServer | None = None
        self._listen: tuple[str, int] | None = None
        self._resolvers: tuple[tuple[str, ...], list[Resolver]] = ((), [])
        self._counters: dict[tuple[str, str, str, str], Any] = {}

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("poortwachter_dns", str, "",
                          "Serve the school's resolver on HOST:PORT (UDP and TCP; [::]:PORT: every address of "
                          "both families); empty: off.")

    def configure(self, updated: set[str]) -> None:
        if "poortwachter_dns" in updated:
            self._listen = _listen(ctx.options.poortwachter_dns)
            if self.server is not None:       # moved while running: serve on the new address
                self.server.close()
                self.server = None
                asyncio.get_running_loop().create_task(self._start())

    async def running(self) -> None:
        await self._start()

    async def _start(self) -> None:
        if self._listen is None or self.server is not None:
            return
        host, port = self._listen
        try:
            self.server = await DnsServer(host, port, self.answer, metrics.DNS_DROPPED.inc).start()
        except OSError as exc:
            raise exceptions.OptionsError(f"poortwachter_dns: kan niet luisteren / cannot listen on "
                                          f"{ctx.options.poortwachter_dns!r}: {exc.strerror}") from None
        log.info("school resolver on %s (DNS)", ctx.options.poortwachter_dns)

    def done(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    # --- one question ------------------------------------------------------------------------
    async def answer(self, data: bytes, peer: str, tcp: bool) -> bytes | None:
        """The reply to one DNS message from `peer`: what goes back on the wire, or None."""
        try:
            query = dns.DNSMessage.unpack(data)
        except (struct.error, ValueError, IndexError, UnicodeError):
            return _formerr(data)
        if not query.query:
            return None                        # an answer sent to a resolver: nothing to say
        try:
            reply = await self._answer(query, data, client_address(peer))
        except Exception as exc:   # a bug or a hostile message: refuse the question, never crash
            log.error("dns question failed (%s): refused", type(exc).__name__)
            metrics.ERRORS.labels("internal").inc()
            reply = query.fail(dns.response_codes.SERVFAIL).packed
        if not tcp and len(reply) > _udp_limit(query):
            truncated = query.succeed([])      # too big for this client over UDP: it asks again over TCP
            truncated.truncation = True
            return truncated.packed
        return reply

    async def _answer(self, query: dns.DNSMessage, raw: bytes, client: Any) -> bytes:
        question = query.question
        if (query.op_code != dns.op_codes.QUERY or question is None
                or question.class_ != dns.classes.IN or len(query.questions) != 1):
            return query.fail(dns.response_codes.REFUSED).packed
        signal = dnsnames.signal(question.name)
        if signal is not None:
            reply = query.fail(dns.response_codes.NXDOMAIN) if signal == dnsnames.NXDOMAIN else query.succeed([])
            return reply.packed
        engine = self.engine.current()
        try:
            host = normalize_host(dnsnames.judged_name(question.name))
        except BadHost:
            return query.fail(dns.response_codes.REFUSED).packed
        verdict = engine.decide_name(client, host)
        if verdict.blocked:
            return (await self._blocked(query, client, host, host, verdict)).packed
        settings = engine.policy.dns
        try:
            upstream_raw = await exchange(raw, self._upstreams(settings.upstream, settings.forward, host))
            answer = dns.DNSMessage.unpack(upstream_raw)
        except (UpstreamError, struct.error, ValueError, IndexError, UnicodeError) as exc:
            metrics.DNS_UPSTREAM_ERRORS.inc()
            log.warning("no upstream resolver answered (geen antwoord van de resolver): %s", type(exc).__name__)
            return query.fail(dns.response_codes.SERVFAIL).packed
        names = [host, *self._aliases(answer)]
        for alias in names[1:]:
            alias_verdict = engine.decide_name(client, alias)
            if alias_verdict.blocked:
                return (await self._blocked(query, client, host, alias, alias_verdict)).packed
        changed = self._strip_ech(answer)
        self._remember(client, names, answer, settings.binding_grace)
        waiting = self._count(verdict, Seen(time.time(), "dns", verdict, client, [host], None))
        if waiting is not None:
            await waiting
        return answer.packed if changed else upstream_raw

    # --- blocked names -----------------------------------------------------------------------
    async def _blocked(self, query: dns.DNSMessage, client: Any, host: str, because: str,
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
        waiting = self._count(verdict, Seen(time.time(), "dns", verdict, client,
                                            [host] if because == host else [host, because], None))
        if waiting is not None:
            await waiting
        return query.succeed(answers)

    # --- allowed names -----------------------------------------------------------------------
    def _upstreams(self, configured: list[str], forward: dict[str, list[str]], host: str) -> list[Resolver]:
        """The resolvers for `host`: those of the longest `dns.forward` zone it is in, else `upstream`."""
        zone = next((z for z in _suffixes(host) if z in forward), None)
        if zone is not None:
            return [parse_resolver(v) for v in forward[zone]]
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

    def _strip_ech(self, answer: dns.DNSMessage) -> bool:
        """ECH leaves HTTPS and SVCB records; a record that cannot be read leaves with it. True
        when the answer changed."""
        now = time.monotonic()
        changed = False
        for section in (answer.answers, answer.authorities, answer.additionals):
            keep: list[dns.ResourceRecord] = []
            for record in section:
                if record.type in (SVCB, HTTPS):
                    try:
                        parsed = https_records.unpack(record.data)
                    except (struct.error, ValueError, IndexError):
                        changed = True
                        continue
                    ech = parsed.params.pop(ECH, None)
                    if ech is not None:
                        changed = True
                        if self.fronts.learn(self._fronts(ech), now):
                            metrics.ECH_FRONTS.set(len(self.fronts))
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
        return changed

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

    def _count(self, verdict: Verdict, seen: Seen) -> Awaitable[None] | None:
        key = (verdict.zone, verdict.role, verdict.category or "none", verdict.action)
        counter = self._counters.get(key)
        if counter is None:    # the labelled child, looked up once per label set (as enforce.py does)
            counter = self._counters[key] = metrics.DNS_QUERIES.labels(*key)
        counter.inc()
        if self.audit is not None:     # AUDIT HAND-OFF: the answer goes out once its event is on disk
            return self.audit(seen)
        return None


def _listen(value: str) -> tuple[str, int] | None:
    """poortwachter_dns as (host, port): "" for every address of both families; None when off."""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise exceptions.OptionsError(f"poortwachter_dns: HOST:PORT verwacht / expected: {value!r}")
    host = host.strip("[]")
    return ("" if host in ("::", "") else host), int(port)


def _udp_limit(query: dns.DNSMessage) -> int:
    """The largest UDP answer the client takes: its EDNS payload size (an OPT record), else 512."""
    for record in query.additionals:
        if record.type == OPT:
            return max(512, record.class_)
    return 512


def _formerr(data: bytes) -> bytes | None:
    """FORMERR for a message we cannot read but whose header we can (so the client stops asking)."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    return data[:2] + bytes([0x80 | (data[2] & 0x79), 0x01]) + b"\x00" * 8


def _suffixes(host: str) -> list[str]:
    """host and its parent domains, longest first."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


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
