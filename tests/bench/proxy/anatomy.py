"""Where the gateway's extra time per request goes, measured inside the proxy.

    .venv/bin/python tests/bench/proxy/anatomy.py [--requests 6000] [--rounds 2]

Same world and load as bench_proxy.py (lists, policy, upstream, curl, pinning). Runs bare mitmdump
and the gateway, each with tests/bench/proxy/probe.py loaded, interleaved, over HTTP and
intercepted HTTPS, and prints per request: the proxy's CPU time, split into the main thread
(the event loop) and all other threads (the audit recorder's writer and store threads, the state
sync), the time in each Poortwachter hook (Enforce.request, SafeSearch.request, ...), and the time
in the garbage collector per generation, with the size of the tracked heap. What remains of the
CPU difference is mitmproxy's own work for the addons (dispatching every hook to every addon
object) and noise.
The probe's per-hook wrappers and GC callbacks cost a little themselves, in both proxies alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.bench.bench_proxy import start_upstream, urls  # noqa: E402
from tests.bench.proxy.load import run_curl, write_urls  # noqa: E402
from tests.bench.proxy.mitm import Mitmdump, free_port, thread_cpu_seconds  # noqa: E402
from tests.bench.proxy.world import (  # noqa: E402
    CLIENT, UPSTREAM_HOST, bench_policy, create_store, install_escrow_key, install_lists,
)
from tests.e2e.pki import TestCA  # noqa: E402

PROBE = Path(__file__).with_name("probe.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="per scheme and run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    proxy_cpus = {cores[-1]} if len(cores) >= 2 else None
    client_cpus = set(cores[:-1]) if len(cores) >= 2 else None

    work = Path(tempfile.mkdtemp(prefix="pw-anatomy-"))
    upstream = None
    results: dict[str, list[dict[str, object]]] = {"bare": [], "gateway": []}
    try:
        ca = TestCA(work / "test-ca")
        cert, key = ca.leaf(UPSTREAM_HOST)
        data_dir = work / "data"
        data_dir.mkdir()
        install_lists(data_dir)
        policy = bench_policy(work)
        create_store(data_dir)
        install_escrow_key(data_dir)
        upstream, http_port, https_port = start_upstream(cert, key, client_cpus)
        confdir = work / "mitmproxy-ca"
        for round_no in range(args.rounds):
            order = ("bare", "gateway") if round_no % 2 == 0 else ("gateway", "bare")
            for name in order:
                out = work / f"{name}-{round_no}.json"
                metrics_port = free_port()
                options = None if name == "bare" else {
                    "poortwachter_policy": str(policy), "poortwachter_data_dir": str(data_dir),
                    "poortwachter_metrics": f"127.0.0.1:{metrics_port}"}
                proxy = Mitmdump(name, work, confdir, ca.pem, options, proxy_cpus, script=PROBE,
                                 env={"PW_PROBE_OUT": str(out), "PW_PROBE_GATEWAY": "1" if options else "0"})
                proxy.start(extra_ports=(metrics_port,) if options else ())
                try:
                    cacert = work / "cas.pem"
                    cacert.write_text((confdir / "mitmproxy-ca-cert.pem").read_text() + ca.pem.read_text())
                    requests, cpu, main_cpu, other_cpu = 0, 0.0, 0.0, 0.0
                    assert proxy.proc is not None
                    for scheme, port in (("http", http_port), ("https", https_port)):
                        file = write_urls(work / f"{scheme}.curl", urls(scheme, port, args.requests, 0.0))
                        run_curl(file, proxy, args.concurrency, CLIENT, cacert, client_cpus)  # warm-up
                        main_before, other_before = thread_cpu_seconds(proxy.proc.pid)
                        run = run_curl(file, proxy, args.concurrency, CLIENT, cacert, client_cpus)
                        main_after, other_after = thread_cpu_seconds(proxy.proc.pid)
                        requests += run.requests
                        cpu += run.proxy_cpu
                        main_cpu += main_after - main_before
                        other_cpu += other_after - other_before
                finally:
                    proxy.stop()
                probe = json.loads(out.read_text())
                # the probe counts warm-up requests too: its per-request figures divide by both
                total = 2 * requests
                results[name].append({
                    "cpu_us": 1e6 * cpu / requests,
                    "main_us": 1e6 * main_cpu / requests, "other_us": 1e6 * other_cpu / requests,
                    "hooks_us": {k: 1e6 * s / total for k, (s, _n) in probe["hooks"].items()},
                    "gc_us": [1e6 * s / total for s in probe["gc_seconds"]],
                    "gc_count": probe["gc_count"], "heap": probe["gc_tracked_objects"],
                })
    finally:
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    def med(name: str, get) -> float:  # type: ignore[no-untyped-def]
        return statistics.median(get(r) for r in results[name])

    print(f"Anatomy of a request (medians of {args.rounds} runs of {args.requests} http + {args.requests} "
          f"https requests, {args.concurrency} connections), microseconds per request:")
    rows: list[tuple[str, float, float]] = [
        ("proxy CPU time", med("bare", lambda r: r["cpu_us"]), med("gateway", lambda r: r["cpu_us"])),
        ("  other threads (audit writer, store sync...)", med("bare", lambda r: r["other_us"]),
         med("gateway", lambda r: r["other_us"])),
        ("  main thread (event loop)", med("bare", lambda r: r["main_us"]), med("gateway", lambda r: r["main_us"])),
    ]
    hook_names = sorted({k for r in results["gateway"] for k in r["hooks_us"]})  # type: ignore[attr-defined]
    for hook in hook_names:
        rows.append((f"  hook {hook}", 0.0, med("gateway", lambda r, h=hook: r["hooks_us"].get(h, 0.0))))
    for gen in range(3):
        rows.append((f"  garbage collector, generation {gen}", med("bare", lambda r, g=gen: r["gc_us"][g]),
                     med("gateway", lambda r, g=gen: r["gc_us"][g])))
    print(f"  {'':<48} {'bare':>8} {'gateway':>8} {'diff':>8}")
    for label, bare, gateway in rows:
        print(f"  {label:<48} {bare:8.1f} {gateway:8.1f} {gateway - bare:8.1f}")
    explained = sum(g - b for label, b, g in rows[3:]) + rows[1][2] - rows[1][1]
    print(f"  {'rest (mitmproxy dispatch, caches, noise)':<48} {'':>8} {'':>8} "
          f"{rows[0][2] - rows[0][1] - explained:8.1f}")
    for name in ("bare", "gateway"):
        r = results[name][-1]
        print(f"  {name}: {r['heap']:,} objects tracked by the GC at exit; full collections: "
              f"{r['gc_count'][2]} in {2 * 2 * args.requests} requests")  # type: ignore[index]
    return 0


if __name__ == "__main__":
    sys.exit(main())
