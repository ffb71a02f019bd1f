"""Identify the client, decide, act, and tag the flow: the enforcing addon.

- CONNECT (explicit proxy): only to the ports the policy allows (`settings.connect_ports`, and the
  services' own); decided on the target; a blocked target in a passthrough zone is refused with
  403; intercept zones go on to TLS so the pupil gets a readable block page.
- The stream inside (after CONNECT, or redirected in transparent mode): HTTP and TLS go on; any
  other protocol is refused at once unless the policy lists its destination as a service for the
  client's zone (`next_layer`, before any byte reaches the destination).
- TLS ClientHello: decided on the SNI and the CONNECT target, the stricter wins. A ClientHello that
  offers no HTTP protocol (ALPN) is a stream that is not web traffic; one to an ECH front hides its
  destination (the zone's `ech` decides). Passthrough zones, and connections whose every name is on
  the no-decrypt list, pass allowed connections through untouched and close blocked ones.
- HTTP requests (plain, or decrypted in intercept zones): decided on the full URL, with the Host
  header, the request target and the SNI all judged; a blocked request gets the block page (403).
- Transparent mode: a client dials an address and claims a name (SNI, Host). A claim counts when
  the school's resolver gave this client that address for that name (poortwachter.bindings) or the
  gateway's own lookup confirms it; otherwise the bare address is judged too (an IP literal).
- HTTP responses to a client under a download limit (004 art. 13, imposed by the network sensor):
  one that announces a Content-Length above the limit is replaced by the download-limit page (403)
  and the upstream transfer is stopped; one of unknown length (chunked, or until close) is streamed
  and cut off once it passes the limit. The request's verdict for such a client waits for the
  response, so it is counted and recorded once: allowed, or blocked with rule "download_limit".
  Clients without a limit pay one dict lookup per request and one per response. HTTPS passed
  through (passthrough zones, no-decrypt sites) is never seen here, so it is not limited.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http, tls
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.net.tls import starts_like_tls_record
from mitmproxy.proxy import commands, events, layer, mode_specs
from mitmproxy.proxy.layers import HttpLayer, TCPLayer
from mitmproxy.proxy.layers.http import HTTPMode
from mitmproxy.proxy.layers.tls import HTTP1_ALPNS, HTTP2_ALPN
from OpenSSL import SSL

from poortwachter import blockpage, metrics
from poortwachter.audit.record import Seen
from poortwachter.bindings import BlockedBecause, NameBindings
from poortwachter.decide import Verdict
from poortwachter.ech import ECH_EXTENSION, EchFronts
from poortwachter.gateway import ECH_ALLOWED, NOT_WEB, PORT_CLOSED, Engine, client_address
from poortwachter.hosts import BadHost, normalize_host
from poortwachter.state import DownloadLimit

from .engine import EngineAddon
from .resolver import Lookup

log = logging.getLogger("poortwachter")
META = "poortwachter"
HOST = "poortwachter_host"
LIMITED = "poortwachter_limited"   # a client under a download limit: its verdict waits for the response


def _refuse_after_error(self: Enforce, hook: str, arg: Any, exc: Exception) -> None:
    log.error("%s failed (%s): request refused", hook, type(exc).__name__)
    metrics.ERRORS.labels("internal").inc()
    if isinstance(arg, http.HTTPFlow) and arg.response is None:
        arg.response = http.Response.make(503, "Poortwachter: interne fout / internal error\n",
                                          {"Content-Type": "text/plain; charset=utf-8"})
    elif isinstance(arg, http.HTTPFlow) and arg.killable:
        arg.kill()   # the response headers are in: its body must not pass unchecked
    elif isinstance(arg, tls.ClientHelloData):
        self._refuse.add(arg.context.client.id)
    elif isinstance(arg, layer.NextLayer) and arg.layer is None:
        arg.layer = _Refused(arg.context)


def _fail_closed(hook: Callable[..., Awaitable[None] | None]) -> Callable[..., Awaitable[None] | None]:
    """A bug or a hostile input must neither crash the proxy nor let the request through. What the
    hook returns (the audit's wait for the disk) is returned for mitmproxy to await."""

    @functools.wraps(hook)
    def wrapper(self: Enforce, arg: Any) -> Awaitable[None] | None:
        try:
            return hook(self, arg)
        except Exception as exc:
            _refuse_after_error(self, hook.__name__, arg, exc)
            return None
    return wrapper


def _fail_closed_async(hook: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The same for hooks that may wait for a name lookup."""

    @functools.wraps(hook)
    async def wrapper(self: Enforce, arg: Any) -> None:
        try:
            await hook(self, arg)
        except Exception as exc:
            _refuse_after_error(self, hook.__name__, arg, exc)
    return wrapper


class _Refused(layer.Layer):
    """The layer for a stream the gate refuses: the client's connection is closed before a byte
    reaches the destination (no server connection is ever opened)."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield commands.CloseConnection(self.context.client)
        else:
            yield from ()


HTTP_ALPNS = frozenset((HTTP2_ALPN, *HTTP1_ALPNS))
# The start of an HTTP/1 request line (a token, a space) or of the HTTP/2 preface: the stream may
# still turn out to be web traffic. Anything else is not.
_HTTP_START = re.compile(rb"[A-Za-z]{1,20}( |$)")


@functools.cache
def _refusing_context() -> SSL.Context:
    return SSL.Context(SSL.TLS_SERVER_METHOD)


def _mode(conn: Any) -> str:
    return getattr(conn.proxy_mode, "type_name", "regular")


def _could_be_http(data: bytes) -> bool:
    return bool(_HTTP_START.match(data[:21]))


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return client_address(host)
    except ValueError:
        return None


_counters: dict[tuple[str, str, str | None, str], Any] = {}


def _record(verdict: Verdict) -> None:
    # The labelled child per (zone, role, category, action), looked up once: `labels()` takes a
    # lock and builds a key on every call, and this runs for every request.
    key = (verdict.zone, verdict.role, verdict.category, verdict.action)
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = metrics.REQUESTS.labels(key[0], key[1], key[2] or "none", key[3])
    counter.inc()


@dataclass(slots=True)
class _Limited:
    """A request of a client under a download limit, allowed so far."""

    limit: DownloadLimit
    verdict: Verdict
    seen: Seen               # the allowed verdict as the audit would have had it at request time


class Enforce:
    def __init__(self, engine: EngineAddon, bindings: NameBindings | None = None, fronts: EchFronts | None = None,
                 lookup: Lookup | None = None, because: BlockedBecause | None = None) -> None:
        self.engine = engine
        self.bindings = bindings if bindings is not None else NameBindings()
        self.fronts = fronts if fronts is not None else EchFronts()
        self.lookup = lookup if lookup is not None else Lookup(engine)
        self.because = because if because is not None else BlockedBecause()
        self._refuse: set[str] = set()  # client connection ids whose TLS handshake is to be refused
        # AUDIT HAND-OFF: addons/audit.py's AuditRecorder.accept, set by build(). Called once per
        # final verdict (where the verdict is also counted) with a small tuple; it only appends
        # to a bounded queue, the recorder's thread does the rest. It returns what the hook awaits
        # (or returns, for mitmproxy to await) before the answer goes out: durable recording puts
        # the event on disk first. None: nothing to wait for.
        self.audit: Callable[[Seen], Awaitable[None] | None] | None = None

    # --- explicit proxy: CONNECT ----------------------------------------------------------
    @_fail_closed
    def http_connect(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response is not None:
            return None
        engine = self.engine.current()
        try:
            host = normalize_host(flow.request.host)
        except BadHost:
            flow.response = http.Response.make(400, "Ongeldige host / Invalid host\n")
            return None
        started = time.perf_counter()
        client = client_address(flow.client_conn.peername[0])
        port = flow.request.port
        if port in engine.policy.connect_ports:
            verdict = engine.decide(client, host)
        else:   # not a web port: only a service of the client's zone opens it
            verdict = engine.service(client, host, port) or engine.refuse(client, PORT_CLOSED, host)
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        flow.metadata[META] = verdict.as_dict()
        if verdict.rule == PORT_CLOSED:
            metrics.REFUSALS.labels(verdict.zone, verdict.rule).inc()
        if verdict.blocked and (verdict.inspection != "intercept" or engine.undecrypted(host)
                                or verdict.rule == PORT_CLOSED):
            _record(verdict)
            waiting = None
            if self.audit is not None:   # AUDIT HAND-OFF
                waiting = self.audit(Seen(time.time(), "connect", verdict, client, [host], None))
            flow.response = http.Response.make(
                403, f"Geblokkeerd / Blocked: {verdict.rule} ({verdict.source})\n",
                {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"})
            return waiting               # AUDIT HAND-OFF: the 403 goes out once its event is on disk
        return None

    # --- the stream inside a tunnel or a transparent connection --------------------------------
    @_fail_closed
    def next_layer(self, nextlayer: layer.NextLayer) -> Awaitable[None] | None:
        """Only web traffic passes the web gate: a stream that starts like neither TLS nor HTTP is
        refused here, before mitmproxy would relay it raw, unless a service of the zone covers its
        destination. (An explicit proxy's own first request is mitmproxy's to read.)"""
        if nextlayer.layer is not None:
            return
        context = nextlayer.context
        client_conn = context.client
        if client_conn.transport_protocol != "tcp" or not context.server.address:
            return
        if not isinstance(client_conn.proxy_mode, (mode_specs.RegularMode, mode_specs.TransparentMode)):
            return
        if isinstance(client_conn.proxy_mode, mode_specs.RegularMode) and len(context.layers) <= 1:
            return      # the proxy request itself (CONNECT or absolute-form HTTP): not a stream yet
        data = nextlayer.data_client()
        if not data or (not client_conn.tls and starts_like_tls_record(data)):
            return      # TLS: mitmproxy's TLS layers come next, and the ClientHello is judged
        if client_conn.alpn in HTTP_ALPNS:
            return      # decrypted HTTP/1 or HTTP/2: mitmproxy's HTTP layer, every request judged
        if not client_conn.alpn and _could_be_http(data):
            # HTTP, perhaps not all of its first line yet: the HTTP layer waits for the rest (left
            # to mitmproxy, a few bytes would be taken for a raw stream)
            nextlayer.layer = HttpLayer(context, HTTPMode.transparent)
            return
        engine = self.engine.current()
        client = client_address(client_conn.peername[0])
        host, port = str(context.server.address[0]), int(context.server.address[1])
        dialled = client_address(host) if isinstance(client_conn.proxy_mode, mode_specs.TransparentMode) else None
        try:   # where the bytes go (the CONNECT target, the address dialled), and the SNI it claimed
            names = [normalize_host(name) for name in dict.fromkeys(n for n in (client_conn.sni, host) if n)]
        except BadHost:
            names = []
        bound = dialled is not None and client_conn.sni and names and self.bindings.bound(
            client, dialled, names[0], time.monotonic())
        if bound:
            names = names[:1]        # a name the resolver gave for this address: the service may name it
        verdict = self._service(engine, client, names, port, dialled)
        if verdict is not None:
            nextlayer.layer = TCPLayer(context)
        else:
            verdict = engine.refuse(client, NOT_WEB, names[0] if names else None)
            metrics.REFUSALS.labels(verdict.zone, verdict.rule).inc()
            nextlayer.layer = _Refused(context)
        _record(verdict)
        if self.audit is not None:   # AUDIT HAND-OFF: the stream goes on once its event is on disk
            return self.audit(Seen(time.time(), "stream", verdict, client, names or [host], None))
        return None

    # --- TLS: passthrough or intercept --------------------------------------------------------
    @_fail_closed_async
    async def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if data.ignore_connection:
            return
        engine = self.engine.current()
        client_conn = data.context.client
        hello = data.client_hello
        client = client_address(client_conn.peername[0])
        names: list[str] = []
        dialled = None
        try:
            if hello.sni:
                names.append(normalize_host(hello.sni))
            target = data.context.server.address
            if target and _mode(client_conn) == "transparent":
                # the address the client dialled: its claims count only where they are bound to it
                dialled = client_address(str(target[0]))
                names = await self._claims(client, dialled, names)
            elif target:
                names.append(normalize_host(str(target[0])))
        except (BadHost, ValueError):
            self._refuse.add(client_conn.id)
            return
        if not names:
            self._refuse.add(client_conn.id)
            return
        started = time.perf_counter()
        verdict, decrypt = self._hello_verdict(engine, client, names, hello, data, dialled)
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        if decrypt:
            metrics.TLS_PASSTHROUGH.labels(verdict.zone, "intercept").inc()
            return  # decrypted: every request inside is decided on its URL
        _record(verdict)
        if self.audit is not None:   # AUDIT HAND-OFF: the handshake goes on once its event is on disk
            waiting = self.audit(Seen(time.time(), "tls", verdict, client, names, None))
            if waiting is not None:
                await waiting
        if verdict.blocked:
            metrics.TLS_PASSTHROUGH.labels(verdict.zone, "refused").inc()
            self._refuse.add(client_conn.id)
        else:
            metrics.TLS_PASSTHROUGH.labels(verdict.zone, "passthrough").inc()
            data.ignore_connection = True

    def _hello_verdict(self, engine: Engine, client: Any, names: list[str], hello: tls.ClientHello,
                       data: tls.ClientHelloData, dialled: Any) -> tuple[Verdict, bool]:
        """The verdict of a TLS connection, and whether it is decrypted (its requests decide)
        rather than passed through or refused here."""
        sni = names[0] if hello.sni else None
        port = int(data.context.server.address[1]) if data.context.server.address else 443
        if sni and self.fronts.known(sni, engine.policy.ech_fronts, time.monotonic()) and any(
                kind == ECH_EXTENSION for kind, _ in hello.extensions):
            verdict = engine.ech(client, sni)
            if verdict.rule != ECH_ALLOWED:
                metrics.REFUSALS.labels(verdict.zone, verdict.rule).inc()
                return verdict, False
            others = [name for name in names if name != sni]     # the CONNECT target, the address dialled
            target = engine.decide_all(client, others) if others else None
            return (target, False) if target is not None and target.blocked else (verdict, False)
        offered = hello.alpn_protocols
        if not HTTP_ALPNS.intersection(offered):
            # TLS that offers no HTTP: to a service of the zone it is relayed untouched, in every zone
            service = self._service(engine, client, names, port, dialled)
            if service is not None:
                return service, False
        verdict = engine.decide_all(client, names)
        web = bool(HTTP_ALPNS.intersection(offered)) or (not offered and verdict.inspection == "intercept")
        if not web and not (not offered and verdict.role != "pupil"):
            # TLS that cannot be HTTP (or, for pupils in passthrough, cannot be shown to be)
            refused = engine.refuse(client, NOT_WEB, names[0])
            metrics.REFUSALS.labels(refused.zone, refused.rule).inc()
            return refused, False
        if verdict.inspection == "intercept" and not all(engine.undecrypted(n) for n in names):
            return verdict, True
        if not verdict.blocked and self._sinkhole(engine, dialled):
            return verdict._replace(action="block"), False   # the block page's address: nothing to pass to
        return verdict, False

    @staticmethod
    def _service(engine: Engine, client: Any, names: list[str], port: int, dialled: Any = None) -> Verdict | None:
        """The service that covers a stream. The bytes go to the address dialled (transparent mode)
        or the CONNECT target: in transparent mode a service covers the address itself (`to`), or
        the names the resolver bound to it (`hosts`; `names` then holds no bare address); behind
        CONNECT it must cover every name, as the SNI is only a claim beside the target."""
        if dialled is not None:
            by_address = engine.service(client, str(dialled), port)
            if by_address is not None or str(dialled) in names:
                return by_address
        found = [engine.service(client, name, port) for name in names]
        return found[0] if found and all(found) else None

    async def _claims(self, client: Any, address: Any, claimed: list[str]) -> list[str]:
        """The names a transparent connection to `address` is judged on: each claimed name (the
        stricter verdict counts), plus the bare address when a claim is not bound to it by the
        school's resolver (nor confirmed by the gateway's own lookup), or nothing was claimed."""
        now = time.monotonic()
        proven = True
        reasons = []
        for name in claimed:
            if self.bindings.bound(client, address, name, now):
                reason = self.because.reason(client, name, now)    # sent to the block page for another name
                if reason is not None:
                    reasons.append(reason)
                continue
            if _address(name) == address:
                continue
            if not await self.lookup.confirms(name, address):
                proven = False
        claimed = [*claimed, *reasons]
        bare = str(address)
        if claimed and proven:
            return claimed
        return [*claimed, bare] if bare not in claimed else claimed

    @staticmethod
    def _sinkhole(engine: Engine, dialled: Any) -> bool:
        """Is `dialled` the address the resolver gives for blocked names (dns.block_address)?"""
        settings = engine.policy.dns
        return dialled is not None and str(dialled) in (settings.block_address, settings.block_address6)

    def tls_start_client(self, tls_start: tls.TlsData) -> None:
        # Script addons run BEFORE mitmproxy's tlsconfig, which fills in ssl_conn when it is None
        # (so `ssl_conn = None` here would be overwritten and the connection intercepted). Give it
        # an SSL object without a certificate instead: no handshake can complete on it, so the
        # client gets a TLS alert and the connection is closed.
        if tls_start.context.client.id in self._refuse:
            self._refuse.discard(tls_start.context.client.id)
            tls_start.ssl_conn = SSL.Connection(_refusing_context())

    def client_disconnected(self, client: Any) -> None:
        self._refuse.discard(client.id)

    # --- HTTP requests ---------------------------------------------------------------------
    @_fail_closed_async
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        engine = self.engine.current()
        req = flow.request
        raw: list[str] = []
        host_header = req.host_header
        if host_header:
            raw.append(host_header)
        if flow.client_conn.sni:
            raw.append(flow.client_conn.sni)
        transparent = _mode(flow.client_conn) == "transparent"
        if not transparent:
            raw.append(req.host)
        client = client_address(flow.client_conn.peername[0])
        dialled = None
        try:
            names = [normalize_host(name) for name in raw]
            if transparent:
                dialled = client_address(req.host)
                names = await self._claims(client, dialled, names)
        except (BadHost, ValueError):
            flow.response = http.Response.make(400, "Ongeldige host / Invalid host\n",
                                               {"Content-Type": "text/plain; charset=utf-8"})
            return
        started = time.perf_counter()
        path = req.path or "/"
        verdict = engine.decide_all(client, names, path)
        if not verdict.blocked and not transparent and req.port not in engine.policy.connect_ports:
            # an explicit-proxy request to a port that is not a web port: only a service opens it
            if engine.service(client, names[-1], req.port) is None:
                verdict = engine.refuse(client, PORT_CLOSED, names[-1])
                metrics.REFUSALS.labels(verdict.zone, verdict.rule).inc()
        if not verdict.blocked and self._sinkhole(engine, dialled):
            # the name was blocked when it was resolved and is open now: the client asks again
            flow.response = http.Response.make(
                503, "Opnieuw laden / Reload: deze site is zojuist vrijgegeven / this site was just opened\n",
                {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "10", "Cache-Control": "no-store"})
            return
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        flow.metadata[META] = verdict.as_dict()
        flow.metadata[HOST] = names[0]   # normalised once, here; SafeSearch reads it
        limits = engine.state.limits
        if limits and not verdict.blocked:
            limit = limits.get(client)
            if limit is not None and limit.active(engine.clock()):
                # counted and recorded once the response shows whether it stays allowed
                flow.metadata[LIMITED] = _Limited(limit, verdict, Seen(time.time(), "http", verdict, client,
                                                                       names, path))
                return
        _record(verdict)
        if self.audit is not None:   # AUDIT HAND-OFF: the answer goes out once its event is on disk
            waiting = self.audit(Seen(time.time(), "http", verdict, client, names, path))
            if waiting is not None:
                await waiting
        if verdict.blocked:
            policy = engine.policy
            title = policy.titles.get(verdict.category) if verdict.category else None
            body = blockpage.render(verdict, req.pretty_url, title, policy.settings.unblock_url,
                                    policy.settings.contact)
            flow.response = http.Response.make(403, body, {
                "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
                "X-Poortwachter-Rule": verdict.rule})

    # --- HTTP responses: download limits (004 art. 13) ------------------------------------------
    @_fail_closed
    def responseheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        limited = flow.metadata.get(LIMITED)
        if limited is None:
            return None
        response = flow.response
        assert response is not None
        try:
            size = expected_http_body_size(flow.request, response)
        except ValueError:   # a malformed Content-Length: count what actually comes
            size = None
        if size is not None and size >= 0:
            if size > limited.limit.max_bytes:
                return self._refuse_download(flow, limited)     # AUDIT HAND-OFF: awaited by mitmproxy
            return self._settle(flow, None)                      # AUDIT HAND-OFF: awaited by mitmproxy
        response.stream = _Cutoff(self, flow, limited.limit.max_bytes)
        return None

    def error(self, flow: http.HTTPFlow) -> None:
        # the upstream or the client went away before the verdict was settled: it stayed allowed
        if LIMITED in flow.metadata:
            self._settle(flow, None)

    def _blocked_by_limit(self, limited: _Limited) -> Verdict:
        engine = self.engine.engine
        source = blockpage.limit_source(engine.policy.policy) if engine is not None else ""
        return limited.verdict._replace(action="block", rule=blockpage.DOWNLOAD_LIMIT, source=source)

    def _settle(self, flow: http.HTTPFlow, verdict: Verdict | None) -> Awaitable[None] | None:
        """Count and record the final verdict of a limited client's request, once: `None` is the
        allowed verdict of the request; a block is recorded at the moment it happened. Returns
        the audit's wait for the disk: a response whose headers are still held waits for it; a
        response already streaming (a cut-off, or its end) cannot, its event follows it."""
        limited: _Limited | None = flow.metadata.pop(LIMITED, None)
        if limited is None:
            return None
        if verdict is None:
            _record(limited.verdict)
            if self.audit is not None:   # AUDIT HAND-OFF
                return self.audit(limited.seen)
            return None
        flow.metadata[META] = verdict.as_dict()
        _record(verdict)
        if self.audit is not None:   # AUDIT HAND-OFF
            seen = limited.seen
            return self.audit(Seen(time.time(), seen.kind, verdict, seen.client, seen.names, seen.path))
        return None

    def _refuse_download(self, flow: http.HTTPFlow, limited: _Limited) -> Awaitable[None] | None:
        """The page instead of the response. mitmproxy has no way to answer differently once the
        upstream's headers are in and then drop the rest of its body: the page is streamed in
        place of the first upstream chunk, and the upstream connection is closed after it."""
        verdict = self._blocked_by_limit(limited)
        waiting = self._settle(flow, verdict)      # AUDIT HAND-OFF: returned below
        engine = self.engine.engine
        contact = engine.policy.settings.contact if engine is not None else ""
        body = blockpage.render_download_limit(verdict, limited.limit.until, limited.limit.max_bytes, contact)
        page = http.Response.make(403, body, {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
            "X-Poortwachter-Rule": verdict.rule})
        page.stream = _PageInstead(flow, body)
        flow.response = page
        return waiting


class _PageInstead:
    """Response stream: the page for the first upstream chunk, nothing after it; then the
    upstream is cut. Returns lists: an empty bytes chunk would end a chunked response."""

    __slots__ = ("flow", "page")

    def __init__(self, flow: http.HTTPFlow, page: bytes) -> None:
        self.flow = flow
        self.page: bytes | None = page

    def __call__(self, data: bytes) -> list[bytes]:
        page, self.page = self.page, None
        if page is None:
            return []
        _cut_upstream(self.flow)
        return [page]


class _Cutoff:
    """Response stream of unknown length: passed on until it passes `max_bytes`, then cut off
    (the client gets at most `max_bytes` and an incomplete response)."""

    __slots__ = ("enforce", "flow", "left", "cut")

    def __init__(self, enforce: Enforce, flow: http.HTTPFlow, max_bytes: int) -> None:
        self.enforce = enforce
        self.flow = flow
        self.left = max_bytes
        self.cut = False

    def __call__(self, data: bytes) -> list[bytes]:
        if self.cut:
            return []
        if not data:   # the end of the response, within the limit
            self.enforce._settle(self.flow, None)
            return []
        if len(data) <= self.left:
            self.left -= len(data)
            return [data]
        keep, self.left, self.cut = data[:self.left], 0, True
        limited = self.flow.metadata.get(LIMITED)
        if limited is not None:
            self.enforce._settle(self.flow, self.enforce._blocked_by_limit(limited))
        _cut_upstream(self.flow)
        return [keep] if keep else []


_cut_failed = False


def _cut_upstream(flow: http.HTTPFlow) -> None:
    """Close the socket of the flow's upstream connection (mitmproxy cannot kill a flow in transit,
    mitmproxy#4711). The proxy then reads the end of that connection as if the server had closed
    it: the HTTP layer ends the response to the client (HTTP/1: closes the connection; HTTP/2:
    resets that stream). Scheduled after the current event, so the bytes already handed over
    still go out. Not by cancelling the connection's task (what a CloseConnection command does):
    a task cancelled while it waits for the proxy's event lock leaves its socket open. If the
    proxy's connection table is not there, the rest of the upstream body is dropped instead."""
    global _cut_failed
    server = flow.server_conn
    proxyserver = ctx.master.addons.get("proxyserver") if ctx.master is not None else None
    handler = getattr(proxyserver, "connections", {}).get(flow.client_conn.id)
    if handler is None or server not in getattr(handler, "transports", {}):
        if not _cut_failed:
            _cut_failed = True
            log.error("download limit: upstream connection not closed, its data is dropped instead "
                      "(downloadlimiet: verbinding niet gesloten)")
        return

    def close() -> None:
        io = handler.transports.get(server)
        if io is not None and io.writer is not None and server.connected:
            io.writer.close()

    asyncio.get_running_loop().call_soon(close)
