"""Benchmark of the network sensor: the figures of docs/sensor.md ("Performance"), with the real code.

Run as root, as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_sensor.py

One mix of frames for every part, built with scapy from a fixed seed: TCP downloads (full-size
data) and their ACKs, connections opened and answered (SYN, SYN-ACK), UDP (DNS, QUIC), IPv6 TCP,
802.1Q-tagged frames (a mirrored trunk), ARP requests and replies and DHCP server replies, among
2,000 clients of the classroom zone and 500 sites. The policy is policy/default.yaml with its
router and DHCP server filled in, so the mix is ordinary traffic: it makes no finding.

1. frame -> observations: `capture.observations` on the frames as the kernel hands them to the
   sensor (each passed once through the real kernel filter on a socket pair: ordinary IP frames cut
   to their headers, ARP, DHCP and tagged frames whole), in µs per frame, for the mix and per kind.
2. the whole per-frame path in process: `SensorService.on_frame` (observations, detectors, metrics,
   the lock), as the capture thread calls it, on a Frame stamped as the socket stamps it.
3. through the real capture socket: a "lan" and a "sensor" namespace joined by a veth
   (tests/netns/sensor_helpers.SensorNet), the real `poortwachter sensor` on the sensor's end, and
   a small sender in the lan namespace writing the full-size frames to a raw AF_PACKET socket at a
   paced rate (tcpreplay is not needed). Per rate: frames sent, counted
   (`poortwachter_sensor_packets_total`), dropped by the kernel because the sensor fell behind
   (`poortwachter_sensor_dropped_packets_total`), lost elsewhere (sent - counted - dropped), the
   sensor's pace (frames counted per second until its count stopped moving) and its CPU time per
   counted frame (`process_cpu_seconds_total`). On 2+ cores the sensor is pinned to the first core
   and the sender to the last (--no-pin: neither): the kernel's work of the veth runs on the
   sender's core, as a NIC's interrupts would on a core of their own.
4. resident memory (`process_resident_memory_bytes`): of the running sensor idle (before the first
   frame) and after the runs; and in a fresh process with a SensorService whose every detector
   table is full (65,536 volume clients with every window slot used, 65,536 ARP bindings, both scan
   tables at their bound with one try short of the threshold in every row, both address caches
   full): the worst case.
Results: tests/bench/results/sensor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from poortwachter.sensor.capture import Frame, attach_filter, observations
from poortwachter.sensor.metrics import SensorMetrics
from poortwachter.sensor.service import SensorService
from tests.netns.sensor_helpers import POORTWACHTER, Samples, SensorNet
from tests.netns.topology import Topology, usable

RESULTS = REPO / "tests" / "bench" / "results" / "sensor.json"
SEED = 20261121
GW, GW_MAC = "10.20.0.1", "02:00:5e:00:00:01"
DHCP_SERVER, DHCP_MAC = "10.20.0.2", "02:00:5e:00:00:02"
BROADCAST = "ff:ff:ff:ff:ff:ff"
CLIENTS, SITES = 2000, 500

# Frames per 1,000 drawn (a "syn" is a SYN and its SYN-ACK): mostly downloads and their ACKs.
MIX = {"tcp-data": 560, "tcp-ack": 200, "syn": 20, "udp": 60, "ipv6": 80, "vlan": 50, "arp": 8, "dhcp": 2}
POOL = {"arp": 200, "dhcp": 50}   # distinct units built per kind (others: 1,000)

SENDER = r"""
import json, socket, struct, sys, time
path, interface, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
data, frames, off = open(path, "rb").read(), [], 0
while off < len(data):
    (size,) = struct.unpack_from("!H", data, off)
    frames.append(data[off + 2:off + 2 + size])
    off += 2 + size
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sock.bind((interface, 0))
send, clock, sleep, n = sock.send, time.perf_counter, time.sleep, len(frames)
sent = 0
start_wall, start = time.time(), clock()
while True:
    elapsed = clock() - start
    if elapsed >= seconds:
        break
    due = int(elapsed * rate)
    if due <= sent:
        sleep(0.0001)   # paced: a burst of at most 64 catches up after each wake-up
        continue
    for _ in range(min(due - sent, 64)):
        send(frames[sent % n])
        sent += 1
