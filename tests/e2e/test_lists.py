"""Installed category lists on the running gateway: `poortwachter lists update` installs a small
UT1 tree and a hosts file, and the gateway picks them up without a restart."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from .clients import curl
from .proxy import CLASSROOM, POORTWACHTER, REPO, TEST_POLICY, Gateway, wait_until

pytestmark = pytest.mark.e2e

LISTS = REPO / "tests" / "data" / "lists"
UT1 = LISTS / "ut1"
PORN_HOSTS = LISTS / "hosts" / "porn-hosts"


@pytest.fixture(scope="module")
def policy_text() -> str:
    text = TEST_POLICY.read_text(encoding="utf-8")
    text = text.replace("    sites: [pornhub.com]\n", "    lists: [adult, sinfonietta-porn]\n    sites: [pornhub.com]\n")
    text = text.replace("    sites: [tiktok.com, instagram.com]\n",
                        "    lists: [social_networks]\n    sites: [tiktok.com, instagram.com]\n")
    text = text.replace("\nno_decrypt:", """
  malware:
    title: "Malware en phishing / Malware and phishing"
    lists: [malware]
    overridable: false
    source: "004 art. 12 (virussen)"

no_decrypt:""")
    assert text.count("lists:") == 3
    return text


@pytest.fixture(scope="module")
def installed_gateway(gateway: Gateway) -> Iterator[Gateway]:
    if not (UT1 / "blacklists").is_dir() or not PORN_HOSTS.is_file():
        pytest.skip("tests/data/lists (mini UT1 tree and hosts file) is not there")
    yield gateway


def _rule(gw: Gateway, url: str) -> str | None:
    r = curl(gw, url, CLASSROOM)
    return r.headers.get("x-poortwachter-rule") if r.status == 403 else None


def test_lists_update_is_picked_up_by_the_running_gateway(installed_gateway: Gateway) -> None:
    gw = installed_gateway
    # not installed yet: the filter is not ready, so nothing but the school environment passes
    assert _rule(gw, "http://www.facebook.com/") == "filter-niet-gereed"
    assert _rule(gw, "http://malware.example/") == "filter-niet-gereed"
    assert "not installed" in gw.stderr()

    update = subprocess.run(
        [str(POORTWACHTER), "--data-dir", str(gw.data_dir), "lists", "update", "--from", str(UT1),
         "--hosts", f"sinfonietta-porn={PORN_HOSTS}"],
        capture_output=True, text=True, timeout=60)
    assert update.returncode == 0, update.stderr

    wait_until(lambda: _rule(gw, "http://www.facebook.com/") == "sociale-media-in-de-les", 5,
               "the gateway loads the new lists")
    wait_until(lambda: "category lists reloaded" in gw.stderr(), 5, "the gateway logs the reload")
    # UT1 domains list, with subdomains
    assert _rule(gw, "http://m.instagram.com/") == "sociale-media-in-de-les"
    # a category that can never be opened: its own rule, and no unblock link on the page
    r = curl(gw, "http://malware.example/download", CLASSROOM)
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == "niet-te-openen"
    assert "004 art. 12 (virussen)" in r.body and 'id="unblock"' not in r.body
    # hosts-format list
    assert _rule(gw, "http://www.badporn.example/") == "verboden-categorieen"
    # UT1 expressions are URL-level: only visible where the gateway decrypts
    assert _rule(gw, "https://www.example.com/xxx/film") == "verboden-categorieen"
    assert _rule(gw, "https://www.example.com/gewoon") is None
    # the list sizes are published, by list name only
    def published() -> bool:
        sizes = dict(re.findall(r'poortwachter_list_entries\{list="([^"]+)"\} (\S+)', gw.metrics()))
        return float(sizes.get("social_networks", 0)) > 0 and float(sizes.get("sinfonietta-porn", 0)) > 0
    wait_until(published, 5, "the new lists' sizes published")

