"""The school's resolver (`poortwachter run --dns`: addons/resolver.py on poortwachter.dnsserver)
against a real authoritative server, NSD, asked by a real stub, dig, from each zone's address over
UDP and TCP. Each test plays what a client does with DNS to reach what the policy forbids: resolve
a blocked name (by A, AAAA, MX, TXT, HTTPS, a service label, or through a CNAME), learn an ECH
configuration from an HTTPS record to hide its later destination, or follow the signals that
switch a device to DNS-over-HTTPS or iCloud Private Relay.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import socket
import time
from collections.abc import Iterator

import pytest

from poortwachter.dnsforward import TIMEOUT as UPSTREAM_TIMEOUT
from poortwachter.ech import build_config_list

from .clients import connect_tunnel
from .gate_helpers import (
    EchoServer,
    GateGateway,
    client_hello,
    ech_outer,
    free_udp_and_tcp_port,
    is_server_hello,
    metric,
    read_until_closed,
    samples,
    server_answer,
    server_context,
)
from .nsd import Answer, Nsd, dig, nsd_server, zone_file  # noqa: F401  (nsd_server: the fixture `nsd`)
from .pki import TestCA
from .proxy import BREAK, CLASSROOM, LESSON, MITMDUMP, PUBLIC, STAFF, TEST_POLICY, free_port, wait_until
from .upstream import Upstream

pytestmark = pytest.mark.e2e

ECH_WWW = "ech-www.example.net"        # the public name in www.example.com's HTTPS record
ECH_SVC = "ech-svc.example.net"        # the public name in svc.example.com's SVCB record
ECH_ONLY = "ech-only.example.net"
WWW, WWW6, WWW_TTL = "192.0.2.10", "2001:db8::10", 4242
PORN, PORN6 = "198.51.100.7", "2001:db8::7"
TIKTOK = "198.51.100.8"
EXAMPLE_ORG = "192.0.2.30"
MANY = 60                               # A records of many.example.com: over 512 bytes
BLOCK_TTL = 10                          # dns.block_ttl's default
DNS_QUERIES = "poortwachter_dns_queries_total"


def _ech(name: str) -> str:
    return base64.b64encode(build_config_list(name)).decode()


@pytest.fixture(scope="module")
def nsd_zones() -> dict[str, str]:
    """Real records for every name the tests ask, so that a name the resolver failed to block, or
    a signal it failed to answer itself, would come back with NSD's answer."""
    return {
        "example.com": zone_file("example.com", f"""
www {WWW_TTL} IN A {WWW}
www IN AAAA {WWW6}
www IN HTTPS 1 . alpn=h2 ech={_ech(ECH_WWW)} ipv4hint={WWW}
svc IN SVCB 1 svc-target.example.com. mandatory=alpn,ech alpn=h2 port=8443 ech={_ech(ECH_SVC)} ipv4hint=192.0.2.20
only IN HTTPS 1 . mandatory=ech ech={_ech(ECH_ONLY)}
@ IN MX 10 mail.example.com.
alias IN CNAME hop.example.com.
hop IN CNAME www.pornhub.com.
video IN CNAME www.tiktok.com.
""" + "\n".join(f"many IN A 192.0.2.{100 + i}" for i in range(MANY)) + "\n"),
        "pornhub.com": zone_file("pornhub.com", f"""
www IN A {PORN}
www IN AAAA {PORN6}
www IN HTTPS 1 . alpn=h2,http/1.1 ipv4hint={PORN}
@ IN MX 10 mx.pornhub.com.
@ IN TXT "v=spf1 ip4:{PORN} -all"
_443._tcp.www IN TLSA 3 1 1 {'ab' * 32}
"""),
        "tiktok.com": zone_file("tiktok.com", f"www IN A {TIKTOK}"),
        "example.org": zone_file("example.org", f"@ IN A {EXAMPLE_ORG}"),
        "icloud.com": zone_file("icloud.com", "mask IN A 17.0.0.1\nmask-h2 IN AAAA 2001:db8::17"),
        "use-application-dns.net": zone_file("use-application-dns.net", "@ IN A 192.0.2.53"),
        "resolver.arpa": zone_file("resolver.arpa", "_dns IN SVCB 1 doh.example.net. alpn=h2"),
    }


