"""The running sensor: frames in, detectors, metrics, log lines and download limits out.

Two threads touch the detectors: the capture thread (every frame) and the main thread (policy
reloads and pruning, once a second). A lock keeps them apart; it is uncontended nearly always.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..policy.compiled import CompiledPolicy
from ..paths import file_stamp as _stamp
from ..policy.load import PolicyError, load_policy
from ..policy.model import Policy, Sensor
from .arp import ArpWatch
from .capture import Frame, FrameSocket, observations, sniffer
from .dhcp import DhcpWatch
from .limits import DownloadLimits, LimitVerdict, end_of_day
from .metrics import MetricsServer, SensorMetrics
from .observations import OTHER, ArpClaim, DhcpReply, Finding, IpPacket
from .scans import ScanWatch
from .volume import VolumeWatch
from .zones import NO_ZONE, Zones

log = logging.getLogger("poortwachter.sensor")

LOG_EVERY = 60.0   # seconds: at most one line per finding kind and zone, with a count of the rest

MESSAGES = {
    ("arp_spoofing", "mac_changed"): "ARP-spoofing: een adres wisselt van MAC / ARP spoofing: an address changed its MAC",
    ("arp_spoofing", "gateway_claimed"): "ARP-spoofing: een ander apparaat claimt het gateway-adres / "
                                         "ARP spoofing: another device claims the gateway address",
    ("rogue_dhcp", "rogue"): "Vreemde DHCP-server / Rogue DHCP server",
    ("port_scan", "scan"): "Poortscan / Port scan",
    ("port_scan", "sweep"): "Netwerkscan (sweep) / Sweep",
    ("excessive_download", "excessive"): "Overmatig downloaden / Excessive downloading",
}


class _Say:
    """Log lines per (detector, kind, zone), at most one per LOG_EVERY seconds."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    def __call__(self, finding: Finding, source: str, now: float) -> None:
        key = (finding.detector, finding.kind, finding.zone)
        last, held = self._last.get(key, (-LOG_EVERY, 0))
        if now - last < LOG_EVERY:
            self._last[key] = (last, held + 1)
            return
        self._last[key] = (now, 0)
        more = f" (+{held} sinds de vorige melding / since the last line)" if held else ""
        log.warning("%s in zone %s (%s)%s", MESSAGES[finding.detector, finding.kind], finding.zone, source, more)