print(json.dumps({"sent": sent, "seconds": clock() - start, "start": start_wall}))
"""

CHILD = r"""
import gc, ipaddress, json, math, socket, sys, time
from pathlib import Path
from poortwachter.sensor.arp import MAX_BINDINGS
from poortwachter.sensor.metrics import SensorMetrics
from poortwachter.sensor.observations import SYN, ArpClaim, IpPacket
from poortwachter.sensor.scans import MAX_KEYS
from poortwachter.sensor.service import SensorService
from poortwachter.sensor.volume import BUCKETS, MAX_CLIENTS
from poortwachter.sensor.zones import _CACHE_SIZE

metrics = SensorMetrics()
service = SensorService(Path(sys.argv[1]), metrics)

def rss() -> float:
    gc.collect()
    return metrics.registry.get_sample_value("process_resident_memory_bytes")

def addresses(network: str, count: int) -> list[str]:
    net = ipaddress.ip_network(network)
    first = int(net.network_address)
    return [str(ipaddress.ip_address(first + i)) for i in range(count)]

FINDINGS = ("poortwachter_sensor_port_scans_total", "poortwachter_sensor_arp_spoofing_total",
            "poortwachter_sensor_rogue_dhcp_total", "poortwachter_sensor_excessive_downloads_total")
base = rss()
stages, mark = {}, base

def stage(name: str) -> None:   # memory added since the previous stage (the zone cache grows with the first)
    global mark
    now_rss = rss()
    stages[name] = (now_rss - mark) / 2**20
    mark = now_rss

started = time.perf_counter()
handle, settings, now = service.handle, service.settings, time.time()

# Volume: every client of a /16 with bytes in every slot of the window (12 slots, 12 packets each).
width = settings.excessive_download.window / BUCKETS
clients = addresses("10.20.0.0/16", MAX_CLIENTS)
for k in range(BUCKETS):
    t = now + k * width
    for client in clients:
        handle((IpPacket(t, "198.51.100.80", client, 1500),), t)
stage("volume")

# ARP: a binding per address, each with its own MAC.
for i, address in enumerate(addresses("10.30.0.0/16", MAX_BINDINGS)):
    handle((ArpClaim(now, address, f"02:01:00:00:{i >> 8:02x}:{i & 255:02x}"),), now)
stage("arp")

# Scans: unanswered SYNs, one short of the threshold in every row of both tables, past their bound.
ports = list(range(1, settings.scans.ports))                                  # per (client, host)
hosts = addresses("10.60.0.0/24", settings.scans.hosts - 1)                   # per (client, port)
scanners = addresses("10.40.0.0/16", math.ceil(MAX_KEYS / min(len(ports), len(hosts))))
i = 0
for client in scanners:
    for host in hosts:
        for port in ports:
            t = now + i * 1e-6
            i += 1
            handle((IpPacket(t, client, host, 60, SYN, 40000 + port, port),), t)
stage("scans")

# The address caches full, with IPv6 text (the longest): zone lookups and "is it public".
zones = service.zones
fresh = (socket.inet_ntop(socket.AF_INET6, bytes.fromhex("fd000020") + n.to_bytes(12, "big")) for n in range(1, 1 << 20))
while len(zones._cache) < _CACHE_SIZE:        # private: the bench checks the bound is reached
    zones.of(next(fresh))
public = (socket.inet_ntop(socket.AF_INET6, bytes.fromhex("2a000000") + n.to_bytes(12, "big")) for n in range(1, 1 << 20))
while len(zones._public) < _CACHE_SIZE:
    zones.is_public(next(public))
stage("caches")

