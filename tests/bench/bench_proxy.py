"""Benchmark of the gateway as a proxy: mitmdump with every Poortwachter addon against bare mitmdump.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_proxy.py

Same machine, same run, same load: a local keep-alive upstream (HTTP and HTTPS, cert from a
throw-away test CA) on 127.0.0.1, two mitmdump processes started with the options of
`poortwachter run` (the gateway adds `-s addons/gateway.py` and its poortwachter_* options, with
all UT1 and Sinfonietta lists installed and an escrow key, so the audit recorder seals an event
for every request as after the key ceremony), and curl as the load generator: a fixed number of GETs
over a fixed number of keep-alive HTTP/1.1 connections, from 127.0.0.2, a pupil's laptop in a
classroom zone with `inspection: intercept`, so HTTPS is decrypted and every request is decided on
its URL. Scenarios (C = --concurrency, default 16):
- http, https: C connections, every request allowed (the school environment), so both proxies
  forward every request. The goal is measured here: gateway >= 90% of bare mitmdump's requests/s.
- http-mix, https-mix (unless --blocked-share 0): as above, but one request in ten goes to a
  forbidden page, which the gateway answers itself with its block page (403); bare forwards it.
- http-1conn, https-1conn: ONE connection, requests one after another: the latency a single
  user sees on an idle proxy. (At C connections the proxy is saturated, so p50 is about
  C / throughput by Little's law; these runs show the per-request processing time instead.)
With --variant OPTION=VALUE a third proxy runs in the same rounds: the gateway with that option
too, on its own data directory (the same lists, its own store and spool), reported next to the
gateway as "variant", e.g. `--variant poortwachter_audit_commit=fast` for what durable audit
recording (the default: every answer waits until its event is on disk) costs against answering at
once.
On two or more cores, the proxies are pinned to one core and curl and the upstream to another,
so the proxy under test has a core to itself and the runs are repeatable (--no-pin: no pinning).
Every proxy gets a warm-up, then the rounds run bare and gateway interleaved (the order flips
each round, so drift hits both alike); reported are the medians over the rounds of requests/s,
p50 and p99 latency (curl's time_total per transfer, so the first request of each connection
includes its CONNECT and TLS handshakes), and the proxy's CPU time per request (all its threads), the
figure least disturbed by other load on the machine; "capacity" is its inverse, the requests/s the
proxy would serve with one core to itself, and the goal is checked on it as well. "busy": the
proxy's CPU time / wall time of a run; well below 100% in a saturated run means the proxy was kept
off its core by other work (or, for the gateway, that its event loop waited for its own threads).
Results: tests/bench/results/proxy.json (--results: elsewhere); exit status 1 if a check failed (not
for a missed goal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.proxy.load import Run, run_curl, write_urls  # noqa: E402
from tests.bench.proxy.mitm import MITMDUMP, Mitmdump, free_port, pinned  # noqa: E402
from tests.bench.proxy.world import (  # noqa: E402
    BLOCKED_PREFIX,
    CLIENT,
    UPSTREAM_HOST,
    bench_policy,
    create_store,
    explain,
    install_escrow_key,
    install_lists,
)
from tests.e2e.pki import TestCA  # noqa: E402

RESULTS = REPO / "tests" / "bench" / "results" / "proxy.json"
UPSTREAM_SCRIPT = REPO / "tests" / "bench" / "proxy" / "upstream.py"
GOAL = 0.90
PROXIES = ("bare", "gateway")


@dataclass(frozen=True)
class Scenario:
    name: str
    scheme: str
    concurrency: int
    requests: int
    blocked_share: float = 0.0

    @property
    def goal(self) -> bool:
        """The throughput goal applies to the saturated all-allowed scenarios."""
        return self.concurrency > 1 and not self.blocked_share


def urls(scheme: str, port: int, n: int, blocked_share: float) -> list[str]:
    """n URLs on the upstream; with blocked_share, evenly spread requests to the forbidden page."""
    every = round(1 / blocked_share) if blocked_share > 0 else 0
    out = []
    for i in range(n):
        if every and i % every == every - 1:
            out.append(f"{scheme}://{UPSTREAM_HOST}:{port}{BLOCKED_PREFIX}/{i}")
        else:
            out.append(f"{scheme}://{UPSTREAM_HOST}:{port}/les/{i}?pagina={i % 50}")
    return out


def start_upstream(cert: Path, key: Path, cpus: set[int] | None) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen([sys.executable, str(UPSTREAM_SCRIPT), str(cert), str(key)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=pinned(cpus))
    assert proc.stdout is not None
    http_port, https_port = (int(p) for p in proc.stdout.readline().split())
    return proc, http_port, https_port


def gateway_counts(metrics_port: int) -> dict[str, float]:
    """Decisions the gateway recorded for the benchmark zone by action, and intercepted TLS connections."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'poortwachter_requests_total\{(.*)\} (\S+)', line)
        if m and 'zone="klaslokalen"' in m.group(1):
            action = re.search(r'action="([^"]+)"', m.group(1))
            key = action.group(1) if action else "?"
            counts[key] = counts.get(key, 0.0) + float(m.group(2))
        m = re.match(r'poortwachter_tls_connections_total\{(.*)\} (\S+)', line)
        if m and 'handling="intercept"' in m.group(1):
            counts["tls_intercepted"] = counts.get("tls_intercepted", 0.0) + float(m.group(2))
        m = re.match(r'poortwachter_audit_events_total\{result="([^"]+)"\} (\S+)', line)
        if m:
            counts[f"audit_{m.group(1)}"] = float(m.group(2))
    return counts


