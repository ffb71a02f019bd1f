"""Overmatig downloaden (reglement 004 art. 13) end to end, as it runs at a school.

The school of tests/netns/school.py (clients with no proxy setting, the nftables redirect, the
gateway in transparent mode) with a `sensor:` section in its policy, and the real
`poortwachter sensor` sniffing the gateway's client VLAN interface in the gateway namespace, writing
into the gateway's own store. One client downloads more than the threshold; the sensor counts it and
imposes a download limit; the gateway enforces it on that client only within seconds; ICT lifts it
with `poortwachter limit revoke`; and neither metrics exposition names a client. With `action: alert`
the same download is counted and nobody is limited.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from poortwachter.store import default_url, open_store
from poortwachter.workflow.limits import DownloadLimitView, list_download_limits

from .school import CLIENTS, POORTWACHTER, START_TIMEOUT, WEB, School, clean_env, wait_until
from .topology import Topology

pytestmark = pytest.mark.skipif(not POORTWACHTER.exists() or shutil.which("curl") is None
                                or shutil.which("nft") is None, reason="needs .venv (make venv), curl and nft")

SENSOR_METRICS = "127.0.0.1:9109"      # in the gateway namespace, next to the worker's 9108
THRESHOLD, MAX_DOWNLOAD = 3_000_000, 1_000_000
FIRST = 4_000_000     # over the threshold on its own
LARGE = 2_000_000     # over max_download, under the threshold: a second client stays unlimited
ARTICLE = "004 art. 13: overmatig downloaden (netns)"
SENSOR_SECTION = """\
sensor:
  excessive_download: {{window: 600, bytes: {threshold}, action: {action}, max_download: {max_download},
                       source: "{article}"}}