full = rss()
print(json.dumps({
    "base_mb": base / 2**20, "stages_mb": stages, "full_mb": full / 2**20, "added_mb": (full - base) / 2**20,
    "fill_seconds": time.perf_counter() - started, "frames_handled": BUCKETS * len(clients) + MAX_BINDINGS + i,
    "tables": {"volume_clients": len(service.volume), "arp_bindings": len(service.arp),
               "scan_rows_ports": len(service.scans.ports), "scan_rows_hosts": len(service.scans.hosts),
               "zone_cache": len(zones._cache), "public_cache": len(zones._public)},
    "findings": sum(s.value for f in metrics.registry.collect() for s in f.samples if s.name in FINDINGS),
}))
"""


# --- the policy and the frames -------------------------------------------------------------------
def policy_text() -> str:
    """policy/default.yaml with the router and the DHCP server the mix uses filled in."""
    text = (REPO / "policy" / "default.yaml").read_text()
    filled = text.replace("  gateways: []\n", f'  gateways: [{{address: {GW}, mac: "{GW_MAC}"}}]\n'
                                               f'  dhcp_servers: [{DHCP_SERVER}, "{DHCP_MAC}"]\n', 1)
    if filled == text:
        raise RuntimeError("policy/default.yaml has no `gateways: []` line to fill in")
    return filled


class Network:
    """Clients of the classroom zone (IPv4 and IPv6, each with its own MAC) and sites outside."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.v4 = [f"10.20.{1 + i // 200}.{1 + i % 200}" for i in range(CLIENTS)]
        self.v6 = [f"fd00:20::{i + 1:x}" for i in range(CLIENTS)]
        self.macs = [f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}" for i in range(CLIENTS)]
        self.sites = [f"198.51.100.{1 + i}" if i < 250 else f"203.0.113.{i - 249}" for i in range(SITES)]
        self.sites6 = [f"2001:db8::{i + 1:x}" for i in range(SITES)]

    def client(self) -> int:
        return self.rnd.randrange(CLIENTS)

    def port(self) -> int:
        return self.rnd.randrange(32768, 61000)

    def seq(self) -> int:
        return self.rnd.getrandbits(32)


def _padded(frame: Packet) -> Packet:
    """A small frame as it arrives from a NIC: padded to the Ethernet minimum of 60 bytes."""
    short = 60 - len(frame)
    return frame / Raw(b"\x00" * short) if short > 0 else frame


def build(kind: str, net: Network) -> tuple[Packet, ...]:
    rnd, c = net.rnd, net.client()
    ip, mac, site, port = net.v4[c], net.macs[c], rnd.choice(net.sites), net.port()
    if kind == "tcp-data":
        return (Ether(src=GW_MAC, dst=mac) / IP(src=site, dst=ip)
                / TCP(sport=443, dport=port, flags=rnd.choice(["A", "PA"]), seq=net.seq(), ack=net.seq())
                / Raw(rnd.randbytes(1460)),)
    if kind == "tcp-ack":
        ack = Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=site) / TCP(sport=port, dport=443, flags="A", seq=net.seq(), ack=net.seq())
        frame = _padded(ack)
        frame[IP].len = 40
        return (frame,)
    if kind == "syn":
        opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (net.seq(), 0)), ("NOP", None), ("WScale", 7)]
        return (Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=site) / TCP(sport=port, dport=443, flags="S", options=opts),
                Ether(src=GW_MAC, dst=mac) / IP(src=site, dst=ip) / TCP(sport=443, dport=port, flags="SA", options=opts))
    if kind == "udp":
        if rnd.random() < 0.5:   # a DNS question to the router
            return (Ether(src=mac, dst=GW_MAC) / IP(src=ip, dst=GW) / UDP(sport=port, dport=53) / Raw(rnd.randbytes(40)),)
        return (Ether(src=GW_MAC, dst=mac) / IP(src=site, dst=ip) / UDP(sport=443, dport=port) / Raw(rnd.randbytes(1250)),)
    if kind == "ipv6":
        site6, ip6 = rnd.choice(net.sites6), net.v6[c]
        if rnd.random() < 0.7:
            return (Ether(src=GW_MAC, dst=mac) / IPv6(src=site6, dst=ip6) / TCP(sport=443, dport=port, flags="A")
                    / Raw(rnd.randbytes(1440)),)
        return (Ether(src=mac, dst=GW_MAC) / IPv6(src=ip6, dst=site6) / TCP(sport=port, dport=443, flags="A"),)
    if kind == "vlan":
        return (Ether(src=GW_MAC, dst=mac) / Dot1Q(vlan=20) / IP(src=site, dst=ip)
                / TCP(sport=443, dport=port, flags="A", seq=net.seq()) / Raw(rnd.randbytes(1460)),)
    if kind == "arp":
        if rnd.random() < 0.5:   # who has the router, and its answer
            return (_padded(Ether(src=mac, dst=BROADCAST) / ARP(op=1, hwsrc=mac, psrc=ip, pdst=GW)),)
        return (_padded(Ether(src=GW_MAC, dst=mac) / ARP(op=2, hwsrc=GW_MAC, psrc=GW, hwdst=mac, pdst=ip)),)
    if kind == "dhcp":
        message = rnd.choice(["offer", "ack"])
        return (Ether(src=DHCP_MAC, dst=BROADCAST) / IP(src=DHCP_SERVER, dst="255.255.255.255") / UDP(sport=67, dport=68)
                / BOOTP(op=2, xid=net.seq(), yiaddr=ip, siaddr=DHCP_SERVER, chaddr=bytes.fromhex(mac.replace(":", "")))
                / DHCP(options=[("message-type", message), ("server_id", DHCP_SERVER), ("lease_time", 28800),
                                ("subnet_mask", "255.255.0.0"), ("router", GW), ("name_server", GW), "end"]),)
    raise ValueError(kind)


