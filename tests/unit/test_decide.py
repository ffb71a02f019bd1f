"""The pure decision on the default policy: precedence, zones, roles, time, categories, state."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter.decide import Categorizer, Context, Request, Verdict, decide, stricter
from poortwachter.policy.compiled import CompiledPolicy
from poortwachter.policy.load import load_policy, parse_policy
from poortwachter.state import Ban, Exam, Grant, Opening, Sites, State

from .fakes import DictIndex

REPO = Path(__file__).resolve().parents[2]
AMS = ZoneInfo("Europe/Amsterdam")
LESSON = dt.datetime(2026, 11, 23, 10, 0, tzinfo=AMS)     # Monday, 2e-uur
BREAK = dt.datetime(2026, 11, 23, 10, 15, tzinfo=AMS)
CLASSROOM, CANTEEN, STAFF, EXAMROOM, OUTSIDE = "10.20.1.5", "10.30.4.4", "10.40.0.9", "10.20.99.7", "192.0.2.1"

INDEX = DictIndex({
    "adult": {"pornhub.com"}, "sinfonietta-porn": {"xvideos.com"},
    "social_networks": {"tiktok.com", "instagram.com"}, "agressif": {"hate.example"},
    "malware": {"evil.example"}, "phishing": {"bank-login.example"}, "doh": {"dns.google"},
    "vpn": {"nordvpn.com"}, "bank": {"ing.nl"}, "hacking": {"hackforums.net"},
}, urls={"adult": {"example.org/porn"}})


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return CompiledPolicy(load_policy(REPO / "policy" / "default.yaml"))


def verdict(policy: CompiledPolicy, client: str, host: str, path: str | None = "/", at: dt.datetime = LESSON,
            state: State = State()) -> Verdict:
    ctx = Context(policy, Categorizer(policy, INDEX), state)
    return decide(Request(ipaddress.ip_address(client), host, path), ctx, at)


def test_forbidden_category_blocked_everywhere_with_its_article(policy: CompiledPolicy) -> None:
    for client in (CLASSROOM, CANTEEN, STAFF, OUTSIDE):
        v = verdict(policy, client, "www.pornhub.com")
        assert (v.action, v.rule, v.category) == ("block", "verboden-categorieen", "porno")
        assert v.source == "004 art. 11a, art. 12"


def test_subdomain_of_listed_domain_but_not_lookalike(policy: CompiledPolicy) -> None:
    assert verdict(policy, CANTEEN, "cdn.images.pornhub.com").blocked
    assert not verdict(policy, CANTEEN, "notpornhub.com").blocked


def test_social_media_classroom_versus_canteen_004_art_9(policy: CompiledPolicy) -> None:
    klas = verdict(policy, CLASSROOM, "www.tiktok.com")
    assert (klas.action, klas.rule, klas.source, klas.zone, klas.role, klas.period) == (
        "block", "klaslokaal-alleen-schoolomgeving", "004 art. 9", "klaslokalen", "pupil", "2e-uur")
    kantine = verdict(policy, CANTEEN, "www.tiktok.com")
    assert kantine.action == "allow" and kantine.zone == "openbare-ruimte" and kantine.category == "sociale-media"


def test_classroom_keeps_the_school_environment(policy: CompiledPolicy) -> None:
    v = verdict(policy, CLASSROOM, "school.magister.net")
    assert v.action == "allow" and v.rule == "klaslokaal-alleen-schoolomgeving"


def test_staff_are_not_held_to_the_classroom_rule(policy: CompiledPolicy) -> None:
    assert verdict(policy, STAFF, "www.tiktok.com").action == "allow"


def test_exam_room_is_the_longer_prefix(policy: CompiledPolicy) -> None:
    assert verdict(policy, EXAMROOM, "www.tiktok.com").zone == "examenlokaal"


def test_not_overridable_category_beats_a_grant(policy: CompiledPolicy) -> None:
    grant = Grant(1, Sites.of(["evil.example"]), LESSON - dt.timedelta(hours=1), LESSON + dt.timedelta(hours=1))
    v = verdict(policy, CANTEEN, "evil.example", state=State(grants=(grant,)))
    assert (v.action, v.rule, v.category) == ("block", "niet-te-openen", "malware")


def test_ban_blocks_everything_first(policy: CompiledPolicy) -> None:
    ban = Ban(1, "10.30.4.0/24", until=LESSON + dt.timedelta(days=1), source="004 art. 22 (sanctie)")
    v = verdict(policy, CANTEEN, "school.magister.net", state=State(bans=(ban,)))
    assert (v.action, v.rule, v.source) == ("block", "uitsluiting", "004 art. 22 (sanctie)")
    expired = Ban(2, CANTEEN, until=LESSON - dt.timedelta(minutes=1))
    assert not verdict(policy, CANTEEN, "school.magister.net", state=State(bans=(expired,))).blocked


def test_grant_opens_a_blocked_category_ict_may_open_for_its_scope_and_window(policy: CompiledPolicy) -> None:
    """004 art. 12: hacking is opened_by [ict] in the default policy; the grant cites the policy's article."""
    grant = Grant(7, Sites.of(["hackforums.net"]), LESSON, LESSON + dt.timedelta(hours=1),
                  zones=frozenset({"staff"}))
    state = State(grants=(grant,))
    opened = verdict(policy, STAFF, "www.hackforums.net", state=state)
    assert (opened.rule, opened.source) == ("deblokkering", policy.articles.unblock)
    assert verdict(policy, CANTEEN, "www.hackforums.net", state=state).blocked          # not in scope
    assert verdict(policy, STAFF, "www.hackforums.net", at=LESSON + dt.timedelta(hours=2), state=state).blocked


