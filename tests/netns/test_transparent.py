"""Transparent interception for real: deploy/nftables/poortwachter.nft in a gateway namespace,
`poortwachter run --mode transparent` behind it, and clients with no proxy setting
(the network is drawn in tests/netns/school.py)."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from .school import (
    CLIENTS, GW_CLIENT, MGMT_HOST, OTHER_RESOLVER, POORTWACHTER, RESOLVER, WEB, Datagrams, School, can_connect,
    listener, wait_until,
)
from .topology import Topology, usable

pytestmark = pytest.mark.skipif(not POORTWACHTER.exists() or shutil.which("curl") is None
                                or shutil.which("nft") is None, reason="needs .venv (make venv), curl and nft")


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    """One network and one gateway (plain `poortwachter run`, no --worker) for the module."""
    reason = usable()
    if reason is not None:
        pytest.fail(reason)
    topo = Topology()
    world = School(topo, tmp_path_factory.mktemp("transparent"))
    try:
        yield world.build(workers=1)
        assert all(w.proc.poll() is None for w in world.workers), "the gateway died during the tests"
    finally:
        world.close()
        topo.close()


# --- the web: redirected to the gateway, decided by the policy --------------------------------------
def test_http_to_the_upstream_address_is_served_through_the_gateway(school: School) -> None:
    before = school.requests_seen(school.workers[0])
    status, body = school.curl(f"http://{WEB}/les/1")
    assert status == 200, body
    assert body.startswith(f"upstream scheme=http host={WEB} path=/les/1")
    assert school.requests_seen(school.workers[0]) == before + 1    # decided by the gateway, not routed past it


def test_http_to_a_blocked_host_gets_the_block_page(school: School) -> None:
    status, body = school.curl("http://blocked.example/spel", "--resolve", f"blocked.example:80:{WEB}")
    assert status == 403
    assert "Deze pagina is geblokkeerd" in body and "verboden-sites" in body and "004 art. 11a" in body
    assert not school.web_saw("blocked.example")


def test_https_allowed_is_intercepted_with_the_school_ca(school: School) -> None:
    status, body = school.curl("https://lesmateriaal.example/h1", "--resolve", f"lesmateriaal.example:443:{WEB}")
    assert status == 200, body
    assert body.startswith("upstream scheme=https host=lesmateriaal.example path=/h1")
    # Only the school CA was trusted (curl --cacert): the page came through the gateway's interception.


def test_https_to_a_blocked_host_gets_the_block_page(school: School) -> None:
    status, body = school.curl("https://blocked.example/", "--resolve", f"blocked.example:443:{WEB}")
    assert status == 403
    assert "verboden-sites" in body
    assert not school.web_saw("blocked.example")


# --- what would pass the gateway by -------------------------------------------------------------
def test_quic_never_arrives_but_other_udp_does(school: School) -> None:
    quic = school.topo.call(school.internet, lambda: Datagrams((WEB, 443)).start())
    other = school.topo.call(school.internet, lambda: Datagrams((WEB, 4433)).start())
    try:
        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((CLIENTS[0], 0))
                for _ in range(3):
                    s.sendto(b"\xc0quic initial", (WEB, 443))
                for _ in range(3):
                    s.sendto(b"control", (WEB, 4433))
        school.topo.call(school.client, send)
        wait_until(lambda: other.count == 3, 5, "the control datagrams to port 4433")
        assert quic.count == 0     # sent first on the same path: had they passed, they would be here
    finally:
        quic.close()
        other.close()


def test_dns_over_tls_fails_from_clients_only(school: School) -> None:
    server = school.topo.call(school.internet, lambda: listener((WEB, 853)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((WEB, 853))) == "refused"
        assert school.on_gateway(lambda: can_connect((WEB, 853))) is True
    finally:
        server.close()


def _dns_answer(query: bytes) -> bytes:
    q = DNS(query)
    return bytes(DNS(id=q.id, qr=1, aa=1, qd=q.qd, an=[DNSRR(rrname=q.qd[0].qname, type="A", rdata=WEB)]))


def _ask(resolver: str, source: str | None) -> tuple[DNS, tuple[str, int]]:
    """One DNS query for tiktok.com (in the namespace the caller runs this in)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        if source:
            s.bind((source, 0))
        s.sendto(bytes(DNS(id=4711, rd=1, qd=[DNSQR(qname="tiktok.com")])), (resolver, 53))
        data, peer = s.recvfrom(4096)
        return DNS(data), peer


