"""A real authoritative DNS server for the resolver tests: NSD (Debian package `nsd`), run in the
foreground on a loopback port with its zone files in a temporary directory, and `dig` (package
`bind9-dnsutils`) as the client, asking from a zone's source address (`-b`) over UDP or TCP.

A test module imports the fixture `nsd` (module-scoped: NSD started on the module's zones, stopped
after the module) and defines the fixture `nsd_zones`: {zone name: zone file text}, as `zone_file`
writes them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.nsd import NSD, NSD_CHECKCONF, write_config, zone_file
from tests.processes import stop

from .gate_helpers import free_udp_and_tcp_port
from .proxy import wait_until

DIG_TIMEOUT = 5          # seconds dig waits for an answer (one try)


@dataclass(frozen=True)
class Record:
    name: str
    ttl: int
    type: str
    data: str


@dataclass(frozen=True)
class Answer:
    """What dig got: the response code, flags, the answer section, the transport, the time taken."""

    status: str
    flags: str
    answers: list[Record]
    protocol: str
    seconds: float

    def data(self, rtype: str) -> list[str]:
        return [r.data for r in self.answers if r.type == rtype]


def dig(port: int, name: str, rtype: str = "A", source: str = "127.0.0.1", tcp: bool = False,
        server: str = "127.0.0.1", edns: bool = True) -> Answer:
    """Ask `server`:`port` for `name` `rtype` from `source`, as a stub resolver does (recursion
    desired, EDNS unless `edns` is False: then a truncated answer is kept, not retried over TCP),
    one try of DIG_TIMEOUT seconds; status "TIMEOUT" if no answer came, "BADPACKET" if one came
    that dig could not parse."""
    argv = ["dig", f"@{server}", "-p", str(port), "-b", source, name, rtype, "+yaml",
            f"+time={DIG_TIMEOUT}", "+tries=1", "+retry=0", "+tcp" if tcp else "+notcp"]
    if not edns:
        argv += ["+noedns", "+ignore"]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=DIG_TIMEOUT + 10)
    seconds = time.monotonic() - started
    if proc.returncode == 9 or "timed out" in proc.stdout:
        return Answer("TIMEOUT", "", [], "TCP" if tcp else "UDP", seconds)
    assert proc.returncode == 0, f"dig failed ({proc.returncode}): {proc.stderr}{proc.stdout}"
    if "Got bad packet" in proc.stdout or not proc.stdout.strip():
        return Answer("BADPACKET", "", [], "TCP" if tcp else "UDP", seconds)    # dig could not parse it
    docs = [d for d in yaml.safe_load_all(proc.stdout.replace("!!timestamp ", "")) if d]
    message = docs[0][0]["message"]
    data = message["response_message_data"]
    records = []
    for line in data.get("ANSWER_SECTION") or []:
        parts = line.split(None, 4)
        owner, ttl, _class, kind = parts[:4]
        records.append(Record(owner.lower(), int(ttl), kind, parts[4] if len(parts) > 4 else ""))
    return Answer(data["status"], data.get("flags") or "", records, message["socket_protocol"], seconds)


class Nsd:
    """NSD serving `zones` on 127.0.0.1:`port` (UDP and TCP), everything under `workdir`."""

    def __init__(self, workdir: Path, zones: dict[str, str]) -> None:
        self.workdir = workdir
        self.zones = zones
        self.port = free_udp_and_tcp_port()
        self.log = workdir / "nsd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = write_config(workdir, [("127.0.0.1", self.port)], zones)

    def start(self) -> Nsd:
        check = subprocess.run([str(NSD_CHECKCONF), str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([str(NSD), "-d", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
        first = next(iter(self.zones))

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd exited with {self.proc.returncode}: {self.logged()}")
            return dig(self.port, first, "SOA").status == "NOERROR"
        wait_until(answers, 20, "nsd answering")
        return self

    def logged(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture(scope="module", name="nsd")
def nsd_server(tmp_path_factory: pytest.TempPathFactory, nsd_zones: dict[str, str]) -> Iterator[Nsd]:
    """NSD on the module's zones (the module defines the fixture `nsd_zones`), for the module."""
    if not NSD.exists() or shutil.which("dig") is None:
        pytest.skip("needs nsd (package nsd) and dig (package bind9-dnsutils)")
    server = Nsd(tmp_path_factory.mktemp("nsd"), nsd_zones).start()
    yield server
    server.stop()


__all__ = ["Answer", "Nsd", "Record", "dig", "nsd_server", "zone_file"]
