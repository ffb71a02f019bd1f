"""TEST-ONLY mitmproxy addon: every server connection goes to the local upstream servers.

The tests use real-looking names (www.tiktok.com, www.pornhub.com, ...) that must never leave the
machine. `server_connect` runs before mitmproxy dials, so the address is swapped there: port 443 to
the local HTTPS server, anything else to the local HTTP server. The SNI the client sent is kept,
so the upstream mints a certificate for that name and mitmproxy's upstream verification (against
the test CA) stays on. Connections to a loopback address are left alone (the ip-literal tests).
`e2e_upstream_map` sends chosen destinations (`HOST:PORT=LOCALPORT,...`) to other local servers
instead (the gate tests' echo, TLS and WebSocket servers); empty, nothing changes.
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


def parse_map(spec: str) -> dict[tuple[str, int], int]:
    """`HOST:PORT=LOCALPORT,...` -> {(host, port): local port}."""
    routes: dict[tuple[str, int], int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        target, _, local = item.partition("=")
        host, _, port = target.rpartition(":")
        routes[(host.lower(), int(port))] = int(local)
    return routes


class RedirectUpstream:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, int], int] = {}

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("e2e_upstream_http", int, 0, "Port of the local upstream HTTP server.")
        loader.add_option("e2e_upstream_https", int, 0, "Port of the local upstream HTTPS server.")
        loader.add_option("e2e_upstream_map", str, "",
                          "HOST:PORT=LOCALPORT,...: destinations sent to other local servers.")

    def configure(self, updated: set[str]) -> None:
        if "e2e_upstream_map" in updated:
            self.routes = parse_map(ctx.options.e2e_upstream_map)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.address is None:
            return
        host, port = server.address[0], int(server.address[1])
        local = self.routes.get((host.lower(), port))
        if local is not None:
            if server.sni is None and _ip(host) is None:
                server.sni = host
            server.address = ("127.0.0.1", local)
            return
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
