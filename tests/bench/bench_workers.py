"""Benchmark of gateway workers: requests/s through 1 worker and through 2 workers behind the
nftables map of deploy/nftables, in network namespaces (tests/netns/school.py draws the network).

Run as root, as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_workers.py

The same world for both: a client namespace with several addresses in the classroom zone
(`inspection: intercept`, so HTTPS is decrypted), the gateway namespace with forwarding, the
ruleset, an escrow key (every audit event sealed, as after the key ceremony) and `poortwachter run
--mode transparent --worker N` per worker, and an internet namespace with the lean keep-alive
upstream of bench_proxy.py (tests/bench/proxy/upstream.py's protocol) on 203.0.113.80:80 and
:443. Clients use no proxy setting: nft redirects their TCP 80/443, spread over the workers by
jhash of the client address. The map keeps a client on one worker, so the load comes from
`--clients` addresses (half of them on each worker in the 2-worker run, chosen by asking the
workers' metrics which one served each address), each one curl process with `--concurrency`
keep-alive connections, all started together. Reported per scenario: requests/s over the wall
time of the slowest curl, p50/p99 latency per transfer, and the workers' CPU time per request
(all threads, all workers). Nothing is pinned: two workers are meant to use both cores.
Results: tests/bench/results/workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.proxy.load import Run, write_urls  # noqa: E402
from tests.bench.proxy.mitm import clean_env, cpu_seconds  # noqa: E402
from tests.bench.proxy.world import install_escrow_key  # noqa: E402
from tests.netns.school import CLIENTS, WEB, School  # noqa: E402
from tests.netns.topology import Topology, usable  # noqa: E402

RESULTS = REPO / "tests" / "bench" / "results" / "workers.json"
HOST = "lesmateriaal.example"
CURL_TIMEOUT = 180

UPSTREAM = """\
import asyncio, ssl, sys
sys.path.insert(0, {repo!r})
from tests.bench.proxy.upstream import KeepAlive

