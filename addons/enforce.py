"""Identify the client, decide, act, and tag the flow: the enforcing addon.

- CONNECT (explicit proxy): decided on the target; a blocked target in a passthrough zone is refused
  with 403; intercept zones go on to TLS so the pupil gets a readable block page.
- TLS ClientHello: decided on the SNI and the CONNECT target, the stricter wins. Passthrough zones
  (and the no-decrypt list) pass allowed connections through untouched and close blocked ones.
- HTTP requests (plain, or decrypted in intercept zones): decided on the full URL, with the Host
  header, the request target and the SNI all judged; a blocked request gets the block page (403).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import http, tls
from OpenSSL import SSL

from poortwachter import blockpage, metrics
from poortwachter.audit.record import Seen
from poortwachter.decide import Verdict
from poortwachter.gateway import client_address
from poortwachter.hosts import BadHost, normalize_host

from .engine import EngineAddon

log = logging.getLogger("poortwachter")
META = "poortwachter"
HOST = "poortwachter_host"


def _fail_closed(hook: Callable[..., None]) -> Callable[..., None]:
    """A bug or a hostile input must neither crash the proxy nor let the request through."""

    @functools.wraps(hook)
    def wrapper(self: Enforce, arg: Any) -> None:
        try:
            hook(self, arg)
        except Exception as exc:
            log.error("%s failed (%s): request refused", hook.__name__, type(exc).__name__)
            if isinstance(arg, http.HTTPFlow) and arg.response is None:
                arg.response = http.Response.make(503, "Poortwachter: interne fout / internal error\n",
                                                  {"Content-Type": "text/plain; charset=utf-8"})
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
