"""Network namespaces joined by veth pairs, made and removed by the tests themselves.

Every name carries a per-run prefix, so parallel runs and left-overs of a killed run never
collide; nothing here touches an interface or address outside the namespaces it made."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def ip(*args: str, ns: str | None = None) -> str:
    cmd = ["ip", *(("-n", ns) if ns else ()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


def usable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespace tests need root (CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


@dataclass
class Topology:
    """A set of namespaces and the veth links between them; `close()` removes all of it."""

    prefix: str = field(default_factory=lambda: "pw" + uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)

    def namespace(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("link", "set", "lo", "up", ns=name)
        return name

    def link(self, a: str, a_addr: str | None, b: str, b_addr: str | None,
             a_mac: str | None = None, b_mac: str | None = None) -> tuple[str, str]:
        """A veth pair between namespaces a and b; addresses in CIDR form (`10.0.0.1/24`) or None.
        Interface names are short (15 bytes max): <prefix-tail><index><a|b>."""
        index = len(self.namespaces) * 10 + sum(1 for _ in self._links)
        self._links.append(index)
        a_if, b_if = f"v{self.prefix[-4:]}{index}a", f"v{self.prefix[-4:]}{index}b"
        ip("link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b)
        for ns, ifname, addr, mac in ((a, a_if, a_addr, a_mac), (b, b_if, b_addr, b_mac)):
            if mac:
                ip("link", "set", ifname, "address", mac, ns=ns)
            if addr:
                ip("addr", "add", addr, "dev", ifname, ns=ns)
            ip("link", "set", ifname, "up", ns=ns)
        return a_if, b_if

    _links: list[int] = field(default_factory=list)
    _etc: list[Path] = field(default_factory=list)     # /etc/netns/<ns> directories made here

    def run(self, ns: str, cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], **kwargs)

    def popen(self, ns: str, cmd: Sequence[str], **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        return subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kwargs)

    def sysctl(self, ns: str, key: str, value: str) -> None:
        done = self.run(ns, ["sysctl", "-qw", f"{key}={value}"])
        if done.returncode != 0:
            raise RuntimeError(f"sysctl {key} in {ns}: {done.stderr.strip()}")

    def route(self, ns: str, destination: str, via: str) -> None:
        """A route in `ns`: `destination` ("default" or a CIDR) through the neighbour `via`."""
        ip("route", "add", destination, "via", via, ns=ns)

    def call(self, ns: str, func: Callable[[], T], timeout: float = 30.0) -> T:
        """Run `func` in a thread moved into namespace `ns` (setns moves the calling thread only)
        and return its result. Sockets it creates stay in `ns` for their whole life, so a server
        made here can be served from any thread of the test process."""
        result: list[T] = []
        error: list[BaseException] = []

        def inside() -> None:
            try:
                with open(f"/run/netns/{ns}") as handle:
                    os.setns(handle.fileno(), os.CLONE_NEWNET)
                result.append(func())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                error.append(exc)

        thread = threading.Thread(target=inside, name=f"netns-{ns}", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"call in {ns} did not return within {timeout:.0f} s")
        if error:
            raise error[0]
        return result[0]

    def resolv_conf(self, ns: str, nameserver: str) -> None:
        """/etc/resolv.conf as programs run with `ip netns exec ns` see it (iproute2 mounts
        /etc/netns/<ns>/resolv.conf over it): they ask `nameserver` for every name."""
        directory = Path("/etc/netns") / ns
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:2 attempts:2\n")
        self._etc.append(directory)

    def close(self) -> None:
        for name in reversed(self.namespaces):   # removing a namespace removes its veth ends
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.namespaces.clear()
        for directory in self._etc:
            shutil.rmtree(directory, ignore_errors=True)
        self._etc.clear()