def test_dns_to_another_resolver_is_answered_by_the_school_resolver(school: School) -> None:
    school_dns = school.topo.call(school.internet, lambda: Datagrams((RESOLVER, 53), _dns_answer).start())
    other_dns = school.topo.call(school.internet, lambda: Datagrams((OTHER_RESOLVER, 53), _dns_answer).start())
    try:
        answer, peer = school.topo.call(school.client, lambda: _ask(OTHER_RESOLVER, CLIENTS[0]))
        assert answer.id == 4711 and answer.an[0].rdata == WEB
        assert peer == (OTHER_RESOLVER, 53)          # the device sees the resolver it asked
        assert (school_dns.count, other_dns.count) == (1, 0)
        # From the gateway itself (not a client VLAN) the other resolver answers: its listener works.
        _, peer = school.on_gateway(lambda: _ask(OTHER_RESOLVER, None))
        assert peer == (OTHER_RESOLVER, 53) and (school_dns.count, other_dns.count) == (1, 1)
    finally:
        school_dns.close()
        other_dns.close()


# --- management networks ------------------------------------------------------------------------
def test_management_network_is_unreachable_from_clients_but_not_from_the_gateway(school: School) -> None:
    ssh = school.topo.call(school.mgmt, lambda: listener((MGMT_HOST, 22)))
    web = school.topo.call(school.mgmt, lambda: listener((MGMT_HOST, 80)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((MGMT_HOST, 22))) == "timeout"
        # Port 80 is not redirected to the proxy (which would reach it on the pupil's behalf): dropped first.
        assert school.topo.call(school.client, lambda: can_connect((MGMT_HOST, 80))) == "timeout"
        assert school.on_gateway(lambda: can_connect((MGMT_HOST, 22))) is True
        assert school.on_gateway(lambda: can_connect((MGMT_HOST, 80))) is True
    finally:
        ssh.close()
        web.close()


def test_gateway_services_other_than_the_proxy_are_closed_to_clients(school: School) -> None:
    ssh = school.on_gateway(lambda: listener(("0.0.0.0", 22)))
    try:
        assert school.topo.call(school.client, lambda: can_connect((GW_CLIENT, 22))) == "timeout"
        assert school.topo.call(school.client, lambda: can_connect((GW_CLIENT, 8080))) is True   # explicit proxy
    finally:
        ssh.close()  # type: ignore[attr-defined]


# --- two workers behind the nftables map --------------------------------------------------------
def test_two_workers_share_the_clients_each_client_keeps_its_worker(topology: Topology, tmp_path: Path) -> None:
    school = School(topology, tmp_path).build(workers=2)
    try:
        first, second = school.workers
        served: dict[str, int] = {}
        for client in CLIENTS:
            before = (school.requests_seen(first), school.requests_seen(second))
            for i in range(3):
                status, body = school.curl(f"http://{WEB}/les/{i}", source=client)
                assert status == 200, body
            status, _ = school.curl("https://blocked.example/", "--resolve", f"blocked.example:443:{WEB}",
                                    source=client)
            assert status == 403
            delta = (school.requests_seen(first) - before[0], school.requests_seen(second) - before[1])
            assert delta in ((4, 0), (0, 4)), f"{client}: requests split over the workers {delta}"
            served[client] = 1 if delta[0] else 2
        assert set(served.values()) == {1, 2}, f"one worker served every client: {served}"

        # Each worker is its own gateway in the audit log, with its own files next to the shared ones.
        data = tmp_path / "data"
        hostname = socket.gethostname().split(".", 1)[0]

        def gateways() -> set[str]:
            with sqlite3.connect(data / "poortwachter.db") as db:
                return {row[0] for row in db.execute("SELECT DISTINCT gateway FROM audit_events")}
        wait_until(lambda: gateways() == {f"{hostname}-1", f"{hostname}-2"}, 10, "audit events of both workers")
        for n in (1, 2):
            own = data / "workers" / str(n)
            assert (own / "audit" / "spool").exists() and (own / "audit" / "seq").exists()
            assert (own / "state-snapshot.json").exists()
            assert (own / "lists").resolve() == (data / "lists").resolve()
        assert not (data / "audit" / "spool").exists() and not (data / "state-snapshot.json").exists()
    finally:
        school.close()


def test_the_example_site_file_passes_nft_check(topology: Topology, tmp_path: Path) -> None:
    """deploy/nftables/site.nft as shipped (only its include pointed at this checkout)."""
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "nftables"
    text = (shipped / "site.nft").read_text(encoding="utf-8")
    assert '"/usr/share/poortwachter/nftables/poortwachter.nft"' in text
    site = tmp_path / "site.nft"
    site.write_text(text.replace("/usr/share/poortwachter/nftables/poortwachter.nft",
                                 str(shipped / "poortwachter.nft")), encoding="utf-8")
    ns = topology.namespace("check")
    done = topology.run(ns, ["nft", "-c", "-f", str(site)])
    assert done.returncode == 0, done.stderr
    loaded = topology.run(ns, ["nft", "-f", str(site)])          # twice: the file replaces its own table
    again = topology.run(ns, ["nft", "-f", str(site)])
    assert loaded.returncode == again.returncode == 0, loaded.stderr + again.stderr
    tables = topology.run(ns, ["nft", "list", "tables"]).stdout.split("\n")
    assert [t for t in tables if t.strip()] == ["table inet poortwachter"]
