"""Identify the client, decide, act, and tag the flow: the enforcing addon.

- CONNECT (explicit proxy): decided on the target; a blocked target in a passthrough zone is refused
  with 403; intercept zones go on to TLS so the pupil gets a readable block page.
- TLS ClientHello: decided on the SNI and the CONNECT target, the stricter wins. Passthrough zones
  (and the no-decrypt list) pass allowed connections through untouched and close blocked ones.
- HTTP requests (plain, or decrypted in intercept zones): decided on the full URL, with the Host
  header, the request target and the SNI all judged; a blocked request gets the block page (403).
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
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import ctx, http, tls
from mitmproxy.net.http.http1 import expected_http_body_size
from OpenSSL import SSL

from poortwachter import blockpage, metrics
from poortwachter.audit.record import Seen
from poortwachter.decide import Verdict
from poortwachter.gateway import client_address
from poortwachter.hosts import BadHost, normalize_host
from poortwachter.state import DownloadLimit

from .engine import EngineAddon

log = logging.getLogger("poortwachter")
META = "poortwachter"
HOST = "poortwachter_host"
LIMITED = "poortwachter_limited"   # a client under a download limit: its verdict waits for the response


def _fail_closed(hook: Callable[..., None]) -> Callable[..., None]:
    """A bug or a hostile input must neither crash the proxy nor let the request through."""

    @functools.wraps(hook)
    def wrapper(self: Enforce, arg: Any) -> None:
        try:
            hook(self, arg)
        except Exception as exc:
            log.error("%s failed (%s): request refused", hook.__name__, type(exc).__name__)
            metrics.ERRORS.labels("internal").inc()
            if isinstance(arg, http.HTTPFlow) and arg.response is None:
                arg.response = http.Response.make(503, "Poortwachter: interne fout / internal error\n",
                                                  {"Content-Type": "text/plain; charset=utf-8"})
            elif isinstance(arg, http.HTTPFlow) and arg.killable:
                arg.kill()   # the response headers are in: its body must not pass unchecked
            elif isinstance(arg, tls.ClientHelloData):
                self._refuse.add(arg.context.client.id)
    return wrapper


@functools.cache
def _refusing_context() -> SSL.Context:
    return SSL.Context(SSL.TLS_SERVER_METHOD)


def _mode(conn: Any) -> str:
    return getattr(conn.proxy_mode, "type_name", "regular")


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
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine
        self._refuse: set[str] = set()  # client connection ids whose TLS handshake is to be refused
        # AUDIT HAND-OFF: addons/audit.py's AuditRecorder.accept, set by build(). Called once per
        # final verdict (where the verdict is also counted) with a small tuple; it only appends
        # to a bounded queue, the recorder's thread does the rest.
        self.audit: Callable[[Seen], None] | None = None

    # --- explicit proxy: CONNECT ----------------------------------------------------------
    @_fail_closed
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        engine = self.engine.engine
        assert engine is not None
        try:
            host = normalize_host(flow.request.host)
        except BadHost:
            flow.response = http.Response.make(400, "Ongeldige host / Invalid host\n")
            return
        started = time.perf_counter()
        client = client_address(flow.client_conn.peername[0])
        verdict = engine.decide(client, host)
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        flow.metadata[META] = verdict.as_dict()
        if verdict.blocked and (verdict.inspection != "intercept" or engine.undecrypted(host)):
            _record(verdict)
            if self.audit is not None:   # AUDIT HAND-OFF
                self.audit(Seen(time.time(), "connect", verdict, client, [host], None))
            flow.response = http.Response.make(
                403, f"Geblokkeerd / Blocked: {verdict.rule} ({verdict.source})\n",
                {"Content-Type": "text/plain; charset=utf-8", "Connection": "close"})

    # --- TLS: passthrough or intercept --------------------------------------------------------
    @_fail_closed
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if data.ignore_connection:
            return
        engine = self.engine.engine
        assert engine is not None
        client_conn = data.context.client
        names: list[str] = []
        try:
            if data.client_hello.sni:
                names.append(normalize_host(data.client_hello.sni))
            target = data.context.server.address
            # In transparent mode the target is the resolved IP the client dialled, not a name it
            # chose: judge it only when there is no SNI. Behind CONNECT it is what the client asked.
            if target and (not names or _mode(client_conn) != "transparent"):
                names.append(normalize_host(str(target[0])))
        except BadHost:
            self._refuse.add(client_conn.id)
            return
        if not names:
            self._refuse.add(client_conn.id)
            return
        started = time.perf_counter()
        client = client_address(client_conn.peername[0])
        verdict = engine.decide_all(client, names)
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        if verdict.inspection == "intercept" and not any(engine.undecrypted(n) for n in names):
            metrics.TLS_PASSTHROUGH.labels(verdict.zone, "intercept").inc()
            return  # decrypted: every request inside is decided on its URL
        _record(verdict)
        if self.audit is not None:   # AUDIT HAND-OFF
            self.audit(Seen(time.time(), "tls", verdict, client, names, None))
        if verdict.blocked:
            metrics.TLS_PASSTHROUGH.labels(verdict.zone, "refused").inc()
            self._refuse.add(client_conn.id)
        else:
            metrics.TLS_PASSTHROUGH.labels(verdict.zone, "passthrough").inc()
            data.ignore_connection = True

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
    @_fail_closed
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        engine = self.engine.engine
        assert engine is not None
        req = flow.request
        raw: list[str] = []
        host_header = req.host_header
        if host_header:
            raw.append(host_header)
        if flow.client_conn.sni:
            raw.append(flow.client_conn.sni)
        if _mode(flow.client_conn) != "transparent" or not raw:
            raw.append(req.host)
        try:
            names = [normalize_host(name) for name in raw]
        except BadHost:
            flow.response = http.Response.make(400, "Ongeldige host / Invalid host\n",
                                               {"Content-Type": "text/plain; charset=utf-8"})
            return
        started = time.perf_counter()
        client = client_address(flow.client_conn.peername[0])
        path = req.path or "/"
        verdict = engine.decide_all(client, names, path)
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
        if self.audit is not None:   # AUDIT HAND-OFF
            self.audit(Seen(time.time(), "http", verdict, client, names, path))
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
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        limited = flow.metadata.get(LIMITED)
        if limited is None:
            return
        response = flow.response
        assert response is not None
        try:
            size = expected_http_body_size(flow.request, response)
        except ValueError:   # a malformed Content-Length: count what actually comes
            size = None
        if size is not None and size >= 0:
            if size > limited.limit.max_bytes:
                self._refuse_download(flow, limited)
            else:
                self._settle(flow, None)
            return
        response.stream = _Cutoff(self, flow, limited.limit.max_bytes)

    def error(self, flow: http.HTTPFlow) -> None:
        # the upstream or the client went away before the verdict was settled: it stayed allowed
        if LIMITED in flow.metadata:
            self._settle(flow, None)

    def _blocked_by_limit(self, limited: _Limited) -> Verdict:
        engine = self.engine.engine
        source = blockpage.limit_source(engine.policy.policy) if engine is not None else ""
        return limited.verdict._replace(action="block", rule=blockpage.DOWNLOAD_LIMIT, source=source)

    def _settle(self, flow: http.HTTPFlow, verdict: Verdict | None) -> Verdict | None:
        """Count and record the final verdict of a limited client's request, once: `None` is the
        allowed verdict of the request; a block is recorded at the moment it happened."""
        limited: _Limited | None = flow.metadata.pop(LIMITED, None)
        if limited is None:
            return None
        if verdict is None:
            _record(limited.verdict)
            if self.audit is not None:   # AUDIT HAND-OFF
                self.audit(limited.seen)
            return limited.verdict
        flow.metadata[META] = verdict.as_dict()
        _record(verdict)
        if self.audit is not None:   # AUDIT HAND-OFF
            seen = limited.seen
            self.audit(Seen(time.time(), seen.kind, verdict, seen.client, seen.names, seen.path))
        return verdict

    def _refuse_download(self, flow: http.HTTPFlow, limited: _Limited) -> None:
        """The page instead of the response. mitmproxy has no way to answer differently once the
        upstream's headers are in and then drop the rest of its body: the page is streamed in
        place of the first upstream chunk, and the upstream connection is closed after it."""
        verdict = self._blocked_by_limit(limited)
        self._settle(flow, verdict)
        engine = self.engine.engine
        contact = engine.policy.settings.contact if engine is not None else ""
        body = blockpage.render_download_limit(verdict, limited.limit.until, limited.limit.max_bytes, contact)
        page = http.Response.make(403, body, {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
            "X-Poortwachter-Rule": verdict.rule})
        page.stream = _PageInstead(flow, body)
        flow.response = page


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
