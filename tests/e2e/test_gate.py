"""The gate in explicit-proxy mode: only web traffic passes the web gate. Each test plays one way a
pupil tries to carry something other than the web through the proxy (a raw stream inside a
CONNECT, a CONNECT to another port, TLS that is not HTTP, an ECH front that hides the destination,
a name on the no-decrypt list to escape inspection), against real servers on loopback: an SSH-like
banner server, a TLS server that speaks only IMAP, a WebSocket echo. And ordinary browsing (HTTP/1.1,
HTTP/2, WebSocket) still works.

Destinations are sent to those servers by redirect_upstream's `e2e_upstream_map`; every other name
goes to the shared HTTP and HTTPS upstream as in the other e2e modules.
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from .clients import connect_tunnel, curl, get_over, peer_issuer, raw_connect, read_response, tls_in_tunnel
from .gate_helpers import (
    OPENVPN_RESET,
    SSH_BANNER,
    EchoServer,
    GateGateway,
    WebSocketEcho,
    client_hello,
    ech_outer,
    is_server_hello,
    read_exactly,
    read_until_closed,
    server_answer,
    server_context,
    websocket_roundtrip,
)
from .pki import CA_NAME, TestCA
from .proxy import CLASSROOM, LESSON, MITMDUMP, PUBLIC, STAFF, TEST_POLICY, wait_until
from .upstream import Upstream

pytestmark = pytest.mark.e2e

MITM_ISSUER = "mitmproxy"
NOT_WEB = "geen-webverkeer"
PORT_CLOSED = "poort-niet-toegestaan"
ECH_HIDDEN = "ech-verborgen-bestemming"
ECH_ALLOWED = "ech-toegestaan"
ZONE = {CLASSROOM: "klas", PUBLIC: "kantine", STAFF: "personeel"}

# The test policy, plus: staff may use ECH; three services the school lists (SSH to its git server,
# its VPN on 443, IMAPS to its mail server), each for some zones only.
SERVICES = """
  - name: ssh-beheer
    source: "e2e art. 6"
    zones: [klas, kantine]
    protocol: tcp
    ports: [22]
    hosts: [git.school.test]
  - name: vpn-school
    source: "e2e art. 6"
    zones: [klas, kantine]
    protocol: tcp
    ports: [443]
    hosts: [vpn.school.test]
  - name: imaps-school
    source: "e2e art. 6"
    zones: [klas, kantine, personeel]
    protocol: tcp
    ports: [993]
    hosts: [mail.school.test]
"""


def gate_policy() -> str:
    text = TEST_POLICY.read_text(encoding="utf-8")
    staff_zone = "    inspection: intercept          # school-managed laptops, but no SafeSearch\n"
    rules = "\nrules:\n"
    assert staff_zone in text and rules in text, "the e2e test policy changed: adapt gate_policy()"
    text = text.replace(staff_zone, staff_zone + "    ech: allow\n")
    return text.replace(rules, SERVICES + rules, 1)


@dataclass
class Servers:
    banner: EchoServer         # an SSH server: its banner, then an echo
    echo: EchoServer           # echoes every byte
    imap: EchoServer           # TLS, ALPN "imap" only, certificate mail.example.com (not a service)
    imaps: EchoServer          # the same for mail.school.test (the imaps-school service)
    rogue: EchoServer          # a pupil's own TLS server posing as vpn.school.test
    tls: EchoServer            # a plain TLS server (it answers any ClientHello with its ServerHello)
    ws: WebSocketEcho
    wss: WebSocketEcho

    def routes(self) -> dict[str, int]:
        return {
            "ssh.example.com:443": self.banner.port, "www.pornhub.com:443": self.banner.port,
            "git.school.test:22": self.banner.port, "vpn.school.test:443": self.banner.port,
            "cloudflare-ech.com:443": self.echo.port, "ech.pornhub.com:443": self.echo.port,
            "mail.example.com:443": self.imap.port, "mail.school.test:993": self.imaps.port,
            "rogue.example.net:443": self.rogue.port, "grease.example.com:443": self.tls.port,
            "ws.example.com:80": self.ws.port, "ws.example.com:443": self.wss.port,
        }


@pytest.fixture(scope="module")
def servers(test_ca: TestCA) -> Iterator[Servers]:
    imap_ready = b"* OK IMAP4rev1 ready\r\n"
    made = Servers(
        banner=EchoServer(SSH_BANNER), echo=EchoServer(),
        imap=EchoServer(imap_ready, tls=server_context(test_ca, "mail.example.com", ["imap"])),
        imaps=EchoServer(imap_ready, tls=server_context(test_ca, "mail.school.test", ["imap"])),
        rogue=EchoServer(b"rogue\r\n", tls=server_context(test_ca, "vpn.school.test", ["openvpn"])),
        tls=EchoServer(tls=server_context(test_ca, "grease.example.com")),
        ws=WebSocketEcho(), wss=WebSocketEcho(tls=server_context(test_ca, "ws.example.com")))
    yield made
    for server in (made.banner, made.echo, made.imap, made.imaps, made.rogue, made.tls, made.ws, made.wss):
        server.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA,
            servers: Servers) -> Iterator[GateGateway]:
    if not MITMDUMP.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump (make venv) and curl")
    gw = GateGateway(tmp_path_factory.mktemp("gate"), upstream, test_ca, gate_policy(), LESSON,
                     routes=servers.routes()).start()
    yield gw
    crashed = not gw.alive()
    gw.stop()
    if crashed:
        pytest.fail(f"mitmdump died during the tests:\n{gw.output()}")


def _marked_ssh() -> bytes:
    """An SSH client's identification line with a marker no other test sends."""
    return b"SSH-2.0-OpenSSH_9.6p1 " + os.urandom(6).hex().encode() + b"\r\n"


