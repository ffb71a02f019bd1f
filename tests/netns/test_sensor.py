"""The real `poortwachter sensor` on a veth in a namespace, fed crafted frames sent by scapy from
another namespace: every attack shows in its metric, normal traffic in none, the kernel filter
drops what no detector needs, excessive downloading writes a limit into a real SQLite store, and
neither the metrics nor the log name an address or a MAC."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from poortwachter.sensor.limits import end_of_day
from poortwachter.store import default_url, open_store
from poortwachter.workflow.limits import list_download_limits

from .sensor_helpers import POLICY, POORTWACHTER, SensorNet, wait_until
from .topology import Topology, ip

pytestmark = pytest.mark.skipif(not POORTWACHTER.exists(), reason="needs the venv's poortwachter command")

GW, GW_MAC, DHCP_SERVER, DHCP_MAC = "10.20.0.1", "02:00:5e:00:00:01", "10.20.0.2", "02:00:5e:00:00:02"
LAPTOP, LAPTOP_MAC, OTHER, OTHER_MAC = "10.20.3.4", "02:00:00:00:03:04", "10.20.3.5", "02:00:00:00:03:05"
ROGUE, ROGUE_MAC = "10.20.66.66", "02:00:00:00:66:66"
SITE, SERVER = "198.51.100.80", "10.40.0.10"
ADDRESSES = (GW, DHCP_SERVER, LAPTOP, OTHER, ROGUE, SITE, SERVER)
MACS = (GW_MAC, DHCP_MAC, LAPTOP_MAC, OTHER_MAC, ROGUE_MAC)
BROADCAST = "ff:ff:ff:ff:ff:ff"
SCAN_PORTS = 10


@pytest.fixture
def net(topology: Topology, tmp_path: Path) -> Iterator[SensorNet]:
    sensor_net = SensorNet(topology, tmp_path).build()
    try:
        yield sensor_net
    finally:
        sensor_net.close()


def policy(action: str = "alert", ports: int = SCAN_PORTS) -> str:
    return POLICY.format(gateway=GW, gateway_mac=GW_MAC, dhcp_server=DHCP_SERVER, ports=ports, action=action)


# --- frames ----------------------------------------------------------------------------------------
def arp_reply(address: str, mac: str, to: str = LAPTOP) -> Packet:
    return Ether(src=mac, dst=BROADCAST) / ARP(op=2, hwsrc=mac, psrc=address, pdst=to)


def dhcp(server: str, mac: str, message: str) -> Packet:
    return (Ether(src=mac, dst=BROADCAST) / IP(src=server, dst="255.255.255.255") / UDP(sport=67, dport=68)
            / BOOTP(op=2, yiaddr=OTHER, chaddr=bytes.fromhex(OTHER_MAC.replace(":", "")))
            / DHCP(options=[("message-type", message), ("server_id", server), ("lease_time", 3600), "end"]))


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, payload: int = 0) -> Packet:
    mac_src, mac_dst = (LAPTOP_MAC, GW_MAC) if src.startswith("10.20.") else (GW_MAC, LAPTOP_MAC)
    return Ether(src=mac_src, dst=mac_dst) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / Raw(b"x" * payload)


def lldp() -> Packet:
    return Ether(src=GW_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"\x00" * 40)


def normal_traffic() -> list[Packet]:
    frames = [arp_reply(GW, GW_MAC), arp_reply(LAPTOP, LAPTOP_MAC, GW), dhcp(DHCP_SERVER, DHCP_MAC, "offer"),
              dhcp(DHCP_SERVER, DHCP_MAC, "ack"), arp_reply(GW, GW_MAC), arp_reply(LAPTOP, LAPTOP_MAC, GW)]
    for port in (443, 443, 80):   # a client opening three connections
        frames += [tcp(LAPTOP, SITE, 50000 + port, port, "S"), tcp(SITE, LAPTOP, port, 50000 + port, "SA"),
                   tcp(LAPTOP, SITE, 50000 + port, port, "A")]
    return frames + [tcp(SITE, LAPTOP, 443, 50443, "A", 1000) for _ in range(10)]


def attacks() -> list[Packet]:
    return ([arp_reply(GW, ROGUE_MAC),                      # ARP poisoning of the gateway address
             arp_reply(OTHER, OTHER_MAC), arp_reply(OTHER, ROGUE_MAC),   # ... and of a classmate
             dhcp(ROGUE, ROGUE_MAC, "offer")]                             # a rogue DHCP server
            + [tcp(LAPTOP, SERVER, 40000, port, "S") for port in range(1, SCAN_PORTS + 1)]        # port scan
            + [tcp(LAPTOP, f"10.40.1.{i}", 40001, 445, "S") for i in range(1, 11)])               # SMB sweep


def bulk(count: int) -> list[Packet]:
    return [tcp(SITE, OTHER, 443, 50001, "A", 1400) for _ in range(count)]


# --- tests -----------------------------------------------------------------------------------------
def test_attacks_show_in_their_metrics_and_normal_traffic_does_not(net: SensorNet) -> None:
    net.start(policy())
    normal = normal_traffic()
    net.send(normal + [lldp() for _ in range(5)])
    net.wait_seen(len(normal))
    findings = {
        ("poortwachter_sensor_arp_spoofing_total", (("kind", "mac_changed"),)): 0.0,
        ("poortwachter_sensor_arp_spoofing_total", (("kind", "gateway_claimed"),)): 0.0,
        ("poortwachter_sensor_rogue_dhcp_total", ()): 0.0,
        ("poortwachter_sensor_port_scans_total", (("kind", "scan"), ("zone", "klas"))): 0.0,
        ("poortwachter_sensor_port_scans_total", (("kind", "sweep"), ("zone", "klas"))): 0.0,
        ("poortwachter_sensor_excessive_downloads_total", (("zone", "klas"),)): 0.0,
    }
    # down: 10 data packets and 3 SYN-ACKs; up: 3 SYNs, 3 ACKs and the server's two DHCP replies
    dhcp_size = len(dhcp(DHCP_SERVER, DHCP_MAC, "offer")[IP])
    down = ("poortwachter_sensor_bytes_total", (("direction", "down"), ("zone", "klas")))
    up = ("poortwachter_sensor_bytes_total", (("direction", "up"), ("zone", "klas")))
    # the last frame counted in bytes too: the sensor is done with it (findings are checked after)
    net.wait_values({down: 10 * 1040 + 3 * 40, up: 6 * 40 + 2 * dhcp_size}, "the normal traffic's bytes counted")
    samples = net.samples()
    assert {key: samples[key] for key in findings} == findings
    # the kernel filter dropped the LLDP frames: only ARP and IP reached the sensor
    assert samples[("poortwachter_sensor_packets_total", ())] == len(normal)
    assert samples[down] == 10 * 1040 + 3 * 40
    assert samples[up] == 6 * 40 + 2 * dhcp_size
    assert samples[("poortwachter_sensor_last_packet_timestamp_seconds", ())] > 0

    attack = attacks()
    net.send(attack)
    net.wait_seen(len(normal) + len(attack))
    found = {
        **findings,
        ("poortwachter_sensor_arp_spoofing_total", (("kind", "mac_changed"),)): 1.0,
        ("poortwachter_sensor_arp_spoofing_total", (("kind", "gateway_claimed"),)): 1.0,
        ("poortwachter_sensor_rogue_dhcp_total", ()): 1.0,
        ("poortwachter_sensor_port_scans_total", (("kind", "scan"), ("zone", "klas"))): 1.0,
        ("poortwachter_sensor_port_scans_total", (("kind", "sweep"), ("zone", "klas"))): 1.0,
    }
    net.wait_values(found, "every attack counted")    # the sweep's finding comes with its last frame
    samples = net.samples()
    assert {key: samples[key] for key in findings} == found
    assert net.stop() == 0


def test_excessive_download_limits_the_client_in_the_store(net: SensorNet) -> None:
    net.start(policy(action="limit"))
    frames = bulk(60)                      # 84,000 bytes: under the 100,000 of the policy
    net.send(frames)
    net.wait_seen(len(frames))
    down = ("poortwachter_sensor_bytes_total", (("direction", "down"), ("zone", "klas")))
    net.wait_values({down: 60 * 1440}, "the last frame's bytes counted")   # the sensor is done with it
    assert net.value("poortwachter_sensor_excessive_downloads_total", zone="klas") == 0
    # sizes come from the IP header although the kernel copies only the first 128 bytes
    assert net.value("poortwachter_sensor_bytes_total", zone="klas", direction="down") == 60 * 1440

    more = bulk(20)
    net.send(more)
    net.wait_seen(len(frames) + len(more))
    excessive = ("poortwachter_sensor_excessive_downloads_total", (("zone", "klas"),))
    net.wait_values({excessive: 1.0}, "the excessive download counted")
    assert net.value("poortwachter_sensor_excessive_downloads_total", zone="klas") == 1
    wait_until(lambda: net.value("poortwachter_sensor_download_limits_total", zone="klas") == 1, 20,
               "the download limit to be written")
    store = open_store(default_url(net.workdir / "data"))
    try:
        with store.read() as s:
            [limit] = list_download_limits(s, now=dt.datetime.now(dt.UTC))
    finally:
        store.close()
    assert (limit.address, limit.zone, limit.max_bytes, limit.created_by) == (OTHER, "klas", 5_000_000, "system:sensor")
    assert limit.until == end_of_day(dt.datetime.now(dt.UTC)) or limit.until == end_of_day(limit.created_at)
    assert "004 art. 13" in limit.reason
    assert net.stop() == 0


def test_metrics_and_log_name_no_address_or_mac(net: SensorNet) -> None:
    net.start(policy(action="limit"))
    frames = normal_traffic() + attacks() + bulk(80)
    net.send(frames)
    net.wait_seen(len(frames))
    wait_until(lambda: net.value("poortwachter_sensor_download_limits_total", zone="klas") == 1, 20,
               "the download limit to be written")
    exposition = net.exposition()
    assert net.stop() == 0
    log = net.log.read_text()
    assert "Poortscan / Port scan in zone klas" in log and "downloadlimiet opgelegd" in log
    forms = {*ADDRESSES, *MACS, *(m.upper() for m in MACS), *(m.replace(":", "") for m in MACS)}
    for text, what in ((exposition, "metrics"), (log, "log")):
        leaked = sorted(f for f in forms if f in text)
        assert not leaked, f"{what} names {leaked}"


def test_policy_changes_apply_while_running_and_sigterm_stops_it(net: SensorNet) -> None:
    net.start(policy(ports=50))
    scan = [tcp(LAPTOP, SERVER, 40000, port, "S") for port in range(1, 6)]
    net.send(scan)
    net.wait_seen(len(scan))
    up = ("poortwachter_sensor_bytes_total", (("direction", "up"), ("zone", "klas")))
    net.wait_values({up: 5 * 40}, "the scan's bytes counted")     # the sensor is done with its last SYN
    assert net.value("poortwachter_sensor_port_scans_total", zone="klas", kind="scan") == 0

    assert net.policy is not None
    net.policy.write_text(policy(ports=5))
    os.utime(net.policy, ns=(0, 10**18))
    wait_until(lambda: "policy reloaded" in net.log.read_text(), 10, "the policy reload")
    again = [tcp(LAPTOP, "10.40.0.11", 40000, port, "S") for port in range(1, 6)]
    net.send(again)
    net.wait_seen(len(scan) + len(again))
    scans = ("poortwachter_sensor_port_scans_total", (("kind", "scan"), ("zone", "klas")))
    net.wait_values({scans: 1.0}, "the scan under the new policy counted")
    assert net.value("poortwachter_sensor_port_scans_total", zone="klas", kind="scan") == 1

    broken = policy(ports=5).replace("ports: 5", "ports: veel")
    net.policy.write_text(broken)
    line = next(i for i, row in enumerate(broken.splitlines(), 1) if "ports: veel" in row)
    wait_until(lambda: f"{net.policy}:{line}: sensor.scans.ports:" in net.log.read_text(), 10,
               "the refusal with file and line")
    third = [tcp(LAPTOP, "10.40.0.12", 40000, port, "S") for port in range(1, 6)]
    net.send(third)                          # the previous policy (5 ports) still counts
    net.wait_seen(len(scan) + len(again) + len(third))
    net.wait_values({scans: 2.0}, "the scan under the kept policy counted")
    assert net.value("poortwachter_sensor_port_scans_total", zone="klas", kind="scan") == 2

    assert net.stop() == 0
    assert "Sensor gestopt / Sensor stopped" in net.log.read_text()


def test_the_interface_going_away_ends_the_sensor_with_status_1(net: SensorNet) -> None:
    net.start(policy())
    ip("link", "del", net.lan_if, ns=net.lan)   # takes the sensor's end of the pair with it
    assert net.proc is not None and net.proc.wait(timeout=20) == 1   # systemd restarts it when the device is back
    assert "Sensor gestopt: opname mislukt / Sensor stopped: capture failed" in net.log.read_text()
