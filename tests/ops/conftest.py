"""Fixtures of the operations tests: the end-to-end gateway (a real mitmdump with the addons),
a real sensor process, and the files under deploy/prometheus/ and dashboards/."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ..e2e.conftest import gateway, policy_text, reload_interval, test_ca, upstream  # noqa: F401  (fixtures)
from ..e2e.proxy import POORTWACHTER, TEST_POLICY, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
SENSOR_START_TIMEOUT = 30.0


def load_grafana() -> ModuleType:
    """dashboards/grafana.py (a script directory, not a package): how the dashboards are read."""
    spec = importlib.util.spec_from_file_location("poortwachter_dashboards_grafana", DASHBOARDS / "grafana.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def grafana() -> ModuleType:
    return load_grafana()


def scrape(port: int) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never an env proxy
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode("utf-8"))


@pytest.fixture(scope="module")
def sensor_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One scrape of a real `poortwachter sensor` on the loopback interface."""
    workdir = tmp_path_factory.mktemp("sensor")
    port = free_port()
    argv = [str(POORTWACHTER), "sensor", "--interface", "lo", "--policy", str(TEST_POLICY),
            "--metrics-listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / "data")]
    log = workdir / "sensor.log"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["POORTWACHTER_DATA_DIR"] = str(workdir / "data")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=workdir, start_new_session=True)
    try:
        deadline = time.monotonic() + SENSOR_START_TIMEOUT
        while not port_open(port):
            if proc.poll() is not None:
                pytest.fail(f"`poortwachter sensor` exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                pytest.fail(f"`poortwachter sensor` not serving metrics after {SENSOR_START_TIMEOUT:.0f} s:\n"
                            f"{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield scrape(port)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