def pools(seed: int) -> dict[str, list[tuple[bytes, ...]]]:
    net = Network(random.Random(seed))
    return {kind: [tuple(bytes(f) for f in build(kind, net)) for _ in range(POOL.get(kind, 1000))] for kind in MIX}


def mix(units: dict[str, list[tuple[bytes, ...]]], count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` frames drawn by the weights of MIX (a SYN and its SYN-ACK stay together)."""
    rnd = random.Random(seed)
    kinds = list(MIX)
    weights = [MIX[k] for k in kinds]
    out: list[tuple[str, bytes]] = []
    while len(out) < count:
        kind = rnd.choices(kinds, weights)[0]
        out += [(kind, frame) for frame in rnd.choice(units[kind])]
    return out[:count]


def through_the_filter(frames: list[bytes]) -> list[bytes]:
    """What the sensor's socket receives of each frame: the real kernel filter, on a socket pair."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    out = []
    with sender, receiver:
        attach_filter(receiver)
        for frame in frames:
            sender.send(frame)
            try:
                out.append(receiver.recv(1 << 17, socket.MSG_DONTWAIT))
            except BlockingIOError:
                raise RuntimeError(f"the kernel filter dropped a frame of the mix ({len(frame)} bytes)") from None
    return out


# --- 1 and 2: in process -------------------------------------------------------------------------
def per_frame_us(run: Callable[[list[bytes]], None], frames: list[bytes], least: int, rounds: int) -> list[float]:
    """µs per frame of `run` over `frames` (repeated to at least `least` frames), per round."""
    passes = max(1, -(-least // len(frames)))
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(passes):
            run(frames)
        out.append((time.perf_counter() - started) / (passes * len(frames)) * 1e6)
    return out


def just_observations(frames: list[bytes]) -> None:
    when = time.time()
    for data in frames:
        observations(data, when)


def whole_path(service: SensorService) -> Callable[[list[bytes]], None]:
    on_frame, now = service.on_frame, time.time

    def run(frames: list[bytes]) -> None:
        for data in frames:   # as FrameSocket.drain hands them on
            on_frame(Frame(data, now()))
    return run


def in_process(mixed: list[tuple[str, bytes]], units: dict[str, list[tuple[bytes, ...]]], policy: Path,
               args: argparse.Namespace) -> dict[str, Any]:
    received = through_the_filter([f for _, f in mixed])
    kinds = {kind: through_the_filter([f for unit in units[kind] for f in unit]) for kind in MIX}
    mix_us = per_frame_us(just_observations, received, args.frames, args.rounds)
    per_kind = {kind: statistics.median(per_frame_us(just_observations, frames, 5_000, 3))
                for kind, frames in kinds.items()}
    metrics = SensorMetrics()
    service = SensorService(policy, metrics)
    service.on_frame(Frame(received[0], time.time()))   # zones and caches of the first frame made
    path_us = per_frame_us(whole_path(service), received, args.frames, args.rounds)
    findings = sum(s.value for f in metrics.registry.collect() for s in f.samples if s.name in FINDINGS)
    return {
        "frames": len(received),
        "kinds": {kind: sum(1 for k, _ in mixed if k == kind) for kind in MIX},
        "bytes_received_mean": round(statistics.mean(len(f) for f in received), 1),
        "observations_us": {"median": round(statistics.median(mix_us), 2), "min": round(min(mix_us), 2),
                            "rounds": [round(x, 2) for x in mix_us]},
        "observations_us_per_kind": {k: round(v, 2) for k, v in per_kind.items()},
        "per_frame_us": {"median": round(statistics.median(path_us), 2), "min": round(min(path_us), 2),
                         "rounds": [round(x, 2) for x in path_us]},
        "findings": findings,   # the mix is ordinary traffic: 0
    }


def worst_case_memory(policy: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(policy)], check=False, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the memory fill failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- 3 and 4: the running sensor ---------------------------------------------------------------
@contextmanager
def affinity(cpus: set[int] | None) -> Iterator[None]:
    """Processes started inside inherit `cpus` (this process gets its own back afterwards)."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


COUNTED, DROPPED = "poortwachter_sensor_packets_total", "poortwachter_sensor_dropped_packets_total"
CPU, RSS = "process_cpu_seconds_total", "process_resident_memory_bytes"
FINDINGS = ("poortwachter_sensor_port_scans_total", "poortwachter_sensor_arp_spoofing_total",
            "poortwachter_sensor_rogue_dhcp_total", "poortwachter_sensor_excessive_downloads_total")


def sample(samples: Samples, name: str) -> float:
    return samples[(name, ())]


def offer(net: SensorNet, frames_file: Path, rate: int, seconds: float, sender_cpus: set[int] | None) -> dict[str, Any]:
    """Send at `rate` for `seconds`, then wait until the sensor has counted or dropped what it got."""
    before = net.samples()
    pin = (lambda: os.sched_setaffinity(0, sender_cpus)) if sender_cpus else None
    done = net.topo.run(net.lan, [sys.executable, "-c", SENDER, str(frames_file), net.lan_if, str(rate), str(seconds)],
                        timeout=seconds + 60, preexec_fn=pin)
    if done.returncode != 0:
        raise RuntimeError(f"sender: {done.stderr[-2000:]}")
    sent_by = json.loads(done.stdout)
    sent = sent_by["sent"]
    # Drain: the socket's buffer still holds frames, and the dropped count is read once a second.
    counted = dropped = -1.0
    last_change = quiet_since = time.time()
    deadline = last_change + 120
    while True:
        now_samples, now = net.samples(), time.time()
        seen = (sample(now_samples, COUNTED) - sample(before, COUNTED), sample(now_samples, DROPPED) - sample(before, DROPPED))
        if seen[0] != counted:
            last_change = now if counted >= 0 else sent_by["start"] + sent_by["seconds"]   # first poll: done by then
        if seen != (counted, dropped):
            quiet_since = now
        counted, dropped = seen
        # all of it accounted for, or nothing moved for 3 s (some frames lost before the socket)
        if counted + dropped >= sent or now - quiet_since >= 3.0 or now > deadline:
            break
        time.sleep(0.2)
    if net.proc is not None and net.proc.poll() is not None:
        raise RuntimeError(f"the sensor exited with {net.proc.returncode}:\n{net.log.read_text()[-3000:]}")
    cpu = sample(now_samples, CPU) - sample(before, CPU)
    pace_seconds = max(last_change - sent_by["start"], sent_by["seconds"])   # resolution: one poll (0.2 s)
    return {
        "rate": rate, "sent": sent, "offered_per_s": round(sent / sent_by["seconds"]),
        "counted": int(counted), "dropped": int(dropped), "lost_elsewhere": int(sent - counted - dropped),
        "counted_share": round(counted / sent, 4) if sent else 0.0,
        "counted_per_s": round(counted / pace_seconds),
        "cpu_us_per_frame": round(cpu / counted * 1e6, 1) if counted else None,
    }


def through_the_socket(frames: list[bytes], policy: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cores = sorted(os.sched_getaffinity(0))
    sensor_cpus, sender_cpus = ({cores[0]}, {cores[-1]}) if len(cores) > 1 and not args.no_pin else (None, None)
    frames_file = work / "frames.bin"
    frames_file.write_bytes(b"".join(struct.pack("!H", len(f)) + f for f in frames))
    topo = Topology()
    net = SensorNet(topo, work)
    try:
        net.build()
        with affinity(sensor_cpus):
            net.start(policy)
        idle = net.samples()
        offer(net, frames_file, args.warmup_rate, 1.0, sender_cpus)   # first sight of every address
        runs = [offer(net, frames_file, rate, args.seconds, sender_cpus) for rate in args.rates]
        after = net.samples()
        status = net.stop()
        if status != 0:
            raise RuntimeError(f"the sensor stopped with {status}:\n{net.log.read_text()[-3000:]}")
        return {
            "pinned": {"sensor": sorted(sensor_cpus or ()), "sender": sorted(sender_cpus or ())},
            "runs": runs,
            "rss_idle_mb": round(sample(idle, RSS) / 2**20, 1),
            "rss_after_mb": round(sample(after, RSS) / 2**20, 1),
        }
    finally:
        net.close()
        topo.close()


# --- the report ----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 20_000, 30_000, 45_000, 60_000],
                        help="frames/s offered through the socket, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of sending per rate")
    parser.add_argument("--warmup-rate", type=int, default=5_000, help="frames/s of the 1 s warm-up")
    parser.add_argument("--frames", type=int, default=200_000, help="frames per in-process round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mix", type=int, default=20_000, help="distinct frames in the mix")
    parser.add_argument("--no-pin", action="store_true", help="pin neither the sensor nor the sender")
    parser.add_argument("--no-socket", action="store_true", help="in process only (no root needed)")
    args = parser.parse_args()
    reason = None if args.no_socket else usable()
    if reason is not None:
        print(f"SKIP: {reason}")
        return 0
    if not POORTWACHTER.exists():
        print(f"SKIP: {POORTWACHTER} not found")
        return 0
    load_before = os.getloadavg()[0]
    units = pools(SEED)
    mixed = mix(units, args.mix, SEED)
    with tempfile.TemporaryDirectory(prefix="pw-bench-sensor-") as tmp:
        work = Path(tmp)
        policy = work / "policy.yaml"
        policy.write_text(policy_text())
        results: dict[str, Any] = {"in_process": in_process(mixed, units, policy, args)}
        results["worst_case_memory"] = worst_case_memory(policy)
        if not args.no_socket:
            results["socket"] = through_the_socket([f for _, f in mixed], policy_text(), args, work)
    load_after = os.getloadavg()[0]
    report = {
        "script": "tests/bench/bench_sensor.py",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "load_average": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "settings": vars(args),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    inp, full = results["in_process"], results["worst_case_memory"]
    print(f"Poortwachter sensor benchmark ({inp['frames']:,} frames in the mix, "
          f"{inp['bytes_received_mean']:.0f} bytes received per frame on average)")
    print(f"  frame -> observations (fixed offsets)      {inp['observations_us']['median']:6.2f} µs per frame "
          f"(min {inp['observations_us']['min']:.2f})")
    print("    per kind: " + ", ".join(f"{k} {v:.1f}" for k, v in inp["observations_us_per_kind"].items()) + " µs")
    print(f"  whole per-frame path in process            {inp['per_frame_us']['median']:6.2f} µs per frame "
          f"(min {inp['per_frame_us']['min']:.2f}); findings {inp['findings']:.0f}")
    if "socket" in results:
        sock = results["socket"]
        print(f"  through the real socket (sensor on CPU {sock['pinned']['sensor'] or '-'}, "
              f"sender on CPU {sock['pinned']['sender'] or '-'}, {args.seconds:.0f} s per rate):")
        print(f"    {'offered/s':>10} {'sent':>9} {'counted':>9} {'counted %':>9} {'dropped':>8} {'lost':>5} "
              f"{'counted/s':>10} {'CPU µs/frame':>12}")
        for r in sock["runs"]:
            print(f"    {r['offered_per_s']:>10,} {r['sent']:>9,} {r['counted']:>9,} {r['counted_share']:>9.1%} "
                  f"{r['dropped']:>8,} {r['lost_elsewhere']:>5,} {r['counted_per_s']:>10,} {r['cpu_us_per_frame']:>12}")
        print(f"  resident memory of the running sensor      {sock['rss_idle_mb']:.0f} MB idle, "
              f"{sock['rss_after_mb']:.0f} MB after the runs")
    t = full["tables"]
    print(f"  every detector table full (in process)     +{full['added_mb']:.0f} MB "
          f"({full['base_mb']:.0f} -> {full['full_mb']:.0f} MB; {t['volume_clients']:,} clients, "
          f"{t['arp_bindings']:,} ARP bindings, {t['scan_rows_ports']:,} + {t['scan_rows_hosts']:,} scan rows, "
          f"caches {t['zone_cache']:,} + {t['public_cache']:,}; findings {full['findings']:.0f})")
    print("    of which " + ", ".join(f"{k} +{v:.0f} MB" for k, v in full["stages_mb"].items()))
    print(f"  cores: {os.cpu_count()}; load average before {load_before:.2f}, after {load_after:.2f}")
    print(f"  written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
