"""A real authoritative DNS server (NSD, tests/nsd.py) in a namespace: the upstream resolver of the
school's resolver in the namespace tests, on port 53 of the addresses given."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.nsd import NSD, NSD_CHECKCONF, write_config
from tests.processes import stop

from .topology import Topology

START_TIMEOUT = 15.0


@dataclass
class Authoritative:
    topo: Topology
    namespace: str
    workdir: Path
    addresses: tuple[str, ...]
    zones: dict[str, str]               # zone name -> zone file text (tests.nsd.zone_file)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Authoritative:
        config = write_config(self.workdir, [(a, 53) for a in self.addresses], self.zones)
        checked = self.topo.run(self.namespace, [str(NSD_CHECKCONF), str(config)])
        if checked.returncode != 0:
            raise RuntimeError(f"nsd-checkconf: {checked.stderr}")
        self.proc = self.topo.popen(self.namespace, [str(NSD), "-d", "-c", str(config)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        log = self.workdir / "nsd.log"
        while not (log.exists() and "nsd started" in log.read_text(errors="replace")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"nsd did not start: {log.read_text(errors='replace') if log.exists() else ''}")
            time.sleep(0.05)
        return self

    def close(self) -> None:
        stop(self.proc)
