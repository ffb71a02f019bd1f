"""Processes the tests start (mitmdump, NSD, Prometheus, the console): stopped the way systemd
stops a service, SIGTERM first, SIGKILL when it does not go in time."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
