"""What test_transparent.py and test_transparent_ipv6.py share: the module's gateway and the checks,
each taking the addresses of one family (tests/netns/school.py), so both families assert the same things."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from .school import (
    POORTWACHTER,
    Datagrams,
    School,
    can_connect,
    family,
    listener,
    wait_until,
)
from .topology import Topology, usable

NEEDS_TOOLS = pytest.mark.skipif(not POORTWACHTER.exists() or shutil.which("curl") is None
                                 or shutil.which("nft") is None, reason="needs .venv (make venv), curl and nft")


def one_gateway(tmp_path_factory: pytest.TempPathFactory, name: str, ipv6: bool = False) -> Iterator[School]:
    """The body of a module fixture: one network and one gateway (plain `poortwachter run`, no
    --worker), checked to be still alive after the module's tests."""
    reason = usable()
    if reason is not None:
        pytest.fail(reason)
    topo = Topology()
    world = School(topo, tmp_path_factory.mktemp(name), ipv6=ipv6)
    try:
        yield world.build(workers=1)
        assert all(w.proc.poll() is None for w in world.workers), "the gateway died during the tests"
    finally:
        world.close()
        topo.close()


# --- the web: redirected to the gateway, decided by the policy --------------------------------------
def served_through_the_gateway(school: School, url: str, expected: str, *args: str, source: str) -> None:
    """The page reached the upstream and the gateway decided it for zone klas (not routed past it).
    -g: the brackets of an IPv6 literal are no curl glob."""
    before = school.requests_seen(school.workers[0])
    status, body = school.curl(url, "-g", *args, source=source)
    assert status == 200, body
    assert body.startswith(expected)
    assert school.requests_seen(school.workers[0]) == before + 1


def blocked_with_the_block_page(school: School, url: str, *args: str, source: str) -> None:
    status, body = school.curl(url, "-g", *args, source=source)
    assert status == 403
    assert "Deze pagina is geblokkeerd" in body and "verboden-sites" in body and "004 art. 11a" in body
    assert not school.web_saw("blocked.example")


# --- what would pass the gateway by -------------------------------------------------------------
def quic_never_arrives_but_a_listed_udp_service_does(school: School, web: str, source: str) -> None:
    """QUIC (UDP 443) is refused; UDP 4433 to the web server is a service of the test policy."""
    quic = school.topo.call(school.internet, lambda: Datagrams((web, 443)).start())
    other = school.topo.call(school.internet, lambda: Datagrams((web, 4433)).start())
    try:
        def send() -> None:
            with socket.socket(family(web), socket.SOCK_DGRAM) as s:
                s.bind((source, 0))
                for _ in range(3):
                    s.sendto(b"\xc0quic initial", (web, 443))
                for _ in range(3):
                    s.sendto(b"control", (web, 4433))
        school.topo.call(school.client, send)
        wait_until(lambda: other.count == 3, 5, "the control datagrams to port 4433")
        assert quic.count == 0     # sent first on the same path: had they passed, they would be here
    finally:
        quic.close()
        other.close()


def dns_over_tls_fails_from_clients_only(school: School, web: str) -> None:
    server = school.topo.call(school.internet, lambda: listener((web, 853)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((web, 853))) == "refused"
        assert school.on_gateway(lambda: can_connect((web, 853))) is True
    finally:
        server.close()


def _qtype(address: str) -> str:
    return "AAAA" if family(address) == socket.AF_INET6 else "A"


def wrong_answer(address: str) -> Callable[[bytes], bytes]:
    """A resolver a device picked itself: it would answer every name with `address`."""
    def answer(query: bytes) -> bytes:
        q = DNS(query)
        return bytes(DNS(id=q.id, qr=1, aa=1, qd=q.qd,
                         an=[DNSRR(rrname=q.qd[0].qname, type=_qtype(address), rdata=address)]))
    return answer


def ask(resolver: str, source: str | None, name: str, qtype: str) -> tuple[DNS, tuple[str, int]]:
    """One DNS question to `resolver` port 53 (in the namespace the caller runs this in)."""
    with socket.socket(family(resolver), socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        if source:
            s.bind((source, 0))
        s.sendto(bytes(DNS(id=4711, rd=1, qd=[DNSQR(qname=name, qtype=qtype)])), (resolver, 53))
        data, peer = s.recvfrom(4096)
        return DNS(data), peer[:2]


def dns_to_another_resolver_is_answered_by_the_school_resolver(
        school: School, other_resolver: str, web: str, blockpage: str | None, source: str) -> None:
    """A device that asks a resolver of its own choosing (`other_resolver`, which would lie) gets the
    school's answer: the real address of an allowed name, the block page's for a blocked one."""
    qtype = _qtype(web)
    liar = school.topo.call(school.internet, lambda: Datagrams((other_resolver, 53), wrong_answer(other_resolver)).start())
    try:
        answer, peer = school.topo.call(school.client, lambda: ask(other_resolver, source, "lesmateriaal.example", qtype))
        assert answer.id == 4711 and answer.an[0].rdata == web
        assert peer == (other_resolver, 53)          # the device sees the resolver it asked
        if blockpage is not None:
            answer, _ = school.topo.call(school.client, lambda: ask(other_resolver, source, "blocked.example", qtype))
            assert answer.an[0].rdata == blockpage
        assert liar.count == 0
        # From the gateway itself (not a client VLAN) the other resolver answers: its listener works.
        answer, peer = school.on_gateway(lambda: ask(other_resolver, None, "lesmateriaal.example", qtype))
        assert peer == (other_resolver, 53) and answer.an[0].rdata == other_resolver and liar.count == 1
    finally:
        liar.close()


# --- management networks and the gateway itself ---------------------------------------------------
def management_network_is_unreachable_from_clients_only(school: School, mgmt_host: str) -> None:
    ssh = school.topo.call(school.mgmt, lambda: listener((mgmt_host, 22)))
    web = school.topo.call(school.mgmt, lambda: listener((mgmt_host, 80)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((mgmt_host, 22))) == "timeout"
        # Port 80 is not redirected to the proxy (which would reach it on the pupil's behalf): dropped first.
        assert school.topo.call(school.client, lambda: can_connect((mgmt_host, 80))) == "timeout"
        assert school.on_gateway(lambda: can_connect((mgmt_host, 22))) is True
        assert school.on_gateway(lambda: can_connect((mgmt_host, 80))) is True
    finally:
        ssh.close()
        web.close()


def gateway_services_other_than_the_proxy_are_closed_to_clients(school: School, any_address: str,
                                                                gw_client: str) -> None:
    ssh = school.on_gateway(lambda: listener((any_address, 22)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((gw_client, 22))) == "timeout"
        assert school.topo.call(school.client, lambda: can_connect((gw_client, 8080))) is True   # explicit proxy
    finally:
        ssh.close()
