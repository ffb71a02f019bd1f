"""SafeSearch and YouTube Restricted Mode in the classroom (intercept + safesearch), seen by the
upstream; staff (intercept, no safesearch) are the control: their requests arrive unchanged."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from .clients import httpx_client
from .proxy import CLASSROOM, STAFF, Gateway

pytestmark = pytest.mark.e2e


def _query_seen(body: str) -> dict[str, list[str]]:
    echoed = body.strip()
    path = echoed.rsplit("path=", 1)[1]
    return parse_qs(urlsplit(path).query)


@pytest.mark.parametrize("url,param,value", [
    ("https://www.google.com/search?q=kat", "safe", "active"),
    ("https://www.google.nl/search?q=kat&safe=off", "safe", "active"),   # a pupil's own safe=off is overruled
    ("https://www.bing.com/search?q=kat&adlt=off", "adlt", "strict"),
    ("https://duckduckgo.com/?q=kat", "kp", "1"),
])
def test_search_engines_get_safesearch_in_classroom(gateway: Gateway, url: str, param: str, value: str) -> None:
    with httpx_client(gateway, CLASSROOM) as pupil, httpx_client(gateway, STAFF) as staff:
        forced = pupil.get(url)
        control = staff.get(url)
    assert forced.status_code == 200 and control.status_code == 200
    seen = _query_seen(forced.text)
    assert seen[param] == [value]
    assert seen["q"] == ["kat"]
    assert _query_seen(control.text).get(param) != [value]


def test_youtube_gets_restricted_mode_header(gateway: Gateway) -> None:
    with httpx_client(gateway, CLASSROOM) as pupil, httpx_client(gateway, STAFF) as staff:
        forced = pupil.get("https://www.youtube.com/echo").json()
        control = staff.get("https://www.youtube.com/echo").json()
    assert forced["host"] == "www.youtube.com"
    headers = {k.lower(): v for k, v in forced["headers"].items()}
    assert headers.get("youtube-restrict") == "Strict"
    assert "youtube-restrict" not in {k.lower() for k in control["headers"]}


def test_other_google_services_are_left_alone(gateway: Gateway) -> None:
    # only the search itself is rewritten: mail.google.com/search is Gmail's search, not web search
    with httpx_client(gateway, CLASSROOM) as pupil:
        r = pupil.get("https://mail.google.com/search?q=rooster")
    assert r.status_code == 200
    assert "safe" not in _query_seen(r.text)