async def main():
    loop = asyncio.get_running_loop()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain({cert!r}, {key!r})
    tls.set_alpn_protocols(["http/1.1"])
    await loop.create_server(KeepAlive, {web!r}, 80, backlog=1024)
    await loop.create_server(KeepAlive, {web!r}, 443, ssl=tls, backlog=1024)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def start_upstream(school: School) -> subprocess.Popen[str]:
    assert school.ca is not None
    cert, key = school.ca.leaf(HOST)
    script = UPSTREAM.format(repo=str(REPO), cert=str(cert), key=str(key), web=WEB)
    proc = school.topo.popen(school.internet, [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("upstream did not start")
    return proc


def workers_of(school: School, clients: tuple[str, ...]) -> dict[str, int]:
    """Which worker (1, 2, ...) serves each client address: one request each, then the metrics."""
    out = {}
    for client in clients:
        before = [school.requests_seen(w) for w in school.workers]
        status, _ = school.curl(f"http://{WEB}/probe", source=client)
        if status != 200:
            raise RuntimeError(f"probe from {client}: HTTP {status}")
        after = [school.requests_seen(w) for w in school.workers]
        out[client] = next(i + 1 for i, (a, b) in enumerate(zip(after, before)) if a > b)
    return out


def balanced(mapping: dict[str, int], workers: int, count: int) -> tuple[str, ...]:
    per = count // workers
    chosen: list[str] = []
    for n in range(1, workers + 1):
        mine = [c for c, w in mapping.items() if w == n]
        if len(mine) < per:
            raise RuntimeError(f"only {len(mine)} of the client addresses map to worker {n}, need {per}")
        chosen += mine[:per]
    return tuple(chosen)


def load(school: School, scheme: str, clients: tuple[str, ...], per_client: int, concurrency: int,
         workdir: Path) -> Run:
    """All clients at once, each one curl with `concurrency` connections and `per_client` requests."""
    procs = []
    cpu_before = sum(cpu_seconds(w.proc.pid) for w in school.workers)
    started = time.perf_counter()
    for i, client in enumerate(clients):
        urls = [f"{scheme}://{HOST}/les/{i}/{k}?pagina={k % 50}" for k in range(per_client)]
        url_file = write_urls(workdir / f"urls-{scheme}-{i}.txt", urls)
        argv = ["curl", "--silent", "--http1.1", "--noproxy", "*", "--parallel", "--parallel-max", str(concurrency),
                "--interface", client, "--cacert", str(school.school_ca), "--max-time", "60",
                "--resolve", f"{HOST}:80:{WEB}", "--resolve", f"{HOST}:443:{WEB}",
                "-w", "%{http_code} %{time_total} %{num_connects}\n", "-K", str(url_file)]
        procs.append(school.topo.popen(school.client, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=clean_env()))
    outputs = [p.communicate(timeout=CURL_TIMEOUT) for p in procs]
    seconds = time.perf_counter() - started
    cpu = sum(cpu_seconds(w.proc.pid) for w in school.workers) - cpu_before
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connects = 0
    for out, err in outputs:
        for line in out.splitlines():
            code, total, conns = line.split()
            statuses[int(code)] += 1
            latencies.append(float(total))
            connects += int(conns)
        if not out:
            raise RuntimeError(f"curl returned nothing: {err[-2000:]}")
    return Run(len(latencies), seconds, latencies, statuses, connects, cpu)


class World:
    """One school network with `workers` workers and its own upstream, ready for load."""

    def __init__(self, workers: int, args: argparse.Namespace, work: Path) -> None:
        self.workers = workers
        self.topo = Topology()
        # production batching (the tests use 0.05 s to see events sooner), then what the caller asks
        options = ["poortwachter_audit_interval=0.2", *args.gateway_option]
        self.school = School(self.topo, work / f"workers-{workers}", worker_options=options)
        self.upstream: subprocess.Popen[str] | None = None
        try:
            self.school.build(workers=workers, numbered=True, web=False, start=False)
            self.audit = install_escrow_key(self.school.data_dir)
            self.school.start_workers(workers, numbered=True)
            self.upstream = start_upstream(self.school)
            if workers > 1:
                self.clients = balanced(workers_of(self.school, CLIENTS), workers, args.clients)
            else:
                self.clients = CLIENTS[:args.clients]
        except BaseException:
            self.close()
            raise

    def load(self, scheme: str, requests: int, concurrency: int) -> Run:
        run = load(self.school, scheme, self.clients, requests // len(self.clients), concurrency, self.school.workdir)
        if dict(run.statuses) != {200: run.requests}:
            raise RuntimeError(f"{self.workers} worker(s), {scheme}: statuses {dict(run.statuses)}")
        return run

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.terminate()
            self.upstream.wait(timeout=10)
        self.school.close()
        self.topo.close()


def summary(runs: list[Run]) -> dict[str, Any]:
    return {
        "rps": round(statistics.median(r.rps for r in runs), 1),
        "p50_ms": round(statistics.median(r.pct(0.5) for r in runs), 2),
        "p99_ms": round(statistics.median(r.pct(0.99) for r in runs), 2),
        "cpu_us_per_request": round(statistics.median(r.cpu_us_per_request for r in runs), 1),
        "runs": [{"requests": r.requests, "seconds": round(r.seconds, 3), "rps": round(r.rps, 1),
                  "connects": r.connects} for r in runs],
    }


def measure(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Both worlds side by side (separate namespaces), rounds interleaved, the order flipping each
    round, so drift in the machine's other load hits both alike."""
    worlds: list[World] = []
    try:
        worlds = [World(n, args, work) for n in (1, 2)]
        runs: dict[tuple[int, str], list[Run]] = {(w.workers, s): [] for w in worlds for s in ("http", "https")}
        for scheme in ("http", "https"):
            for world in worlds:
                world.load(scheme, args.warmup, args.concurrency)
            for round_ in range(args.rounds):
                for world in (worlds if round_ % 2 == 0 else worlds[::-1]):
                    runs[(world.workers, scheme)].append(world.load(scheme, args.requests, args.concurrency))
        return [{"workers": w.workers, "clients": list(w.clients), "audit": w.audit,
                 "scenarios": {s: summary(runs[(w.workers, s)]) for s in ("http", "https")},
                 "served_per_worker": [w.school.requests_seen(x) for x in w.school.workers]} for w in worlds]
    finally:
        for world in worlds:
            world.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per measured run (all clients)")
    parser.add_argument("--warmup", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4, help="client addresses (one curl each); even")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections per client")
    parser.add_argument("--gateway-option", action="append", default=[], metavar="NAME=VALUE",
                        help="extra mitmdump option for every worker, e.g. poortwachter_audit=off; repeatable")
    args = parser.parse_args()
    reason = usable()
    if reason is not None:
        print(f"SKIP: {reason}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="pw-bench-workers-"))
    load_before = os.getloadavg()[0]
    results = measure(args, work)
    report = {
        "script": "tests/bench/bench_workers.py",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "settings": vars(args),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{'scenario':<8} {'workers':>7} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10}")
    for res in results:
        for scheme, s in res["scenarios"].items():
            print(f"{scheme:<8} {res['workers']:>7} {s['rps']:>8,.0f} {s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f} "
                  f"{s['cpu_us_per_request']:>10.0f}")
    for scheme in ("http", "https"):
        one, two = (r["scenarios"][scheme]["rps"] for r in results)
        print(f"{scheme}: 2 workers / 1 worker = {two / one:.2f}")
    print(f"requests served per worker in the 2-worker run: {results[1]['served_per_worker']}")
    print(f"cores: {os.cpu_count()}; load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f}. "
          "On 2 cores the second worker competes with curl, the upstream and the kernel's forwarding and "
          "NAT for the same two cores: expect less than 2x, and figures that move with any other load "
          "(compare the load averages); on a gateway with more cores than workers the throughput grows "
          "with the workers until the network or the store is the limit.")
    print(f"results: {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
