"""The sensor service on real frames: metrics per finding, nothing on normal traffic, no address in
any metric or log line, policy reloads, and download limits written into a real SQLite store
(kept in memory and retried while the store is away)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from poortwachter.sensor.capture import Frame
from poortwachter.sensor.limits import end_of_day
from poortwachter.sensor.metrics import SensorMetrics
from poortwachter.sensor.service import SensorService
from poortwachter.store import default_url, open_store
from poortwachter.workflow.limits import list_download_limits

from .helpers import POLICY

GW, GW_MAC, DHCP_SERVER = "10.20.0.1", "02:00:5e:00:00:01", "10.20.0.2"
LAPTOP, LAPTOP_MAC, OTHER, ATTACKER_MAC = "10.20.3.4", "02:00:00:00:03:04", "10.20.3.5", "02:00:00:00:66:66"
SITE, SERVER = "198.51.100.80", "10.40.0.10"
ADDRESSES = (GW, DHCP_SERVER, LAPTOP, OTHER, SITE, SERVER, "10.20.66.66")
MACS = (GW_MAC, LAPTOP_MAC, ATTACKER_MAC)

SENSOR = """\
sensor:
  gateways: [{{address: {gw}, mac: "{gw_mac}"}}]
  dhcp_servers: [{dhcp}]
  scans: {{window: 60, ports: {ports}, hosts: 10}}
  excessive_download: {{window: 600, bytes: 100000, action: {action}, max_download: 5000000}}