def resolver_policy(upstream: str, **dns: str) -> str:
    lines = [f'  upstream: ["{upstream}"]'] + [f"  {key}: {value}" for key, value in dns.items()]
    return TEST_POLICY.read_text(encoding="utf-8") + "\ndns:\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def tls_server(test_ca: TestCA) -> Iterator[EchoServer]:
    """The TLS server behind the ECH fronts and grease.example.com: it answers any ClientHello."""
    server = EchoServer(tls=server_context(test_ca, "grease.example.com"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA,
            nsd: Nsd, tls_server: EchoServer) -> Iterator[GateGateway]:
    if not MITMDUMP.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump (make venv) and curl")
    port = free_udp_and_tcp_port()
    routes = {f"{name}:443": tls_server.port for name in (ECH_WWW, ECH_SVC, "grease.example.com")}
    gw = GateGateway(tmp_path_factory.mktemp("resolver"), upstream, test_ca,
                     resolver_policy(f"127.0.0.1:{nsd.port}"), LESSON, routes=routes, dns_port=port).start()
    wait_until(lambda: dig(port, "www.example.com", source=STAFF).status == "NOERROR", 20, "the resolver answering")
    yield gw
    crashed = not gw.alive()
    gw.stop()
    if crashed:
        pytest.fail(f"mitmdump died during the tests:\n{gw.output()}")


def ask(gw: GateGateway, name: str, rtype: str = "A", source: str = CLASSROOM, tcp: bool = False) -> Answer:
    assert gw.dns_port is not None
    return dig(gw.dns_port, name, rtype, source, tcp)


def generation(gw: GateGateway) -> float:
    return metric(gw.metrics(), "poortwachter_policy_generation")


def use_policy(gw: GateGateway, text: str) -> None:
    """Write the policy and wait until the gateway has loaded it."""
    before = generation(gw)
    gw.write_policy(text)
    wait_until(lambda: generation(gw) > before, 10, "the policy reloaded")


@pytest.fixture
def restore_policy(gateway: GateGateway, nsd: Nsd) -> Iterator[None]:
    """For tests that change the policy: the module's policy again afterwards."""
    yield
    use_policy(gateway, resolver_policy(f"127.0.0.1:{nsd.port}"))


TRANSPORTS = pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])


# --- allowed names ----------------------------------------------------------------------------------
@TRANSPORTS
def test_an_allowed_name_gets_the_real_answer_with_its_ttl(gateway: GateGateway, tcp: bool) -> None:
    a = ask(gateway, "www.example.com", "A", tcp=tcp)
    assert (a.status, a.protocol) == ("NOERROR", "TCP" if tcp else "UDP")
    assert [(r.type, r.data, r.ttl) for r in a.answers] == [("A", WWW, WWW_TTL)]
    aaaa = ask(gateway, "www.example.com", "AAAA", tcp=tcp)
    assert aaaa.data("AAAA") == [WWW6]
    mx = ask(gateway, "example.com", "MX", tcp=tcp)
    assert mx.data("MX") == ["10 mail.example.com."]


# --- blocked names ----------------------------------------------------------------------------------
@TRANSPORTS
@pytest.mark.parametrize("name", ["www.pornhub.com", "WwW.PornHub.CoM"])
def test_a_blocked_name_never_gets_its_real_address(gateway: GateGateway, name: str, tcp: bool) -> None:
    # Attack: resolve a forbidden site to connect to it directly (or through another proxy).
    before = metric(gateway.metrics(), DNS_QUERIES, zone="klas", category="porno", action="block")
    a = ask(gateway, name, "A", tcp=tcp)
    assert a.status == "NOERROR" and [(r.data, r.ttl) for r in a.answers] == [("0.0.0.0", BLOCK_TTL)]
    aaaa = ask(gateway, name, "AAAA", tcp=tcp)
    assert aaaa.status == "NOERROR"
    assert [ipaddress.ip_address(d) for d in aaaa.data("AAAA")] == [ipaddress.ip_address("::")]
    wait_until(lambda: metric(gateway.metrics(), DNS_QUERIES, zone="klas", category="porno",
                              action="block") == before + 2, 10, "both blocks counted")


@pytest.mark.parametrize("name,rtype", [("pornhub.com", "MX"), ("pornhub.com", "TXT"),
                                        ("www.pornhub.com", "HTTPS"), ("_443._tcp.www.pornhub.com", "TLSA")])
def test_other_types_of_a_blocked_name_get_no_data(gateway: GateGateway, name: str, rtype: str) -> None:
    # Attack: the records around a blocked name (mail, SPF with its addresses, HTTPS with address
    # hints, DANE under a service label) still give away where it lives.
    a = ask(gateway, name, rtype, source=PUBLIC)
    assert (a.status, a.answers) == ("NOERROR", [])