def _marked_openvpn() -> bytes:
    """OpenVPN's opening packet with a fresh session id (the marker)."""
    return OPENVPN_RESET[:3] + os.urandom(8) + OPENVPN_RESET[11:]


def _reached(server: EchoServer, marker: bytes) -> bool:
    return any(marker in received for received in server.received())


def _refused_connect(gw: GateGateway, source: str, target: str) -> tuple[int, str]:
    """CONNECT `target`; the status and the whole answer (a refusal closes the connection)."""
    with raw_connect(gw, source) as sock:
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = read_until_closed(sock)
    head = answer.split(b"\r\n", 1)[0].split()
    return (int(head[1]) if len(head) > 1 and head[1].isdigit() else 0), answer.decode("latin-1")


# --- streams that are not the web, inside a CONNECT -----------------------------------------------
@pytest.mark.parametrize("payload", [_marked_ssh, _marked_openvpn], ids=["ssh", "openvpn"])
@pytest.mark.parametrize("source,target,connect_status", [
    (CLASSROOM, "ssh.example.com:443", 200),     # allowed host, intercept zone
    (CLASSROOM, "www.pornhub.com:443", 200),     # blocked host, intercept zone (block page comes later)
    (PUBLIC, "ssh.example.com:443", 200),        # allowed host, passthrough zone
    (PUBLIC, "www.pornhub.com:443", 403),        # blocked host, passthrough zone: the CONNECT is refused
], ids=["klas-allowed", "klas-blocked", "kantine-allowed", "kantine-blocked"])
def test_a_stream_that_is_not_web_traffic_is_closed_before_it_reaches_anyone(
        gateway: GateGateway, servers: Servers, source: str, target: str, connect_status: int,
        payload: Callable[[], bytes]) -> None:
    # Attack: a pupil runs SSH or OpenVPN over TCP 443 to their own server through the CONNECT
    # tunnel a browser would use. Without the gate mitmproxy relays it raw (its rawtcp fallback).
    zone = ZONE[source]
    data = payload()
    before = gateway.refusals(zone, NOT_WEB)
    recorded = gateway.events_like(("stream", zone, "block", NOT_WEB))
    tunnel = connect_tunnel(gateway, source, target)
    with tunnel.sock:
        assert tunnel.status == connect_status
        if connect_status != 200:
            return
        tunnel.sock.sendall(data)
        assert read_until_closed(tunnel.sock) == b"", "the server's banner or echo came back"
    assert not _reached(servers.banner, data)
    wait_until(lambda: gateway.refusals(zone, NOT_WEB) == before + 1, 10, "the refusal counted")
    gateway.wait_for_events(("stream", zone, "block", NOT_WEB), recorded + 1)


