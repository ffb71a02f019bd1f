"""Serves the Prometheus metrics on loopback (or where the admin says), from the gateway process."""

from __future__ import annotations

import logging

from mitmproxy import ctx, exceptions
from prometheus_client import start_http_server

log = logging.getLogger("poortwachter")


class MetricsServer:
    def __init__(self) -> None:
        self.started = False

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("poortwachter_metrics", str, "127.0.0.1:9108",
                          "Prometheus metrics address HOST:PORT; empty to switch off.")

    def configure(self, updated: set[str]) -> None:
        if "poortwachter_metrics" in updated:
            value = ctx.options.poortwachter_metrics
            if value:
                host, sep, port = value.rpartition(":")
                if not sep or not port.isdigit():
                    raise exceptions.OptionsError(f"poortwachter_metrics: not HOST:PORT: {value!r}")

    def running(self) -> None:
        value = ctx.options.poortwachter_metrics
        if not value or self.started:
            return
        host, _, port = value.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]"))
        self.started = True
        log.info("metrics on http://%s/metrics", value)
