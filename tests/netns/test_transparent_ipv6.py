"""Transparent interception over IPv6: the school of tests/netns/school.py with IPv6 on every link,
deploy/nftables/poortwachter.nft with real pw_client_prefixes6, pw_mgmt_prefixes6 and
pw_school_resolver6, the workers on [::] (docs/deploy.md, section 5) and clients with no proxy
setting."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from .school import (
    CLIENTS,
    CLIENTS6,
    GW_CLIENT6,
    MGMT_HOST6,
    OTHER_RESOLVER6,
    POORTWACHTER,
    RESOLVER6,
    WEB,
    WEB6,
    Datagrams,
    School,
    can_connect,
    listener,
    wait_until,
)
from .topology import Topology, usable

pytestmark = pytest.mark.skipif(not POORTWACHTER.exists() or shutil.which("curl") is None
                                or shutil.which("nft") is None, reason="needs .venv (make venv), curl and nft")

LAPTOP6 = CLIENTS6[0]


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    """One dual-stack network and one gateway worker for the module."""
    reason = usable()
    if reason is not None:
        pytest.fail(reason)
    topo = Topology()
    world = School(topo, tmp_path_factory.mktemp("transparent6"), ipv6=True)
    try:
        yield world.build(workers=1)
        assert all(w.proc.poll() is None for w in world.workers), "the gateway died during the tests"
    finally:
        world.close()
        topo.close()


def curl6(school: School, url: str, *args: str) -> tuple[int, str]:
    """curl from the IPv6 laptop (-g: the brackets of an IPv6 literal are no glob)."""
    return school.curl(url, "-g", *args, source=LAPTOP6)


# --- the web: redirected to the gateway, decided by the policy --------------------------------------
def test_http_over_ipv6_is_served_through_the_gateway_in_the_clients_zone(school: School) -> None:
    before = school.requests_seen(school.workers[0])
    status, body = curl6(school, f"http://[{WEB6}]/les/6")
    assert status == 200, body
    assert body.startswith(f"upstream scheme=http host=[{WEB6}] path=/les/6")
    # Counted for zone klas: the gateway decided it, and matched the client to the zone's IPv6 prefix.
    assert school.requests_seen(school.workers[0]) == before + 1


def test_https_over_ipv6_allowed_is_intercepted_with_the_school_ca(school: School) -> None:
    before = school.requests_seen(school.workers[0])
    status, body = curl6(school, "https://lesmateriaal.example/h6", "--resolve", f"lesmateriaal.example:443:[{WEB6}]")
    assert status == 200, body
    assert body.startswith("upstream scheme=https host=lesmateriaal.example path=/h6")
    assert school.requests_seen(school.workers[0]) == before + 1   # only the school CA was trusted (curl --cacert)


@pytest.mark.parametrize("scheme,port", [("http", 80), ("https", 443)])
def test_a_blocked_host_over_ipv6_gets_the_block_page(school: School, scheme: str, port: int) -> None:
    status, body = curl6(school, f"{scheme}://blocked.example/spel", "--resolve", f"blocked.example:{port}:[{WEB6}]")
    assert status == 403
    assert "Deze pagina is geblokkeerd" in body and "verboden-sites" in body and "004 art. 11a" in body
    assert not school.web_saw("blocked.example")


def test_ipv4_clients_are_still_served_by_workers_on_both_families(school: School) -> None:
    """docs/deploy.md, section 5: with `--listen [::]:8080` the workers serve both families, and an
    IPv4 client still matches its zone by its IPv4 prefix."""
    before = school.requests_seen(school.workers[0])
    status, body = school.curl(f"http://{WEB}/les/4", source=CLIENTS[0])
    assert status == 200, body
    assert body.startswith(f"upstream scheme=http host={WEB} path=/les/4")
    assert school.requests_seen(school.workers[0]) == before + 1   # zone klas by its IPv4 prefix


# --- what would pass the gateway by -------------------------------------------------------------
def test_quic_over_ipv6_never_arrives_but_other_udp_does(school: School) -> None:
    quic = school.topo.call(school.internet, lambda: Datagrams((WEB6, 443)).start())
    other = school.topo.call(school.internet, lambda: Datagrams((WEB6, 4433)).start())
    try:
        def send() -> None:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.bind((LAPTOP6, 0))
                for _ in range(3):
                    s.sendto(b"\xc0quic initial", (WEB6, 443))
                for _ in range(3):
                    s.sendto(b"control", (WEB6, 4433))
        school.topo.call(school.client, send)
        wait_until(lambda: other.count == 3, 5, "the control datagrams to port 4433")
        assert quic.count == 0     # sent first on the same path: had they passed, they would be here
    finally:
        quic.close()
        other.close()


def test_dns_over_tls_over_ipv6_fails_from_clients_only(school: School) -> None:
    server = school.topo.call(school.internet, lambda: listener((WEB6, 853)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((WEB6, 853))) == "refused"
        assert school.on_gateway(lambda: can_connect((WEB6, 853))) is True
    finally:
        server.close()


def _dns_answer(query: bytes) -> bytes:
    q = DNS(query)
    return bytes(DNS(id=q.id, qr=1, aa=1, qd=q.qd, an=[DNSRR(rrname=q.qd[0].qname, type="AAAA", rdata=WEB6)]))


def _ask(resolver: str, source: str | None) -> tuple[DNS, tuple[str, int]]:
    """One AAAA query for tiktok.com over IPv6 (in the namespace the caller runs this in)."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        if source:
            s.bind((source, 0))
        s.sendto(bytes(DNS(id=4711, rd=1, qd=[DNSQR(qname="tiktok.com", qtype="AAAA")])), (resolver, 53))
        data, peer = s.recvfrom(4096)
        return DNS(data), peer[:2]


