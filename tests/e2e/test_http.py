"""Plain HTTP through the real gateway: allowed pages come from upstream, blocked ones get the block page."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest

from .clients import curl, httpx_client
from .proxy import CLASSROOM, GUEST, STAFF, Gateway

pytestmark = pytest.mark.e2e


def test_allowed_page_comes_from_upstream(gateway: Gateway) -> None:
    r = curl(gateway, "http://www.example.com/lees/dit?x=1", CLASSROOM)
    assert r.returncode == 0, r.stderr
    assert r.status == 200
    assert r.body == "upstream scheme=http host=www.example.com path=/lees/dit?x=1\n"


def test_blocked_page_is_dutch_first_block_page(gateway: Gateway) -> None:
    r = curl(gateway, "http://www.pornhub.com/video/123", CLASSROOM)
    assert r.status == 403
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-poortwachter-rule"] == "verboden-categorieen"
    page = r.body
    assert 'lang="nl"' in page
    dutch, english = page.index("Deze pagina is geblokkeerd"), page.index("This page is blocked")
    assert dutch < english
    assert re.search(r'<dd id="category">Pornografie / Pornography</dd>', page)
    assert re.search(r'<dd id="rule">verboden-categorieen</dd>', page)
    assert re.search(r'<dd id="source">004 art\. 11a</dd>', page)
    link = re.search(r'<a class="button" id="unblock" href="([^"]+)"', page)
    assert link, "the block page links to the unblock request"
    href = unescape(link.group(1))
    assert href.startswith("http://deblokkeren.school.test/aanvraag?")
    query = parse_qs(urlsplit(href).query)
    assert query == {"url": ["http://www.pornhub.com/video/123"], "category": ["porno"],
                     "rule": ["verboden-categorieen"]}
    # lazy connection strategy: a blocked request never reaches the server
    assert not gateway.upstream.saw("www.pornhub.com")


def test_rules_depend_on_the_zone(gateway: Gateway) -> None:
    # social media in a lesson: blocked for pupils in the classroom, not for staff or guests
    assert curl(gateway, "http://www.tiktok.com/@school", CLASSROOM).status == 403
    for source in (STAFF, GUEST):
        r = curl(gateway, "http://www.tiktok.com/@school", source)
        assert r.status == 200 and "host=www.tiktok.com path=/@school" in r.body


def test_httpx_client_gets_the_same_verdicts(gateway: Gateway) -> None:
    with httpx_client(gateway, CLASSROOM) as client:
        ok = client.get("http://example.com/")
        blocked = client.get("http://www.tiktok.com/")
    assert ok.status_code == 200 and ok.text == "upstream scheme=http host=example.com path=/\n"
    assert blocked.status_code == 403
    assert blocked.headers["x-poortwachter-rule"] == "sociale-media-in-de-les"
    assert "Sociale media / Social media" in blocked.text
