"""A policy that names lists nobody installed, on a real gateway: with settings.missing_lists: block
the filter is not ready (only the school environment and the no-decrypt sites pass, everything
else gets the page "filter niet gereed") until the lists are installed; with allow everything
passes and the log says the filter is blind. Either way the gauge counts the missing lists."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.listdata import install_every_list

from .clients import CurlResult, curl
from .pki import TestCA
from .proxy import CLASSROOM, LESSON, STAFF, TEST_POLICY, Gateway, wait_until
from .upstream import Upstream

pytestmark = pytest.mark.e2e

NOT_READY = "filter-niet-gereed"
NAMED = ("adult", "bank", "social_networks")   # the lists the policy below names
DEADLINE = 10.0                                 # seconds for the gateway to see installed lists
SITE = "www.niet-gereed.example"                # an ordinary site no other test asks the upstream for


def policy_text(missing_lists: str) -> str:
    text = TEST_POLICY.read_text(encoding="utf-8")
    text = text.replace("settings:\n", f"settings:\n  missing_lists: {missing_lists}\n", 1)
    text = text.replace("    sites: [pornhub.com]\n", "    lists: [adult]\n    sites: [pornhub.com]\n")
    text = text.replace("    sites: [tiktok.com, instagram.com]\n",
                        "    lists: [social_networks]\n    sites: [tiktok.com, instagram.com]\n")
    text = text.replace("    sites: [mijnbank.nl]\n", "    lists: [bank]\n    sites: [mijnbank.nl]\n")
    text = text.replace("\nno_decrypt:", """
  schoolomgeving:
    title: "Schoolomgeving / School environment"
    sites: [magister.net]

no_decrypt:""")
    text = text.replace("\nservices:", "\nschool_environment:\n  categories: [schoolomgeving]\n\nservices:")
    assert text.count("lists: [") == 3 and "school_environment:" in text
    return text


@pytest.fixture
def start_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
                  test_ca: TestCA) -> Iterator[Callable[[str], Gateway]]:
    """A gateway of its own per test: each starts with nothing installed."""
    started: list[Gateway] = []

    def start(text: str) -> Gateway:
        gw = Gateway(tmp_path_factory.mktemp("gateway"), upstream, test_ca, text, LESSON).start()
        started.append(gw)
        return gw

    yield start
    crashed = [gw.output() for gw in started if not gw.alive()]
    for gw in started:
        gw.stop()
    if crashed:
        pytest.fail("mitmdump died during the test:\n" + "\n".join(crashed))


def missing_gauge(gw: Gateway) -> float:
    found = re.search(r"^poortwachter_missing_lists (\S+)$", gw.metrics(), re.MULTILINE)
    assert found, "the gateway exports poortwachter_missing_lists"
    return float(found.group(1))


def rule(r: CurlResult) -> str | None:
    return r.headers.get("x-poortwachter-rule") if r.status == 403 else None


def passed(r: CurlResult, host: str) -> bool:
    return r.status == 200 and f"host={host}" in r.body


def test_block_until_the_lists_are_installed(start_gateway: Callable[[str], Gateway]) -> None:
    gw = start_gateway(policy_text("block"))
    assert missing_gauge(gw) == len(NAMED)

    # any site, plain and decrypted, pupil and staff: the page "filter niet gereed"
    for url, client in ((f"http://{SITE}/nieuws", CLASSROOM), (f"https://{SITE}/", CLASSROOM),
                        (f"http://{SITE}/", STAFF), ("http://www.tiktok.com/", CLASSROOM)):
        r = curl(gw, url, client)
        assert r.status == 403 and r.headers.get("x-poortwachter-rule") == NOT_READY, (url, client, r.stderr)
        assert "<h1>Het filter is nog niet gereed</h1>" in r.body
        assert r.body.index("niet geïnstalleerd") < r.body.index("not installed")
        assert 'id="unblock"' not in r.body            # an unblock request cannot install a list
    assert not gw.upstream.saw(SITE)

    # the school environment still works
    r = curl(gw, "http://school.magister.net/rooster", CLASSROOM)
    assert passed(r, "school.magister.net"), (r.status, r.headers)
    # and a no-decrypt site passes, untouched: the client sees the bank's own certificate
    r = curl(gw, "https://www.mijnbank.nl/rekening", CLASSROOM, cacert=gw.ca.pem)
    assert passed(r, "www.mijnbank.nl"), (r.status, r.stderr)

    install_every_list(gw.policy, gw.data_dir, {"adult": ["porno.example"]})

    wait_until(lambda: passed(curl(gw, f"http://{SITE}/nieuws", CLASSROOM), SITE), DEADLINE,
               "the gateway loads the installed lists and lets an ordinary site through")
    wait_until(lambda: missing_gauge(gw) == 0, DEADLINE, "poortwachter_missing_lists drops to 0")
    # the lists are in force: a listed host is blocked by the policy's own rule, not as "not ready"
    assert rule(curl(gw, "http://www.porno.example/", CLASSROOM)) == "verboden-categorieen"
    assert rule(curl(gw, "http://www.tiktok.com/", CLASSROOM)) == "sociale-media-in-de-les"


def test_allow_lets_everything_through_with_a_warning(start_gateway: Callable[[str], Gateway]) -> None:
    gw = start_gateway(policy_text("allow"))
    assert missing_gauge(gw) == len(NAMED)   # the alert fires in allow mode too

    r = curl(gw, "http://www.example.com/nieuws", CLASSROOM)
    assert passed(r, "www.example.com"), (r.status, r.headers)
    r = curl(gw, "https://www.example.com/", CLASSROOM)
    assert passed(r, "www.example.com"), (r.status, r.headers)
    # the policy's own sites are still judged: blocked by their rule, never as "not ready"
    assert rule(curl(gw, "http://www.pornhub.com/", CLASSROOM)) == "verboden-categorieen"

    wait_until(lambda: "lijsten ontbreken" in gw.stderr(), DEADLINE, "the warning on stderr")
    warning = next(line for line in gw.stderr().splitlines() if "lijsten ontbreken" in line)
    assert "adult, bank, social_networks" in warning and "NIET gefilterd" in warning
    assert "settings.missing_lists is allow" in warning
