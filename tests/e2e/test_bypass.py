"""Ways pupils try to get past the filter: raw IP addresses, a Host header or SNI that names another
host than the one asked for (domain fronting), and DNS-over-HTTPS endpoints."""

from __future__ import annotations

import pytest

from .clients import connect_tunnel, curl, get_over, raw_connect, read_response, tls_in_tunnel
from .proxy import CLASSROOM, PUBLIC, STAFF, Gateway

pytestmark = pytest.mark.e2e

IP_RULE = "ip-adressen-leerlingen"


# --- raw IP addresses ---------------------------------------------------------------------------
def test_ip_literal_blocked_for_pupils_allowed_for_staff(gateway: Gateway) -> None:
    url = f"http://127.0.0.1:{gateway.upstream.http_port}/via-ip"
    pupil = curl(gateway, url, CLASSROOM)
    assert pupil.status == 403 and pupil.headers["x-poortwachter-rule"] == IP_RULE
    assert not gateway.upstream.saw(f"127.0.0.1:{gateway.upstream.http_port}", "/via-ip")
    staff = curl(gateway, url, STAFF)
    assert staff.status == 200 and "path=/via-ip" in staff.body


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"])
def test_ip_literal_in_other_notations_blocked(gateway: Gateway, host: str) -> None:
    # sent raw, so the gateway sees exactly this notation (curl might normalise it first)
    with raw_connect(gateway, CLASSROOM) as sock:
        sock.sendall(f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, headers, _ = read_response(sock)
    assert status == 403 and headers["x-poortwachter-rule"] == IP_RULE


def test_ip_literal_decimal_with_curl(gateway: Gateway) -> None:
    r = curl(gateway, "http://2130706433/", CLASSROOM)
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == IP_RULE


def test_ip_literal_connect_refused_in_passthrough(gateway: Gateway) -> None:
    tunnel = connect_tunnel(gateway, PUBLIC, "2130706433:443")
    tunnel.sock.close()
    assert tunnel.status == 403


# --- domain fronting: Host header against request target --------------------------------------------
@pytest.mark.parametrize("target,host_header", [
    ("www.example.com", "www.pornhub.com"),   # allowed target, forbidden Host
    ("www.pornhub.com", "www.example.com"),   # forbidden target, allowed Host
])
def test_plain_http_host_header_differing_from_target_judged_by_stricter(
        gateway: Gateway, target: str, host_header: str) -> None:
    r = curl(gateway, f"http://{target}/x", CLASSROOM, "-H", f"Host: {host_header}")
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == "verboden-categorieen"
    assert not gateway.upstream.saw("www.pornhub.com") and not gateway.upstream.saw("www.example.com", "/x")


def test_intercepted_host_header_differing_from_sni_judged_by_stricter(gateway: Gateway) -> None:
    tunnel = connect_tunnel(gateway, CLASSROOM, "www.example.com:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.example.com", gateway.mitm_ca) as tls:
        status, headers, body = get_over(tls, "www.pornhub.com", "/fronted")
    assert status == 403 and headers["x-poortwachter-rule"] == "verboden-categorieen"
    assert b"Deze pagina is geblokkeerd" in body
    assert not gateway.upstream.saw("www.pornhub.com")


def test_intercepted_sni_differing_from_connect_judged_by_stricter(gateway: Gateway) -> None:
    # CONNECT and Host name an allowed host; only the TLS ClientHello names the forbidden one
    tunnel = connect_tunnel(gateway, CLASSROOM, "www.example.com:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.pornhub.com", gateway.mitm_ca) as tls:
        status, headers, _ = get_over(tls, "www.example.com", "/sni-fronted")
    assert status == 403 and headers["x-poortwachter-rule"] == "verboden-categorieen"
    assert not gateway.upstream.saw("www.example.com", "/sni-fronted")


# --- DNS-over-HTTPS ----------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["https://dns.google/dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB",
                                 "https://cloudflare-dns.com/dns-query?name=example.com"])
def test_doh_endpoint_blocked_in_intercept_zone(gateway: Gateway, url: str) -> None:
    r = curl(gateway, url, CLASSROOM, "-H", "Accept: application/dns-message")
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == "filter-omzeilen"
    assert "Omzeilen van het filter" in r.body


@pytest.mark.parametrize("host", ["dns.google", "cloudflare-dns.com"])
def test_doh_host_refused_in_passthrough_zone(gateway: Gateway, host: str) -> None:
    # without decryption the path is unknown: a DoH path entry covers its whole host
    r = curl(gateway, f"https://{host}/dns-query", PUBLIC, cacert=gateway.ca.pem)
    assert r.connect_status == 403 and r.returncode != 0