"""
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def write_policy(path: Path, ports: int = 10, action: str = "alert") -> Path:
    path.write_text(POLICY + SENSOR.format(gw=GW, gw_mac=GW_MAC, dhcp=DHCP_SERVER, ports=ports, action=action))
    return path


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def make(tmp_path: Path, registry: CollectorRegistry, store_url: list[str] | None = None, **kw: object) -> SensorService:
    opener = (lambda: open_store(store_url[0])) if store_url is not None else None
    return SensorService(write_policy(tmp_path / "sensor.yaml", **kw), SensorMetrics(registry),  # type: ignore[arg-type]
                         limits_store=opener, clock=lambda: NOW)


def feed(service: SensorService, frames: list[Packet], start: float = 1000.0) -> None:
    for i, frame in enumerate(frames):
        service.on_frame(Frame(bytes(frame), start + i / 1000))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    assert sample is not None, f"{name}{labels} is not exposed"
    return sample


def arp(address: str, mac: str) -> Packet:
    return Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=mac, psrc=address, pdst=address)


def dhcp_offer(server: str, mac: str) -> Packet:
    return (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=server, dst="255.255.255.255") / UDP(sport=67, dport=68)
            / BOOTP(op=2, yiaddr=OTHER) / DHCP(options=[("message-type", "offer"), "end"]))


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, payload: int = 0) -> Packet:
    return Ether(src=LAPTOP_MAC, dst=GW_MAC) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / Raw(b"x" * payload)


def normal_traffic() -> list[Packet]:
    frames = [arp(GW, GW_MAC), arp(LAPTOP, LAPTOP_MAC), dhcp_offer(DHCP_SERVER, "02:00:00:00:00:02"),
              arp(LAPTOP, LAPTOP_MAC), arp(GW, GW_MAC)]
    for port in (443, 443, 80):   # a client opening three connections, each answered
        frames += [tcp(LAPTOP, SITE, 50000 + port, port, "S"), tcp(SITE, LAPTOP, port, 50000 + port, "SA")]
    return frames + [tcp(SITE, LAPTOP, 443, 50443, "A", 1000) for _ in range(20)]


def attacks() -> list[Packet]:
    return ([arp(GW, ATTACKER_MAC), arp(LAPTOP, LAPTOP_MAC), arp(LAPTOP, ATTACKER_MAC),
             dhcp_offer("10.20.66.66", ATTACKER_MAC)]
            + [tcp(LAPTOP, SERVER, 40000, port, "S") for port in range(1, 11)]
            + [tcp(LAPTOP, f"10.40.1.{i}", 40001, 445, "S") for i in range(10)])


def test_normal_traffic_finds_nothing_and_counts_bytes(tmp_path: Path, registry: CollectorRegistry) -> None:
    service = make(tmp_path, registry)
    feed(service, normal_traffic())
    assert value(registry, "poortwachter_sensor_packets_total") == len(normal_traffic())
    assert value(registry, "poortwachter_sensor_arp_spoofing_total", kind="mac_changed") == 0
    assert value(registry, "poortwachter_sensor_arp_spoofing_total", kind="gateway_claimed") == 0
    assert value(registry, "poortwachter_sensor_rogue_dhcp_total") == 0
    for kind in ("scan", "sweep"):
        assert value(registry, "poortwachter_sensor_port_scans_total", zone="klas", kind=kind) == 0
    assert value(registry, "poortwachter_sensor_excessive_downloads_total", zone="klas") == 0
    assert value(registry, "poortwachter_sensor_bytes_total", zone="klas", direction="down") == 20 * 1040 + 3 * 40
    assert value(registry, "poortwachter_sensor_bytes_total", zone="klas", direction="up") == 3 * 40 + len(dhcp_offer(DHCP_SERVER, GW_MAC)[IP])
    assert value(registry, "poortwachter_sensor_last_packet_timestamp_seconds") == pytest.approx(1000.0 + 30 / 1000)


def test_each_attack_shows_in_its_metric(tmp_path: Path, registry: CollectorRegistry) -> None:
    service = make(tmp_path, registry)
    feed(service, normal_traffic() + attacks())
    assert value(registry, "poortwachter_sensor_arp_spoofing_total", kind="gateway_claimed") == 1
    assert value(registry, "poortwachter_sensor_arp_spoofing_total", kind="mac_changed") == 1
    assert value(registry, "poortwachter_sensor_rogue_dhcp_total") == 1
    assert value(registry, "poortwachter_sensor_port_scans_total", zone="klas", kind="scan") == 1
    assert value(registry, "poortwachter_sensor_port_scans_total", zone="klas", kind="sweep") == 1
    feed(service, [tcp(SITE, OTHER, 443, 50000, "A", 1400) for _ in range(80)], start=2000.0)
    assert value(registry, "poortwachter_sensor_excessive_downloads_total", zone="klas") == 1


def test_no_address_or_mac_in_metrics_or_log_lines(tmp_path: Path, registry: CollectorRegistry,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    service = make(tmp_path, registry, store_url=[default_url(tmp_path)], action="limit")
    feed(service, normal_traffic() + attacks() + [tcp(SITE, OTHER, 443, 50000, "A", 1400) for _ in range(80)])
    assert service.limits is not None
    service.limits.flush()
    exposition = generate_latest(registry).decode()
    assert "poortwachter_sensor_download_limits_total{zone=\"klas\"} 1.0" in exposition
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Port scan" in logged and "gateway" in logged and "downloadlimiet opgelegd" in logged
    for text in (exposition, logged):
        for secret in ADDRESSES + MACS + tuple(m.upper() for m in MACS) + tuple(m.replace(":", "") for m in MACS):
            assert secret not in text


def test_a_changed_policy_is_applied_an_invalid_one_refused(tmp_path: Path, registry: CollectorRegistry,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    service = make(tmp_path, registry, ports=10)
    scan3 = [tcp(LAPTOP, SERVER, 40000, port, "S") for port in range(1, 4)]
    feed(service, scan3)
    assert value(registry, "poortwachter_sensor_port_scans_total", zone="klas", kind="scan") == 0

    policy = write_policy(tmp_path / "sensor.yaml", ports=3)
    os.utime(policy, ns=(0, 10**18))   # a different stamp even within one mtime tick
    assert service.check_policy()
    feed(service, [tcp(LAPTOP, "10.40.0.11", 40000, port, "S") for port in range(1, 4)], start=1001.0)
    assert value(registry, "poortwachter_sensor_port_scans_total", zone="klas", kind="scan") == 1

    text = policy.read_text().replace("ports: 3", "ports: 1")
    policy.write_text(text)
    assert not service.check_policy()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "ports: 1" in row)
    assert f"sensor.yaml:{line}: sensor.scans.ports: " in caplog.text
    assert service.settings.scans.ports == 3


def test_limits_wait_for_the_store_and_are_written_once(tmp_path: Path, registry: CollectorRegistry,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    url = [f"sqlite:///{blocker}/poortwachter.db"]   # its directory cannot be made: unreachable
    service = make(tmp_path, registry, store_url=url, action="limit")
    limits = service.limits
    assert limits is not None
    feed(service, [tcp(SITE, OTHER, 443, 50000, "A", 1400) for _ in range(80)])
    limits.flush()
    assert limits.pending == 1
    assert value(registry, "poortwachter_sensor_download_limits_total", zone="klas") == 0
    assert "store unreachable" in caplog.text and OTHER not in caplog.text

    url[0] = default_url(tmp_path)     # the store is back
    limits.flush()
    assert limits.pending == 0
    assert value(registry, "poortwachter_sensor_download_limits_total", zone="klas") == 1
    store = open_store(url[0])
    try:
        with store.read() as s:
            [limit] = list_download_limits(s, now=NOW)
    finally:
        store.close()
    assert (limit.address, limit.zone, limit.max_bytes) == (OTHER, "klas", 5_000_000)
    assert limit.until == end_of_day(NOW) and "004 art. 13" in limit.reason

    # the client crosses again the same day: the limit in force stays the only one
    feed(service, [tcp(SITE, OTHER, 443, 50000, "A", 1400) for _ in range(80)], start=1700.0)
    limits.flush()
    assert limits.pending == 0
    assert value(registry, "poortwachter_sensor_excessive_downloads_total", zone="klas") == 2
    assert value(registry, "poortwachter_sensor_download_limits_total", zone="klas") == 1


def test_alert_writes_no_limit(tmp_path: Path, registry: CollectorRegistry) -> None:
    service = make(tmp_path, registry, store_url=[default_url(tmp_path)], action="alert")
    feed(service, [tcp(SITE, OTHER, 443, 50000, "A", 1400) for _ in range(80)])
    assert service.limits is not None and service.limits.pending == 0
    assert value(registry, "poortwachter_sensor_excessive_downloads_total", zone="klas") == 1
    assert not (tmp_path / "poortwachter.db").exists()


def test_a_frame_that_breaks_a_detector_is_skipped_not_fatal(tmp_path: Path, registry: CollectorRegistry) -> None:
    service = make(tmp_path, registry)
    service.on_frame(Frame(None, 1.0))   # type: ignore[arg-type]
    feed(service, attacks())
    assert value(registry, "poortwachter_sensor_rogue_dhcp_total") == 1


@pytest.mark.parametrize(("now", "end"), [
    ("2026-11-23T10:00:00+00:00", "2026-11-24T00:00:00+01:00"),
    ("2026-11-23T23:30:00+00:00", "2026-11-25T00:00:00+01:00"),   # already the 24th in Amsterdam
    ("2026-10-25T12:00:00+00:00", "2026-10-26T00:00:00+01:00"),   # the day summer time ends (25 h)
    ("2026-03-29T12:00:00+00:00", "2026-03-30T00:00:00+02:00"),   # the day it begins (23 h)
])
def test_end_of_day_in_amsterdam(now: str, end: str) -> None:
    until = end_of_day(dt.datetime.fromisoformat(now))
    assert until == dt.datetime.fromisoformat(end) and until.utcoffset() == dt.datetime.fromisoformat(end).utcoffset()
