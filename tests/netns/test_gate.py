"""The gate holds in transparent mode: every way out of a client network is judged.

A pupil's laptop in zone klas (tests/netns/school.py) with no proxy setting tries what a
determined pupil tries: other ports and VPN protocols past the proxy, a stream that is not web
traffic through the redirected ports, a Host header or SNI that names an allowed site on a
connection to a forbidden address, and a blocked name through the school's resolver. The firewall
is the one `poortwachter nftables` generated from the test policy; the resolver asks a real NSD.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.gate_helpers import client_hello, ech_outer, is_server_hello, server_answer
from tests.e2e.pki import spki_sha256

from . import checks
from .school import (
    BLOCKPAGE,
    CLIENTS,
    ELSEWHERE,
    OTHER_RESOLVER,
    RAW,
    WEB,
    Datagrams,
    School,
    can_connect,
    clean_env,
    wait_until,
)
from .topology import Topology

pytestmark = checks.NEEDS_TOOLS

LAPTOP = CLIENTS[0]
CHROMIUM = Path("/usr/bin/chromium")
PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
BROWSE = Path(__file__).with_name("browse.py")
OTHER = OTHER_RESOLVER        # a resolver the laptop picked: the firewall sends its questions to the gateway
WIREGUARD_INITIATION = bytes([1, 0, 0, 0]) + bytes(144)          # message type 1, 148 bytes
OPENVPN_HARD_RESET = bytes([0x38]) + bytes(13)                    # P_CONTROL_HARD_RESET_CLIENT_V2
SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    yield from checks.one_gateway(tmp_path_factory, "gate")


class Sink:
    """A TCP server that records every connection and the first bytes each one sent."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_server(address, backlog=16)
        self.sock.settimeout(0.2)
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> Sink:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(4096)
                    self.received.append(data)
                    conn.sendall(b"echo:" + data)
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _send_tcp(address: tuple[str, int], payload: bytes, source: str = LAPTOP) -> bytes | str:
    """Connect from `source`, send `payload`, return what came back (b"" for a close), or the
    kind of failure when no connection was made."""
    try:
        with socket.create_connection(address, timeout=3, source_address=(source, 0)) as sock:
            sock.sendall(payload)
            try:
                return sock.recv(4096)
            except ConnectionResetError:
                return b""
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return type(exc).__name__


# --- other ports: the firewall generated from the policy --------------------------------------------
@pytest.mark.parametrize("port,payload", [(51820, WIREGUARD_INITIATION), (1194, OPENVPN_HARD_RESET)])
def test_vpn_datagrams_never_leave_a_pupil_network(school: School, port: int, payload: bytes) -> None:
    """004 art. 12 (het filter niet omzeilen): WireGuard and OpenVPN over UDP are refused, while
    the policy's listed UDP service (port 4433) passes the same path."""
    vpn = school.topo.call(school.internet, lambda: Datagrams((WEB, port)).start())
    service = school.topo.call(school.internet, lambda: Datagrams((WEB, 4433)).start())
    try:
        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((LAPTOP, 0))
                for _ in range(3):
                    s.sendto(payload, (WEB, port))
                for _ in range(3):
                    s.sendto(b"dienst", (WEB, 4433))
        school.topo.call(school.client, send)
        wait_until(lambda: service.count == 3, 5, "the listed service's datagrams")
        assert vpn.count == 0          # sent first on the same path: had they passed, they would be here
        # from the gateway itself (not a client network) the port is open: the listener works
        school.on_gateway(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(payload, (WEB, port)))
        wait_until(lambda: vpn.count == 1, 5, "a datagram from the gateway itself")
    finally:
        vpn.close()
        service.close()