def test_a_grant_never_opens_a_category_nobody_may_open(policy: CompiledPolicy) -> None:
    """004 art. 11a/12: pornography is opened_by [] in the default policy: not even ICT's grant opens it."""
    grant = Grant(8, Sites.of(["pornhub.com"]), LESSON, LESSON + dt.timedelta(hours=1))
    assert verdict(policy, STAFF, "www.pornhub.com", state=State(grants=(grant,))).rule == "verboden-categorieen"


def test_classroom_opening_until_end_of_lesson(policy: CompiledPolicy) -> None:
    opening = Opening(3, "klaslokalen", "open", Sites.of(categories=["sociale-media"]), until=BREAK)
    state = State(openings=(opening,))
    assert verdict(policy, CLASSROOM, "www.tiktok.com", state=state).rule == "lokaal-open"
    assert verdict(policy, CLASSROOM, "www.tiktok.com", at=BREAK, state=state).blocked


def test_exam_allows_only_its_allowlist(policy: CompiledPolicy) -> None:
    exam = Exam(4, "klaslokalen", Sites.of(["facet.onl"]), until=LESSON + dt.timedelta(hours=2))
    state = State(exams=(exam,))
    assert verdict(policy, CLASSROOM, "start.facet.onl", state=state).rule == "examen-toegestaan"
    blocked = verdict(policy, CLASSROOM, "school.magister.net", state=state)
    assert (blocked.action, blocked.rule) == ("block", "examen")
    assert not verdict(policy, CANTEEN, "www.tiktok.com", state=state).blocked      # other zone


def test_bypass_ip_literal_doh_and_vpn(policy: CompiledPolicy) -> None:
    assert verdict(policy, CANTEEN, "142.250.1.1").rule == "ip-adressen-leerlingen"
    assert verdict(policy, CANTEEN, "2001:db8::1").rule == "ip-adressen-leerlingen"
    assert not verdict(policy, STAFF, "142.250.1.1").blocked
    assert verdict(policy, STAFF, "dns.google").rule == "filter-omzeilen"
    assert verdict(policy, STAFF, "nordvpn.com").rule == "filter-omzeilen"


def test_url_level_category_only_with_a_path(policy: CompiledPolicy) -> None:
    assert verdict(policy, STAFF, "example.org", "/porn/1").category == "porno"
    assert not verdict(policy, STAFF, "example.org", "/news").blocked
    assert not verdict(policy, STAFF, "example.org", None).blocked       # passthrough: host only


def test_unknown_clients_guest_or_refused(policy: CompiledPolicy) -> None:
    guest = verdict(policy, OUTSIDE, "www.tiktok.com")
    assert (guest.zone, guest.role, guest.action) == ("onbekend", "guest", "allow")
    text = (REPO / "policy" / "default.yaml").read_text().replace("unknown_clients: guest", "unknown_clients: refuse")
    strict = CompiledPolicy(parse_policy(text, "t.yaml"))
    assert verdict(strict, OUTSIDE, "www.tiktok.com").rule == "onbekend-netwerk"


def test_ipv6_client_in_zone(policy: CompiledPolicy) -> None:
    assert verdict(policy, "fd00:20::5", "www.tiktok.com").zone == "klaslokalen"


def test_no_decrypt(policy: CompiledPolicy) -> None:
    cats = Categorizer(policy, INDEX)
    assert policy.undecrypted("mijn.ing.nl", cats.host("mijn.ing.nl"))
    assert policy.undecrypted("digid.nl", cats.host("digid.nl"))
    assert not policy.undecrypted("www.tiktok.com", cats.host("www.tiktok.com"))


def test_stricter_of_two_views(policy: CompiledPolicy) -> None:
    allow = verdict(policy, CANTEEN, "www.example.com")
    block = verdict(policy, CANTEEN, "www.pornhub.com")
    assert stricter(allow, block) is block and stricter(block, allow) is block
    assert stricter(allow, allow) is allow


def test_rules_in_order_first_match_wins() -> None:
    text = (REPO / "policy" / "default.yaml").read_text().replace(
        "rules:\n", "rules:\n  - {name: eerst, source: 'x 1', action: allow, sites: [pornhub.com]}\n", 1)
    p = CompiledPolicy(parse_policy(text, "t.yaml"))
    assert verdict(p, CANTEEN, "pornhub.com").rule == "eerst"


