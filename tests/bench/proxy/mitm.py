"""The two proxies under test: bare mitmdump, and mitmdump with every Poortwachter addon.

Both get the same mitmdump options as `poortwachter run` (cli.mitmdump_args) on benchmark paths and
ports; the gateway adds `-s addons/gateway.py` and its own `poortwachter_*` options, nothing else.
The one extra option both need is the test CA for upstream verification (the upstream's cert is
signed by it), so verification stays on, as in production.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.proxy import (  # the same helpers the end-to-end tests use
    free_port,
    port_open,
)
from tests.processes import stop

REPO = Path(__file__).resolve().parents[3]
MITMDUMP = REPO / ".venv" / "bin" / "mitmdump"
GATEWAY_SCRIPT = REPO / "addons" / "gateway.py"
START_TIMEOUT = 60.0


def clean_env() -> dict[str, str]:
    """No *_proxy variables: curl would honour no_proxy=localhost and skip the proxy under test."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A preexec_fn that pins the child (and every thread it starts) to `cpus`."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of the main thread (the event loop) and of all other threads together."""
    main = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a thread that just ended
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


class Managed:
    """A benchmarked server process: `proc`, its output in `log`."""

    proc: subprocess.Popen[bytes] | None
    log: Path

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop(self.proc)


class Mitmdump(Managed):
    def __init__(self, name: str, workdir: Path, confdir: Path, upstream_ca: Path,
                 gateway: dict[str, str] | None = None, cpus: set[int] | None = None,
                 script: Path | None = None, env: dict[str, str] | None = None) -> None:
        """`gateway`: the poortwachter_* options, None for bare mitmdump; `script` replaces
        addons/gateway.py (the anatomy probe loads it itself); `env`: extra environment."""
        self.name = name
        self.workdir = workdir
        self.confdir = confdir
        self.upstream_ca = upstream_ca
        self.gateway = gateway
        self.cpus = cpus
        self.script = script
        self.env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{name}.log"
        workdir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        argv = [str(MITMDUMP)]
        if self.script is not None:
            argv += ["-s", str(self.script)]
        elif self.gateway is not None:
            argv += ["-s", str(GATEWAY_SCRIPT)]
        argv += [
            "--mode", "regular",
            "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
            "--set", f"confdir={self.confdir}",
        ]
        for key, value in (self.gateway or {}).items():
            argv += ["--set", f"{key}={value}"]
        argv += [
            "--set", "connection_strategy=lazy",
            "--set", "termlog_verbosity=error",
            "--set", "flow_detail=0",
            "--set", f"ssl_verify_upstream_trusted_ca={self.upstream_ca}",
        ]
        return argv

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_ports: tuple[int, ...] = ()) -> Mitmdump:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=clean_env() | self.env,
                                         start_new_session=True, preexec_fn=pinned(self.cpus))
        deadline = time.monotonic() + START_TIMEOUT
        while not all(port_open(p) for p in (self.port, *extra_ports)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: mitmdump exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name}: not listening after {START_TIMEOUT:.0f} s:\n{self.output()}")
            time.sleep(0.05)
        return self