# --- CONNECT to other ports -----------------------------------------------------------------------
@pytest.mark.parametrize("port", [22, 8443, 1194])
@pytest.mark.parametrize("source", [CLASSROOM, PUBLIC, STAFF], ids=["klas", "kantine", "personeel"])
def test_connect_to_a_port_that_is_not_web_is_refused(gateway: GateGateway, source: str, port: int) -> None:
    # Attack: CONNECT straight to SSH (22), an alternative HTTPS port (8443) or OpenVPN (1194) on an
    # allowed host. Without the gate the proxy opens a tunnel to any port.
    zone = ZONE[source]
    before = gateway.refusals(zone, PORT_CLOSED)
    recorded = gateway.events_like(("connect", zone, "block", PORT_CLOSED))
    status, answer = _refused_connect(gateway, source, f"www.example.com:{port}")
    assert status == 403 and PORT_CLOSED in answer
    wait_until(lambda: gateway.refusals(zone, PORT_CLOSED) == before + 1, 10, "the refusal counted")
    gateway.wait_for_events(("connect", zone, "block", PORT_CLOSED), recorded + 1)


# --- services the school lists --------------------------------------------------------------------
@pytest.mark.parametrize("source", [CLASSROOM, PUBLIC], ids=["klas", "kantine"])
def test_a_listed_service_gets_its_raw_stream_both_ways(gateway: GateGateway, servers: Servers, source: str) -> None:
    # Not an attack: the policy's `services` open SSH to git.school.test:22 and the school VPN on
    # vpn.school.test:443 for these zones; the gate must relay those streams untouched.
    zone = ZONE[source]
    recorded = gateway.events_like(("stream", zone, "allow", "dienst:ssh-beheer"))
    for target, data, greeting in (("git.school.test:22", _marked_ssh(), SSH_BANNER),
                                   ("vpn.school.test:443", _marked_openvpn(), SSH_BANNER)):
        tunnel = connect_tunnel(gateway, source, target)
        with tunnel.sock:
            assert tunnel.status == 200, target
            tunnel.sock.sendall(data)
            assert read_exactly(tunnel.sock, len(greeting) + len(data)) == greeting + data
        assert _reached(servers.banner, data)
    gateway.wait_for_events(("stream", zone, "allow", "dienst:ssh-beheer"), recorded + 1)


def test_a_service_is_only_for_the_zones_it_names(gateway: GateGateway) -> None:
    # Attack: staff laptops try the pupils' SSH service (ssh-beheer names klas and kantine only).
    status, answer = _refused_connect(gateway, STAFF, "git.school.test:22")
    assert status == 403 and PORT_CLOSED in answer


@pytest.mark.parametrize("source", [CLASSROOM, PUBLIC, STAFF], ids=["klas", "kantine", "personeel"])
def test_tls_to_a_listed_service_with_its_own_alpn_is_passed_through(
        gateway: GateGateway, servers: Servers, source: str) -> None:
    # Not an attack: IMAPS to the school's mail server (service imaps-school) offering ALPN "imap":
    # the mail client talks TLS with the real server, not with the gateway.
    tunnel = connect_tunnel(gateway, source, "mail.school.test:993")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "mail.school.test", gateway.both_cas, alpn=("imap",)) as tls:
        assert peer_issuer(tls) == CA_NAME and tls.selected_alpn_protocol() == "imap"
        tls.sendall(b"a1 NOOP\r\n")
        assert read_exactly(tls, 31) == b"* OK IMAP4rev1 ready\r\na1 NOOP\r\n"


@pytest.mark.parametrize("source", [PUBLIC, CLASSROOM, STAFF], ids=["kantine", "klas", "personeel"])
def test_tls_to_a_listed_service_without_alpn_is_passed_through(
        gateway: GateGateway, servers: Servers, source: str) -> None:
    # Most mail clients offer no ALPN at all. The school listed this service as traffic other than
    # the web: it must reach the mail server itself in every zone the service names (decrypting it
    # would put the staff's mail passwords through the gateway, and break clients that pin).
    tunnel = connect_tunnel(gateway, source, "mail.school.test:993")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "mail.school.test", gateway.both_cas, alpn=()) as tls:
        assert peer_issuer(tls) == CA_NAME


@pytest.mark.parametrize("source,alpn", [(PUBLIC, ()), (PUBLIC, ("openvpn",)), (CLASSROOM, ("openvpn",))],
                         ids=["kantine-no-alpn", "kantine-openvpn", "klas-openvpn"])