@pytest.mark.parametrize("name", ["alias.example.com", "ALIAS.example.com"])
def test_a_cname_chain_to_a_blocked_name_is_blocked(gateway: GateGateway, name: str) -> None:
    # Attack: an allowed name of the pupil's own (alias -> hop -> www.pornhub.com) launders the
    # forbidden one; the upstream's answer carries the chain and the forbidden address.
    a = ask(gateway, name, "A", source=STAFF)
    assert a.status == "NOERROR"
    assert [(r.type, r.data) for r in a.answers] == [("A", "0.0.0.0")]


@pytest.mark.parametrize("name,source,address", [
    ("www.tiktok.com", CLASSROOM, "0.0.0.0"),      # social media: pupils, in a lesson
    ("www.tiktok.com", PUBLIC, "0.0.0.0"),
    ("www.tiktok.com", STAFF, TIKTOK),             # staff: allowed
    ("video.example.com", CLASSROOM, "0.0.0.0"),   # through a CNAME: the same decision
    ("video.example.com", STAFF, TIKTOK),
    ("example.org", PUBLIC, "0.0.0.0"),            # a path rule (example.org/verboden): passthrough
    ("example.org", CLASSROOM, EXAMPLE_ORG),       #   blocks the name, intercept judges each URL
], ids=["klas", "kantine", "personeel", "cname-klas", "cname-personeel", "pathrule-kantine", "pathrule-klas"])
def test_each_name_is_decided_for_the_zone_that_asks(gateway: GateGateway, name: str, source: str,
                                                      address: str) -> None:
    a = ask(gateway, name, "A", source=source)
    assert a.status == "NOERROR" and a.data("A") == [address]


def test_a_name_blocked_in_a_lesson_resolves_in_the_break(lesson: GateGateway) -> None:
    assert ask(lesson, "www.tiktok.com").data("A") == ["0.0.0.0"]
    lesson.set_clock(BREAK)
    wait_until(lambda: ask(lesson, "www.tiktok.com").data("A") == [TIKTOK], 10, "the break's answer")


@pytest.mark.usefixtures("restore_policy")
def test_block_address_answers_blocked_names(gateway: GateGateway, nsd: Nsd) -> None:
    # dns.block_address: an address the firewall sends to the gateway, so the client meets the
    # block page instead of a failed connection.
    use_policy(gateway, resolver_policy(f"127.0.0.1:{nsd.port}", block_address="10.99.0.80",
                                        block_address6='"fd00:99::80"'))
    assert ask(gateway, "www.pornhub.com", "A").data("A") == ["10.99.0.80"]
    assert ask(gateway, "www.pornhub.com", "AAAA", tcp=True).data("AAAA") == ["fd00:99::80"]
    assert ask(gateway, "www.example.com", "A").data("A") == [WWW]


