"""Benchmark of what the network-health and download-limit hooks add per request.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_hooks.py

Times, with timeit on real mitmproxy test flows (mitmproxy.test.tflow), the health addon's
response hook (one histogram observation per upstream answer) and its error hook, and the
enforcer's download-limit lookup for a client without a limit, with no limits in force and with
500. Prints nanoseconds per call (best of 5 repeats). Results: tests/bench/results/hooks.json.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results" / "hooks.json"


def best_ns(stmt, number: int) -> float:  # type: ignore[no-untyped-def]
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e9


def main() -> int:
    from mitmproxy import flow as mflow
    from mitmproxy.test import tflow

    from poortwachter.state import DownloadLimit, State
    from poortwachter_addons.engine import EngineAddon
    from poortwachter_addons.health import Health

    health = Health(EngineAddon())
    answered = tflow.tflow(resp=True)
    answered.server_conn.timestamp_start = answered.request.timestamp_start
    failed = tflow.tflow(resp=True)
    failed.error = mflow.Error("[Errno 111] Connect call failed ('192.0.2.1', 80)")

    until = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    many = State(download_limits=tuple(DownloadLimit(id=i, address=f"10.30.{i // 250}.{i % 250 + 1}",
                                                     max_bytes=1_000_000, until=until) for i in range(500)))
    client = ipaddress.ip_address("10.20.1.10")
    empty = State()

    def lookup(state: State) -> None:   # what Enforce.request does for an allowed request
        limits = state.limits
        if limits:
            limits.get(client)

    figures = {
        "health.response ns": best_ns(lambda: health.response(answered), 100_000),
        "health.error ns": best_ns(lambda: health.error(failed), 100_000),
        "limit lookup, no limits ns": best_ns(lambda: lookup(empty), 1_000_000),
        "limit lookup, 500 limits ns": best_ns(lambda: lookup(many), 1_000_000),
    }
    load = os.getloadavg()[0]
    for name, value in figures.items():
        print(f"  {name:32} {value:8.0f}")
    print(f"  load average {load:.2f}; python {sys.version.split()[0]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**figures, "load": load}, indent=2) + "\n")
    print(f"  written to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
