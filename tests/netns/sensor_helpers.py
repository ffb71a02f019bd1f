"""The sensor in a namespace: a "lan" namespace joined to a "sensor" namespace by a veth pair, the
sensor's end carrying no address (as a mirror port), frames crafted with scapy in the test and
sent by scapy inside the lan namespace, metrics scraped inside the sensor namespace.

    lan (scapy sendp) ==veth==> sensor (`poortwachter sensor --interface <veth>`, metrics on 127.0.0.1:9109)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from scapy.packet import Packet
from scapy.utils import wrpcap

from tests.e2e.proxy import wait_until  # also re-exported for the tests

from .topology import Topology

REPO = Path(__file__).resolve().parents[2]
POORTWACHTER = REPO / ".venv" / "bin" / "poortwachter"
METRICS = "127.0.0.1:9109"
START_TIMEOUT = 30.0

POLICY = """\
school: "Sensorschool"
zones:
  klas:
    kind: classroom
    role: pupil
    cidrs: ["10.20.0.0/16"]
  personeel:
    kind: staff
    role: staff
    cidrs: ["10.40.0.0/16"]
timetable:
  schedules:
    normaal:
      - {{name: les, start: "08:30", end: "09:20", kind: lesson}}
  weekdays: {{monday: normaal}}
rules: []
default: allow
sensor:
  gateways: [{{address: {gateway}, mac: "{gateway_mac}"}}]
  dhcp_servers: [{dhcp_server}]
  scans: {{window: 60, ports: {ports}, hosts: 10}}
  excessive_download: {{window: 60, bytes: 100000, action: {action}, max_download: 5000000}}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class SensorNet:
    topo: Topology
    workdir: Path
    lan: str = ""
    sensor: str = ""
    lan_if: str = ""
    sensor_if: str = ""
    proc: subprocess.Popen[bytes] | None = None
    policy: Path | None = None
    _sent: int = 0

    def build(self) -> SensorNet:
        self.lan, self.sensor = self.topo.namespace("lan"), self.topo.namespace("sensor")
        for ns in (self.lan, self.sensor):   # no IPv6 autoconfiguration chatter: the test sends every frame
            self.topo.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
            self.topo.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
        self.lan_if, self.sensor_if = self.topo.link(self.lan, None, self.sensor, None)
        return self

    @property
    def log(self) -> Path:
        return self.workdir / "sensor.log"

    def start(self, policy_text: str) -> None:
        self.policy = self.workdir / "policy.yaml"
        self.policy.write_text(policy_text)
        with open(self.log, "wb") as log:
            self.proc = self.topo.popen(self.sensor, [
                str(POORTWACHTER), "--data-dir", str(self.workdir / "data"), "sensor",
                "--interface", self.sensor_if, "--policy", str(self.policy), "--metrics-listen", METRICS,
            ], stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, START_TIMEOUT, "the sensor's metrics endpoint")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"sensor exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            self.exposition()
        except OSError:
            return False
        return True

    def exposition(self) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        return self.topo.call(self.sensor, lambda: opener.open(f"http://{METRICS}/metrics", timeout=5).read().decode())

    def samples(self) -> Samples:
        out: Samples = {}
        for family in text_string_to_metric_families(self.exposition()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        samples = self.samples()
        assert key in samples, f"{name}{labels} is not exposed"
        return samples[key]

    def send(self, frames: list[Packet]) -> None:
        """Send the frames from the lan namespace with scapy, then wait until the sensor has seen
        them all (packets_total is the barrier: nothing else is sent on this link)."""
        pcap = self.workdir / f"frames-{self._sent}.pcap"
        wrpcap(str(pcap), frames)
        # the frames go out as the test built them: no need to dissect them (or load every layer) again
        done = self.topo.run(self.lan, [sys.executable, "-c",
                                        "import sys; from scapy.utils import RawPcapReader; from scapy.sendrecv import sendp; "
                                        "sendp([frame for frame, _ in RawPcapReader(sys.argv[1])], iface=sys.argv[2], verbose=False)",
                                        str(pcap), self.lan_if], timeout=60)
        assert done.returncode == 0, done.stderr
        self._sent += len(frames)

    def wait_seen(self, count: int) -> None:
        seen = 0.0

        def all_seen() -> bool:
            nonlocal seen
            seen = self.value("poortwachter_sensor_packets_total")
            return seen >= count

        try:
            wait_until(all_seen, 20, f"the sensor to see {count} packets")
        except AssertionError as exc:
            dropped = self.value("poortwachter_sensor_dropped_packets_total")
            raise AssertionError(f"{exc} (seen {seen:.0f}, dropped by the kernel {dropped:.0f})") from None

    def wait_values(self, expected: Samples, what: str, timeout: float = 20.0) -> None:
        """Until every sample in `expected` has exactly its value. `wait_seen` is not enough for
        what the detectors count: packets_total goes up as a frame comes in, before the byte
        counters and the detectors have seen that frame."""
        now: dict[tuple[str, tuple[tuple[str, str], ...]], float | None] = {}

        def reached() -> bool:
            nonlocal now
            samples = self.samples()
            now = {key: samples.get(key) for key in expected}
            return now == expected

        try:
            wait_until(reached, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (now {now})") from None

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the sensor did not stop within 15 s of SIGTERM") from None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
