"""HTTPS through the real gateway: intercept zones get URL-level decisions and a readable block
page over TLS; passthrough zones are decided on the name only and never decrypted."""

from __future__ import annotations

import ssl

import pytest

from .clients import connect_tunnel, curl, get_over, httpx_client, peer_issuer, tls_in_tunnel
from .pki import CA_NAME
from .proxy import CLASSROOM, PUBLIC, Gateway

pytestmark = pytest.mark.e2e

MITM_ISSUER = "mitmproxy"


# --- intercept zone (classroom) ---------------------------------------------------------------
def test_intercept_blocked_url_gets_block_page_over_tls(gateway: Gateway) -> None:
    r = curl(gateway, "https://www.pornhub.com/categorie", CLASSROOM)
    assert r.returncode == 0, r.stderr          # the TLS handshake with the gateway succeeded
    assert r.connect_status == 200
    assert r.status == 403
    assert r.headers["x-poortwachter-rule"] == "verboden-categorieen"
    assert "Deze pagina is geblokkeerd" in r.body and "Pornografie / Pornography" in r.body
    assert "url=https%3A%2F%2Fwww.pornhub.com%2Fcategorie" in r.body
    assert not gateway.upstream.saw("www.pornhub.com")


def test_intercept_allowed_url_passes_decrypted(gateway: Gateway) -> None:
    r = curl(gateway, "https://www.example.com/pagina?a=b", CLASSROOM)
    assert r.returncode == 0, r.stderr
    assert r.status == 200
    assert r.body == "upstream scheme=https host=www.example.com path=/pagina?a=b\n"
    # the classroom laptop was shown mitmproxy's certificate, not the server's
    tunnel = connect_tunnel(gateway, CLASSROOM, "www.example.com:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.example.com", gateway.mitm_ca) as tls:
        assert MITM_ISSUER in peer_issuer(tls)


def test_intercept_path_rule_blocks_only_that_path(gateway: Gateway) -> None:
    with httpx_client(gateway, CLASSROOM) as client:
        blocked = client.get("https://example.org/verboden/pagina")
        other = client.get("https://example.org/toegestaan")
        root = client.get("https://example.org/")
    assert blocked.status_code == 403
    assert blocked.headers["x-poortwachter-rule"] == "verboden-pagina"
    assert "Verboden pagina / Forbidden page" in blocked.text
    assert (other.status_code, root.status_code) == (200, 200), \
        "a site entry with a path blocks only that path, not the whole host"
    assert other.text == "upstream scheme=https host=example.org path=/toegestaan\n"


def test_no_decrypt_category_is_never_intercepted(gateway: Gateway) -> None:
    # banking: even in the intercept zone the pupil talks TLS with the bank itself
    tunnel = connect_tunnel(gateway, CLASSROOM, "www.mijnbank.nl:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.mijnbank.nl", gateway.ca.pem) as tls:
        assert peer_issuer(tls) == CA_NAME
        status, _, body = get_over(tls, "www.mijnbank.nl", "/rekening")
    assert status == 200 and b"host=www.mijnbank.nl path=/rekening" in body


# --- passthrough zone (public area, pupils' own phones) -------------------------------------------
def test_passthrough_allowed_is_not_decrypted(gateway: Gateway) -> None:
    # a phone that trusts only the real CA (here: the test CA) succeeds ...
    r = curl(gateway, "https://www.example.com/nieuws", PUBLIC, cacert=gateway.ca.pem)
    assert r.returncode == 0, r.stderr
    assert r.status == 200
    assert r.body == "upstream scheme=https host=www.example.com path=/nieuws\n"
    # ... and sees the upstream's own certificate
    tunnel = connect_tunnel(gateway, PUBLIC, "www.example.com:443")
    assert tunnel.status == 200
    with tls_in_tunnel(tunnel, "www.example.com", gateway.ca.pem) as tls:
        assert peer_issuer(tls) == CA_NAME


def test_passthrough_blocked_host_is_refused(gateway: Gateway) -> None:
    r = curl(gateway, "https://www.pornhub.com/", PUBLIC, cacert=gateway.ca.pem)
    assert r.connect_status == 403
    assert r.returncode != 0 and r.status in (0, 403)
    assert not gateway.upstream.saw("www.pornhub.com")
    # social media during a lesson: refused for pupils in the public area as well
    assert curl(gateway, "https://www.tiktok.com/", PUBLIC, cacert=gateway.ca.pem).connect_status == 403


def test_passthrough_sni_blocked_behind_allowed_connect_is_refused(gateway: Gateway) -> None:
    # CONNECT names an allowed host, the ClientHello a blocked one: judged by the stricter (SNI).
    # The client trusts both CAs, so only a refused handshake (not a certificate error) fails it.
    tunnel = connect_tunnel(gateway, PUBLIC, "www.example.com:443")
    assert tunnel.status == 200
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls_in_tunnel(tunnel, "www.pornhub.com", gateway.both_cas)
    tunnel.sock.close()
    assert not gateway.upstream.saw("www.pornhub.com")