@pytest.mark.parametrize("port,payload", [(22, SSH_BANNER), (1194, OPENVPN_HARD_RESET), (8443, b"\x16\x03\x01")])
def test_other_tcp_ports_are_refused_at_once(school: School, port: int, payload: bytes) -> None:
    """SSH, OpenVPN over TCP and HTTPS on another port never connect from a pupil network, and
    fail at once (rejected, not left to time out); the listed TCP service (port 2222) connects."""
    refused = school.topo.call(school.internet, lambda: Sink((WEB, port)).start())
    listed = school.topo.call(school.internet, lambda: Sink((WEB, 2222)).start())
    try:
        outcome = school.topo.call(school.client, lambda: _send_tcp((WEB, port), payload))
        assert isinstance(outcome, str) and outcome != "timeout", outcome
        assert school.topo.call(school.client, lambda: _send_tcp((WEB, 2222), b"dienst")) == b"echo:dienst"
        assert refused.received == [] and listed.received == [b"dienst"]
        assert school.on_gateway(lambda: can_connect((WEB, port))) is True
    finally:
        refused.close()
        listed.close()


# --- through the redirected web ports: only web traffic ---------------------------------------------
@pytest.mark.parametrize("port", [80, 443])
def test_a_stream_that_is_not_web_traffic_is_refused_before_it_reaches_anyone(school: School, port: int) -> None:
    """An SSH or VPN client on the web ports: redirected to the gateway like every web connection,
    and closed there before a byte reaches the destination, unless the policy lists that
    destination as a service (testdienst-ruw: port 80 of RAW)."""
    sink = school.topo.call(school.internet, lambda: Sink((RAW, port)).start())
    try:
        before = _refusals(school)
        answer = school.topo.call(school.client, lambda: _send_tcp((RAW, port), SSH_BANNER))
        if port == 80:      # listed: passed through raw, both ways
            assert answer == b"echo:" + SSH_BANNER and sink.received == [SSH_BANNER]
        else:
            assert answer == b"" and sink.received == []
            wait_until(lambda: _refusals(school) == before + 1, 5, "the refusal counted")
    finally:
        sink.close()


def _refusals(school: School) -> float:
    total = 0.0
    for line in school.metrics(school.workers[0]).splitlines():
        if line.startswith("poortwachter_refusals_total{") and 'rule="geen-webverkeer"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- names bind to addresses ------------------------------------------------------------------------
@pytest.mark.parametrize("scheme,port", [("http", 80), ("https", 443)])
def test_an_allowed_name_on_a_forbidden_address_is_judged_on_the_address(school: School, scheme: str,
                                                                            port: int) -> None:
    """The pupil dials the forbidden address and writes the name of an allowed site in the Host
    header and the SNI. The school's resolver never gave that name this address (NSD says
    lesmateriaal.example is at WEB), so the connection is judged as going to the bare address."""
    status, body = school.curl(f"{scheme}://lesmateriaal.example/vermomd", "--resolve",
                               f"lesmateriaal.example:{port}:{ELSEWHERE}", source=LAPTOP)
    assert status == 403 and "verboden-sites" in body, body
    assert not _elsewhere_saw(school)


def _elsewhere_saw(school: School) -> bool:
    return any(server.server_address[0] == ELSEWHERE and server.seen for server in school.web)


def test_the_same_name_resolved_by_the_school_resolver_is_allowed(school: School) -> None:
    """No --resolve: the laptop asks its resolver (any: the firewall sends it to the gateway),
    gets WEB for lesmateriaal.example, and the connection to WEB may claim that name."""
    status, body = school.curl("https://lesmateriaal.example/echt", source=LAPTOP)
    assert status == 200 and body.startswith("upstream scheme=https host=lesmateriaal.example path=/echt"), body
    assert not _elsewhere_saw(school)


# --- blocked names through the school's resolver --------------------------------------------------
@pytest.mark.parametrize("url", ["http://blocked.example/spel", "https://blocked.example/spel",
                                 "https://alias.example/spel"])
def test_a_blocked_name_resolves_to_the_block_page(school: School, url: str) -> None:
    """blocked.example (and alias.example, a CNAME of it) resolve to dns.block_address, which the
    ruleset sends to the gateway: the laptop gets the block page, the site never sees it."""
    status, body = school.curl(url, source=LAPTOP)
    assert status == 403, body
    assert "Deze pagina is geblokkeerd" in body and "verboden-sites" in body
    assert not school.web_saw("blocked.example") and not school.web_saw("alias.example")


def test_the_block_page_address_refuses_everything_but_the_web(school: School) -> None:
    """Other protocols to a blocked name fail at once: the block page's address has only web."""
    outcome = school.topo.call(school.client, lambda: _send_tcp((BLOCKPAGE, 22), SSH_BANNER))
    assert isinstance(outcome, str) and outcome != "timeout", outcome