def test_names_of_the_schools_own_domain_go_to_its_own_resolver(gateway: GateGateway, nsd: Nsd,
                                                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    """dns.forward: the school's Active Directory domain is answered by the school's own DNS server
    (the public resolvers do not know it), every other name by dns.upstream; still judged first."""
    own = Nsd(tmp_path_factory.mktemp("ad-dns"),
              {"ad.school.test": zone_file("ad.school.test", "dc1 IN A 10.99.0.10\nfs1 IN A 10.99.0.11")}).start()
    try:
        assert not ask(gateway, "dc1.ad.school.test", source=STAFF).data("A")   # the upstream does not know it
        use_policy(gateway, resolver_policy(f"127.0.0.1:{nsd.port}",
                                            forward=f'{{ad.school.test: ["127.0.0.1:{own.port}"]}}'))
        assert ask(gateway, "dc1.ad.school.test", source=STAFF).data("A") == ["10.99.0.10"]
        assert ask(gateway, "fs1.ad.school.test", source=CLASSROOM, tcp=True).data("A") == ["10.99.0.11"]
        assert ask(gateway, "www.example.com", source=STAFF).data("A") == [WWW]     # the rest: upstream
        assert ask(gateway, "www.pornhub.com", source=STAFF).data("A") == ["0.0.0.0"]  # judged first
    finally:
        use_policy(gateway, resolver_policy(f"127.0.0.1:{nsd.port}"))
        own.stop()


# --- HTTPS and SVCB: ECH removed, its public names learnt ----------------------------------------------
def _ech_hello_passes(gw: GateGateway, front: str) -> bool:
    """A ClientHello with ECH to `front` from kantine (passthrough): does a TLS server answer it?"""
    tunnel = connect_tunnel(gw, PUBLIC, f"{front}:443")
    with tunnel.sock:
        assert tunnel.status == 200
        tunnel.sock.sendall(client_hello(front, ech=ech_outer()))
        return is_server_hello(server_answer(tunnel.sock))


def test_https_and_svcb_records_lose_ech_and_its_fronts_are_refused(gateway: GateGateway) -> None:
    # Attack: a browser reads the ECH configuration from the HTTPS record, then sends a ClientHello
    # whose SNI is the public (outer) name and whose real destination is encrypted. The resolver
    # removes the configuration (browsers then use plain TLS) and the gateway refuses TLS with ECH
    # to the public names it saw, which are in no list of the policy.
    assert _ech_hello_passes(gateway, ECH_WWW), "control: the name is no known front yet"
    https = ask(gateway, "www.example.com", "HTTPS", source=PUBLIC)
    assert https.status == "NOERROR"
    assert [(r.data, r.ttl) for r in https.answers] == [(f'1 . alpn="h2" ipv4hint={WWW}', 3600)]
    svcb = ask(gateway, "svc.example.com", "SVCB", source=STAFF, tcp=True)
    assert svcb.data("SVCB") == ['1 svc-target.example.com. mandatory=alpn alpn="h2" port=8443 ipv4hint=192.0.2.20']
    assert metric(gateway.metrics(), "poortwachter_ech_fronts_learnt") >= 2
    recorded = gateway.events_like(("tls", "kantine", "block", "ech-verborgen-bestemming"))
    for front in (ECH_WWW, ECH_SVC):
        tunnel = connect_tunnel(gateway, PUBLIC, f"{front}:443")
        with tunnel.sock:
            tunnel.sock.sendall(client_hello(front, ech=ech_outer()))
            assert not is_server_hello(read_until_closed(tunnel.sock)), front
    gateway.wait_for_events(("tls", "kantine", "block", "ech-verborgen-bestemming"), recorded + 2)
    # a browser's GREASE ECH to a real name stays fine
    assert _ech_hello_passes(gateway, "grease.example.com")


def test_a_record_with_ech_as_its_only_mandatory_key_stays_readable(gateway: GateGateway) -> None:
    a = ask(gateway, "only.example.com", "HTTPS", source=STAFF)
    assert a.status == "NOERROR", a.status
    assert a.answers and all("ech=" not in d and "mandatory" not in d for d in a.data("HTTPS"))


# --- the network's signals -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,rtype,status", [
    ("use-application-dns.net", "A", "NXDOMAIN"),    # Firefox: do not switch on DoH by itself
    ("mask.icloud.com", "A", "NXDOMAIN"),            # iCloud Private Relay: not on this network
    ("mask-h2.icloud.com", "AAAA", "NXDOMAIN"),
    ("_dns.resolver.arpa", "SVCB", "NOERROR"),       # DDR (RFC 9462): no designated encrypted resolver
])
@pytest.mark.parametrize("source", [PUBLIC, STAFF], ids=["kantine", "personeel"])
def test_signals_keep_devices_on_the_school_resolver(gateway: GateGateway, nsd: Nsd, name: str, rtype: str,
                                                     status: str, source: str) -> None:
    # Attack: a device that gets a real answer here switches to an encrypted resolver or relay
    # that the gateway cannot see (NSD does give one: the control).
    assert dig(nsd.port, name, rtype).answers, "control: NSD answers this name"
    a = ask(gateway, name, rtype, source=source)
    assert (a.status, a.answers) == (status, [])


# --- failure --------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("restore_policy")
@pytest.mark.parametrize("dead", ["refused", "silent"])
def test_a_dead_upstream_gives_servfail_before_the_client_gives_up(gateway: GateGateway, dead: str) -> None:
    # Nothing listens (the resolver's port is closed) or nothing answers (a firewall drops it):
    # the client gets SERVFAIL in time to try its next server, never a hang or a guess.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        if dead == "silent":
            silent.bind(("127.0.0.1", 0))
            port = int(silent.getsockname()[1])
        else:
            port = free_port()
        errors = metric(gateway.metrics(), "poortwachter_dns_upstream_errors_total")
        use_policy(gateway, resolver_policy(f"127.0.0.1:{port}"))
        a = ask(gateway, "www.example.com", "A", source=STAFF)
        assert (a.status, a.answers) == ("SERVFAIL", [])
        bound = 1.5 if dead == "refused" else UPSTREAM_TIMEOUT + 1.0      # dig itself waits 5 s
        assert a.seconds < bound, f"SERVFAIL after {a.seconds:.2f} s"
        assert ask(gateway, "www.example.com", "A", source=STAFF, tcp=True).status == "SERVFAIL"
        wait_until(lambda: metric(gateway.metrics(), "poortwachter_dns_upstream_errors_total") >= errors + 2,
                   10, "the upstream failures counted")
        # a blocked name needs no upstream
        assert ask(gateway, "www.pornhub.com", "A").data("A") == ["0.0.0.0"]


