"""Port scans and sweeps from client zones; connections that are answered are not tries."""

from __future__ import annotations

from poortwachter.sensor.observations import SYN, SYN_ACK, Finding, IpPacket
from poortwachter.sensor.scans import ScanWatch

from .helpers import settings, zone_of

CLIENT, HOST = "10.20.3.4", "10.40.0.10"
SCAN, SWEEP = Finding("port_scan", "scan", "klas"), Finding("port_scan", "sweep", "klas")


def watch(window: int = 60, ports: int = 10, hosts: int = 10, **kw: int) -> ScanWatch:
    return ScanWatch(settings(scans={"window": window, "ports": ports, "hosts": hosts}), zone_of, **kw)


def syn(t: float, dport: int, dst: str = HOST, src: str = CLIENT) -> IpPacket:
    return IpPacket(t, src, dst, 60, SYN, 40000 + dport % 1000, dport)


def accept(t: float, dport: int, dst: str = HOST, src: str = CLIENT) -> IpPacket:
    return IpPacket(t, dst, src, 60, SYN_ACK, dport, 40000 + dport % 1000)


def run(scans: ScanWatch, packets: list[IpPacket]) -> list[Finding]:
    return [f for p in packets for f in scans.observe(p)]


def test_a_client_opening_three_connections_is_not_a_scan() -> None:
    scans = watch(ports=3, hosts=3)
    packets = [p for port in (443, 80, 8443) for p in (syn(0.1, port), accept(0.2, port))]
    assert run(scans, packets) == []


def test_many_answered_connections_are_not_a_sweep() -> None:
    scans = watch(hosts=10)
    # a web page pulling from 50 servers on 443, every one of them answering
    packets = [p for i in range(50) for p in (syn(i / 10, 443, f"203.0.113.{i}"), accept(i / 10 + 0.05, 443, f"203.0.113.{i}"))]
    assert run(scans, packets) == []
    assert len(scans.ports) == 0 and len(scans.hosts) == 0   # answered tries leave nothing in memory


def test_a_scan_of_closed_ports_counts_once_per_window() -> None:
    scans = watch(ports=10)
    assert run(scans, [syn(i / 100, port) for i, port in enumerate(range(1, 10))]) == []
    assert run(scans, [syn(0.5, 10)]) == [SCAN]
    # the scan goes on within the window: no second finding
    assert run(scans, [syn(1 + i / 100, port) for i, port in enumerate(range(11, 200))]) == []
    # after the window it is a new scan
    assert run(scans, [syn(61 + i / 100, port) for i, port in enumerate(range(200, 210))]) == [SCAN]


def test_retried_syns_to_one_port_are_one_try() -> None:
    scans = watch(ports=3)
    assert run(scans, [syn(t, 22) for t in (0.0, 1.0, 3.0, 7.0)] + [syn(8.0, 23)]) == []


def test_tries_older_than_the_window_drop_out() -> None:
    scans = watch(window=10, ports=5)
    # one new port every 3 s: never 5 distinct ports within 10 s
    assert run(scans, [syn(3.0 * i, 1000 + i) for i in range(40)]) == []


def test_a_sweep_of_one_port_over_many_hosts() -> None:
    scans = watch(hosts=10)
    found = run(scans, [syn(i / 10, 445, f"10.40.1.{i}") for i in range(10)])
    assert found == [SWEEP]


def test_only_clients_in_a_zone_are_watched() -> None:
    scans = watch(ports=5, hosts=5)
    outside = "192.0.2.7"
    assert run(scans, [syn(i / 10, port, src=outside) for i, port in enumerate(range(1, 50))]) == []
    assert run(scans, [syn(i / 10, 22, dst=f"10.20.5.{i}", src=outside) for i in range(50)]) == []


def test_the_zone_is_the_scanners() -> None:
    scans = watch(ports=5)
    found = run(scans, [syn(i / 10, port, dst=CLIENT, src="10.20.99.7") for i, port in enumerate(range(1, 6))])
    assert found == [Finding("port_scan", "scan", "examen")]


def test_memory_is_bounded_and_pruned() -> None:
    scans = watch(window=60, ports=10, hosts=10, max_keys=500)
    for i in range(5000):   # one try each to many hosts on many ports: nothing found, lots of keys
        scans.observe(syn(i / 1000, 1000 + i % 7, f"10.40.{i // 250}.{i % 250}"))
    assert len(scans.ports) == 500 and len(scans.hosts) == 7
    scans.prune(4.9 + 59)
    assert len(scans.ports) == 500
    scans.prune(10_000.0)
    assert len(scans.ports) == 0 and len(scans.hosts) == 0