class SensorService:
    def __init__(self, policy_file: Path, metrics: SensorMetrics, *,
                 limits_store: Callable[[], object] | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.policy_file = Path(policy_file)
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._say = _Say()
        self._stamp = _stamp(self.policy_file)
        policy = load_policy(self.policy_file)   # raises PolicyError: never start on a bad policy
        self.policy = policy
        self.settings = policy.sensor or Sensor()
        self.zones = Zones(CompiledPolicy(policy))
        zone_of, is_public = self.zones.of, self.zones.is_public
        self.arp = ArpWatch(self.settings, zone_of)
        self.dhcp = DhcpWatch(self.settings, zone_of)
        self.scans = ScanWatch(self.settings, zone_of)
        self.volume = VolumeWatch(self.settings, zone_of, is_public)
        self.limits = DownloadLimits(limits_store, clock=clock, on_imposed=self._imposed) if limits_store else None
        self._skipped = 0
        metrics.zones(self.zones.names)
        self._describe()

    # --- the policy ----------------------------------------------------------------------------
    def _describe(self) -> None:
        s = self.settings
        dhcp = ("not listed: the first server seen is taken as the school's (niet opgegeven)"
                if s.dhcp_servers is None else f"{len(s.dhcp_servers)} listed")
        download = s.excessive_download
        log.info("sensor policy: %d zones, %d gateways, DHCP servers %s; scans %d ports / %d hosts in %d s; "
                 "excessive download %d bytes in %d s -> %s", len(self.zones.names), len(s.gateways), dhcp,
                 s.scans.ports, s.scans.hosts, s.scans.window, download.bytes, download.window, download.action)

    def check_policy(self) -> bool:
        """Reload the policy when its file changed; an invalid one is refused and the old one stays."""
        stamp = _stamp(self.policy_file)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = load_policy(self.policy_file)
        except PolicyError as exc:
            log.error("policy refused, the previous one stays in force (beleid geweigerd, het vorige blijft):\n%s", exc)
            return False
        self.apply(policy)
        log.info("policy reloaded (beleid herladen)")
        return True

    def apply(self, policy: Policy) -> None:
        settings = policy.sensor or Sensor()
        zones = Zones(CompiledPolicy(policy))
        with self._lock:
            self.policy, self.settings, self.zones = policy, settings, zones
            self.arp.configure(settings, zones.of)
            self.dhcp.configure(settings, zones.of)
            self.scans.configure(settings, zones.of)
            self.volume.configure(settings, zones.of, zones.is_public)
        self.metrics.zones(zones.names)
        self._describe()

    # --- frames --------------------------------------------------------------------------------
    def on_frame(self, frame: Frame) -> None:
        """The capture thread's callback: must never raise (scapy would close the socket)."""
        try:
            self.handle(observations(frame.data, frame.time), frame.time)
        except Exception as exc:
            self._skipped += 1
            if self._skipped == 1 or self._skipped % 10000 == 0:
                log.error("frame skipped (frame overgeslagen), %d so far: %s", self._skipped, type(exc).__name__)

    def handle(self, seen: tuple[IpPacket | ArpClaim | DhcpReply, ...], when: float) -> None:
        metrics = self.metrics
        metrics.packets.inc()
        metrics.last_packet.set(when)
        found: list[Finding] = []
        with self._lock:
            for item in seen:
                if type(item) is IpPacket:
                    self._traffic(item, found)
                elif type(item) is ArpClaim:
                    finding = self.arp.observe(item)
                    if finding is not None:
                        found.append(finding)
                elif type(item) is DhcpReply:
                    finding = self.dhcp.observe(item)
                    if finding is not None:
                        found.append(finding)
        for finding in found:
            self.report(finding, when)

    def _traffic(self, packet: IpPacket, found: list[Finding]) -> None:
        up, down = self.volume.share(packet)
        if up is not None:
            self.metrics.bytes_of(up, "up").inc(packet.size)
        if down is not None:
            self.metrics.bytes_of(down, "down").inc(packet.size)
            if down != NO_ZONE:
                finding = self.volume.received(packet.dst, down, packet.size, packet.time)
                if finding is not None:
                    found.append(finding)
        if packet.tcp != OTHER:
            found.extend(self.scans.observe(packet))

    def report(self, finding: Finding, when: float) -> None:
        self.metrics.found(finding)
        settings = self.settings
        download = settings.excessive_download
        self._say(finding, download.source if finding.detector == "excessive_download" else settings.source, when)
        if finding.detector == "excessive_download" and download.action == "limit" and finding.subject:
            if self.limits is None:
                return
            now = self.clock()
            until = end_of_day(now, self.policy.timetable.timezone)
            reason = (f"{download.source}: meer dan {download.bytes} bytes in {download.window} s / "
                      f"more than {download.bytes} bytes in {download.window} s (sensor)")
            self.limits.submit(LimitVerdict(finding.subject, finding.zone, download.max_download, until, reason))

    def _imposed(self, verdict: LimitVerdict) -> None:
        self.metrics.download_limits.labels(verdict.zone).inc()
        log.warning("download limit of %d bytes per response imposed in zone %s until %s "
                    "(downloadlimiet opgelegd)", verdict.max_bytes, verdict.zone, verdict.until.isoformat())

    def housekeeping(self, now: float) -> None:
        with self._lock:
            self.arp.prune(now)
            self.scans.prune(now)
            self.volume.prune(now)

    # --- running -------------------------------------------------------------------------------
    def run(self, interface: str, listen: str, stop: threading.Event, *, tick: float = 1.0) -> int:
        """Capture on `interface` until `stop` is set: 0 when stopped, 1 when the capture died."""
        sock = FrameSocket(interface)            # first: when the metrics answer, capture is on
        server: MetricsServer | None = None
        try:
            server = self.metrics.serve(listen)
            if self.limits is not None:
                self.limits.start()
            sniff = sniffer(sock, self.on_frame)
            log.info("sensor listening on %s, metrics on http://%s/metrics (sensor luistert)", interface, listen)
            while not stop.wait(tick):
                if sniff.thread is not None and not sniff.thread.is_alive():
                    log.error("capture on %s stopped (opname gestopt): %s", interface,
                              type(sniff.exception).__name__ if sniff.exception else "the socket failed")
                    return 1
                self.check_policy()
                self.housekeeping(time.time())
                try:
                    self.metrics.dropped.inc(sock.dropped())
                except OSError:
                    pass   # the socket just failed: the next turn ends the run
            sniff.stop()
            return 0
        finally:
            sock.close()
            if server is not None:
                server.close()
            if self.limits is not None:
                self.limits.stop()
