"""A real mitmdump running the Poortwachter addons, as production starts it (cli.mitmdump_args),
plus the test-only redirect addon that keeps all traffic on this machine."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.processes import stop

from .pki import TestCA
from .upstream import Upstream

REPO = Path(__file__).resolve().parents[2]
MITMDUMP = REPO / ".venv" / "bin" / "mitmdump"
POORTWACHTER = REPO / ".venv" / "bin" / "poortwachter"
GATEWAY_SCRIPT = REPO / "addons" / "gateway.py"
REDIRECT_SCRIPT = Path(__file__).with_name("redirect_upstream.py")
TEST_POLICY = Path(__file__).with_name("data") / "policy.yaml"

START_TIMEOUT = 30.0

# Tuesday 24 November 2026, Amsterdam time, in the test timetable (tests/e2e/data/policy.yaml)
LESSON = "2026-11-24T09:00:00+01:00"   # 1e-blok
BREAK = "2026-11-24T10:15:00+01:00"    # pauze

# Source addresses of the clients, one per zone of the test policy
CLASSROOM = "127.0.0.2"   # klas: intercept + SafeSearch, pupils
PUBLIC = "127.0.0.3"      # kantine: passthrough, pupils
STAFF = "127.0.0.4"       # personeel: intercept, staff
GUEST = "127.0.0.9"       # in no zone: guest rules


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def replace_file(path: Path, text: str) -> None:
    """Write a file the way an editor or config tool should: a new file renamed over the old one,
    so the gateway never reads half a file (and sees a new inode, whatever the mtime resolution)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it is true or `timeout` seconds passed (bounded wait, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for: {what}")
        time.sleep(interval)


class Gateway:
    def __init__(self, workdir: Path, upstream: Upstream, ca: TestCA, policy_text: str,
                 clock: str = LESSON, reload_interval: str = "0.2") -> None:
        self.workdir = workdir
        self.upstream = upstream
        self.ca = ca
        self.confdir = workdir / "ca"
        self.data_dir = workdir / "data"
        self.policy = workdir / "policy.yaml"
        self.clock_file = workdir / "clock"
        self.stderr_file = workdir / "mitmdump.stderr"
        self.stdout_file = workdir / "mitmdump.stdout"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        replace_file(self.policy, policy_text)
        replace_file(self.clock_file, clock)
        self.reload_interval = reload_interval
        self.port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    # --- process -------------------------------------------------------------------------
    def argv(self) -> list[str]:
        # The same --set options as `poortwachter run` (cli.mitmdump_args), on test paths and ports.
        return [
            str(MITMDUMP), "-s", str(GATEWAY_SCRIPT),
            "--mode", "regular",
            "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
            "--set", f"confdir={self.confdir}",
            "--set", f"poortwachter_policy={self.policy}",
            "--set", f"poortwachter_data_dir={self.data_dir}",
            "--set", f"poortwachter_metrics=127.0.0.1:{self.metrics_port}",
            "--set", f"poortwachter_clock_file={self.clock_file}",
            "--set", f"poortwachter_reload_interval={self.reload_interval}",
            "--set", "poortwachter_policy_settle=0.5",      # production waits 2 s; tests write atomically
            "--set", "connection_strategy=lazy",
            "--set", "termlog_verbosity=error",
            "--set", "flow_detail=0",
            "--set", f"ssl_verify_upstream_trusted_ca={self.ca.pem}",
            "-s", str(REDIRECT_SCRIPT),
            "--set", f"e2e_upstream_http={self.upstream.http_port}",
            "--set", f"e2e_upstream_https={self.upstream.https_port}",
        ]

    def start(self) -> Gateway:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["POORTWACHTER_DATA_DIR"] = str(self.data_dir)
        env["POORTWACHTER_TEST_CLOCK"] = "1"      # poortwachter_clock_file: refused outside tests
        with open(self.stdout_file, "wb") as out, open(self.stderr_file, "wb") as err:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         cwd=self.workdir, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_open(self.port) and port_open(self.metrics_port)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mitmdump exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mitmdump not listening after {START_TIMEOUT:.0f} s:\n{self.output()}")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop(self.proc)

    def stderr(self) -> str:
        try:
            return self.stderr_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def output(self) -> str:
        """stderr, then stdout (where mitmproxy's own log goes): for failure messages."""
        try:
            out = self.stdout_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            out = ""
        return f"--- stderr ---\n{self.stderr()[-6000:]}\n--- stdout ---\n{out[-6000:]}"

    # --- what tests need --------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mitm_ca(self) -> Path:
        """mitmproxy's CA: what school-managed devices in intercept zones trust."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    @property
    def both_cas(self) -> Path:
        """Trusts mitmproxy's CA and the test CA: a client for which a refused handshake cannot be
        mistaken for a certificate error."""
        both = self.workdir / "both-cas.pem"
        if not both.exists():
            both.write_text(self.ca.pem.read_text() + self.mitm_ca.read_text())
        return both

    def write_policy(self, text: str) -> None:
        replace_file(self.policy, text)

    def set_clock(self, when: str) -> None:
        replace_file(self.clock_file, when)

    def metrics(self) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an env proxy
        with opener.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode("utf-8"))
