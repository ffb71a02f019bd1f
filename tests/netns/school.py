"""A school network in namespaces for the transparent-mode tests and the workers benchmark.

    client (10.20.1.0/24) ---- gateway ---- internet (203.0.113.0/24: web, resolvers)
                                  |
                               beheer (10.99.0.0/24: the management network)

With `ipv6=True` every link also carries IPv6 (client fd00:20:1::/64, internet 2001:db8:80::/64,
beheer fd00:99::/64, the school's IPv6 resolver in it), the ruleset gets the IPv6 defines, zone
klas both client prefixes, and the workers listen on [::] as docs/deploy.md says.

The gateway namespace forwards, loads the ruleset `poortwachter nftables` generates from the test
policy with the site defines below, and runs `poortwachter run --mode transparent --dns ...`
(one process per worker). Clients use no proxy setting: their TCP 80 and 443 and every DNS
question are redirected to the gateway. The school's resolver asks a real authoritative server
(NSD, tests/netns/authoritative.py) at RESOLVER in the internet namespace. The web server is the
end-to-end upstream (tests/e2e/upstream.py) bound to WEB:80 and WEB:443, so it records what
reached it.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import socketserver
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from poortwachter.ech import build_config_list
from tests.e2e.pki import TestCA
from tests.e2e.proxy import wait_until  # noqa: F401 - re-exported for the tests
from tests.e2e.upstream import Seen, _Handler, _Server, _tls_context
from tests.nsd import zone_file

from .authoritative import Authoritative
from .topology import Topology

REPO = Path(__file__).resolve().parents[2]
POORTWACHTER = REPO / ".venv" / "bin" / "poortwachter"

CLIENT_NET, GW_CLIENT = "10.20.1.0/24", "10.20.1.1"
CLIENTS = tuple(f"10.20.1.{n}" for n in range(10, 18))      # one laptop each, all in zone "klas"
GW_INTERNET, WEB, RESOLVER, OTHER_RESOLVER = "203.0.113.1", "203.0.113.80", "203.0.113.53", "203.0.113.99"
ELSEWHERE = "203.0.113.81"       # a forbidden address (say, a VPN server) with a web server of its own
RAW = "203.0.113.82"             # a plain TCP server: what a stream that is not web traffic would reach
BLOCKPAGE = "198.51.100.80"      # dns.block_address: blocked names resolve here, the ruleset sends it to the gateway
GW_MGMT, MGMT_HOST = "10.99.0.1", "10.99.0.10"
# IPv6 (School(ipv6=True)): documentation and unique-local prefixes, inside the namespaces only.
CLIENT_NET6, GW_CLIENT6 = "fd00:20:1::/64", "fd00:20:1::1"
CLIENTS6 = tuple(f"fd00:20:1::{n}" for n in range(10, 14))
GW_INTERNET6, WEB6 = "2001:db8:80::1", "2001:db8:80::80"
OTHER_RESOLVER6 = "2001:db8:80::99"
MGMT_NET6, GW_MGMT6, MGMT_HOST6 = "fd00:99::/64", "fd00:99::1", "fd00:99::10"
RESOLVER6 = "fd00:99::53"        # the school's resolver in the management network, as the ruleset allows
NO_IPV6_NET = "100::/64"     # the discard prefix: rules that match nothing
PROXY_PORT, METRICS_PORT, DNS_PORT = 8080, 9108, 5300   # worker n: + (n-1), + 10*(n-1), + (n-1)
START_TIMEOUT = 30.0
T = TypeVar("T")

POLICY = """\
school: "Transparante testschool"
reglement: "Reglement voor de proef met transparante onderschepping"
zones:
  klas:
    kind: classroom
    role: pupil
    cidrs: [{cidrs}]
    inspection: intercept
timetable:
  timezone: Europe/Amsterdam
  schedules:
    normaal:
      - {{name: les, start: "00:00", end: "23:59", kind: lesson}}
  weekdays: {{monday: normaal, tuesday: normaal, wednesday: normaal, thursday: normaal,
             friday: normaal, saturday: normaal, sunday: normaal}}