"""
EXCESSIVE, LIMITS = "poortwachter_sensor_excessive_downloads_total", "poortwachter_sensor_download_limits_total"
ACTIVE = "poortwachter_active_download_limits"
LIMIT_PAGE = ("Deze download is te groot", "This download is too large", "download_limit", ARTICLE, "1 MB")
CLIENT_ADDRESS = re.compile(r"10\.20\.1\.\d")
SYNC = 15.0           # seconds: the sensor writes at once, the gateway polls the store every 2 s


def _value(exposition: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} is not exposed")


@dataclass
class GatewaySensor:
    """`poortwachter sensor` on the gateway's client VLAN interface, sharing the gateway's store."""

    school: School
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, school: School) -> GatewaySensor:
        log = school.workdir / "sensor.log"
        argv = [str(POORTWACHTER), "sensor", "--interface", school.gateway_client_if,
                "--policy", str(school.workdir / "policy.yaml"), "--metrics-listen", SENSOR_METRICS,
                "--data-dir", str(school.data_dir)]
        with open(log, "wb") as out:
            proc = school.topo.popen(school.gateway, argv, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=clean_env(), start_new_session=True)
        sensor = cls(school, proc, log)
        wait_until(sensor._ready, START_TIMEOUT, "the sensor's metrics endpoint (capture is on before it answers)")
        return sensor

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the sensor exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            self.exposition()
        except OSError:
            return False
        return True

    def exposition(self) -> str:
        def scrape() -> str:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://{SENSOR_METRICS}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        return self.school.on_gateway(scrape)

    def value(self, name: str, **labels: str) -> float:
        return _value(self.exposition(), name, **labels)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError("the sensor did not stop within 15 s of SIGTERM") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@contextmanager
def school_with_sensor(topology: Topology, workdir: Path, action: str) -> Iterator[tuple[School, GatewaySensor]]:
    """The school, its policy with a sensor section, one gateway worker and the sensor beside it."""
    school = School(topology, workdir).build(workers=1, start=False)
    sensor: GatewaySensor | None = None
    try:
        policy = workdir / "policy.yaml"
        policy.write_text(policy.read_text(encoding="utf-8") + SENSOR_SECTION.format(
            threshold=THRESHOLD, action=action, max_download=MAX_DOWNLOAD, article=ARTICLE), encoding="utf-8")
        school.start_workers(1)                # the gateway creates the store the sensor writes into
        sensor = GatewaySensor.start(school)
        yield school, sensor
        assert school.workers[0].proc.poll() is None, "the gateway died during the test"
        assert sensor.stop() == 0, sensor.log.read_text()
    finally:
        if sensor is not None:
            sensor.close()
        school.close()


def download(school: School, size: int, source: str, *args: str, url: str = f"http://{WEB}") -> tuple[int, str]:
    return school.curl(f"{url}/groot?bytes={size}", *args, source=source)


def limits_in_store(school: School) -> list[DownloadLimitView]:
    store = open_store(default_url(school.data_dir))
    try:
        with store.read() as s:
            return list_download_limits(s, now=dt.datetime.now(dt.UTC))
    finally:
        store.close()


def gateway_value(school: School, name: str) -> float:
    return _value(school.metrics(school.workers[0]), name)


def client_mac(school: School) -> str:
    out = school.topo.run(school.client, ["cat", f"/sys/class/net/{school.client_if}/address"], check=True).stdout
    return out.strip().lower()


def test_excessive_download_limits_that_client_until_ict_lifts_it(topology: Topology, tmp_path: Path) -> None:
    with school_with_sensor(topology, tmp_path, "limit") as (school, sensor):
        laptop, classmate = CLIENTS[0], CLIENTS[1]
        assert (sensor.value(EXCESSIVE, zone="klas"), sensor.value(LIMITS, zone="klas")) == (0, 0)
        assert gateway_value(school, ACTIVE) == 0

        # 1. No limit yet: the first large download arrives whole.
        status, body = download(school, FIRST, laptop)
        assert status == 200 and len(body) == FIRST, (status, len(body))

        # 2. The sensor saw it cross the threshold and wrote a limit into the gateway's store.
        wait_until(lambda: sensor.value(LIMITS, zone="klas") == 1, SYNC, "the sensor to impose a download limit")
        assert sensor.value(EXCESSIVE, zone="klas") == 1
        [limit] = limits_in_store(school)
        assert (limit.address, limit.zone, limit.max_bytes, limit.created_by) == (
            laptop, "klas", MAX_DOWNLOAD, "system:sensor")
        assert ARTICLE in limit.reason

        # 3. The gateway enforces it within seconds, on that client only and only on large responses.
        wait_until(lambda: gateway_value(school, ACTIVE) == 1, SYNC, "the gateway to load the download limit")
        status, page = download(school, LARGE, laptop)
        assert status == 403, (status, page[:200])
        assert all(text in page for text in LIMIT_PAGE), page
        status, page = download(school, LARGE, laptop, "--resolve", f"downloads.example:443:{WEB}",
                                url="https://downloads.example")
        assert status == 403 and LIMIT_PAGE[0] in page, (status, page[:200])   # intercepted HTTPS too
        status, body = school.curl(f"http://{WEB}/les/klein", source=laptop)
        assert status == 200 and body.startswith(f"upstream scheme=http host={WEB} path=/les/klein"), body
        status, body = download(school, LARGE, classmate)
        assert status == 200 and len(body) == LARGE, (status, body[:200])

        # 4. ICT lifts it with the real command line; the gateway lets the large download through again.
        done = topology.run(school.gateway, [str(POORTWACHTER), "--data-dir", str(school.data_dir), "limit", "revoke",
                                             str(limit.id), "--reason", "besproken met de leerling"],
                            env=clean_env(), timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"Downloadlimiet {limit.id} opgeheven" in done.stdout
        assert limits_in_store(school) == []
        wait_until(lambda: gateway_value(school, ACTIVE) == 0, SYNC, "the gateway to drop the lifted limit")
        status, body = download(school, LARGE, laptop)
        assert status == 200 and len(body) == LARGE, (status, body[:200])
        # Still over the threshold in its window, the laptop is not limited again behind ICT's back,
        # and the classmate stayed under it.
        assert (sensor.value(EXCESSIVE, zone="klas"), sensor.value(LIMITS, zone="klas")) == (1, 1)
        assert limits_in_store(school) == []

        # 5. Zones only: no client address or MAC in either exposition or in the sensor's log (its
        # line about the limit, logged just after the metric step 2 waited for, included).
        wait_until(lambda: "downloadlimiet opgelegd" in sensor.log.read_text(), SYNC, "the sensor logs the limit")
        mac = client_mac(school)
        for where, text in (("gateway metrics", school.metrics(school.workers[0])),
                            ("sensor metrics", sensor.exposition()), ("sensor log", sensor.log.read_text())):
            assert not CLIENT_ADDRESS.search(text), f"a client address in the {where}"
            assert mac not in text.lower(), f"the client's MAC in the {where}"
        assert "downloadlimiet opgelegd" in sensor.log.read_text()


def test_alert_only_counts_the_excessive_download_and_limits_nobody(topology: Topology, tmp_path: Path) -> None:
    with school_with_sensor(topology, tmp_path, "alert") as (school, sensor):
        laptop = CLIENTS[0]
        status, body = download(school, FIRST, laptop)
        assert status == 200 and len(body) == FIRST, (status, len(body))
        wait_until(lambda: sensor.value(EXCESSIVE, zone="klas") == 1, SYNC, "the sensor to count the excessive download")
        # the finding is logged just after it is counted, before a limit would be handed on: wait for the line
        wait_until(lambda: "Overmatig downloaden / Excessive downloading in zone klas" in sensor.log.read_text(),
                   SYNC, "the sensor logs the excessive download")

        status, body = download(school, LARGE, laptop)       # over max_download: it would be refused under a limit
        assert status == 200 and len(body) == LARGE, (status, body[:200])
        assert sensor.value(LIMITS, zone="klas") == 0
        assert limits_in_store(school) == []
        assert gateway_value(school, ACTIVE) == 0
        log = sensor.log.read_text()
        assert "Overmatig downloaden / Excessive downloading in zone klas" in log and ARTICLE in log
        assert "downloadlimiet opgelegd" not in log
