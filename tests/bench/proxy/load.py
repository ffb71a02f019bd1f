"""The load generator: one curl process, N transfers over a fixed number of keep-alive connections.

curl is compiled and cheap per request, so on a 2-core machine it leaves the proxy its core.
`--parallel-max C --http1.1` gives C concurrent HTTP/1.1 connections through the proxy (CONNECT
plus TLS for https URLs, each connection then reused), and `-w` writes one line per transfer with
its status and total time. The URLs come from a config file, so any mix of paths keeps its order.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .mitm import Mitmdump, clean_env, pinned

CURL_TIMEOUT = 120  # one run; the whole benchmark stays bounded even if a proxy stalls


@dataclass
class Run:
    requests: int
    seconds: float
    latencies: list[float]           # seconds, per transfer
    statuses: Counter[int]
    connects: int                     # new connections curl made (should equal the concurrency)
    proxy_cpu: float = 0.0            # CPU seconds the proxy process used during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.proxy_cpu / self.requests


def write_urls(path: Path, urls: list[str]) -> Path:
    with path.open("w") as f:
        for url in urls:
            f.write(f'url = "{url}"\noutput = "/dev/null"\n')
    return path


def run_curl(url_file: Path, proxy: Mitmdump | None, concurrency: int, source: str, cacert: Path,
             cpus: set[int] | None) -> Run:
    argv = ["curl", "--silent", "--http1.1", "--parallel", "--parallel-max", str(concurrency),
            "--interface", source, "--cacert", str(cacert), "--max-time", "30",
            "-w", "%{http_code} %{time_total} %{num_connects}\n", "-K", str(url_file)]
    if proxy is not None:
        argv[1:1] = ["--proxy", proxy.url]
    cpu_before = proxy.cpu() if proxy is not None else 0.0
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=CURL_TIMEOUT,
                          preexec_fn=pinned(cpus))
    seconds = time.perf_counter() - started
    cpu = proxy.cpu() - cpu_before if proxy is not None else 0.0
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connects = 0
    for line in proc.stdout.splitlines():
        code, total, conns = line.split()
        statuses[int(code)] += 1
        latencies.append(float(total))
        connects += int(conns)
    if not latencies:
        raise RuntimeError(f"curl returned nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return Run(len(latencies), seconds, latencies, statuses, connects, cpu)
