"""The sensor's Prometheus metrics, in a registry of its own and on a port of its own.

Labels are zones and kinds only, never an address or a MAC. Label sets that can be known in
advance (kinds, the policy's zones) are created at zero, so a dashboard or an alert on `rate()`
sees them before the first finding. Children are looked up once per label set (hot path).
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector, start_http_server

from .observations import Finding
from .zones import NO_ZONE

ARP_KINDS = ("mac_changed", "gateway_claimed")
SCAN_KINDS = ("scan", "sweep")
DIRECTIONS = ("up", "down")


class SensorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        ProcessCollector(registry=r)   # resident memory: the detectors' memory is bounded, this shows it
        self.packets = Counter("poortwachter_sensor_packets", "Packets the sensor saw", registry=r)
        self.arp_spoofing = Counter("poortwachter_sensor_arp_spoofing",
                                    "ARP claims of an address that belongs to another MAC (004 art. 12)",
                                    ["kind"], registry=r)
        self.rogue_dhcp = Counter("poortwachter_sensor_rogue_dhcp",
                                  "DHCP offers and acks from a server not in the policy (004 art. 12)", registry=r)
        self.port_scans = Counter("poortwachter_sensor_port_scans",
                                  "Port scans and sweeps from a zone (004 art. 12)", ["zone", "kind"], registry=r)
        self.bytes = Counter("poortwachter_sensor_bytes", "IP bytes by zone and direction seen from the zone",
                             ["zone", "direction"], registry=r)
        self.excessive_downloads = Counter("poortwachter_sensor_excessive_downloads",
                                           "Clients that crossed the download threshold (004 art. 13)",
                                           ["zone"], registry=r)
        self.download_limits = Counter("poortwachter_sensor_download_limits",
                                       "Download limits the sensor imposed on the gateway (004 art. 13)",
                                       ["zone"], registry=r)
        self.dropped = Counter("poortwachter_sensor_dropped_packets",
                               "Packets the kernel dropped because the sensor fell behind (the counts miss them)",
                               registry=r)
        self.last_packet = Gauge("poortwachter_sensor_last_packet_timestamp_seconds",
                                 "Capture time of the last packet (an alert when it stops moving: the sensor is blind)",
                                 registry=r)
        for kind in ARP_KINDS:
            self.arp_spoofing.labels(kind)
        self._bytes: dict[tuple[str, str], Any] = {}

    def zones(self, names: tuple[str, ...]) -> None:
        """Create the label sets of the policy's zones (and of "none") at zero."""
        for zone in (*names, NO_ZONE):
            for direction in DIRECTIONS:
                self.bytes_of(zone, direction)
        for zone in names:
            for kind in SCAN_KINDS:
                self.port_scans.labels(zone, kind)
            self.excessive_downloads.labels(zone)
            self.download_limits.labels(zone)

    def bytes_of(self, zone: str, direction: str) -> Any:
        child = self._bytes.get((zone, direction))
        if child is None:
            child = self._bytes[(zone, direction)] = self.bytes.labels(zone, direction)
        return child

    def found(self, finding: Finding) -> None:
        if finding.detector == "arp_spoofing":
            self.arp_spoofing.labels(finding.kind).inc()
        elif finding.detector == "rogue_dhcp":
            self.rogue_dhcp.inc()
        elif finding.detector == "port_scan":
            self.port_scans.labels(finding.zone, finding.kind).inc()
        elif finding.detector == "excessive_download":
            self.excessive_downloads.labels(finding.zone).inc()

    def serve(self, listen: str) -> MetricsServer:
        host, port = parse_listen(listen)
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread)


class MetricsServer:
    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics-listen: HOST:PORT verwacht / HOST:PORT expected, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
