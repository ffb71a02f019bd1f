"""mitmdump script for tests/bench/proxy/anatomy.py: measures from inside the proxy process.

- the garbage collector: time and count per generation (gc.callbacks), and the tracked heap;
- with PW_PROBE_GATEWAY=1: loads addons/gateway.py as production does and times every per-flow
  hook of every Poortwachter addon (wall time around the call; the proxy has its core alone).
Writes JSON to $PW_PROBE_OUT when mitmdump shuts down. Never load this outside the benchmark.
"""

from __future__ import annotations

import collections
import functools
import gc
import json
import os
import runpy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import hooks

GATEWAY_SCRIPT = Path(__file__).resolve().parents[3] / "addons" / "gateway.py"
LIFECYCLE = {"load", "configure", "running", "done"}

hook_seconds: collections.Counter[str] = collections.Counter()
hook_calls: collections.Counter[str] = collections.Counter()
gc_seconds = [0.0, 0.0, 0.0]
gc_count = [0, 0, 0]
_gc_started = [0.0]


def _gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        gc_seconds[info["generation"]] += time.perf_counter() - _gc_started[0]
        gc_count[info["generation"]] += 1


def _timed(key: str, hook: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(hook)
    def wrapper(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return hook(*args)
        finally:
            hook_seconds[key] += time.perf_counter() - started
            hook_calls[key] += 1
    return wrapper


class Report:
    def running(self) -> None:
        gc.callbacks.append(_gc)

    def done(self) -> None:
        Path(os.environ["PW_PROBE_OUT"]).write_text(json.dumps({
            "hooks": {k: [hook_seconds[k], hook_calls[k]] for k in hook_seconds},
            "gc_seconds": gc_seconds, "gc_count": gc_count,
            "gc_tracked_objects": len(gc.get_objects()),
        }))


addons: list[Any] = []
if os.environ.get("PW_PROBE_GATEWAY") == "1":
    addons = list(runpy.run_path(str(GATEWAY_SCRIPT))["addons"])
    for addon in addons:
        for name in hooks.all_hooks:
            hook = getattr(addon, name, None)
            if name not in LIFECYCLE and callable(hook):
                setattr(addon, name, _timed(f"{type(addon).__name__}.{name}", hook))
addons.append(Report())
