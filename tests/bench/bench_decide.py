"""Benchmark of the decision: decisions per second on one core, start-up time and memory.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_decide.py

1. Installs all of ../shared/ut1/blacklists, the Sinfonietta pornography and social hosts lists,
   and (unless --no-synthetic) a SYNTHETIC category of 5,000,000 generated domains, the size of
   UT1's real adult list which the snapshot lacks, into a temporary data directory.
2. In a fresh process pinned to one core: the time from process start until the gateway's engine
   (policy/default.yaml plus a rule blocking the synthetic category) has loaded the compiled lists
   and answered its first decision, and the resident memory then.
3. In the same process: decisions per second over 200,000 requests (a mix of clients in every
   zone, listed hosts and their subdomains, synthetic hits, unlisted hosts, some with URL paths):
   - cold: every host new to the per-host category cache (first sight of each host);
   - warm: the same requests again (hosts already seen, as in a school day's traffic);
   - engine: through Engine.decide_all, the call the addons make (reads the clock too).
Targets: >= 200,000 decisions/s; ready within 3 s; <= 400 MB resident.
Results: tests/bench/results/decide.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
UT1 = SHARED / "ut1" / "blacklists"
SINFONIETTA = SHARED / "lists" / "sinfonietta"
RESULTS = REPO / "tests" / "bench" / "results" / "decide.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))

REQUESTS = 200_000
SEED = 20261121

CHILD = r'''
import datetime as dt, ipaddress, json, os, random, sys, time
from pathlib import Path
os.sched_setaffinity(0, {0})

def since_start() -> float:
    # process start time from /proc, in clock ticks since boot
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
    uptime = float(open("/proc/uptime").read().split()[0])
    return uptime - start

def rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

policy_file, data_dir, hosts_file, n, seed = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from zoneinfo import ZoneInfo
from poortwachter.gateway import Engine
from poortwachter.decide import Categorizer, Context, Request, decide
now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))   # Monday, 2e uur
engine = Engine(Path(policy_file), data_dir, lambda: now)
first = engine.decide(ipaddress.ip_address("10.20.1.5"), "www.example.com", "/")
ready = since_start()
rss_ready, _ = rss_mb()

rnd = random.Random(seed)
listed = [line.strip() for line in open(hosts_file) if line.strip()]
clients = [ipaddress.ip_address(a) for a in ("10.20.1.5", "10.20.7.33", "10.30.4.4", "10.30.9.1",
           "10.40.0.9", "10.20.99.7", "fd00:20::5", "192.0.2.10")]
prefixes = ["", "www.", "m.", "cdn.", "img.static."]
paths = ["/", "/index.html", "/search?q=huiswerk", "/watch?v=abc", "/video/123", "/a/b/c.js"]
reqs = []
for i in range(n):
    r = rnd.random()
    if r < 0.55:
        host = rnd.choice(prefixes) + rnd.choice(listed)
    else:
        host = f"site{i}.{rnd.choice(['nl', 'com', 'org', 'be'])}"  # unlisted, all distinct
    path = rnd.choice(paths) if rnd.random() < 0.7 else None       # None: passthrough (SNI only)
    reqs.append(Request(rnd.choice(clients), host, path))

def run(ctx) -> float:
    t = time.perf_counter()
    for req in reqs:
        decide(req, ctx, now)
    return n / (time.perf_counter() - t)

cold_ctx = Context(engine.policy, Categorizer(engine.policy, engine.index), engine.state)
cold = run(cold_ctx)
warm = max(run(cold_ctx) for _ in range(3))
addon_calls = [(r.client, [r.host], r.path) for r in reqs]
via_engine = 0.0
for _ in range(2):   # the engine has its own per-host cache: the second pass is the warm one
    t = time.perf_counter()
    for client, names, path in addon_calls:
        engine.decide_all(client, names, path)
    via_engine = n / (time.perf_counter() - t)
blocked = sum(decide(r, cold_ctx, now).blocked for r in reqs)
rss_after, hwm = rss_mb()
print(json.dumps({"ready_s": ready, "rss_ready_mb": rss_ready, "rss_after_mb": rss_after, "hwm_mb": hwm,
                  "cold_per_s": cold, "warm_per_s": warm, "engine_per_s": via_engine,
                  "blocked_share": blocked / n, "lists": len(engine.index.sizes()),
                  "entries": sum(engine.index.sizes().values()), "first": first.action}))
'''


def install_lists(data_dir: Path, synthetic: bool) -> tuple[float, Path | None]:
    cmd = [sys.executable, "-m", "poortwachter.cli", "--data-dir", str(data_dir), "lists", "update",
           "--from", str(UT1),
           "--hosts", f"sinfonietta-porn={SINFONIETTA / 'pornography-hosts'}",
           "--hosts", f"sinfonietta-social={SINFONIETTA / 'social-hosts'}"]
    synth_file = None
    if synthetic:
        from bench_lists import SYNTHETIC_COUNT, SYNTHETIC_SEED, synthetic_names

        synth_file = data_dir / "synthetic-domains.txt"
        with synth_file.open("w") as out:
            for name in synthetic_names(SYNTHETIC_COUNT, SYNTHETIC_SEED):
                out.write(name + "\n")
        cmd += ["--extra-domains", f"synthetisch={synth_file}"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, synth_file


def sample_hosts(out: Path, synth_file: Path | None, seed: int) -> None:
    """Hosts from the real lists (and the synthetic one) to build hits from."""
    import random

    rnd = random.Random(seed)
    names: list[str] = []
    for category in ("social_networks", "gambling", "games", "shopping", "doh", "vpn", "agressif", "hacking"):
        path = UT1 / category / "domains"
        if path.exists():
            lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
            names += rnd.sample(lines, min(2000, len(lines)))
    porn = [ln.split()[1] for ln in (SINFONIETTA / "pornography-hosts").read_text().splitlines()
            if ln.startswith("0.0.0.0 ") and len(ln.split()) == 2]
    names += rnd.sample(porn, 4000)
    if synth_file is not None:
        with synth_file.open() as f:
            synth = [next(f).strip() for _ in range(200_000)]
        names += rnd.sample(synth, 4000)
    out.write_text("\n".join(names) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--no-synthetic", action="store_true", help="skip the 5M synthetic category")
    args = parser.parse_args()
    if not UT1.exists():
        print(f"SKIP: {UT1} not found")
        return 0
    with tempfile.TemporaryDirectory(prefix="pw-bench-decide-") as tmp:
        data_dir = Path(tmp)
        compile_s, synth_file = install_lists(data_dir, not args.no_synthetic)
        policy = (REPO / "policy" / "default.yaml").read_text()
        if synth_file is not None:
            policy = policy.replace("\n  bank:\n", "\n  synthetisch:\n    title: Synthetisch\n    lists: [synthetisch]\n  bank:\n", 1)
            policy = policy.replace("categories: [porno, haat]", "categories: [porno, haat, synthetisch]", 1)
        policy_file = data_dir / "policy.yaml"
        policy_file.write_text(policy)
        hosts_file = data_dir / "hosts.txt"
        sample_hosts(hosts_file, synth_file, SEED)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run([sys.executable, "-c", CHILD, str(policy_file), str(data_dir), str(hosts_file),
                               str(args.requests), str(SEED)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(compile_s=compile_s, synthetic=not args.no_synthetic, requests=args.requests,
                  python=sys.version.split()[0], cpu=os.cpu_count())
    rows = [
        ("lists installed", f"{result['lists']} lists, {result['entries']:,} entries"
                            + (" (incl. 5,000,000 synthetic)" if result["synthetic"] else "")),
        ("compile (lists update)", f"{result['compile_s']:.1f} s"),
        ("process start -> first decision", f"{result['ready_s']:.2f} s   (target <= 3 s)"),
        ("resident memory when ready", f"{result['rss_ready_mb']:.0f} MB"),
        ("resident after the runs (peak)", f"{result['rss_after_mb']:.0f} MB ({result['hwm_mb']:.0f} MB)   (target <= 400 MB)"),
        ("decisions/s, cold (new hosts)", f"{result['cold_per_s']:,.0f}"),
        ("decisions/s, warm (hosts seen)", f"{result['warm_per_s']:,.0f}   (target >= 200,000)"),
        ("decisions/s, warm, via Engine.decide_all", f"{result['engine_per_s']:,.0f}"),
        ("share blocked", f"{result['blocked_share']:.1%}"),
    ]
    width = max(len(k) for k, _ in rows)
    print("Poortwachter decision benchmark (one core)")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
