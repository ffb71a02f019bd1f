"""Benchmark of the school's resolver (`poortwachter run --dns`) and of the name-address check.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_dns.py
Needs Debian's nsd (the upstream) and dnsperf (the load generator): `apt-get install nsd dnsperf`.

1. DNS answers per second and latency. NSD (tests/e2e/nsd.py, response rate limiting off) serves
   --names names in three zones on a loopback port: every name has an A record, two in three an
   AAAA, one in three an HTTPS record (half of those with an ECH configuration, which the gateway
   strips), one in five allowed names is a CNAME to another name of its zone, and the names of one
   zone (one in ten) are blocked by the policy below. The question file asks A, AAAA and HTTPS for
   every name (what a browser asks), shuffled. The gateway is started as production starts it
   (`poortwachter --data-dir D run --policy P --listen .. --dns .. --metrics ..`, an escrow key
   installed so its audit events are sealed) with that policy, whose dns.upstream is the NSD.
   dnsperf, with the same options for every target, asks from 127.0.0.2 (a pupil in a classroom):
   - direct: NSD itself;
   - mitmdump: bare mitmproxy forwarding to NSD (`--mode reverse:dns://NSD`, no Poortwachter
     addon), a reference: what mitmproxy's DNS path costs by itself;
   - gateway: the gateway's resolver.
   Scenarios:
   - saturated: --clients sockets, --outstanding questions in flight, the next question as soon as
     an answer comes: the capacity. p50 is then about outstanding / throughput (Little's law).
   - steady: --rate questions/s offered, below the gateway's capacity: the latency a client sees on
     an ordinary day.
   A warm-up per target, then --rounds rounds with the targets interleaved (the order flips each
   round), medians. "CPU us/answer": the target's CPU time (all its processes and threads; for the
   proxies without NSD's) per answer, the figure least disturbed by other load; each target's CPU
   use without questions is printed too, so that it can be seen not to inflate that figure. On two
   or more cores the servers (NSD and the target) are pinned to the last core, dnsperf to the others.
   dnsperf's -v (one line per answer, for the percentiles) is on for every target; it costs dnsperf
   time, so the direct figure is a lower bound of what NSD can do.
2. The name-address check a transparent connection pays (`Enforce._claims`), timeit best of 5: a
   bound name; a bound name among the bindings of 10,000 other clients; an unbound name whose
   `Lookup` answer is cached. The coroutine never suspends in these cases, so it is driven by one
   `send(None)` without an event loop, and the cost of driving an empty coroutine so is subtracted.
   For scale: an unbound name that is not cached, one lookup to the local NSD on an event loop.

It only prints (no assertion on speed); exit status 1 if a check failed (an answer not as the
policy says, a question the gateway answered without deciding it, a server that died).
Results: tests/bench/results/dns.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ipaddress
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from poortwachter.ech import build_config_list  # noqa: E402
from tests.bench.proxy.mitm import MITMDUMP, Managed, clean_env, cpu_seconds, pinned  # noqa: E402
from tests.bench.proxy.world import install_escrow_key  # noqa: E402
from tests.e2e.gate_helpers import free_udp_and_tcp_port  # noqa: E402
from tests.e2e.nsd import NSD, Nsd, dig, zone_file  # noqa: E402
from tests.e2e.proxy import free_port, port_open, wait_until  # noqa: E402

RESULTS = REPO / "tests" / "bench" / "results" / "dns.json"
POORTWACHTER = REPO / ".venv" / "bin" / "poortwachter"
TARGETS = ("direct", "mitmdump", "gateway")
CLIENT = "127.0.0.2"                     # the pupil's laptop: zone `klas` of the policy below
BLOCK_ADDRESS = "10.99.0.80"
ECH_FRONT = "cdn-ech.example"
ALLOWED_ZONES = ("lesstof.example", "nieuws.example")
BLOCKED_ZONE = "gokken.example"
QTYPES = ("A", "AAAA", "HTTPS")
START_TIMEOUT = 60.0
IDLE_SECONDS = 5.0                       # each target's CPU use without questions, measured once

POLICY = """\
school: "Benchmarkschool"
reglement: "Reglement van de DNS-benchmark"
zones:
  klas:
    kind: classroom
    role: pupil
    cidrs: ["{client}/32"]
    inspection: intercept