settings:
  gate_source: "004 art. 12"
categories:
  verboden:
    title: "Verboden sites / Forbidden sites"
    sites: [blocked.example, "{elsewhere}"]
services:
  - name: testdienst-udp
    source: "004 art. 2"
    zones: [klas]
    protocol: udp
    ports: [4433]
    to: [{webs}]
  - name: testdienst-tcp
    source: "004 art. 2"
    zones: [klas]
    protocol: tcp
    ports: [2222]
    to: [{webs}]
  - name: testdienst-ruw
    source: "004 art. 2"
    description: "a stream that is not web traffic on port 80, through the transparent proxy"
    zones: [klas]
    protocol: tcp
    ports: [80]
    to: ["{raw}"]
dns:
  upstream: ["{resolver}"]
  block_address: "{blockpage}"
rules:
  - name: verboden-sites
    source: "004 art. 11a"
    action: block
    categories: [verboden]
default: allow
default_source: "004 art. 9"
"""


def zones(ipv6: bool) -> dict[str, str]:
    """What the authoritative server knows: the test sites at WEB (and WEB6), a name that is an
    alias of a blocked one, and a site whose HTTPS record offers ECH behind `ech-front.example`."""
    ech = base64.b64encode(build_config_list("ech-front.example")).decode()
    records = []
    for name in ("lesmateriaal", "blocked", "www.lesmateriaal", "geheim"):
        records.append(f"{name} IN A {WEB}")
        if ipv6:
            records.append(f"{name} IN AAAA {WEB6}")
    records += ["alias IN CNAME blocked.example.",
                f"geheim IN HTTPS 1 . alpn=h2,http/1.1 ech={ech} ipv4hint={WEB}"]
    return {"example": zone_file("example", "\n".join(records), ttl=300, ns_address=RESOLVER)}


def nft_defines(workers: int, ruleset: Path, ipv6: bool = False) -> str:
    """The site defines of deploy/nftables/site.nft for this network and `workers` workers, then
    the ruleset generated from the policy; without `ipv6` the IPv6 management prefix is the
    discard prefix, as site.nft ships it."""
    def buckets(first: int) -> str:
        size = 1000 // workers
        return ", ".join(f"{i * size}-{999 if i == workers - 1 else (i + 1) * size - 1} : {first + i}"
                         for i in range(workers))
    return "\n".join([
        'define pw_client_ifaces = { "%s" }',
        'define pw_pupil_ifaces = { "%s" }',
        f"define pw_mgmt_prefixes = {{ {GW_MGMT.rsplit('.', 1)[0]}.0/24 }}",
        f"define pw_mgmt_prefixes6 = {{ {MGMT_NET6 if ipv6 else NO_IPV6_NET} }}",
        f"define pw_proxy_ports = {{ {', '.join(str(PROXY_PORT + i) for i in range(workers))} }}",
        f"define pw_worker_ports = {{ {buckets(PROXY_PORT)} }}",
        f"define pw_worker_dns_ports = {{ {buckets(DNS_PORT)} }}",
        "define pw_gateway_services = { 67 }",
        f'include "{ruleset}"',
        "",
    ])


PIECE = 64 * 1024


class _Downloads(_Handler):
    """The end-to-end upstream's answers, plus a download: /groot?bytes=N is N bytes with a
    Content-Length (recorded like every other request)."""

    def _answer(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/groot":
            super()._answer()
            return
        size = int(parse_qs(url.query).get("bytes", ["0"])[0])
        self.server.record(Seen(self.server.scheme, self.headers.get("Host", ""), self.path))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command != "HEAD":
                for start in range(0, size, PIECE):
                    self.wfile.write(b"x" * min(PIECE, size - start))
            self.wfile.flush()
        except OSError:            # the gateway refused the download and cut the transfer
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = _answer


class Site(_Server):
    """The end-to-end upstream server (same handler, same records, plus /groot downloads) on an
    address of the internet namespace instead of 127.0.0.1."""

    def __init__(self, scheme: str, context: object, address: tuple[str, int]) -> None:
        self._bind_to = address
        self.address_family = family(address[0])     # read by TCPServer.__init__ when it makes the socket
        super().__init__(scheme, context)  # type: ignore[arg-type]
        self.RequestHandlerClass = _Downloads

    def server_bind(self) -> None:
        self.server_address = self._bind_to
        socketserver.TCPServer.server_bind(self)   # not HTTPServer's: it would look the address up in DNS
        self.server_name, self.server_port = self._bind_to

    def seen_hosts(self) -> list[str]:
        with self._lock:
            return [s.host.split(":")[0] for s in self.seen]


class Datagrams:
    """A UDP socket that counts what arrives; `answer` may reply to each datagram."""

    def __init__(self, address: tuple[str, int], answer: Callable[[bytes], bytes | None] | None = None) -> None:
        self.sock = socket.socket(family(address[0]), socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.count = 0
        self.answer = answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=f"udp-{address}")

    def start(self) -> Datagrams:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.count += 1
            reply = self.answer(data) if self.answer else None
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listener(address: tuple[str, int]) -> socket.socket:
    """A TCP socket that accepts (the kernel completes handshakes from the backlog)."""
    sock = socket.create_server(address, family=family(address[0]), backlog=16)
    return sock


def can_connect(address: tuple[str, int], timeout: float = 2.0) -> bool | str:
    """True when a TCP connection is made, else the kind of failure ("refused", "timeout", ...)."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


