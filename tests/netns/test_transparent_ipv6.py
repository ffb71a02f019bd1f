"""Transparent interception over IPv6: the school of tests/netns/school.py with IPv6 on every link,
the ruleset generated from a policy with IPv6 client networks, a real pw_mgmt_prefixes6, the
workers (proxy and resolver) on [::] (docs/deploy.md, section 5) and clients with no proxy setting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import checks
from .school import (
    CLIENTS,
    CLIENTS6,
    GW_CLIENT6,
    MGMT_HOST6,
    OTHER_RESOLVER6,
    WEB,
    WEB6,
    School,
)

pytestmark = checks.NEEDS_TOOLS

LAPTOP6 = CLIENTS6[0]


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    """One dual-stack network and one gateway worker for the module."""
    yield from checks.one_gateway(tmp_path_factory, "transparent6", ipv6=True)


# --- the web: redirected to the gateway, decided by the policy --------------------------------------
def test_http_over_ipv6_is_served_through_the_gateway_in_the_clients_zone(school: School) -> None:
    # Counted for zone klas: the gateway decided it, and matched the client to the zone's IPv6 prefix.
    checks.served_through_the_gateway(school, f"http://[{WEB6}]/les/6",
                                      f"upstream scheme=http host=[{WEB6}] path=/les/6", source=LAPTOP6)


def test_https_over_ipv6_allowed_is_intercepted_with_the_school_ca(school: School) -> None:
    # Only the school CA was trusted (curl --cacert).
    checks.served_through_the_gateway(school, "https://lesmateriaal.example/h6",
                                      "upstream scheme=https host=lesmateriaal.example path=/h6",
                                      "--resolve", f"lesmateriaal.example:443:[{WEB6}]", source=LAPTOP6)


@pytest.mark.parametrize("scheme,port", [("http", 80), ("https", 443)])
def test_a_blocked_host_over_ipv6_gets_the_block_page(school: School, scheme: str, port: int) -> None:
    checks.blocked_with_the_block_page(school, f"{scheme}://blocked.example/spel",
                                       "--resolve", f"blocked.example:{port}:[{WEB6}]", source=LAPTOP6)


def test_ipv4_clients_are_still_served_by_workers_on_both_families(school: School) -> None:
    """docs/deploy.md, section 5: with `--listen [::]:8080` the workers serve both families, and an
    IPv4 client still matches its zone (klas) by its IPv4 prefix."""
    checks.served_through_the_gateway(school, f"http://{WEB}/les/4", f"upstream scheme=http host={WEB} path=/les/4",
                                      source=CLIENTS[0])


# --- what would pass the gateway by -------------------------------------------------------------
def test_quic_over_ipv6_never_arrives_but_a_listed_udp_service_does(school: School) -> None:
    checks.quic_never_arrives_but_a_listed_udp_service_does(school, WEB6, LAPTOP6)


def test_dns_over_tls_over_ipv6_fails_from_clients_only(school: School) -> None:
    checks.dns_over_tls_fails_from_clients_only(school, WEB6)


def test_dns_over_ipv6_to_another_resolver_is_answered_by_the_school_resolver(school: School) -> None:
    # no dns.block_address6 in the policy: a blocked name's AAAA is ::, the connection fails at once
    checks.dns_to_another_resolver_is_answered_by_the_school_resolver(school, OTHER_RESOLVER6, WEB6, "::", LAPTOP6)


# --- management networks and the gateway itself ---------------------------------------------------
def test_ipv6_management_network_is_unreachable_from_clients_but_not_from_the_gateway(school: School) -> None:
    checks.management_network_is_unreachable_from_clients_only(school, MGMT_HOST6)


def test_gateway_services_over_ipv6_other_than_the_proxy_are_closed_to_clients(school: School) -> None:
    checks.gateway_services_other_than_the_proxy_are_closed_to_clients(school, "::", GW_CLIENT6)
