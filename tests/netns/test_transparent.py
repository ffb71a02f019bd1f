"""Transparent interception for real: deploy/nftables/poortwachter.nft in a gateway namespace,
`poortwachter run --mode transparent` behind it, and clients with no proxy setting
(the network is drawn in tests/netns/school.py)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import checks
from .school import (
    BLOCKPAGE,
    CLIENTS,
    GW_CLIENT,
    MGMT_HOST,
    OTHER_RESOLVER,
    WEB,
    School,
    wait_until,
)
from .topology import Topology

pytestmark = checks.NEEDS_TOOLS


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    """One network and one gateway (plain `poortwachter run`, no --worker) for the module."""
    yield from checks.one_gateway(tmp_path_factory, "transparent")


# --- the web: redirected to the gateway, decided by the policy --------------------------------------
def test_http_to_the_upstream_address_is_served_through_the_gateway(school: School) -> None:
    checks.served_through_the_gateway(school, f"http://{WEB}/les/1", f"upstream scheme=http host={WEB} path=/les/1",
                                      source=CLIENTS[0])


def test_http_to_a_blocked_host_gets_the_block_page(school: School) -> None:
    checks.blocked_with_the_block_page(school, "http://blocked.example/spel", "--resolve", f"blocked.example:80:{WEB}",
                                       source=CLIENTS[0])


def test_https_allowed_is_intercepted_with_the_school_ca(school: School) -> None:
    # Only the school CA was trusted (curl --cacert): the page came through the gateway's interception.
    checks.served_through_the_gateway(school, "https://lesmateriaal.example/h1",
                                      "upstream scheme=https host=lesmateriaal.example path=/h1",
                                      "--resolve", f"lesmateriaal.example:443:{WEB}", source=CLIENTS[0])


def test_https_to_a_blocked_host_gets_the_block_page(school: School) -> None:
    checks.blocked_with_the_block_page(school, "https://blocked.example/", "--resolve", f"blocked.example:443:{WEB}",
                                       source=CLIENTS[0])


# --- what would pass the gateway by -------------------------------------------------------------
def test_quic_never_arrives_but_a_listed_udp_service_does(school: School) -> None:
    checks.quic_never_arrives_but_a_listed_udp_service_does(school, WEB, CLIENTS[0])


def test_dns_over_tls_fails_from_clients_only(school: School) -> None:
    checks.dns_over_tls_fails_from_clients_only(school, WEB)


def test_dns_to_another_resolver_is_answered_by_the_school_resolver(school: School) -> None:
    checks.dns_to_another_resolver_is_answered_by_the_school_resolver(school, OTHER_RESOLVER, WEB, BLOCKPAGE,
                                                                      CLIENTS[0])


# --- management networks ------------------------------------------------------------------------
def test_management_network_is_unreachable_from_clients_but_not_from_the_gateway(school: School) -> None:
    checks.management_network_is_unreachable_from_clients_only(school, MGMT_HOST)


def test_gateway_services_other_than_the_proxy_are_closed_to_clients(school: School) -> None:
    checks.gateway_services_other_than_the_proxy_are_closed_to_clients(school, "0.0.0.0", GW_CLIENT)


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
    """deploy/nftables/site.nft as shipped, with the ruleset generated from the default policy
    (deploy/nftables/poortwachter.nft; only the include pointed at this checkout)."""
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "nftables"
    text = (shipped / "site.nft").read_text(encoding="utf-8")
    assert '"/etc/poortwachter/poortwachter.nft"' in text
    site = tmp_path / "site.nft"
    site.write_text(text.replace("/etc/poortwachter/poortwachter.nft", str(shipped / "poortwachter.nft")),
                    encoding="utf-8")
    ns = topology.namespace("check")
    done = topology.run(ns, ["nft", "-c", "-f", str(site)])
    assert done.returncode == 0, done.stderr
    loaded = topology.run(ns, ["nft", "-f", str(site)])          # twice: the file replaces its own table
    again = topology.run(ns, ["nft", "-f", str(site)])
    assert loaded.returncode == again.returncode == 0, loaded.stderr + again.stderr
    tables = topology.run(ns, ["nft", "list", "tables"]).stdout.split("\n")
    assert [t for t in tables if t.strip()] == ["table inet poortwachter"]
