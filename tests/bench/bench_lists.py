"""Benchmark of the category lists: compile time, load time, memory, lookup rate.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_lists.py

Compiles all of ../shared/ut1/blacklists, the Sinfonietta pornography hosts file and a
SYNTHETIC category of 5,000,000 generated domain names (deterministic, seed below) into a
temporary data directory, then, in fresh subprocesses, measures the time from process start
to a loaded index and its first answer, the memory (VmRSS/VmHWM) after loading and after 1M
lookups of a realistic mix of hits, subdomain hits and misses, and host_categories lookups/s.
Targets: ready within 3 s, at most 400 MB. Results: tests/bench/results/lists.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
UT1 = REPO.parent / "shared" / "ut1" / "blacklists"
PORN_HOSTS = REPO.parent / "shared" / "lists" / "sinfonietta" / "pornography-hosts"
RESULTS = REPO / "tests" / "bench" / "results" / "lists.json"

SYNTHETIC_COUNT = 5_000_000
SYNTHETIC_SEED = 20260818
MISS_SEED = 4242
QUERY_SEED = 7
LOOKUPS = 1_000_000
BATCH = 50_000
TARGET_READY_S = 3.0
TARGET_MB = 400.0

_SYLLABLES = [c + v + t for t in ("", "n", "r") for c in "bcdfghjklmnprstvwxz" for v in "aeiouy"][:256]
_TLDS = ["com"] * 12 + ["net", "org", "info", "nl", "de", "xyz", "top", "ru", "io", "co.uk", "com.br",
                        "online", "site", "fr", "be", "pl", "club", "live", "app"]
_SUBS = ["www.", "m.", "cdn.", "img2.", "api.", "static.", "a.b."]


def synthetic_names(count: int, seed: int) -> Iterator[str]:
    """Deterministic pseudo-domains that look like real ones ("bekorsu24.com", "cdn.tivanre.nl")."""
    rnd = random.Random(seed)
    syl, tlds = _SYLLABLES, _TLDS
    for _ in range(count):
        b = rnd.getrandbits(64)
        n = 3 + (b & 1)  # 3-4 syllables of 256: few accidental duplicates among 5M
        label = "".join(syl[(b >> (2 + 8 * k)) & 0xFF] for k in range(n))
        if (b >> 34) & 3 == 0:
            label += str((b >> 36) & 0x3FF)
        if (b >> 46) & 7 == 0:
            label = label[:3] + "-" + label[3:]
        name = label + "." + tlds[(b >> 50) % len(tlds)]
        if (b >> 56) & 7 == 0:
            name = ("www." if (b >> 59) & 1 else "cdn.") + name
        yield name


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory() -> dict[str, float]:
    return {k: round(status_kb(k) / 1024, 1) for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


# --- child: load and look up ----------------------------------------------------------------


def child(data_dir: Path, queries: Path, spawned_at: float) -> None:
    t_start = time.time()
    from poortwachter.lists import CategoryIndex, lists_dir

    t_imported = time.time()
    index = CategoryIndex.load(lists_dir(data_dir))
    t_loaded = time.time()
    first = index.host_categories("www.pornhub.com")
    t_first = time.time()
    after_load = memory()

    lookup = index.host_categories
    done = hits = 0
    spent = 0.0
    with open(queries) as f:
        while True:
            batch = [line.rstrip("\n") for _, line in zip(range(BATCH), f)]
            if not batch:
                break
            t0 = time.perf_counter()
            for host in batch:
                if lookup(host):
                    hits += 1
            spent += time.perf_counter() - t0
            done += len(batch)
    after_lookups = memory()

    url_queries = [("www.example.org", "/games/x"), ("epicurious.com", "/community"), ("example.com", "/free-porn")]
    t0 = time.perf_counter()
    for _ in range(100_000 // len(url_queries)):
        for host, path in url_queries:
            index.url_categories(host, path)
    url_rate = (100_000 // len(url_queries)) * len(url_queries) / (time.perf_counter() - t0)

    print(json.dumps({
        "interpreter_start_s": round(t_start - spawned_at, 3),
        "import_s": round(t_imported - t_start, 3),
        "load_s": round(t_loaded - t_imported, 4),
        "first_answer_s": round(t_first - t_loaded, 6),
        "ready_s": round(t_first - spawned_at, 3),
        "first_answer": sorted(first),
        "memory_after_load_mb": after_load,
        "lookups": done,
        "hits": hits,
        "lookups_per_s": round(done / spent),
        "memory_after_lookups_mb": after_lookups,
        "url_categories_per_s": round(url_rate),
        "generation": index.generation,
    }))


# --- parent ---------------------------------------------------------------------------------


def write_queries(path: Path, ut1_domains: list[str], porn: list[str], synthetic: list[str]) -> None:
    """1M host names: 30% UT1 entries, 15% subdomains of them, 10% synthetic entries (some as
    subdomains), 5% Sinfonietta entries, 10% near misses ("x" + listed name), 30% misses."""
    rnd = random.Random(QUERY_SEED)
    misses = synthetic_names(LOOKUPS, MISS_SEED)
    with open(path, "w") as f:
        for _ in range(LOOKUPS):
            r = rnd.random()
            if r < 0.30:
                host = rnd.choice(ut1_domains)
            elif r < 0.45:
                host = rnd.choice(_SUBS) + rnd.choice(ut1_domains)
            elif r < 0.55:
                host = rnd.choice(synthetic)
                if r < 0.50:
                    host = rnd.choice(_SUBS) + host
            elif r < 0.60:
                host = rnd.choice(porn)
            elif r < 0.70:
                host = "x" + rnd.choice(ut1_domains)
            else:
                host = next(misses) + ".example"
            f.write(host + "\n")


def run_child(data_dir: Path, queries: Path) -> dict[str, Any]:
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(data_dir), str(queries), repr(spawned)],
        capture_output=True, text=True, check=True,
    )
    wall = time.time() - spawned
    result: dict[str, Any] = json.loads(proc.stdout)
    result["process_wall_s"] = round(wall, 3)
    return result


def drop_file_cache(directory: Path) -> None:
    """Evict the build's pages from the page cache (only these files; no root needed)."""
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("DATA_DIR", "QUERIES", "SPAWNED_AT"), help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), float(args.child[2]))
        return 0

    if not UT1.is_dir() or not PORN_HOSTS.is_file():
        print(f"missing {UT1} or {PORN_HOSTS}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-lists-"))
    try:
        return run(work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path) -> int:
    print(f"SYNTHETIC data: {SYNTHETIC_COUNT:,} generated domain names (seed {SYNTHETIC_SEED}), "
          f"category 'synthetic'; real data: UT1 snapshot + Sinfonietta pornography hosts")
    t0 = time.perf_counter()
    synthetic_file = work / "synthetic-domains"
    sample: list[str] = []
    with open(synthetic_file, "w") as f:
        for i, name in enumerate(synthetic_names(SYNTHETIC_COUNT, SYNTHETIC_SEED)):
            f.write(name + "\n")
            if i % 100 == 0:
                sample.append(name)
    gen_s = time.perf_counter() - t0
    print(f"generated synthetic list: {gen_s:.1f} s, {synthetic_file.stat().st_size / 2**20:.0f} MiB")

    data_dir = work / "data"
    compile_script = (
        "import argparse, json, sys, time\n"
        "from pathlib import Path\n"
        "from poortwachter.lists.cli import register\n"
        "p = argparse.ArgumentParser(); p.add_argument('--data-dir', type=Path)\n"
        "register(p.add_subparsers(dest='command'))\n"
        "a = p.parse_args(sys.argv[1:]); t = time.perf_counter(); code = a.func(a)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'code': code, 'compile_s': time.perf_counter() - t, 'peak_mb': int(hwm) / 1024}))\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.run(  # noqa: PLW1510  (return code checked below, with output)
        [sys.executable, "-c", compile_script, "--data-dir", str(data_dir), "lists", "update",
         "--from", str(UT1), "--hosts", f"sinfonietta-porn={PORN_HOSTS}",
         "--extra-domains", f"synthetic={synthetic_file}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        return 1
    compile_wall = time.perf_counter() - t0
    compiled = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = next(line for line in proc.stdout.splitlines() if line.startswith("Lijsten"))
    print(summary)
    build = (data_dir / "lists" / "current").resolve()
    files = {p.name: p.stat().st_size for p in sorted(build.iterdir())}
    manifest = json.loads((build / "manifest.json").read_text())
    keys = sum(c["domains"] for c in manifest["categories"].values())
    distinct_synthetic = manifest["categories"]["synthetic"]["domains"]
    print(f"synthetic category: {distinct_synthetic:,} distinct names of {SYNTHETIC_COUNT:,} generated")
    print(f"compile: {compiled['compile_s']:.1f} s (process {compile_wall:.1f} s), peak RSS of the "
          f"compiling process {compiled['peak_mb']:.0f} MiB, files {sum(files.values()) / 2**20:.0f} MiB "
          f"(domains.marisa {files['domains.marisa'] / 2**20:.0f} MiB, domains.cid "
          f"{files['domains.cid'] / 2**20:.0f} MiB)")

    ut1_domains: list[str] = []
    for path in sorted(UT1.glob("*/domains")):
        lines = path.read_text().splitlines()
        ut1_domains.extend(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
    porn = [
        line.split()[1]
        for line in PORN_HOSTS.read_text().splitlines()
        if line.startswith("0.0.0.0 ") and len(line.split()) == 2
    ]
    queries = work / "queries"
    write_queries(queries, ut1_domains, porn, sample)
    del ut1_domains, porn, sample

    warm = run_child(data_dir, queries)
    drop_file_cache(build)
    cold = run_child(data_dir, queries)

    for label, r in (("warm page cache", warm), ("cold page cache (files evicted first)", cold)):
        m1, m2 = r["memory_after_load_mb"], r["memory_after_lookups_mb"]
        print(f"\n[{label}]")
        print(f"  ready (spawn -> loaded + first answer): {r['ready_s']:.3f} s "
              f"(interpreter {r['interpreter_start_s']:.3f}, imports {r['import_s']:.3f}, "
              f"load {r['load_s']:.4f}, first answer {r['first_answer_s'] * 1e6:.0f} us)")
        print(f"  memory after load:        VmRSS {m1['VmRSS']} MiB, VmHWM {m1['VmHWM']} MiB "
              f"(anon {m1['RssAnon']}, file-backed {m1['RssFile']})")
        print(f"  memory after {r['lookups']:,} lookups: VmRSS {m2['VmRSS']} MiB, VmHWM {m2['VmHWM']} MiB "
              f"(anon {m2['RssAnon']}, file-backed {m2['RssFile']})")
        print(f"  host_categories: {r['lookups_per_s']:,} lookups/s ({r['hits']:,} hits); "
              f"url_categories: {r['url_categories_per_s']:,}/s")

    worst_ready = max(float(warm["ready_s"]), float(cold["ready_s"]))
    worst_mb = max(float(r["memory_after_lookups_mb"]["VmHWM"]) for r in (warm, cold))
    ok = worst_ready <= TARGET_READY_S and worst_mb <= TARGET_MB
    print(f"\ntargets: ready <= {TARGET_READY_S} s: {worst_ready:.3f} s; memory <= {TARGET_MB:.0f} MB: "
          f"{worst_mb:.0f} MiB -> {'OK' if ok else 'MISSED'}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "synthetic": {
            "count": SYNTHETIC_COUNT, "distinct": distinct_synthetic, "seed": SYNTHETIC_SEED,
            "generated": True, "generate_s": round(gen_s, 1),
        },
        "domain_keys_total": keys,
        "categories": len(manifest["categories"]),
        "compile": {**compiled, "process_wall_s": round(compile_wall, 1), "files_bytes": files},
        "warm": warm,
        "cold": cold,
        "targets": {"ready_s": TARGET_READY_S, "memory_mb": TARGET_MB, "met": ok},
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }, indent=1) + "\n")
    print(f"written {RESULTS.relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