def summary(runs: list[Run]) -> dict[str, float]:
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.pct(0.50) for r in runs),
        "p99_ms": statistics.median(r.pct(0.99) for r in runs),
        "cpu_us_per_request": statistics.median(r.cpu_us_per_request for r in runs),
        "capacity_rps": statistics.median(1e6 / r.cpu_us_per_request for r in runs),
        "busy": statistics.median(r.proxy_cpu / r.seconds for r in runs),
    }


def run_record(run: Run) -> dict[str, Any]:
    return {"requests": run.requests, "seconds": round(run.seconds, 4), "rps": round(run.rps, 1),
            "p50_ms": round(run.pct(0.5), 3), "p99_ms": round(run.pct(0.99), 3),
            "cpu_us_per_request": round(run.cpu_us_per_request, 1), "busy": round(run.proxy_cpu / run.seconds, 3),
            "connects": run.connects, "statuses": {str(k): v for k, v in sorted(run.statuses.items())}}


def check_run(name: str, proxy: str, run: Run, expect_blocked: int, concurrency: int) -> list[str]:
    """Every request forwarded (200) except the blocked ones the gateway answers (403), over
    exactly `concurrency` kept-alive connections."""
    want = {200: run.requests - expect_blocked}
    if expect_blocked:
        want[403] = expect_blocked
    problems = []
    if dict(run.statuses) != want:
        problems.append(f"{name}/{proxy}: statuses {dict(run.statuses)}, expected {want}")
    if run.connects != concurrency:
        problems.append(f"{name}/{proxy}: {run.connects} connections opened, expected {concurrency}")
    return problems


def variant_data_dir(data_dir: Path, target: Path) -> Path:
    """A second data directory for the variant gateway: the lists hard-linked (read-only to the
    gateway), its own store, escrow key and spool (one gateway per spool)."""
    shutil.copytree(data_dir, target, copy_function=os.link,
                    ignore=lambda folder, names: [n for n in names if n.startswith("poortwachter.db")
                                                  or n == "audit"])
    create_store(target)
    install_escrow_key(target)
    return target