# --- what the resolver leaves behind ---------------------------------------------------------------------
def test_metrics_count_by_zone_and_verdict_without_names_or_addresses(gateway: GateGateway) -> None:
    before = gateway.metrics()
    assert ask(gateway, "www.example.com", "A", source=STAFF).data("A") == [WWW]
    assert ask(gateway, "www.pornhub.com", "A", source=PUBLIC).data("A") == ["0.0.0.0"]

    def moved(text: str, **labels: str) -> float:
        return metric(text, DNS_QUERIES, **labels) - metric(before, DNS_QUERIES, **labels)
    wait_until(lambda: moved(gateway.metrics(), zone="personeel", role="staff", category="none", action="allow") == 1
               and moved(gateway.metrics(), zone="kantine", role="pupil", category="porno", action="block") == 1,
               10, "the two answers counted")
    text = gateway.metrics()
    for labels, _ in samples(text, DNS_QUERIES):
        assert set(labels) == {"zone", "role", "category", "action"}
    for needle in ("127.0.0.", "example", "pornhub", "tiktok", "icloud", WWW, PORN, TIKTOK, "192.0.2.", "198.51.100."):
        assert needle not in text, f"{needle!r} in the metrics"


def test_blocked_names_are_audited_allowed_ones_are_not(gateway: GateGateway) -> None:
    # audit mode blocks_and_hosts (the default): a blocked name is an event of kind "dns"; an
    # allowed answer is not (every page asks many names).
    recorded = gateway.events_like(("dns", "kantine", "block", "verboden-categorieen"))
    assert ask(gateway, "www.example.com", "A", source=PUBLIC).data("A") == [WWW]
    assert ask(gateway, "www.pornhub.com", "A", source=PUBLIC).data("A") == ["0.0.0.0"]
    gateway.wait_for_events(("dns", "kantine", "block", "verboden-categorieen"), recorded + 1)
    assert not [e for e in gateway.audit_events() if e[0] == "dns" and e[2] == "allow"]


# --- clients that reuse a port and a message id -------------------------------------------------
def _ask_from(port: int, source: tuple[str, int], ident: int, name: str) -> list[str]:
    """An A question from a fixed source port and message id; the addresses of the answer."""
    from poortwachter.dnsforward import build_query
    from mitmproxy import dns

    query = bytearray(build_query(name, 1))
    query[:2] = ident.to_bytes(2, "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(source)
        s.settimeout(5)
        s.sendto(bytes(query), ("127.0.0.1", port))
        answer = dns.DNSMessage.unpack(s.recv(65535))
    assert answer.id == ident and answer.questions[0].name.lower() == name
    return [str(ipaddress.ip_address(r.data)) for r in answer.answers if r.type == 1]


def test_a_forwarder_reusing_a_port_and_id_gets_each_question_answered(gateway: GateGateway) -> None:
    """A school's own DNS server forwarding to the gateway asks from a pool of ports and ids. Each
    question is decided and answered for itself, also after the quiet that made mitmproxy's DNS mode
    drop a reused port's questions (20-55 s, mitmproxy_rs 0.12.15) or repeat an earlier answer."""
    assert gateway.dns_port is not None
    source = (STAFF, free_udp_and_tcp_port())
    assert _ask_from(gateway.dns_port, source, 4711, "www.example.com") == [WWW]
    assert _ask_from(gateway.dns_port, source, 4711, "www.pornhub.com") == ["0.0.0.0"]
    assert _ask_from(gateway.dns_port, source, 4711, "example.org") == [EXAMPLE_ORG]
    deadline = time.monotonic() + 25          # the window in which mitmproxy's DNS mode lost them
    while time.monotonic() < deadline:
        time.sleep(1)
    assert _ask_from(gateway.dns_port, source, 4711, "www.example.com") == [WWW]


def test_an_answer_too_big_for_udp_is_truncated_and_complete_over_tcp(gateway: GateGateway) -> None:
    """A client without EDNS takes 512 bytes over UDP: a bigger answer comes with the TC flag, and
    the same question over TCP gets all of it (as a stub resolver then asks)."""
    small = dig(gateway.dns_port or 0, "many.example.com", "A", STAFF, edns=False)
    assert "tc" in small.flags.split() and not small.answers
    full = dig(gateway.dns_port or 0, "many.example.com", "A", STAFF, tcp=True)
    assert full.status == "NOERROR" and len(full.data("A")) == MANY