timetable:
  timezone: Europe/Amsterdam
  schedules:
    normaal:
      - {{name: lesdag, start: "00:00", end: "23:59", kind: lesson}}
  weekdays: {{monday: normaal, tuesday: normaal, wednesday: normaal, thursday: normaal,
             friday: normaal, saturday: normaal, sunday: normaal}}
categories:
  gokken:
    title: "Gokken / Gambling"
    sites: [{blocked_zone}]
rules:
  - name: verboden-categorieen
    source: "004 art. 11a"
    action: block
    categories: [gokken]
dns:
  upstream: ["127.0.0.1:{upstream_port}"]
  block_address: "{block_address}"
default: allow
default_source: "004 art. 9"
"""


# --- the world: zones, questions, policy ---------------------------------------------------------
@dataclass(frozen=True)
class Site:
    name: str            # the name asked
    address: str         # its A record (through the CNAME, if it has one)
    blocked: bool
    ech: bool            # its HTTPS record carries an ECH configuration
    cname: bool


def sites(n: int) -> list[Site]:
    """n names: one in ten in the blocked zone, the rest spread over the allowed zones."""
    out = []
    for i in range(n):
        blocked = i % 10 == 9
        zone = BLOCKED_ZONE if blocked else ALLOWED_ZONES[i % len(ALLOWED_ZONES)]
        out.append(Site(f"www{i}.{zone}", f"192.0.2.{i % 250 + 1}" if i < 250 else f"198.51.100.{i % 250 + 1}",
                        blocked, ech=i % 6 == 0, cname=not blocked and i % 5 == 1))
    return out


def zones(all_sites: list[Site]) -> dict[str, str]:
    ech = base64.b64encode(build_config_list(ECH_FRONT)).decode()
    body: dict[str, list[str]] = {zone: [] for zone in (*ALLOWED_ZONES, BLOCKED_ZONE)}
    for i, site in enumerate(all_sites):
        label, zone = site.name.split(".", 1)
        owner = label
        if site.cname:
            owner = f"edge{i}"
            body[zone].append(f"{label} IN CNAME {owner}.{zone}.")
        body[zone].append(f"{owner} IN A {site.address}")
        if i % 3 != 2:
            body[zone].append(f"{owner} IN AAAA 2001:db8::{i:x}")
        if i % 3 == 0:
            params = f"alpn=h2,http/1.1 ipv4hint={site.address}" + (f" ech={ech}" if site.ech else "")
            body[zone].append(f"{owner} IN HTTPS 1 . {params}")
    return {zone: zone_file(zone, "\n".join(lines), ttl=300) for zone, lines in body.items()}


def write_questions(path: Path, all_sites: list[Site]) -> int:
    questions = [f"{site.name} {qtype}" for site in all_sites for qtype in QTYPES]
    random.Random(1).shuffle(questions)
    path.write_text("\n".join(questions) + "\n", encoding="ascii")
    return len(questions)


def start_nsd(workdir: Path, zone_texts: dict[str, str], cpus: set[int] | None) -> Nsd:
    """NSD from tests/e2e/nsd.py, with response rate limiting off: Debian's NSD is built with it
    and by default answers one source at most 200 times a second, which a benchmark is not."""
    server = Nsd(workdir, zone_texts)
    server.conf.write_text(server.conf.read_text().replace("server:\n", "server:\n  rrl-ratelimit: 0\n", 1))
    server.start()
    if cpus:
        assert server.proc is not None
        for pid in process_tree(server.proc.pid):
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), cpus)
    return server


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (NSD forks a server and a transfer process)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for tid in os.listdir(f"/proc/{current}/task"):
            try:
                todo += [int(c) for c in Path(f"/proc/{current}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
    return found


def tree_cpu(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            continue
    return total


# --- the resolvers under test --------------------------------------------------------------------
class Resolver(Managed):
    """A mitmproxy process answering DNS on `dns_port`, pinned to `cpus`, its output in `log`."""

    name = ""

    def __init__(self, workdir: Path, cpus: set[int] | None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.cpus = cpus
        self.dns_port = free_udp_and_tcp_port()
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return True

    def start(self, probe: str) -> Resolver:
        """Start, then wait until `probe` resolves through it."""
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, env=clean_env(), start_new_session=True,
                                         preexec_fn=pinned(self.cpus))

        def answering() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            return self.ready() and dig(self.dns_port, probe, source=CLIENT).status == "NOERROR"
        wait_until(answering, START_TIMEOUT, f"{self.name} answering", interval=0.2)
        return self



class Gateway(Resolver):
    """`poortwachter run` with the school's resolver on, as production starts it."""

    name = "gateway"

    def __init__(self, workdir: Path, policy: Path, cpus: set[int] | None) -> None:
        super().__init__(workdir, cpus)
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.policy = policy
        self.listen_port = free_port()
        self.metrics_port = free_port()

    def argv(self) -> list[str]:
        return [str(POORTWACHTER), "--data-dir", str(self.data_dir), "run", "--policy", str(self.policy),
                "--listen", f"127.0.0.1:{self.listen_port}", "--dns", f"127.0.0.1:{self.dns_port}",
                "--metrics", f"127.0.0.1:{self.metrics_port}"]

    def ready(self) -> bool:
        return port_open(self.metrics_port)

    def dns_counts(self) -> dict[str, float]:
        """poortwachter_dns_queries_total of the benchmark zone, by action."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        counts: Counter[str] = Counter()
        for m in re.finditer(r'^poortwachter_dns_queries_total\{(.*)\} (\S+)$', text, re.M):
            action = re.search(r'action="([^"]+)"', m.group(1))
            if 'zone="klas"' in m.group(1) and action:
                counts[action.group(1)] += float(m.group(2))
        return dict(counts)


class BareMitmdump(Resolver):
    """mitmproxy's own DNS forwarding without Poortwachter (`--mode reverse:dns://UPSTREAM`, the
    gateway's mitmdump options less its addons): what mitmproxy's DNS path costs by itself."""

    name = "mitmdump"

    def __init__(self, workdir: Path, upstream_port: int, cpus: set[int] | None) -> None:
        super().__init__(workdir, cpus)
        self.upstream_port = upstream_port

    def argv(self) -> list[str]:
        return [str(MITMDUMP), "--mode", f"reverse:dns://127.0.0.1:{self.upstream_port}@127.0.0.1:{self.dns_port}",
                "--set", f"confdir={self.workdir / 'ca'}", "--set", "termlog_verbosity=error",
                "--set", "flow_detail=0"]


# --- the load ------------------------------------------------------------------------------------
@dataclass
class Run:
    completed: int
    lost: int
    seconds: float
    latencies: list[float]         # seconds, per answer
    rcodes: Counter[str]
    server_cpu: float              # CPU seconds of the server process(es) during the run
    client_cpu: float              # CPU seconds of dnsperf

    @property
    def qps(self) -> float:
        return self.completed / self.seconds

    def pct(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def cpu_us_per_answer(self) -> float:
        return 1e6 * self.server_cpu / max(1, self.completed)


def dnsperf(questions: Path, port: int, seconds: float, clients: int, outstanding: int, rate: int | None,
            out: Path, server_cpu: Any, cpus: set[int] | None) -> Run:
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-a", CLIENT, "-d", str(questions),
            "-l", str(seconds), "-c", str(clients), "-q", str(outstanding), "-t", "5", "-v"]
    if rate:
        argv += ["-Q", str(rate)]
    cpu_before, children_before = server_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with out.open("w") as stdout:
        proc = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=seconds + 60,
                              preexec_fn=pinned(cpus))
    cpu = server_cpu() - cpu_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    text = out.read_text(errors="replace")
    summary = dict(re.findall(r"^\s+(Queries completed|Queries lost|Run time \(s\)):\s+(\d+(?:\.\d+)?)", text, re.M))
    if proc.returncode != 0 or "Queries completed" not in summary:
        raise RuntimeError(f"dnsperf failed ({proc.returncode}): {proc.stderr[-2000:]}{text[-2000:]}")
    latencies: list[float] = []
    rcodes: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("> ") and not line.startswith("> T "):
            fields = line.split()
            rcodes[fields[1]] += 1
            latencies.append(float(fields[-1]))
    return Run(int(summary["Queries completed"]), int(summary["Queries lost"]), float(summary["Run time (s)"]),
               latencies, rcodes, cpu, client_cpu)


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: int | None               # questions/s offered; None: as fast as answers come


def summary(runs: list[Run]) -> dict[str, float]:
    return {
        "answers_per_s": statistics.median(r.qps for r in runs),
        "p50_ms": statistics.median(r.pct(0.50) for r in runs),
        "p99_ms": statistics.median(r.pct(0.99) for r in runs),
        "lost": statistics.median(r.lost for r in runs),
        "server_cpu_us_per_answer": statistics.median(r.cpu_us_per_answer for r in runs),
        "dnsperf_busy": statistics.median(r.client_cpu / r.seconds for r in runs),
    }


def run_record(run: Run) -> dict[str, Any]:
    return {"completed": run.completed, "lost": run.lost, "seconds": round(run.seconds, 3),
            "answers_per_s": round(run.qps, 1), "p50_ms": round(run.pct(0.5), 3), "p99_ms": round(run.pct(0.99), 3),
            "server_cpu_us_per_answer": round(run.cpu_us_per_answer, 1),
            "dnsperf_busy": round(run.client_cpu / run.seconds, 3), "rcodes": dict(sorted(run.rcodes.items()))}


# --- checks: the gateway answers as the policy says ----------------------------------------------
def check_answers(nsd_port: int, gateway_port: int, all_sites: list[Site]) -> list[str]:
    problems = []
    allowed = next(s for s in all_sites if not s.blocked and not s.cname)
    aliased = next(s for s in all_sites if s.cname)
    blocked = next(s for s in all_sites if s.blocked)
    with_ech = next(s for s in all_sites if s.ech and not s.blocked)
    for site in (allowed, aliased):
        direct, through = dig(nsd_port, site.name, source=CLIENT), dig(gateway_port, site.name, source=CLIENT)
        if through.data("A") != direct.data("A") or through.data("A") != [site.address]:
            problems.append(f"{site.name} A: gateway {through.data('A')}, upstream {direct.data('A')}")
    answer = dig(gateway_port, blocked.name, source=CLIENT)
    if answer.data("A") != [BLOCK_ADDRESS]:
        problems.append(f"{blocked.name} (blocked) A: {answer.status} {answer.data('A')}, expected {BLOCK_ADDRESS}")
    direct_https = dig(nsd_port, with_ech.name, "HTTPS", source=CLIENT).data("HTTPS")
    through_https = dig(gateway_port, with_ech.name, "HTTPS", source=CLIENT).data("HTTPS")
    if not any("ech=" in d for d in direct_https) or any("ech=" in d for d in through_https) or not through_https:
        problems.append(f"{with_ech.name} HTTPS: upstream {direct_https}, gateway {through_https} (ECH not stripped?)")
    return problems


# --- part 2: the name-address check, in process --------------------------------------------------
def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (no event loop): one send, its StopIteration."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the coroutine suspended: it waits for I/O, so it cannot be timed this way")


async def _nothing() -> None:
    return None


def best_us(stmt: Any, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6


def claims_costs(policy: Path, data_dir: Path, all_sites: list[Site]) -> dict[str, float]:
    """Microseconds per call of what a transparent connection's claimed name costs to check."""
    from poortwachter_addons.enforce import Enforce
    from poortwachter_addons.engine import EngineAddon
    from poortwachter_addons.resolver import Lookup

    from poortwachter.bindings import BlockedBecause, NameBindings
    from poortwachter.clock import make_clock
    from poortwachter.ech import EchFronts
    from poortwachter.gateway import Engine

    engine = EngineAddon()
    engine.engine = Engine(policy, data_dir, make_clock(None))     # Lookup asks the policy's dns.upstream
    client = ipaddress.ip_address(CLIENT)
    bound_site, looked_up = [s for s in all_sites if not s.blocked and not s.cname][:2]
    bound_address, looked_up_address = (ipaddress.ip_address(s.address) for s in (bound_site, looked_up))
    now = time.monotonic()

    def enforcer(bindings: NameBindings) -> Enforce:
        bindings.learn(client, [bound_site.name], [bound_address], now + 3600, now)
        return Enforce(engine, bindings, EchFronts(), Lookup(engine), BlockedBecause())

    alone = enforcer(NameBindings())
    crowd = NameBindings()
    for c in range(10_000):      # 10,000 other clients, each told 10 names, each at its own address
        other = ipaddress.ip_address(f"10.20.{c // 256}.{c % 256}")
        for k in range(10):
            crowd.learn(other, [all_sites[(c + k) % len(all_sites)].name],
                        [ipaddress.ip_address(f"192.0.2.{(c + k) % 250 + 1}")], now + 3600, now)
    crowded = enforcer(crowd)
    # the gateway's own lookup asks NSD once for real; the timed calls find its answer cached
    assert asyncio.run(alone.lookup.confirms(looked_up.name, looked_up_address)), "NSD did not confirm"
    claim, unbound = [bound_site.name], [looked_up.name]
    for enforce, names, address in ((alone, claim, bound_address), (crowded, claim, bound_address),
                                    (alone, unbound, looked_up_address)):
        assert drive(enforce._claims(client, address, names)) == names, "claim not proven"

    async def uncached(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            alone.lookup._known.clear()
            await alone._claims(client, looked_up_address, unbound)
        return (time.perf_counter() - started) / n * 1e6

    runner = best_us(lambda: drive(_nothing()), 200_000)
    return {
        "bound name": best_us(lambda: drive(alone._claims(client, bound_address, claim)), 200_000) - runner,
        f"bound name, {len(crowd):,} bindings of 10,000 other clients":
            best_us(lambda: drive(crowded._claims(client, bound_address, claim)), 200_000) - runner,
        "unbound name, Lookup answer cached":
            best_us(lambda: drive(alone._claims(client, looked_up_address, unbound)), 200_000) - runner,
        "  of which NameBindings.bound (a dict lookup)":
            best_us(lambda: alone.bindings.bound(client, bound_address, bound_site.name, now), 1_000_000),
        "  NameBindings.bound among the other clients":
            best_us(lambda: crowd.bound(client, bound_address, bound_site.name, now), 1_000_000),
        "  the runner (send(None) to an empty coroutine)": runner,
        "unbound, not cached: one lookup to NSD (event loop)": min(asyncio.run(uncached(300)) for _ in range(5)),
    }


# --- main ----------------------------------------------------------------------------------------
def loadavg() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=300, help="names in the zones (a tenth blocked)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per target")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16, help="dnsperf -c: sockets (source ports)")
    parser.add_argument("--outstanding", type=int, default=64, help="dnsperf -q: questions in flight")
    parser.add_argument("--rate", type=int, default=200, help="questions/s of the steady scenario; 0: none")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and dnsperf to cores")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print it")
    args = parser.parse_args()

    if shutil.which("dnsperf") is None or not NSD.exists() or shutil.which("dig") is None:
        print("SKIP: needs dnsperf, nsd and dig: apt-get install dnsperf nsd bind9-dnsutils")
        return 0
    if not POORTWACHTER.exists() or not MITMDUMP.exists():
        print("SKIP: needs .venv/bin/poortwachter and .venv/bin/mitmdump (make venv)")
        return 0
    found = re.search(r"Version (\S+)", subprocess.run(["dnsperf", "-h"], capture_output=True, text=True).stdout)
    load_generator = f"dnsperf {found.group(1) if found else '?'}"
    cores = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cores) >= 2
    server_cpus = {cores[-1]} if pin else None
    client_cpus = set(cores[:-1]) if pin else None
    scenarios = [Scenario("saturated", None)] + ([Scenario(f"steady {args.rate}/s", args.rate)] if args.rate else [])

    work = Path(tempfile.mkdtemp(prefix="pw-bench-dns-"))
    nsd: Nsd | None = None
    resolvers: list[Resolver] = []
    started_all = time.perf_counter()
    load_samples = [loadavg()]
    problems: list[str] = []
    try:
        all_sites = sites(args.names)
        nsd = start_nsd(work / "nsd", zones(all_sites), server_cpus)
        nsd_pid = nsd.proc.pid if nsd.proc is not None else 0
        questions = work / "questions.txt"
        n_questions = write_questions(questions, all_sites)
        policy = work / "policy.yaml"
        policy.write_text(POLICY.format(client=CLIENT, blocked_zone=BLOCKED_ZONE, upstream_port=nsd.port,
                                        block_address=BLOCK_ADDRESS), encoding="utf-8")
        gateway = Gateway(work / "gateway", policy, server_cpus)
        audit_note = install_escrow_key(gateway.data_dir)
        bare = BareMitmdump(work / "mitmdump", nsd.port, server_cpus)
        for resolver in (gateway, bare):
            resolvers.append(resolver)
            resolver.start(probe=all_sites[0].name)
        problems += check_answers(nsd.port, gateway.dns_port, all_sites)
        ports = {"direct": nsd.port, "mitmdump": bare.dns_port, "gateway": gateway.dns_port}
        server_cpu = {"direct": lambda: tree_cpu(nsd_pid), "mitmdump": bare.cpu, "gateway": gateway.cpu}

        def load(target: str, seconds: float, sc: Scenario) -> Run:
            return dnsperf(questions, ports[target], seconds, args.clients, args.outstanding, sc.rate,
                           work / f"dnsperf-{target}.txt", server_cpu[target], client_cpus)

        for target in TARGETS:
            load(target, args.warmup, scenarios[0])
        before = {target: server_cpu[target]() for target in TARGETS}
        time.sleep(IDLE_SECONDS)
        idle = {target: (server_cpu[target]() - before[target]) / IDLE_SECONDS for target in TARGETS}
        counted_before = sum(gateway.dns_counts().values())
        runs: dict[str, dict[str, list[Run]]] = {sc.name: {t: [] for t in TARGETS} for sc in scenarios}
        for round_no in range(args.rounds):
            order = TARGETS if round_no % 2 == 0 else TARGETS[::-1]
            for sc in scenarios:
                for target in order:
                    run = load(target, args.seconds, sc)
                    runs[sc.name][target].append(run)
                    load_samples.append(loadavg())
                    print(f"  round {round_no + 1} {sc.name:<14} {target:<8} {run.qps:8.0f} answers/s  "
                          f"p50 {run.pct(0.5):7.2f} ms  p99 {run.pct(0.99):7.2f} ms  lost {run.lost:4d}  "
                          f"cpu {run.cpu_us_per_answer:6.1f} us/answer  dnsperf busy "
                          f"{run.client_cpu / run.seconds:4.0%}  load {load_samples[-1]:.2f}", flush=True)

        # --- proof: the gateway decided every question it answered, with the policy's answers ----
        counts = gateway.dns_counts()
        answered = sum(r.completed for by_target in runs.values() for r in by_target["gateway"])
        counted = sum(counts.values()) - counted_before
        if counted < answered:
            problems.append(f"the gateway counted {counted:.0f} decided names, dnsperf got {answered} answers")
        for sc in scenarios:
            for target in TARGETS:
                rcodes: Counter[str] = Counter()
                for r in runs[sc.name][target]:
                    rcodes.update(r.rcodes)
                if set(rcodes) != {"NOERROR"}:
                    problems.append(f"{sc.name}/{target}: response codes {dict(rcodes)}, expected only NOERROR")
        for resolver in resolvers:
            if not resolver.alive():
                problems.append(f"{resolver.name} died:\n{resolver.output()}")
            resolver.stop()
        checks = claims_costs(policy, gateway.data_dir, all_sites)
    finally:
        for resolver in resolvers:
            resolver.stop()
        if nsd is not None:
            nsd.stop()
        if args.keep:
            print(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load_samples.append(loadavg())

    # --- report --------------------------------------------------------------------------------
    medians = {name: {t: summary(r) for t, r in by_target.items()} for name, by_target in runs.items()}

    def ratio(sc: str, over: str, key: str) -> float:
        below = medians[sc][over][key]
        return medians[sc]["gateway"][key] / below if below else math.nan
    keys = ("answers_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_answer")
    ratios = {sc: {f"gateway/{over}": {k: ratio(sc, over, k) for k in keys} for over in ("direct", "mitmdump")}
              for sc in medians}
    blocked_names = sum(s.blocked for s in all_sites)
    print()
    print(f"Poortwachter DNS benchmark: load generator {load_generator} (-c {args.clients} -q {args.outstanding} -v), "
          f"{args.seconds:g} s per run, medians of {args.rounds} interleaved rounds")
    print(f"  {n_questions} questions: {len(all_sites)} names x A/AAAA/HTTPS, {blocked_names} names blocked, "
          f"{sum(s.cname for s in all_sites)} CNAMEs, {sum(s.ech for s in all_sites)} with ECH; asked from {CLIENT}; "
          f"upstream NSD on 127.0.0.1; {audit_note}")
    print("  targets: direct = NSD itself; mitmdump = bare mitmproxy DNS forwarding to NSD (reference); "
          "gateway = poortwachter run --dns")
    print(f"  cores: {len(cores)}; " + (f"servers (NSD and the target) pinned to CPU {sorted(server_cpus or [])}, "
                                        f"dnsperf to CPU {sorted(client_cpus or [])}" if pin else "not pinned")
          + f"; load average {load_samples[0]:.2f} before, {max(load_samples):.2f} highest, "
          f"{load_samples[-1]:.2f} after")
    print(f"  CPU without questions ({IDLE_SECONDS:g} s after the warm-up): "
          + ", ".join(f"{target} {idle[target]:.1%}" for target in TARGETS) + " of a core")
    head = (f"  {'scenario':<14} {'target':<17} {'answers/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} "
            f"{'CPU us/answer':>14} {'dnsperf busy':>13}")
    print(head)
    print("  " + "-" * (len(head) - 2))
    for sc in scenarios:
        m = medians[sc.name]
        for target in TARGETS:
            s = m[target]
            print(f"  {sc.name:<14} {target:<17} {s['answers_per_s']:10,.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} "
                  f"{s['lost']:5.0f} {s['server_cpu_us_per_answer']:14.1f} {s['dnsperf_busy']:13.0%}")
        for name, r in ratios[sc.name].items():
            print(f"  {'':<14} {name:<17} {r['answers_per_s']:10.1%} {r['p50_ms']:7.1f}x {r['p99_ms']:7.1f}x "
                  f"{'':>5} {r['server_cpu_us_per_answer']:13.1f}x")
    print("  the name-address check of a transparent connection (Enforce._claims; timeit best of 5; the "
          "coroutine driven by send(None), whose cost is subtracted):")
    for name, value in checks.items():
        print(f"    {name:<52} {value:10,.2f} us")
    elapsed = time.perf_counter() - started_all
    print(f"  total time {elapsed:.0f} s; python {platform.python_version()}")
    if max(load_samples) > 1.0:
        print("  NOTE: other processes were using the CPUs; answers/s and latencies are noisy, "
              "CPU us/answer is the steadier comparison")
    print(f"  reproduce: .venv/bin/python tests/bench/bench_dns.py {' '.join(sys.argv[1:])}".rstrip())
    for p in problems:
        print(f"  PROBLEM: {p}")

    result = {
        "config": {"names": len(all_sites), "questions": n_questions, "blocked_names": blocked_names,
                   "seconds": args.seconds, "warmup": args.warmup, "rounds": args.rounds,
                   "clients": args.clients, "outstanding": args.outstanding, "rate": args.rate,
                   "load_generator": load_generator, "pinned": pin,
                   "server_cpus": sorted(server_cpus or []), "client_cpus": sorted(client_cpus or []),
                   "audit": audit_note, "python": platform.python_version(), "cpu_count": os.cpu_count(),
                   "loadavg_before": load_samples[0], "loadavg_highest": max(load_samples),
                   "loadavg_after": load_samples[-1]},
        "idle_cpu_share": idle,
        "medians": medians,
        "ratios": ratios,
        "gateway_dns_decisions": counts,
        "claims_us": checks,
        "runs": {name: {t: [run_record(r) for r in rs] for t, rs in by_target.items()}
                 for name, by_target in runs.items()},
        "problems": problems,
        "seconds": round(elapsed, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {RESULTS.relative_to(REPO)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
