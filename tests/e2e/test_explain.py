"""`poortwachter explain` tells the same story as the running gateway, for the same policy and time."""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from .clients import curl, raw_connect, read_response
from .proxy import CLASSROOM, LESSON, POORTWACHTER, PUBLIC, STAFF, Gateway

pytestmark = pytest.mark.e2e


def _explain(gw: Gateway, client: str, url: str) -> dict[str, object]:
    proc = subprocess.run(
        [str(POORTWACHTER), "--data-dir", str(gw.data_dir), "explain", "--policy", str(gw.policy),
         "--client", client, "--at", LESSON, url],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _gateway_verdict(gw: Gateway, client: str, url: str) -> tuple[str, str | None]:
    """(action, rule) as the running gateway shows them: the block page header, the CONNECT refusal
    text, or a page from upstream (allowed; the gateway does not name the rule then)."""
    cacert = gw.ca.pem if client == PUBLIC else None
    r = curl(gw, url, client, cacert=cacert)
    if r.connect_status == 403:
        # curl does not keep the refusal's body; ask again by hand to read the rule from it
        host = urlsplit(url).hostname
        with raw_connect(gw, client) as sock:
            sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
            status, _, body = read_response(sock)
        found = re.search(r"Geblokkeerd / Blocked: (\S+) ", body.decode())
        assert status == 403 and found, body
        return "block", found.group(1)
    if r.status == 403:
        return "block", r.headers.get("x-poortwachter-rule")
    assert r.status == 200 and r.body.startswith("upstream "), (r.status, r.body[:200], r.stderr)
    return "allow", None


@pytest.mark.parametrize("client,url", [
    (CLASSROOM, "https://www.tiktok.com/@klas"),          # time rule, decided on the URL (intercept)
    (CLASSROOM, "http://www.pornhub.com/video"),          # category rule, plain HTTP
    (PUBLIC, "https://dns.google/dns-query"),             # passthrough: decided on the host (CONNECT)
    (STAFF, "https://www.example.com/rooster"),           # allowed
])
def test_explain_matches_running_gateway(lesson: Gateway, client: str, url: str) -> None:
    explained = _explain(lesson, client, url)
    action, rule = _gateway_verdict(lesson, client, url)
    assert explained["action"] == action
    if rule is not None:
        assert explained["rule"] == rule
    else:
        assert explained["rule"] == "standaard"
    if client == PUBLIC:
        assert explained["decided_on"] == "host"