def test_policy_without_lists_still_uses_school_sites(policy: CompiledPolicy) -> None:
    ctx = Context(policy, Categorizer(policy, DictIndex({})))
    v = decide(Request(ipaddress.ip_address(CLASSROOM), "www.instagram.com", "/"), ctx, LESSON)
    assert v.category == "sociale-media" and v.blocked


def test_path_entry_of_the_school_list_only_covers_its_path() -> None:
    text = (REPO / "policy" / "default.yaml").read_text().replace(
        "  bank:\n", "  spelletjes:\n    title: Spelletjes\n    sites: [example.com/games]\n  bank:\n", 1).replace(
        "rules:\n", "rules:\n  - {name: geen-spelletjes, source: 'x 2', action: block, categories: [spelletjes]}\n", 1)
    p = CompiledPolicy(parse_policy(text, "t.yaml"))
    ctx = Context(p, Categorizer(p, INDEX))
    client = ipaddress.ip_address(STAFF)
    assert decide(Request(client, "example.com", "/games/1"), ctx, LESSON).rule == "geen-spelletjes"
    # the same categorizer (with its per-host cache) must not let the path entry leak to other paths
    assert not decide(Request(client, "example.com", "/news"), ctx, LESSON).blocked
    assert decide(Request(client, "example.com", None), ctx, LESSON).blocked   # passthrough: whole host


def test_names_ending_in_a_digit_are_not_ip_literals(policy: CompiledPolicy) -> None:
    assert not verdict(policy, CANTEEN, "printer1").blocked
    assert not verdict(policy, CANTEEN, "files.ab1").blocked


def test_state_survives_a_round_trip_to_disk() -> None:
    import json

    from poortwachter.state import state_from_dict, state_to_dict

    state = State(
        bans=(Ban(1, "10.30.4.0/24", LESSON + dt.timedelta(days=1), "004 art. 22", LESSON),),
        grants=(Grant(2, Sites.of(["pornhub.com", "example.org/les"], ["sociale-media"]), LESSON, BREAK,
                      frozenset({"staff"}), frozenset({"staff"}), "004 art. 12"),),
        openings=(Opening(3, "klaslokalen", "allowlist", Sites.of(["wikipedia.org"]), BREAK),),
        exams=(Exam(4, "examenlokaal", Sites.of(["facet.onl"]), BREAK, "000", LESSON),),
    )
    again = state_from_dict(json.loads(json.dumps(state_to_dict(state))))
    assert again.bans == state.bans and again.grants == state.grants
    assert again.openings == state.openings and again.exams == state.exams


def test_a_teachers_opening_opens_only_what_a_teacher_may_open(policy: CompiledPolicy) -> None:
    """000, 004 art. 9: the teacher decides whether devices are used in the lesson; opening a
    forbidden category is not theirs (opened_by): an opening of everything still leaves porn shut."""
    everything = Sites.of(["tiktok.com", "pornhub.com"], ["sociale-media", "porno", "hacken"])
    state = State(openings=(Opening(5, "klaslokalen", "open", everything, until=BREAK),))
    assert verdict(policy, CLASSROOM, "www.tiktok.com", state=state).rule == "lokaal-open"
    assert verdict(policy, CLASSROOM, "www.pornhub.com", state=state).rule == "verboden-categorieen"
    assert verdict(policy, CLASSROOM, "www.hackforums.net", state=state).rule == "hacken"


def test_a_restriction_replaces_the_earlier_opening_and_keeps_the_school_environment(policy: CompiledPolicy) -> None:
    """004 art. 2, 9: a teacher first opens social media, then restricts the room to one site: the
    restriction is what holds (TikTok shut), and Magister (the school environment) stays reachable."""
    opened = Opening(6, "klaslokalen", "open", Sites.of(categories=["sociale-media"]), until=BREAK)
    restricted = Opening(7, "klaslokalen", "allowlist", Sites.of(["wikipedia.org"]), until=BREAK)
    state = State(openings=(opened, restricted))
    assert verdict(policy, CLASSROOM, "www.tiktok.com", state=state).rule == "lokaal-allowlist"
    assert verdict(policy, CLASSROOM, "www.tiktok.com", state=state).blocked
    assert not verdict(policy, CLASSROOM, "nl.wikipedia.org", state=state).blocked
    school = verdict(policy, CLASSROOM, "school.magister.net", state=state)
    assert (school.action, school.rule, school.source) == ("allow", "lokaal-allowlist", policy.articles.classroom)


def test_an_exam_allowlist_opens_only_what_the_exam_coordinator_may_open(policy: CompiledPolicy) -> None:
    """An exam's allowlist naming a forbidden category does not open it during the exam."""
    exam = Exam(9, "klaslokalen", Sites.of(["facet.onl"], ["porno", "schoolomgeving"]), until=BREAK)
    state = State(exams=(exam,))
    assert verdict(policy, CLASSROOM, "school.magister.net", state=state).rule == "examen-toegestaan"
    blocked = verdict(policy, CLASSROOM, "www.pornhub.com", state=state)
    assert (blocked.rule, blocked.source) == ("verboden-categorieen", "004 art. 11a, art. 12")   # forbidden anyway