def test_the_sni_of_a_service_does_not_open_another_destination(
        gateway: GateGateway, servers: Servers, source: str, alpn: tuple[str, ...]) -> None:
    # Attack: OpenVPN over TLS to the pupil's own server (rogue.example.net, an allowed host),
    # claiming the SNI of the school's VPN service (vpn.school.test). The bytes would go to the
    # CONNECT target, which no service covers: refused.
    tunnel = connect_tunnel(gateway, source, "rogue.example.net:443")
    assert tunnel.status == 200
    before = len(servers.rogue.handshakes)
    with pytest.raises((ssl.SSLError, OSError)):
        tls_in_tunnel(tunnel, "vpn.school.test", gateway.both_cas, alpn=alpn)
    assert len(servers.rogue.handshakes) == before


# --- TLS that is not HTTP ---------------------------------------------------------------------------
@pytest.mark.parametrize("source", [CLASSROOM, PUBLIC, STAFF], ids=["klas", "kantine", "personeel"])
def test_tls_offering_only_a_non_http_alpn_is_refused(gateway: GateGateway, servers: Servers, source: str) -> None:
    # Attack: a protocol other than HTTP inside TLS on 443 (here IMAP to a real TLS server that
    # offers only "imap"). Without the gate it is passed through (kantine) or intercepted and relayed.
    zone = ZONE[source]
    before = gateway.refusals(zone, NOT_WEB)
    recorded = gateway.events_like(("tls", zone, "block", NOT_WEB))
    handshakes = len(servers.imap.handshakes)
    tunnel = connect_tunnel(gateway, source, "mail.example.com:443")
    assert tunnel.status == 200
    with pytest.raises((ssl.SSLError, OSError)):
        tls_in_tunnel(tunnel, "mail.example.com", gateway.both_cas, alpn=("imap",))
    tunnel.sock.close()
    assert len(servers.imap.handshakes) == handshakes
    wait_until(lambda: gateway.refusals(zone, NOT_WEB) == before + 1, 10, "the refusal counted")
    gateway.wait_for_events(("tls", zone, "block", NOT_WEB), recorded + 1)


def test_tls_without_alpn_is_refused_for_pupils_in_passthrough(gateway: GateGateway) -> None:
    # Attack: TLS without ALPN hides what it carries, and a passthrough zone cannot look inside.
    # A browser's TLS (with ALPN) to the same host still passes.
    recorded = gateway.events_like(("tls", "kantine", "block", NOT_WEB))
    tunnel = connect_tunnel(gateway, PUBLIC, "www.example.com:443")
    assert tunnel.status == 200
    with pytest.raises((ssl.SSLError, OSError)):
        tls_in_tunnel(tunnel, "www.example.com", gateway.both_cas, alpn=())
    tunnel.sock.close()
    gateway.wait_for_events(("tls", "kantine", "block", NOT_WEB), recorded + 1)
    browser = connect_tunnel(gateway, PUBLIC, "www.example.com:443")
    with tls_in_tunnel(browser, "www.example.com", gateway.ca.pem) as tls:
        status, _, body = get_over(tls, "www.example.com", "/met-alpn")
    assert (status, body) == (200, b"upstream scheme=https host=www.example.com path=/met-alpn\n")


@pytest.mark.parametrize("source", [CLASSROOM, STAFF], ids=["klas", "personeel"])
def test_tls_without_alpn_is_decrypted_and_judged_in_intercept_zones(gateway: GateGateway, source: str) -> None:
    # Not an attack (older clients offer no ALPN): in intercept zones the gateway decrypts such TLS
    # and judges every request in it.
    tunnel = connect_tunnel(gateway, source, "www.example.com:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.example.com", gateway.mitm_ca, alpn=()) as tls:
        assert MITM_ISSUER in peer_issuer(tls)
        status, _, body = get_over(tls, "www.example.com", "/zonder-alpn")
        assert (status, body) == (200, b"upstream scheme=https host=www.example.com path=/zonder-alpn\n")
        status, headers, _ = get_over(tls, "www.pornhub.com", "/zonder-alpn")
        assert status == 403 and headers["x-poortwachter-rule"] == "verboden-categorieen"