# --- a real browser through the transparent gateway and its resolver ----------------------------------
def test_chromium_gets_the_allowed_site_and_the_block_page(school: School) -> None:
    """Headless Chromium on the laptop, no proxy setting: its DNS goes to the school's resolver, its
    HTTPS to the gateway, which it trusts by the school CA's key (a managed device)."""
    if not CHROMIUM.exists():
        pytest.fail("needs Chromium at /usr/bin/chromium (`make test` installs it)")
    argv = ["ip", "netns", "exec", school.client, str(PYTHON), str(BROWSE), "--spki", spki_sha256(school.school_ca),
            "https://lesmateriaal.example/chromium", "https://blocked.example/spel"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    allowed, blocked = (json.loads(line) for line in done.stdout.splitlines())
    assert allowed["status"] == 200, allowed
    assert "upstream scheme=https host=lesmateriaal.example path=/chromium" in allowed["text"]
    assert blocked["status"] == 403, blocked
    assert "Deze pagina is geblokkeerd" in blocked["text"] and "verboden-sites" in blocked["text"]
    assert not school.web_saw("blocked.example")


# --- every shipped policy makes a ruleset the kernel takes ---------------------------------------
POLICIES = sorted((Path(__file__).resolve().parents[2] / "policy").glob("**/*.yaml"))


@pytest.mark.parametrize("policy", POLICIES, ids=[p.stem for p in POLICIES])
def test_every_shipped_policy_generates_a_ruleset_nft_loads(topology: Topology, tmp_path: Path,
                                                            policy: Path) -> None:
    ruleset = tmp_path / "poortwachter.nft"
    made = subprocess.run([str(PYTHON), "-m", "poortwachter.cli", "nftables", "--policy", str(policy), "-o",
                           str(ruleset)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site.nft"
    shipped = (Path(__file__).resolve().parents[2] / "deploy" / "nftables" / "site.nft").read_text(encoding="utf-8")
    site.write_text(shipped.replace("/etc/poortwachter/poortwachter.nft", str(ruleset)), encoding="utf-8")
    ns = topology.namespace("nft")
    loaded = topology.run(ns, ["nft", "-f", str(site)])
    assert loaded.returncode == 0, loaded.stderr
    listed = topology.run(ns, ["nft", "list", "chain", "inet", "poortwachter", "from_clients"]).stdout
    assert "reject with icmpx admin-prohibited" in listed


# --- Encrypted Client Hello ---------------------------------------------------------------------------
def _hello_answered(school: School, sni: str) -> bool:
    """A browser-like ClientHello with an ECH extension to WEB:443 from the laptop: did a TLS server
    (the gateway's interception, in zone klas) answer it with a ServerHello?"""
    hello = client_hello(sni, ech=ech_outer())

    def send() -> bool:
        with socket.create_connection((WEB, 443), timeout=5, source_address=(LAPTOP, 0)) as sock:
            sock.sendall(hello)
            return is_server_hello(server_answer(sock, 5))
    return school.topo.call(school.client, send)


def test_the_resolver_strips_ech_and_the_front_it_named_is_refused(school: School) -> None:
    """Browsers use ECH where the HTTPS record offers it; the gateway would then see only the outer
    name. The school's resolver removes the ECH keys (so the browser sends the real name) and
    remembers the outer name: a ClientHello with ECH to that front is refused from then on."""
    assert _hello_answered(school, "ech-front.example")       # unknown front: judged on its name
    dig = school.topo.run(school.client, ["dig", f"@{OTHER}", "geheim.example", "HTTPS", "+short", "+time=5"])
    assert dig.returncode == 0 and "alpn=" in dig.stdout, dig.stdout + dig.stderr
    assert "ech=" not in dig.stdout                            # the browser gets no ECH keys
    assert not _hello_answered(school, "ech-front.example")   # and the front it would have used is refused
    assert not _hello_answered(school, "cloudflare-ech.com")  # the policy's own front, always
    # a browser's GREASE ECH with the real name is judged on that name, as every connection
    assert _hello_answered(school, "lesmateriaal.example")
