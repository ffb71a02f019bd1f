"""Network health metrics of the gateway: failed TLS handshakes by zone, upstream errors, client
errors, and the time upstream servers take to answer. Labels are zone, side and kind only."""

from __future__ import annotations

import logging
from typing import Any

from mitmproxy import flow as mflow
from mitmproxy import http, tls

from poortwachter import metrics
from poortwachter.decide import zone_for
from poortwachter.gateway import client_address

from .engine import EngineAddon
from .enforce import META, _refusing_context

log = logging.getLogger("poortwachter")

# Words in mitmproxy's error messages, first match wins. The message itself is never logged: it can
# carry a host name.
_UPSTREAM_KINDS = (
    ("timeout", ("timed out", "timeout")),
    ("tls", ("tls", "ssl", "certificate", "handshake")),
    ("connect", ("connect call failed", "refused", "unreachable", "resolve", "name or service",
                 "name resolution", "getaddrinfo", "no route")),
)


def upstream_kind(message: str) -> str | None:
    """The kind of upstream failure a flow error describes, or None when the client caused it."""
    text = message.lower()
    if "client" in text:
        return None
    for kind, words in _UPSTREAM_KINDS:
        if any(word in text for word in words):
            return kind
    return "protocol" if "server" in text else None


class Health:
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine

    def _zone(self, conn: Any) -> str:
        engine = self.engine.engine
        try:
            return zone_for(engine.policy, client_address(conn.peername[0])).name if engine else "none"
        except Exception:   # a peer without an address (unix socket, closed early): no zone
            return "none"

    def tls_failed_client(self, data: tls.TlsData) -> None:
        # Handshakes the enforcer refused on purpose (blocked passthrough sites) are decisions, not
        # failures; they are counted as poortwachter_tls_connections_total{handling="refused"}.
        if data.ssl_conn is not None and data.ssl_conn.get_context() is _refusing_context():
            return
        metrics.TLS_FAILURES.labels(self._zone(data.context.client), "client").inc()

    def tls_failed_server(self, data: tls.TlsData) -> None:
        metrics.TLS_FAILURES.labels(self._zone(data.context.client), "upstream").inc()

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.error is None or flow.error.msg == mflow.Error.KILLED_MESSAGE:
            return   # killed by an addon: a decision, not an error
        if (flow.metadata.get(META) or {}).get("action") == "block":
            return   # a blocked flow (e.g. a refused or cut-off download whose upstream the enforcer closed)
        kind = upstream_kind(flow.error.msg)
        if kind is None:
            metrics.ERRORS.labels("client").inc()
        else:
            metrics.UPSTREAM_ERRORS.labels(kind).inc()

    def response(self, flow: http.HTTPFlow) -> None:
        # Only answers that came from upstream: the block page is made here and never dials out.
        if flow.server_conn.timestamp_start is None or flow.response is None:
            return
        started = flow.request.timestamp_start
        first_byte = flow.response.timestamp_start
        if started and first_byte and first_byte >= started:
            metrics.RESPONSE_SECONDS.observe(first_byte - started)