# --- ECH --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", [PUBLIC, CLASSROOM], ids=["kantine", "klas"])
def test_ech_to_a_known_front_is_refused(gateway: GateGateway, servers: Servers, source: str) -> None:
    # Attack: Encrypted Client Hello to Cloudflare's front (cloudflare-ech.com): the real
    # destination is inside the encrypted inner hello, so the gateway cannot judge it.
    zone = ZONE[source]
    before = gateway.refusals(zone, ECH_HIDDEN)
    recorded = gateway.events_like(("tls", zone, "block", ECH_HIDDEN))
    hello = client_hello("cloudflare-ech.com", ech=ech_outer())
    tunnel = connect_tunnel(gateway, source, "cloudflare-ech.com:443")
    with tunnel.sock:
        assert tunnel.status == 200
        tunnel.sock.sendall(hello)
        answer = read_until_closed(tunnel.sock)
    assert not is_server_hello(answer) and hello not in answer
    assert not _reached(servers.echo, hello)
    wait_until(lambda: gateway.refusals(zone, ECH_HIDDEN) == before + 1, 10, "the refusal counted")
    gateway.wait_for_events(("tls", zone, "block", ECH_HIDDEN), recorded + 1)


def test_ech_is_passed_through_where_the_zone_allows_it(gateway: GateGateway, servers: Servers) -> None:
    # Not an attack: the module's policy says `ech: allow` for personeel; the hello reaches the
    # front untouched and its answer comes back.
    before = gateway.refusals("personeel", ECH_HIDDEN)
    recorded = gateway.events_like(("tls", "personeel", "allow", ECH_ALLOWED))
    hello = client_hello("cloudflare-ech.com", ech=ech_outer())
    tunnel = connect_tunnel(gateway, STAFF, "cloudflare-ech.com:443")
    with tunnel.sock:
        assert tunnel.status == 200
        tunnel.sock.sendall(hello)
        assert read_exactly(tunnel.sock, len(hello)) == hello     # the echo: relayed both ways
    assert _reached(servers.echo, hello)
    gateway.wait_for_events(("tls", "personeel", "allow", ECH_ALLOWED), recorded + 1)
    assert gateway.refusals("personeel", ECH_HIDDEN) == before


def test_ech_allow_does_not_open_a_blocked_connect_target(gateway: GateGateway, servers: Servers) -> None:
    # Attack: in a zone that allows ECH, CONNECT a blocked host (ech.pornhub.com) and send a
    # ClientHello naming the ECH front. The CONNECT target is in plain sight and blocked for
    # everyone: the connection must be refused, not passed through to it.
    hello = client_hello("cloudflare-ech.com", ech=ech_outer())
    tunnel = connect_tunnel(gateway, STAFF, "ech.pornhub.com:443")
    with tunnel.sock:
        assert tunnel.status == 200      # intercept zone: the block page would come after TLS
        tunnel.sock.sendall(hello)
        answer = server_answer(tunnel.sock)      # the echo of the hello, or the end of a refusal
    assert answer != hello
    assert not _reached(servers.echo, hello)


@pytest.mark.parametrize("source", [PUBLIC, CLASSROOM], ids=["kantine", "klas"])
def test_grease_ech_with_a_real_name_is_judged_on_that_name(gateway: GateGateway, servers: Servers,
                                                            source: str) -> None:
    # Not an attack: browsers send a GREASE ECH extension on every connection. With a real SNI it
    # is judged on that name: allowed reaches a TLS server (kantine: the site's own server; klas:
    # the gateway, which decrypts), blocked is refused.
    reached = servers.tls.connections
    tunnel = connect_tunnel(gateway, source, "grease.example.com:443")
    with tunnel.sock:
        assert tunnel.status == 200
        tunnel.sock.sendall(client_hello("grease.example.com", ech=ech_outer()))
        assert is_server_hello(server_answer(tunnel.sock))
    if source == PUBLIC:
        assert servers.tls.connections == reached + 1       # passed through to the server itself
    blocked = connect_tunnel(gateway, source, "grease.example.com:443")
    with blocked.sock:
        blocked.sock.sendall(client_hello("www.pornhub.com", ech=ech_outer()))
        if source == PUBLIC:      # passthrough: refused on the SNI
            assert not is_server_hello(read_until_closed(blocked.sock))
        else:                     # intercept: decrypted, and the request gets the block page
            assert is_server_hello(server_answer(blocked.sock))


# --- no-decrypt only when every name agrees -----------------------------------------------------------
@pytest.mark.parametrize("connect_to,sni", [("www.example.com", "www.mijnbank.nl"),
                                            ("www.mijnbank.nl", "www.example.com")])