@dataclass
class Worker:
    n: int | None                   # None: a plain `poortwachter run` without --worker
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def port(self) -> int:
        return PROXY_PORT + (self.n or 1) - 1

    @property
    def metrics_port(self) -> int:
        return METRICS_PORT + 10 * ((self.n or 1) - 1)


@dataclass
class School:
    topo: Topology
    workdir: Path
    client: str = ""
    gateway: str = ""
    internet: str = ""
    mgmt: str = ""
    client_if: str = ""
    gateway_client_if: str = ""     # the gateway's end of the client link (its VLAN interface)
    ca: TestCA | None = None
    web: list[Site] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    dns: Authoritative | None = None
    worker_options: list[str] = field(default_factory=list)   # further mitmdump --set options
    ipv6: bool = False              # IPv6 on every link as well (see the module docstring)

    @property
    def listen_host(self) -> str:
        """What the workers' --listen names: both families with IPv6 (docs/deploy.md, section 5)."""
        return "[::]" if self.ipv6 else "0.0.0.0"

    # --- building ----------------------------------------------------------------------------
    def build(self, workers: int = 1, numbered: bool = False, web: bool = True, start: bool = True) -> School:
        """The namespaces, links, routes and ruleset; the web servers unless `web` is False (a
        benchmark brings its own); the workers (numbered --worker 1, 2, ... when more than one
        or `numbered`) unless `start` is False (then call start_workers)."""
        topo = self.topo
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client, self.gateway = topo.namespace("klas"), topo.namespace("gw")
        self.internet, self.mgmt = topo.namespace("inet"), topo.namespace("beheer")
        self.client_if, gw_client_if = topo.link(self.client, f"{CLIENTS[0]}/24", self.gateway, f"{GW_CLIENT}/24")
        self.gateway_client_if = gw_client_if
        for extra in CLIENTS[1:]:
            topo.run(self.client, ["ip", "addr", "add", f"{extra}/24", "dev", self.client_if], check=True)
        inet_if, gw_inet_if = topo.link(self.internet, f"{WEB}/24", self.gateway, f"{GW_INTERNET}/24")
        mgmt_if, gw_mgmt_if = topo.link(self.mgmt, f"{MGMT_HOST}/24", self.gateway, f"{GW_MGMT}/24")
        for extra in (RESOLVER, OTHER_RESOLVER):
            topo.run(self.internet, ["ip", "addr", "add", f"{extra}/24", "dev", inet_if], check=True)
        topo.route(self.client, "default", GW_CLIENT)
        topo.resolv_conf(self.client, OTHER_RESOLVER)    # any resolver: the gateway answers every question
        topo.route(self.internet, "default", GW_INTERNET)
        topo.route(self.mgmt, "default", GW_MGMT)
        topo.route(self.gateway, "default", WEB)          # the rest of the internet lies that way
        topo.sysctl(self.gateway, "net.ipv4.ip_forward", "1")
        for extra in (ELSEWHERE, RAW):
            self.topo.run(self.internet, ["ip", "addr", "add", f"{extra}/24", "dev", inet_if], check=True)
        if self.ipv6:
            self._add_ipv6([(self.client, self.client_if, CLIENTS6), (self.gateway, gw_client_if, (GW_CLIENT6,)),
                            (self.internet, inet_if, (WEB6, OTHER_RESOLVER6)),
                            (self.gateway, gw_inet_if, (GW_INTERNET6,)),
                            (self.mgmt, mgmt_if, (MGMT_HOST6, RESOLVER6)), (self.gateway, gw_mgmt_if, (GW_MGMT6,))])
            topo.route(self.client, "default", GW_CLIENT6)
            topo.route(self.internet, "default", GW_INTERNET6)
            topo.route(self.mgmt, "default", GW_MGMT6)
            topo.sysctl(self.gateway, "net.ipv6.conf.all.forwarding", "1")
        cidrs = ", ".join(f'"{net}"' for net in ((CLIENT_NET, CLIENT_NET6) if self.ipv6 else (CLIENT_NET,)))
        (self.workdir / "policy.yaml").write_text(
            POLICY.format(cidrs=cidrs, webs=", ".join(f'"{w}"' for w in ((WEB, WEB6) if self.ipv6 else (WEB,))),
                          resolver=RESOLVER, blockpage=BLOCKPAGE, elsewhere=ELSEWHERE, raw=RAW), encoding="utf-8")
        self.load_ruleset(gw_client_if, workers)
        self.dns = Authoritative(topo, self.internet, self.workdir / "nsd", (RESOLVER,), zones(self.ipv6)).start()
        self.closers.append(self.dns.close)

        self.ca = TestCA(self.workdir / "test-ca")
        if web:
            hosts = (WEB, ELSEWHERE, WEB6) if self.ipv6 else (WEB, ELSEWHERE)
            self.web = topo.call(self.internet, lambda: [site for host in hosts for site in (
                Site("http", None, (host, 80)), Site("https", _tls_context(self.ca), (host, 443)))])
        for server in self.web:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.closers.append(server.shutdown)
            self.closers.append(server.server_close)
        if start:
            self.start_workers(workers, numbered)
        return self

    def start_workers(self, workers: int, numbered: bool = False) -> None:
        for n in range(1, workers + 1):
            self.start_worker(n if numbered or workers > 1 else None)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def _add_ipv6(self, ends: list[tuple[str, str, tuple[str, ...]]]) -> None:
        """IPv6 addresses (/64) on link ends; `nodad`: usable at once, no duplicate address detection
        to wait for (nothing else is on these links)."""
        for ns, ifname, addresses in ends:
            for address in addresses:
                self.topo.run(ns, ["ip", "-6", "addr", "add", f"{address}/64", "dev", ifname, "nodad"], check=True)

    def load_ruleset(self, client_if: str, workers: int) -> None:
        """The ruleset `poortwachter nftables` makes of the policy, with this network's site defines."""
        ruleset = self.workdir / "poortwachter.nft"
        made = subprocess.run([str(POORTWACHTER), "nftables", "--policy", str(self.workdir / "policy.yaml"),
                               "-o", str(ruleset)], capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(f"poortwachter nftables: {made.stderr}")
        site = self.workdir / "site.nft"
        site.write_text(nft_defines(workers, ruleset, self.ipv6) % (client_if, client_if), encoding="utf-8")
        done = self.topo.run(self.gateway, ["nft", "-f", str(site)])
        if done.returncode != 0:
            raise RuntimeError(f"nft -f {site}: {done.stderr}")

    def start_worker(self, n: int | None) -> Worker:
        data = self.workdir / "data"
        log = self.workdir / f"worker-{n or 0}.log"
        argv = [str(POORTWACHTER), "--data-dir", str(data), "run", "--policy", str(self.workdir / "policy.yaml"),
                "--mode", "transparent", "--listen", f"{self.listen_host}:{PROXY_PORT}",
                "--dns", f"{self.listen_host}:{DNS_PORT}", "--metrics", f"127.0.0.1:{METRICS_PORT}"]
        if n is not None:
            argv += ["--worker", str(n)]
        assert self.ca is not None
        options = {"ssl_verify_upstream_trusted_ca": str(self.ca.pem), "poortwachter_audit_interval": "0.05"}
        options.update(o.split("=", 1) for o in self.worker_options)   # mitmdump refuses an option twice
        argv += ["--", *(w for name, value in options.items() for w in ("--set", f"{name}={value}"))]
        with open(log, "wb") as out:
            proc = self.topo.popen(self.gateway, argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=self.workdir, env=clean_env(), start_new_session=True)
        worker = Worker(n, proc, log)
        self.workers.append(worker)
        deadline = time.monotonic() + START_TIMEOUT
        local = "::1" if self.ipv6 else "127.0.0.1"      # a worker on [::] surely listens on ::1
        while not (self.on_gateway(lambda: can_connect((local, worker.port), 0.5) is True)
                   and self.on_gateway(lambda: can_connect(("127.0.0.1", worker.metrics_port), 0.5) is True)):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"worker {n} did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        return worker

    # --- using it ----------------------------------------------------------------------------
    @property
    def school_ca(self) -> Path:
        """The gateway's CA: what the school's managed devices trust."""
        return self.workdir / "data" / "ca" / "mitmproxy-ca-cert.pem"

    def curl(self, url: str, *args: str, source: str = CLIENTS[0], ns: str | None = None) -> tuple[int, str]:
        """curl from a client address with no proxy setting: (HTTP status, body); status 0 on failure."""
        argv = ["curl", "-sS", "--noproxy", "*", "--max-time", "10", "--interface", source,
                "--cacert", str(self.school_ca), "-o", "-", "-w", "\n%{http_code}", *args, url]
        done = self.topo.run(ns or self.client, argv, env=clean_env(), timeout=20)
        body, _, code = done.stdout.rpartition("\n")
        return int(code or 0), body

    def on_gateway(self, func: Callable[[], T]) -> T:
        return self.topo.call(self.gateway, func)

    def metrics(self, worker: Worker) -> str:
        def scrape() -> str:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5) as resp:
                return str(resp.read().decode())
        return self.on_gateway(scrape)

    def requests_seen(self, worker: Worker) -> float:
        """Decisions the worker made for zone klas."""
        total = 0.0
        for line in self.metrics(worker).splitlines():
            if line.startswith("poortwachter_requests_total{") and 'zone="klas"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def web_saw(self, host: str) -> bool:
        return any(h == host for server in self.web for h in server.seen_hosts())

    def close(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(timeout=5)
        for close in reversed(self.closers):
            close()
        self.closers.clear()


__all__ = ["School", "Datagrams", "listener", "can_connect", "wait_until", "CLIENTS", "WEB", "RESOLVER", "ELSEWHERE",
           "BLOCKPAGE", "RAW",
           "OTHER_RESOLVER", "MGMT_HOST", "GW_CLIENT", "CLIENTS6", "WEB6", "RESOLVER6", "OTHER_RESOLVER6",
           "MGMT_HOST6", "GW_CLIENT6"]