def loadavg() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="requests per measured run")
    parser.add_argument("--warmup", type=int, default=800, help="requests per warm-up run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--blocked-share", type=float, default=0.1,
                        help="share of blocked requests in the mix scenarios; 0: no mix scenarios")
    parser.add_argument("--serial-requests", type=int, default=1000,
                        help="requests per single-connection latency run; 0: none")
    parser.add_argument("--gateway-option", action="append", default=[], metavar="NAME=VALUE",
                        help="extra mitmdump option for the gateway only, e.g. poortwachter_audit=off "
                             "(to see what one part costs); repeatable")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=VALUE",
                        help="run a third proxy, the gateway with this option too (own data directory), "
                             "in the same rounds, e.g. poortwachter_audit_commit=fast; repeatable")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON results")
    parser.add_argument("--no-pin", action="store_true", help="do not pin proxies and client to cores")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) and print it")
    args = parser.parse_args()

    if shutil.which("curl") is None or not MITMDUMP.exists():
        print("SKIP: needs curl and .venv/bin/mitmdump (make venv)")
        return 0
    proxies_run = PROXIES + (("variant",) if args.variant else ())
    cores = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cores) >= 2
    proxy_cpus = {cores[-1]} if pin else None
    client_cpus = set(cores[:-1]) if pin else None

    scenarios = [Scenario("http", "http", args.concurrency, args.requests),
                 Scenario("https", "https", args.concurrency, args.requests)]
    if args.blocked_share > 0:
        scenarios += [Scenario("http-mix", "http", args.concurrency, args.requests, args.blocked_share),
                      Scenario("https-mix", "https", args.concurrency, args.requests, args.blocked_share)]
    if args.serial_requests > 0:
        scenarios += [Scenario("http-1conn", "http", 1, args.serial_requests),
                      Scenario("https-1conn", "https", 1, args.serial_requests)]

    work = Path(tempfile.mkdtemp(prefix="pw-bench-proxy-"))
    procs: list[Mitmdump] = []
    upstream: subprocess.Popen[str] | None = None
    started_all = time.perf_counter()
    load_before = loadavg()
    try:
        # --- the world: CA, upstream, lists, policy, store ------------------------------------
        ca = TestCA(work / "test-ca")
        cert, key = ca.leaf(UPSTREAM_HOST)
        data_dir = work / "data"
        data_dir.mkdir()
        lists_note = install_lists(data_dir)
        create_store(data_dir)
        audit_note = install_escrow_key(data_dir)
        upstream, http_port, https_port = start_upstream(cert, key, client_cpus)
        ports = {"http": http_port, "https": https_port}
        policy = bench_policy(work, (http_port, https_port))     # the upstream's ports are web ports here
        allowed = explain(policy, data_dir, f"https://{UPSTREAM_HOST}:{https_port}/les/1?pagina=1")
        blocked = explain(policy, data_dir, f"https://{UPSTREAM_HOST}:{https_port}{BLOCKED_PREFIX}/1")
        assert allowed["action"] == "allow" and allowed["inspection"] == "intercept", allowed
        assert blocked["action"] == "block", blocked

        # --- the proxies (one mitmproxy CA for both: the client trusts one file) ---------------
        confdir = work / "mitmproxy-ca"
        metrics_port = free_port()
        bare = Mitmdump("bare", work, confdir, ca.pem, None, proxy_cpus).start()
        procs.append(bare)
        gateway = Mitmdump("gateway", work, confdir, ca.pem, {
            "poortwachter_policy": str(policy),
            "poortwachter_data_dir": str(data_dir),
            "poortwachter_metrics": f"127.0.0.1:{metrics_port}",
            **dict(option.split("=", 1) for option in args.gateway_option),
        }, proxy_cpus)
        procs.append(gateway)
        gateway.start(extra_ports=(metrics_port,))
        proxies = {"bare": bare, "gateway": gateway}
        if args.variant:
            variant_dir = variant_data_dir(data_dir, work / "data-variant")
            variant = Mitmdump("variant", work, confdir, ca.pem, {
                "poortwachter_policy": str(policy),
                "poortwachter_data_dir": str(variant_dir),
                "poortwachter_metrics": f"127.0.0.1:{free_port()}",
                **dict(option.split("=", 1) for option in args.gateway_option),
                **dict(option.split("=", 1) for option in args.variant),
            }, proxy_cpus)
            procs.append(variant)
            proxies["variant"] = variant.start()
        cacert = work / "cas.pem"  # mitmproxy's CA (through a proxy) and the test CA (direct)
        cacert.write_text((confdir / "mitmproxy-ca-cert.pem").read_text() + ca.pem.read_text())

        files: dict[str, Path] = {}
        n_blocked: dict[str, int] = {}
        for sc in scenarios:
            scenario_urls = urls(sc.scheme, ports[sc.scheme], sc.requests, sc.blocked_share)
            files[sc.name] = write_urls(work / f"{sc.name}.curl", scenario_urls)
            n_blocked[sc.name] = sum(BLOCKED_PREFIX in u for u in scenario_urls)
        warm = {scheme: write_urls(work / f"warm-{scheme}.curl", urls(scheme, port, args.warmup, 0.0))
                for scheme, port in ports.items()}

        def load(url_file: Path, proxy: Mitmdump | None, concurrency: int = args.concurrency) -> Run:
            return run_curl(url_file, proxy, concurrency, CLIENT, cacert, client_cpus)

        # --- headroom: curl straight to the upstream, no proxy ---------------------------------
        direct = {scheme: load(files[scheme], None) for scheme in ports}
        problems = [p for s, r in direct.items() for p in check_run(s, "direct", r, 0, args.concurrency)]

        # --- warm-up, then the interleaved rounds ----------------------------------------------
        for proxy in proxies.values():
            for file in warm.values():
                load(file, proxy)
        runs: dict[str, dict[str, list[Run]]] = {sc.name: {p: [] for p in proxies_run} for sc in scenarios}
        for round_no in range(args.rounds):
            order = proxies_run if round_no % 2 == 0 else proxies_run[::-1]
            for sc in scenarios:
                for proxy_name in order:
                    run = load(files[sc.name], proxies[proxy_name], sc.concurrency)
                    runs[sc.name][proxy_name].append(run)
                    problems += check_run(sc.name, proxy_name, run,
                                          n_blocked[sc.name] if proxy_name != "bare" else 0, sc.concurrency)
                    print(f"  round {round_no + 1} {sc.name:<11} {proxy_name:<8}{run.rps:7.0f} req/s  "
                          f"p50 {run.pct(0.5):6.2f} ms  p99 {run.pct(0.99):6.2f} ms  "
                          f"cpu {run.cpu_us_per_request:5.0f} us/req  busy {run.proxy_cpu / run.seconds:4.0%}",
                          flush=True)
        for proxy in proxies.values():
            if not proxy.alive():
                problems.append(f"{proxy.name} died:\n{proxy.output()}")

        # --- proof that the gateway decided every request on its URL (decrypted) ------------------
        counts = gateway_counts(metrics_port)
        gw_requests = sum(r.requests for by_proxy in runs.values() for r in by_proxy["gateway"]) + 2 * args.warmup
        gw_blocked = sum(n_blocked.values()) * args.rounds
        if counts.get("allow", 0) + counts.get("block", 0) != gw_requests or counts.get("block", 0) != gw_blocked:
            problems.append(f"gateway decisions {counts} != {gw_requests} requests ({gw_blocked} blocked)")
        if not counts.get("tls_intercepted"):
            problems.append("gateway intercepted no TLS connection")
    finally:
        for proxy in procs:
            proxy.stop()
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=10)
        if args.keep:
            print(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load_after = loadavg()

    # --- report ------------------------------------------------------------------------------
    medians = {name: {p: summary(r) for p, r in by_proxy.items()} for name, by_proxy in runs.items()}
    ratios = {name: {k: m["gateway"][k] / m["bare"][k] for k in m["bare"]} for name, m in medians.items()}
    variant_ratios = ({name: {k: m["variant"][k] / m["gateway"][k] for k in m["gateway"]}
                       for name, m in medians.items()} if args.variant else {})
    print()
    print(f"Poortwachter proxy benchmark: medians of {args.rounds} interleaved rounds; "
          f"{args.requests} requests over {args.concurrency} keep-alive connections per run"
          + (f", {args.serial_requests} over 1 in the -1conn runs" if args.serial_requests else ""))
    print(f"  cores: {len(cores)}; " + (f"proxies pinned to CPU {sorted(proxy_cpus or [])}, curl + upstream to "
                                        f"CPU {sorted(client_cpus or [])}" if pin else "not pinned")
          + f"; load average {load_before:.1f} before, {load_after:.1f} after")
    print(f"  lists: {lists_note}; audit: {audit_note}"
          + (f"; gateway options: {' '.join(args.gateway_option)}" if args.gateway_option else "")
          + (f"; variant: the gateway with {' '.join(args.variant)}" if args.variant else ""))
    print(f"  direct to upstream (no proxy): http {direct['http'].rps:,.0f} req/s, "
          f"https {direct['https'].rps:,.0f} req/s")
    head = (f"  {'scenario':<12} {'proxy':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} "
            f"{'capacity':>9} {'busy':>5}")
    print(head)
    print("  " + "-" * (len(head) - 2))
    for sc in scenarios:
        m = medians[sc.name]
        for proxy_name in proxies_run:
            s = m[proxy_name]
            print(f"  {sc.name:<12} {proxy_name:<8} {s['rps']:8.0f} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} "
                  f"{s['cpu_us_per_request']:11.0f} {s['capacity_rps']:9.0f} {s['busy']:5.0%}")
        r = ratios[sc.name]
        if sc.goal:
            note = (f"   goal >= {GOAL:.0%}: req/s {'PASS' if r['rps'] >= GOAL else 'FAIL'}, "
                    f"capacity {'PASS' if r['capacity_rps'] >= GOAL else 'FAIL'}")
        elif sc.blocked_share:
            note = f"   ({n_blocked[sc.name]} of {sc.requests} blocked by the gateway)"
        else:
            note = "   (latency of a single user)"
        print(f"  {'':<12} {'gw/bare':<8} {r['rps']:8.1%} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
              f"{r['cpu_us_per_request']:11.2f} {r['capacity_rps']:9.1%} {'':>5}{note}")
        if args.variant:
            v, g = variant_ratios[sc.name], m["gateway"]
            print(f"  {'':<12} {'var/gw':<8} {v['rps']:8.1%} {m['variant']['p50_ms'] - g['p50_ms']:+8.2f} "
                  f"{m['variant']['p99_ms'] - g['p99_ms']:+8.2f} {v['cpu_us_per_request']:11.2f} "
                  f"{v['capacity_rps']:9.1%}   (p50 / p99: variant minus gateway, ms)")
    elapsed = time.perf_counter() - started_all
    print(f"  total time {elapsed:.0f} s")
    if load_before > 1.0 or load_after > len(cores) + 0.5:
        print("  NOTE: other processes were using the CPUs; throughput figures are noisy, "
              "CPU us/request is the steadier comparison")
    audit = {k.removeprefix("audit_"): int(v) for k, v in counts.items() if k.startswith("audit_")}
    print(f"  gateway audit events: {audit or 'none counted'} (of {gw_requests} decisions)")
    for p in problems:
        print(f"  PROBLEM: {p}")

    result = {
        "config": {"requests": args.requests, "warmup": args.warmup, "rounds": args.rounds,
                   "concurrency": args.concurrency, "blocked_share": args.blocked_share,
                   "serial_requests": args.serial_requests, "pinned": pin,
                   "proxy_cpus": sorted(proxy_cpus or []), "client_cpus": sorted(client_cpus or []),
                   "client": "curl --http1.1 --parallel", "upstream_body_bytes": 1024,
                   "lists": lists_note, "audit": audit_note, "python": platform.python_version(),
                   "cpu_count": os.cpu_count(),
                   "loadavg_before": load_before, "loadavg_after": load_after,
                   "mitmdump_bare": bare.argv()[1:], "mitmdump_gateway": gateway.argv()[1:]},
        "direct_rps": {s: round(r.rps, 1) for s, r in direct.items()},
        "medians": medians,
        "ratios_gateway_over_bare": ratios,
        "variant": args.variant,
        "ratios_variant_over_gateway": variant_ratios,
        "goal_rps_ratio": GOAL,
        "goal_met": {sc.name: ratios[sc.name]["rps"] >= GOAL for sc in scenarios if sc.goal},
        "goal_met_on_capacity": {sc.name: ratios[sc.name]["capacity_rps"] >= GOAL for sc in scenarios if sc.goal},
        "gateway_metrics": counts,
        "runs": {name: {p: [run_record(r) for r in rs] for p, rs in by_proxy.items()}
                 for name, by_proxy in runs.items()},
        "problems": problems,
        "seconds": round(elapsed, 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {args.results}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