def test_a_bank_name_alone_does_not_escape_inspection(gateway: GateGateway, connect_to: str, sni: str) -> None:
    # Attack: name the bank (no_decrypt) in the SNI or the CONNECT target, and another site in the
    # other, hoping the gateway passes the connection through unread.
    tunnel = connect_tunnel(gateway, CLASSROOM, f"{connect_to}:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, sni, gateway.mitm_ca) as tls:
        assert MITM_ISSUER in peer_issuer(tls)           # intercepted
        status, headers, body = get_over(tls, "www.pornhub.com", "/via-de-bank")
    assert status == 403 and headers["x-poortwachter-rule"] == "verboden-categorieen"
    assert b"Deze pagina is geblokkeerd" in body


def test_the_bank_itself_is_passed_through(gateway: GateGateway) -> None:
    # Not an attack: CONNECT and SNI both name the bank: the pupil talks TLS with the bank itself.
    tunnel = connect_tunnel(gateway, CLASSROOM, "www.mijnbank.nl:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.mijnbank.nl", gateway.ca.pem) as tls:
        assert peer_issuer(tls) == CA_NAME
        status, _, body = get_over(tls, "www.mijnbank.nl", "/rekening")
    assert (status, body) == (200, b"upstream scheme=https host=www.mijnbank.nl path=/rekening\n")


# --- ordinary browsing --------------------------------------------------------------------------------
@pytest.mark.parametrize("version,shown", [("--http1.1", "HTTP/1.1 200"), ("--http2", "HTTP/2 200")])
def test_intercepted_https_works_over_http1_and_http2(gateway: GateGateway, version: str, shown: str) -> None:
    r = curl(gateway, "https://www.example.com/gewoon?q=1", CLASSROOM, version, "-v")
    assert r.returncode == 0 and r.status == 200, r.stderr
    assert f"< {shown}" in r.stderr
    assert r.body == "upstream scheme=https host=www.example.com path=/gewoon?q=1\n"
    blocked = curl(gateway, "https://www.tiktok.com/", CLASSROOM, version)
    assert blocked.status == 403 and blocked.headers["x-poortwachter-rule"] == "sociale-media-in-de-les"


def test_passthrough_https_works(gateway: GateGateway) -> None:
    r = curl(gateway, "https://www.example.com/kantine", PUBLIC, cacert=gateway.ca.pem)
    assert r.returncode == 0 and r.status == 200, r.stderr
    assert r.body == "upstream scheme=https host=www.example.com path=/kantine\n"


@pytest.mark.parametrize("source,port", [(CLASSROOM, 443), (STAFF, 443), (PUBLIC, 443), (CLASSROOM, 80)],
                         ids=["klas-wss", "personeel-wss", "kantine-wss", "klas-ws"])
def test_a_websocket_to_an_allowed_site_works(gateway: GateGateway, servers: Servers, source: str, port: int) -> None:
    tunnel = connect_tunnel(gateway, source, f"ws.example.com:{port}")
    assert tunnel.status == 200
    if port == 80:
        sock = tunnel.sock
    else:   # intercept zones trust the school CA, kantine talks to the server itself
        sock = tls_in_tunnel(tunnel, "ws.example.com", gateway.ca.pem if source == PUBLIC else gateway.mitm_ca)
    with sock:
        assert websocket_roundtrip(sock, "ws.example.com", "hallo") == (101, "echo: hallo")


def test_a_websocket_to_a_blocked_site_gets_the_block(gateway: GateGateway) -> None:
    tunnel = connect_tunnel(gateway, CLASSROOM, "www.tiktok.com:443")
    with tls_in_tunnel(tunnel, "www.tiktok.com", gateway.mitm_ca) as tls:
        assert websocket_roundtrip(tls, "www.tiktok.com", "hallo") == (403, None)


def test_refusal_metrics_carry_zone_and_rule_only(gateway: GateGateway) -> None:
    assert _refused_connect(gateway, PUBLIC, "geheim.example.com:2222")[0] == 403
    text = gateway.metrics()
    lines = [line for line in text.splitlines() if line.startswith("poortwachter_refusals_total{")]
    assert lines
    for needle in ("127.0.0.", "example", "pornhub", "geheim"):
        assert needle not in text, needle
    for line in lines:
        labels = line.split("{", 1)[1].split("}", 1)[0]
        assert sorted(part.split("=")[0] for part in labels.split(",")) == ["rule", "zone"]


def test_plain_http_still_works(gateway: GateGateway) -> None:
    with raw_connect(gateway, CLASSROOM) as sock:
        sock.sendall(b"GET http://www.example.com/plat HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
        status, _, body = read_response(sock)
    assert (status, body) == (200, b"upstream scheme=http host=www.example.com path=/plat\n")
