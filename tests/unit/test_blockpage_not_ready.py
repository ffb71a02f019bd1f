"""The page of a filter that is not ready (settings.missing_lists: block, a list missing): its own
heading and reason, Dutch first and English second, and no unblock link, since an unblock request
cannot install a list."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter import blockpage
from poortwachter.decide import NOT_READY, Categorizer, Context, Request, Verdict, decide
from poortwachter.policy.compiled import CompiledPolicy
from poortwachter.policy.load import load_policy

from .fakes import DictIndex

REPO = Path(__file__).resolve().parents[2]
LESSON = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
CLASSROOM = "10.20.1.5"
UNBLOCK_URL = "http://127.0.0.1:8090/deblokkeren"


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return CompiledPolicy(load_policy(REPO / "policy" / "default.yaml"))


def not_ready(policy: CompiledPolicy, host: str) -> Verdict:
    """The verdict of the default policy with no list installed, as the engine makes it."""
    ctx = Context(policy, Categorizer(policy, DictIndex({})), not_ready=True)
    return decide(Request(ipaddress.ip_address(CLASSROOM), host, "/"), ctx, LESSON)


def page(verdict: Verdict, url: str = "http://www.example.com/") -> str:
    return blockpage.render(verdict, url, None, UNBLOCK_URL, "de ICT-afdeling / the ICT department").decode()


def test_not_ready_page_says_why_dutch_first(policy: CompiledPolicy) -> None:
    verdict = not_ready(policy, "www.example.com")
    assert (verdict.action, verdict.rule) == ("block", NOT_READY)
    html = page(verdict)
    assert "<title>Filter niet gereed / Filter not ready</title>" in html
    assert "<h1>Het filter is nog niet gereed</h1>" in html and "Deze pagina is geblokkeerd" not in html
    dutch = html.index("de categorielijsten waarop het filtert zijn niet geïnstalleerd")
    english = html.index("the category lists it filters on are not installed")
    assert dutch < english
    assert "werkt alleen de schoolomgeving" in html and "only the school environment works" in html
    assert "Meld dit bij ICT." in html and "Please tell ICT." in html
    # the generic text of an ordinary rule is not what a pupil reads here
    assert "valt onder de regels van het reglement" not in html
    assert f'<dd id="rule">{NOT_READY}</dd>' in html
    assert '<dd id="source">004 art. 12: de firewall blokkeert; het filter niet omzeilen</dd>' in html


def test_not_ready_page_has_no_unblock_link(policy: CompiledPolicy) -> None:
    html = page(not_ready(policy, "www.example.com"))
    assert 'id="unblock"' not in html and UNBLOCK_URL not in html and "Deblokkering aanvragen" not in html


def test_an_ordinary_block_keeps_its_heading_and_unblock_link(policy: CompiledPolicy) -> None:
    # the same host on a ready filter, blocked by a rule of the policy: the usual page
    ctx = Context(policy, Categorizer(policy, DictIndex({"social_networks": {"tiktok.com"}})))
    verdict = decide(Request(ipaddress.ip_address(CLASSROOM), "www.tiktok.com", "/"), ctx, LESSON)
    assert verdict.blocked and verdict.rule != NOT_READY
    html = page(verdict, "http://www.tiktok.com/")
    assert "<h1>Deze pagina is geblokkeerd</h1>" in html and "<title>Geblokkeerd / Blocked</title>" in html
    assert 'id="unblock"' in html and "Het filter is nog niet gereed" not in html
