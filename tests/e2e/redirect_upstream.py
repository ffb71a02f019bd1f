"""TEST-ONLY mitmproxy addon: every server connection goes to the local upstream servers.

The tests use real-looking names (www.tiktok.com, www.pornhub.com, ...) that must never leave the
machine. `server_connect` runs before mitmproxy dials, so the address is swapped there: port 443 to
the local HTTPS server, anything else to the local HTTP server. The SNI the client sent is kept,
so the upstream mints a certificate for that name and mitmproxy's upstream verification (against
the test CA) stays on. Connections to a loopback address are left alone (the ip-literal tests).
Never load this addon outside tests/e2e.
"""

from __future__ import annotations

import ipaddress

from mitmproxy import ctx
from mitmproxy.proxy import server_hooks


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class RedirectUpstream:
    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("e2e_upstream_http", int, 0, "Port of the local upstream HTTP server.")
        loader.add_option("e2e_upstream_https", int, 0, "Port of the local upstream HTTPS server.")

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.address is None:
            return
        host, port = server.address[0], int(server.address[1])
        ip = _ip(host)
        if ip is not None and ip.is_loopback:
            return
        if port == 443:
            if not ctx.options.e2e_upstream_https:
                server.error = "e2e: no upstream HTTPS port set"
                return
            if server.sni is None and ip is None:
                server.sni = host  # keep the name for upstream verification after the address swap
            server.address = ("127.0.0.1", ctx.options.e2e_upstream_https)
        else:
            if not ctx.options.e2e_upstream_http:
                server.error = "e2e: no upstream HTTP port set"
                return
            server.address = ("127.0.0.1", ctx.options.e2e_upstream_http)


addons = [RedirectUpstream()]