def test_dns_over_ipv6_to_another_resolver_is_answered_by_the_school_resolver(school: School) -> None:
    school_dns = school.topo.call(school.mgmt, lambda: Datagrams((RESOLVER6, 53), _dns_answer).start())
    other_dns = school.topo.call(school.internet, lambda: Datagrams((OTHER_RESOLVER6, 53), _dns_answer).start())
    try:
        answer, peer = school.topo.call(school.client, lambda: _ask(OTHER_RESOLVER6, LAPTOP6))
        assert answer.id == 4711 and answer.an[0].rdata == WEB6
        assert peer == (OTHER_RESOLVER6, 53)          # the device sees the resolver it asked
        assert (school_dns.count, other_dns.count) == (1, 0)
        # The school's resolver lives in the management network: pupils still reach it there.
        _, peer = school.topo.call(school.client, lambda: _ask(RESOLVER6, LAPTOP6))
        assert peer == (RESOLVER6, 53) and (school_dns.count, other_dns.count) == (2, 0)
        # From the gateway itself (not a client VLAN) the other resolver answers: its listener works.
        _, peer = school.on_gateway(lambda: _ask(OTHER_RESOLVER6, None))
        assert peer == (OTHER_RESOLVER6, 53) and (school_dns.count, other_dns.count) == (2, 1)
    finally:
        school_dns.close()
        other_dns.close()


# --- management networks and the gateway itself ---------------------------------------------------
def test_ipv6_management_network_is_unreachable_from_clients_but_not_from_the_gateway(school: School) -> None:
    ssh = school.topo.call(school.mgmt, lambda: listener((MGMT_HOST6, 22)))
    web = school.topo.call(school.mgmt, lambda: listener((MGMT_HOST6, 80)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((MGMT_HOST6, 22))) == "timeout"
        # Port 80 is not redirected to the proxy (which would reach it on the pupil's behalf): dropped first.
        assert school.topo.call(school.client, lambda: can_connect((MGMT_HOST6, 80))) == "timeout"
        assert school.on_gateway(lambda: can_connect((MGMT_HOST6, 22))) is True
        assert school.on_gateway(lambda: can_connect((MGMT_HOST6, 80))) is True
    finally:
        ssh.close()
        web.close()


def test_gateway_services_over_ipv6_other_than_the_proxy_are_closed_to_clients(school: School) -> None:
    ssh = school.on_gateway(lambda: listener(("::", 22)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((GW_CLIENT6, 22))) == "timeout"
        assert school.topo.call(school.client, lambda: can_connect((GW_CLIENT6, 8080))) is True   # explicit proxy
    finally:
        ssh.close()
