"""Where does the gateway spend its time? py-spy samples one mitmdump under the benchmark's load.

    .venv/bin/python tests/bench/proxy/profile_proxy.py [--proxy gateway|bare] [--scheme https] \
        [--py-spy PATH] [--requests 8000] [--out DIR]

Sets up the same world as bench_proxy.py (lists, policy, upstream, pinning), warms the proxy up,
then attaches `py-spy record` (from PyPI; not a project dependency, install it anywhere) to the
proxy for one load run. Prints the share of samples per top-level mitmproxy hook and per
Poortwachter function (inclusive), and writes the collapsed stacks (flamegraph input) to --out.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.bench.bench_proxy import start_upstream, urls  # noqa: E402
from tests.bench.proxy.load import run_curl, write_urls  # noqa: E402
from tests.bench.proxy.mitm import Mitmdump, free_port  # noqa: E402
from tests.bench.proxy.world import CLIENT, UPSTREAM_HOST, bench_policy, create_store, install_lists  # noqa: E402
from tests.e2e.pki import TestCA  # noqa: E402


def shares(collapsed: Path, top: int) -> None:
    """Inclusive share of samples per function of ours, and per mitmproxy addon hook."""
    total = 0
    ours: collections.Counter[str] = collections.Counter()
    idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        if any("select (selectors.py" in f or "_run_once" in f and f is frames[-1] for f in frames[-1:]):
            idle += count
        seen: set[str] = set()
        for frame in frames:
            if ("addons/" in frame or "poortwachter/" in frame or "prometheus_client" in frame) and frame not in seen:
                seen.add(frame)
                ours[frame] += count
    print(f"{total} samples; idle in select(): {idle / total:.1%}")
    for frame, count in ours.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", choices=["gateway", "bare"], default="gateway")
    parser.add_argument("--scheme", choices=["http", "https"], default="https")
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    if shutil.which(args.py_spy) is None:
        print("py-spy not found: `pip install py-spy` (anywhere) and pass --py-spy PATH")
        return 2

    work = Path(tempfile.mkdtemp(prefix="pw-profile-proxy-"))
    proxy: Mitmdump | None = None
    upstream = None
    try:
        ca = TestCA(work / "test-ca")
        cert, key = ca.leaf(UPSTREAM_HOST)
        data_dir = work / "data"
        data_dir.mkdir()
        install_lists(data_dir)
        policy = bench_policy(work)
        create_store(data_dir)
        upstream, http_port, https_port = start_upstream(cert, key, {0})
        metrics_port = free_port()
        options = None if args.proxy == "bare" else {
            "poortwachter_policy": str(policy), "poortwachter_data_dir": str(data_dir),
            "poortwachter_metrics": f"127.0.0.1:{metrics_port}"}
        proxy = Mitmdump(args.proxy, work, work / "mitmproxy-ca", ca.pem, options, {1})
        proxy.start(extra_ports=(metrics_port,) if options else ())
        assert proxy.proc is not None
        cacert = work / "cas.pem"
        cacert.write_text((work / "mitmproxy-ca" / "mitmproxy-ca-cert.pem").read_text() + ca.pem.read_text())
        port = http_port if args.scheme == "http" else https_port
        warm = write_urls(work / "warm.curl", urls(args.scheme, port, 1000, 0.0))
        load = write_urls(work / "load.curl", urls(args.scheme, port, args.requests, 0.0))
        run_curl(warm, proxy, args.concurrency, CLIENT, cacert, {0})
        collapsed = args.out / f"profile-{args.proxy}-{args.scheme}.txt"
        spy = subprocess.Popen([args.py_spy, "record", "--pid", str(proxy.proc.pid), "--rate", str(args.rate),
                                "--format", "raw", "--nolineno", "--output", str(collapsed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # py-spy attaches
        run = run_curl(load, proxy, args.concurrency, CLIENT, cacert, {0})
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
        print(f"{args.proxy} {args.scheme}: {run.rps:.0f} req/s, {run.cpu_us_per_request:.0f} us CPU/request, "
              f"statuses {dict(run.statuses)}")
        shares(collapsed, args.top)
        print(f"collapsed stacks: {collapsed}")
    finally:
        if proxy is not None:
            proxy.stop()
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
