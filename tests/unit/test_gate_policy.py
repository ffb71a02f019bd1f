"""The gate in the policy and the decision: services, dns, gate_source, the school environment while
the filter is not ready (settings.missing_lists), the refusals on how a connection is made, and the
engine that ties them to the installed lists.

Policies are the default policy with a change, written to tmp_path and read with load_policy, so an
error is checked as the admin sees it: FILE:LINE: field.path: message.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter.decide import NOT_READY, Categorizer, Context, Request, Verdict, decide, refusal
from poortwachter.gateway import ECH_ALLOWED, ECH_HIDDEN, NOT_WEB, PORT_CLOSED, Engine
from poortwachter.policy.compiled import CompiledPolicy
from poortwachter.policy.load import PolicyError, load_policy, parse_policy
from poortwachter.state import Ban, Exam, Grant, Sites, State
from tests.listdata import install_every_list

from .fakes import DictIndex

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "policy" / "default.yaml"
GOOD = DEFAULT.read_text()
AMS = ZoneInfo("Europe/Amsterdam")
LESSON = dt.datetime(2026, 11, 23, 10, 0, tzinfo=AMS)     # Monday, 2e-uur
BREAK = dt.datetime(2026, 11, 23, 10, 15, tzinfo=AMS)
CLASSROOM, EXAMROOM, CANTEEN, STAFF, GUEST, OUTSIDE = (
    "10.20.1.5", "10.20.99.7", "10.30.4.4", "10.40.0.9", "10.60.0.9", "192.0.2.1")
GATE = "004 art. 12: de firewall blokkeert; het filter niet omzeilen"       # the default policy's gate_source
ip = ipaddress.ip_address

INDEX = DictIndex({"adult": {"pornhub.com"}, "bank": {"ing.nl"}, "social_networks": {"tiktok.com"},
                   "malware": {"evil.example"}})


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def changed(old: str, new: str, text: str = GOOD) -> str:
    assert old in text, f"the default policy no longer holds {old!r}"
    return text.replace(old, new, 1)


def problems(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def compiled(text: str = GOOD) -> CompiledPolicy:
    return CompiledPolicy(parse_policy(text, "t.yaml"))


# ---- the policy file: services, dns, settings ----------------------------------------------------

MAIL_PORTS = "    ports: [993, 587]"
TEAMS_PORTS = '    ports: ["3478-3481"]'


@pytest.mark.parametrize(("old", "new", "needle", "path", "message"), [
    (TEAMS_PORTS, '    ports: ["3478-70000"]', "70000", "services[0].ports[0]", "ports are 1-65535"),
    (TEAMS_PORTS, '    ports: ["3481-3478"]', "3481-3478", "services[0].ports[0]", "not above the last"),
    (TEAMS_PORTS, '    ports: ["stun"]', "stun", "services[0].ports[0]", "is not a port or a range like 3478-3481"),
    (TEAMS_PORTS, '    ports: ["3478-"]', "3478-", "services[0].ports[0]", "is not a port or a range"),
    (MAIL_PORTS, "    ports: [993, 0]", "[993, 0]", "services[1].ports[1]", "ports are 1-65535"),
    (MAIL_PORTS, "    ports: []", "ports: []", "services[1].ports", "at least 1 item"),
    ("    protocol: udp", "    protocol: icmp", "icmp", "services[0].protocol", "'tcp' or 'udp'"),
    ('to: ["52.96.0.0/14"]', 'to: ["52.96.0.0/33"]', "/33", "services[1].to[0]", "is not a network"),
    ("hosts: [outlook.office365.com,", "hosts: [Outlook.office365.com,", "Outlook", "services[1].hosts[0]",
     "is not a site"),
    ("zones: [staff]\n    protocol: tcp", "zones: [personeel]\n    protocol: tcp", "personeel",
     "services[1].zones[0]", "no zone or zone kind named 'personeel'"),
    ("upstream: []", 'upstream: ["9.9.9.9", "dns.quad9.net"]', "upstream:", "dns.upstream[1]",
     "is not a resolver address"),
    ("upstream: []", 'upstream: ["9.9.9.9:0"]', "upstream:", "dns.upstream[0]", "not a port"),
    ("upstream: []", 'upstream: ["[::1]:65536"]', "upstream:", "dns.upstream[0]", "not a port"),
    ("# block_address: 10.99.0.80", 'block_address: "fd00::80"', "block_address:", "dns.block_address",
     "is not an IPv4 address"),
    ("# block_address: 10.99.0.80", "block_address6: 10.99.0.80", "block_address6", "dns.block_address6",
     "is not an IPv6 address"),
    ("# block_address: 10.99.0.80", "block_address: kantine", "block_address:", "dns.block_address",
     "is not an IP address"),
    ("block_ttl: 10", "block_ttl: 0", "block_ttl", "dns.block_ttl", "greater than or equal to 1"),
    ("binding_grace: 30", "binding_grace: -1", "binding_grace", "dns.binding_grace", "greater than or equal to 0"),
    ("ech_fronts: [cloudflare-ech.com]", "ech_fronts: [https://x.example]", "ech_fronts", "dns.ech_fronts[0]",
     "is not a site"),
    ("  binding_grace: 30", "  binding_grace: 30\n  blok_ttl: 5", "blok_ttl", "dns.blok_ttl", "Extra inputs"),
    ("    ech: refuse  ", "    ech: sometimes  ", "ech: sometimes", "zones.medewerkers.ech", "'refuse' or 'allow'"),
    ("connect_ports: [443, 80]", "connect_ports: [443, 65536]", "connect_ports", "settings.connect_ports[1]",
     "less than or equal to 65535"),
    ("connect_ports: [443, 80]", "connect_ports: []", "connect_ports", "settings.connect_ports", "at least 1 item"),
    ("missing_lists: block", "missing_lists: ignore", "missing_lists", "settings.missing_lists",
     "'block' or 'allow'"),
    ("  categories: [schoolomgeving]\n\narticles:", "  categories: [schoolomgeving, elo]\n\narticles:", "elo]",
     "school_environment.categories[1]", "unknown category 'elo'"),
])
def test_bad_gate_values_name_file_line_and_path(tmp_path: Path, old: str, new: str, needle: str, path: str,
                                                 message: str) -> None:
    text = changed(old, new)
    policy = write(tmp_path, text)
    [problem] = problems(policy)
    assert problem.startswith(f"{policy}:{line_of(text, needle)}: {path}: "), problem
    assert message in problem


@pytest.mark.parametrize(("old", "new", "message"), [
    ('    to: ["52.96.0.0/14"]\n    hosts: [outlook.office365.com, smtp.office365.com]\n', "",
     "a service needs `to` (networks), `hosts` (names) or both"),
    ("hosts: [outlook.office365.com, smtp.office365.com]", "hosts: [outlook.office365.com/owa]",
     "service hosts are names, without a /path"),
    ('protocol: tcp\n    ports: [993, 587]\n    to: ["52.96.0.0/14"]', "protocol: udp\n    ports: [993, 587]",
     "a udp service needs `to`: only the firewall carries udp, and it knows no names"),
])
def test_a_service_that_cannot_work_points_at_the_service(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = changed(old, new)
    policy = write(tmp_path, text)
    [problem] = problems(policy)
    assert problem == f"{policy}:{line_of(text, 'name: mail-medewerkers')}: services[1]: {message}"


def test_a_second_service_of_the_same_name_is_refused(tmp_path: Path) -> None:
    """Verdicts name a service (`dienst:NAME`): two of one name would make the audit ambiguous."""
    text = changed("name: mail-medewerkers", "name: teams-media")
    policy = write(tmp_path, text)
    [problem] = problems(policy)
    assert problem == (f"{policy}:{line_of(GOOD, 'name: mail-medewerkers')}: services[1].name: "
                       "duplicate service name 'teams-media'")


def test_a_service_without_a_source_is_refused(tmp_path: Path) -> None:
    """Every opening in the firewall carries the article or decision behind it."""
    text = changed('    source: "004 art. 2: de Office 365-omgeving van de scholengroep"\n', "")
    policy = write(tmp_path, text)
    [problem] = problems(policy)
    assert problem.startswith(f"{policy}:{line_of(text, 'name: mail-medewerkers')}: services[1].source: ")


def test_every_bad_service_and_dns_value_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = changed(TEAMS_PORTS, '    ports: ["0"]')
    text = changed("block_ttl: 10", "block_ttl: 99999", text)
    text = changed("    ech: refuse  ", "    ech: yes  ", text)
    paths = [p.split(": ")[1] for p in problems(write(tmp_path, text))]
    assert sorted(paths) == ["dns.block_ttl", "services[0].ports[0]", "zones.medewerkers.ech"]


def test_the_gate_fails_closed_by_default(tmp_path: Path) -> None:
    """A policy that does not mention the gate gets the strict settings: the filter is not ready
    without its lists, ECH is refused in every zone, CONNECT only to 443 and 80."""
    text = changed("  connect_ports: [443, 80]", "")
    text = changed("  missing_lists: block", "", text)
    text = changed("    ech: refuse  ", "    # ech  ", text)
    start, end = text.index("\nservices:"), text.index("\nrules:")       # services and dns: both left out
    text = text[:start] + "\n" + text[end:]
    policy = CompiledPolicy(load_policy(write(tmp_path, text)))
    assert policy.missing_lists == "block"
    assert {z.ech for z in policy.zones.values()} == {"refuse"} and policy.guest.ech == "refuse"
    assert policy.connect_ports == frozenset({443, 80})
    assert policy.services == ()
    assert policy.dns.upstream == [] and policy.ech_fronts == frozenset({"cloudflare-ech.com"})


def test_upstreams_are_stored_in_one_spelling(tmp_path: Path) -> None:
    text = changed("upstream: []", 'upstream: ["9.9.9.9", "2620:fe::fe", "[2620:00fe::9]:5353", "149.112.112.112:53"]')
    policy = load_policy(write(tmp_path, text))
    assert policy.dns.upstream == ["9.9.9.9:53", "[2620:fe::fe]:53", "[2620:fe::9]:5353", "149.112.112.112:53"]


def test_service_ports_compile_to_inclusive_ranges(tmp_path: Path) -> None:
    text = changed(MAIL_PORTS, '    ports: [993, "587", "1000-1002", "443-443"]')
    policy = CompiledPolicy(load_policy(write(tmp_path, text)))
    assert policy.services[1].ports == ((993, 993), (587, 587), (1000, 1002), (443, 443))


@pytest.mark.parametrize(("old", "new", "path"), [
    (MAIL_PORTS, "    ports: [yes, 587]", "services[1].ports[0]"),
    ("connect_ports: [443, 80]", "connect_ports: [443, true]", "settings.connect_ports[1]"),
])
def test_a_yaml_boolean_is_not_a_port(tmp_path: Path, old: str, new: str, path: str) -> None:
    """`ports: [yes]` is a typo, not "port 1": 004 art. 12 (de firewall blokkeert) means no port
    opens that the admin did not write."""
    problems_found = problems(write(tmp_path, changed(old, new)))
    assert any(f": {path}: " in p for p in problems_found)


def test_an_upstream_with_junk_after_the_bracket_is_refused(tmp_path: Path) -> None:
    text = changed("upstream: []", 'upstream: ["[2620:fe::fe]5353"]')
    [problem] = problems(write(tmp_path, text))
    assert ": dns.upstream[0]: " in problem


# ---- compiled services ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return CompiledPolicy(load_policy(DEFAULT))


def test_a_udp_service_covers_its_networks_ports_and_zones(policy: CompiledPolicy) -> None:
    """004 art. 2 (de schoolomgeving): Teams media for classrooms, exam rooms and staff, nothing else."""
    teams = policy.services[0]
    klas, staff, kantine = policy.zones["klaslokalen"], policy.zones["medewerkers"], policy.zones["openbare-ruimte"]
    assert teams.covers(klas, "52.112.0.0", 3478, "udp") and teams.covers(staff, "52.115.255.255", 3481, "udp")
    assert teams.covers(klas, "2603:1063::1", 3480, "udp")
    assert not teams.covers(kantine, "52.112.0.1", 3478, "udp")          # a zone the service does not name
    assert not teams.covers(policy.guest, "52.112.0.1", 3478, "udp")
    assert not teams.covers(klas, "52.112.0.1", 3478, "tcp")             # another protocol
    assert not teams.covers(klas, "52.112.0.1", 3477, "udp") and not teams.covers(klas, "52.112.0.1", 3482, "udp")
    assert not teams.covers(klas, "52.116.0.0", 3478, "udp")            # just past 52.112.0.0/14
    assert not teams.covers(klas, "2603:1063:400::1", 3478, "udp")      # just past 2603:1063::/38
    assert not teams.covers(klas, "teams.microsoft.com", 3478, "udp")   # no hosts: a name is not an address


def test_a_service_with_hosts_covers_those_names_and_their_subdomains_only(policy: CompiledPolicy) -> None:
    mail, staff = policy.services[1], policy.zones["medewerkers"]
    assert mail.covers(staff, "outlook.office365.com", 993, "tcp")
    assert mail.covers(staff, "eu.smtp.office365.com", 587, "tcp")
    assert mail.covers(staff, "52.99.255.255", 993, "tcp")
    assert not mail.covers(staff, "office365.com", 993, "tcp")                 # the parent is not named
    assert not mail.covers(staff, "evil-outlook.office365.com", 993, "tcp")    # not on a label boundary
    assert not mail.covers(staff, "outlook.office365.com.evil.example", 993, "tcp")
    assert not mail.covers(staff, "52.100.0.1", 993, "tcp")
    assert not mail.covers(staff, "::ffff:52.96.0.1", 993, "tcp")              # not an IPv4 network member


def test_zones_of_a_service_are_names_or_kinds(tmp_path: Path) -> None:
    text = changed("zones: [staff]\n    protocol: tcp", "zones: [klaslokalen]\n    protocol: tcp")
    p = CompiledPolicy(load_policy(write(tmp_path, text)))
    mail = p.services[1]
    assert mail.covers(p.zones["klaslokalen"], "52.96.0.1", 993, "tcp")
    assert not mail.covers(p.zones["examenlokaal"], "52.96.0.1", 993, "tcp")    # a classroom-like room, other name
    assert not mail.covers(p.zones["medewerkers"], "52.96.0.1", 993, "tcp")


def test_service_for_gives_the_first_service_that_covers(tmp_path: Path) -> None:
    extra = ("  - name: alles-personeel\n    source: \"x art. 1\"\n    zones: [staff]\n    protocol: tcp\n"
             "    ports: [\"1-65535\"]\n    to: [\"0.0.0.0/0\", \"::/0\"]\n")
    marker = "\n# The school's resolver"
    p = CompiledPolicy(load_policy(write(tmp_path, changed(marker, extra + marker))))
    staff = p.zones["medewerkers"]
    assert p.service_for(staff, "52.96.0.1", 993).name == "mail-medewerkers"       # written first
    assert p.service_for(staff, "198.51.100.1", 22).name == "alles-personeel"
    assert p.service_for(p.zones["openbare-ruimte"], "198.51.100.1", 22) is None
    assert p.service_for(staff, "198.51.100.1", 22, "udp") is None


# ---- decide(): the filter not ready ---------------------------------------------------------------

CUSTOM_GATE = "testreglement art. 99: wat het filter niet kan beoordelen"


@pytest.fixture(scope="module")
def gate_policy() -> CompiledPolicy:
    return compiled(changed(f'gate_source: "{GATE}"', f'gate_source: "{CUSTOM_GATE}"'))


def judge(policy: CompiledPolicy, client: str, host: str, path: str | None = "/", at: dt.datetime = BREAK,
          state: State = State(), not_ready: bool = True) -> Verdict:
    ctx = Context(policy, Categorizer(policy, INDEX), state, not_ready=not_ready)
    return decide(Request(ip(client), host, path), ctx, at)


def test_not_ready_blocks_an_ordinary_site_naming_the_gate_article(gate_policy: CompiledPolicy) -> None:
    """004 art. 12 (de firewall blokkeert): without its lists the filter cannot tell a forbidden
    site from any other, so it lets nothing through that is not the school's; the verdict names
    the article the policy gives (settings.gate_source), not a fixed text."""
    v = judge(gate_policy, CANTEEN, "www.example.com")
    assert (v.action, v.rule, v.source) == ("block", NOT_READY, CUSTOM_GATE)
    assert (v.zone, v.role, v.period, v.inspection) == ("openbare-ruimte", "pupil", "pauze", "passthrough")
    assert not judge(gate_policy, CANTEEN, "www.example.com", not_ready=False).blocked   # the step, not the site


def test_not_ready_blocks_ip_literals_and_unknown_clients_alike(gate_policy: CompiledPolicy) -> None:
    assert judge(gate_policy, STAFF, "142.250.1.1").rule == NOT_READY
    guest = judge(gate_policy, OUTSIDE, "www.example.com")
    assert (guest.rule, guest.zone) == (NOT_READY, "onbekend")


def test_not_ready_keeps_the_school_environment_004_art_2(gate_policy: CompiledPolicy) -> None:
    """004 art. 2: the school environment (Magister, Office 365) stays reachable."""
    for client in (CANTEEN, STAFF, CLASSROOM):
        for host in ("school.magister.net", "login.microsoftonline.com", "office.com"):
            v = judge(gate_policy, client, host, at=LESSON)
            assert not v.blocked, (client, host, v)
            assert v.rule != NOT_READY


def test_not_ready_keeps_the_no_decrypt_sites(gate_policy: CompiledPolicy) -> None:
    """Banking, health and government login are never decrypted and stay reachable: by the
    school's own sites (digid.nl) and by the installed bank list (ing.nl)."""
    assert not judge(gate_policy, CANTEEN, "digid.nl").blocked
    assert not judge(gate_policy, CANTEEN, "mijn.ing.nl", None).blocked


def test_not_ready_does_not_open_the_school_environment_past_the_rules(gate_policy: CompiledPolicy) -> None:
    """The school environment passes the not-ready step only: an exam in the room still decides."""
    exam = Exam(4, "klaslokalen", Sites.of(["facet.onl"]), until=LESSON + dt.timedelta(hours=2))
    v = judge(gate_policy, CLASSROOM, "school.magister.net", at=LESSON, state=State(exams=(exam,)))
    assert (v.action, v.rule) == ("block", "examen")


def test_a_ban_still_wins_while_not_ready(gate_policy: CompiledPolicy) -> None:
    """004 art. 22 (sanctie): an excluded device reaches nothing, not even the school environment."""
    ban = Ban(1, "10.30.4.0/24", until=BREAK + dt.timedelta(days=1), source="004 art. 22 (sanctie)")
    v = judge(gate_policy, CANTEEN, "school.magister.net", state=State(bans=(ban,)))
    assert (v.action, v.rule, v.source) == ("block", "uitsluiting", "004 art. 22 (sanctie)")


def test_a_grant_does_not_open_a_site_while_not_ready(gate_policy: CompiledPolicy) -> None:
    """004 art. 12: an unblock is for a site the filter judged; while it cannot judge, the grant waits."""
    grant = Grant(7, Sites.of(["example.com"]), BREAK - dt.timedelta(hours=1), BREAK + dt.timedelta(hours=1))
    v = judge(gate_policy, CANTEEN, "www.example.com", state=State(grants=(grant,)))
    assert v.rule == NOT_READY
    assert judge(gate_policy, CANTEEN, "www.example.com", state=State(grants=(grant,)), not_ready=False).rule == \
        "deblokkering"


def test_a_path_entry_of_the_school_environment_covers_its_path() -> None:
    p = compiled(changed("  categories: [schoolomgeving]\n\narticles:",
                         "  categories: [schoolomgeving]\n  sites: [example.org/les]\n\narticles:"))
    assert not judge(p, CANTEEN, "example.org", "/les/1").blocked
    assert judge(p, CANTEEN, "example.org", "/nieuws").rule == NOT_READY
    assert not judge(p, CANTEEN, "example.org", None).blocked     # passthrough sees the host only


# ---- refusal(): how a connection is made ------------------------------------------------------------

def test_refusal_blocks_with_the_gate_article_and_the_clients_zone(gate_policy: CompiledPolicy) -> None:
    """004 art. 12 (de firewall blokkeert): a stream the gateway cannot judge is refused, whatever
    its destination would get, and the block page names the article."""
    ctx = Context(gate_policy, Categorizer(gate_policy, INDEX))
    v = refusal(ctx, ip(CLASSROOM), NOT_WEB, LESSON, "office.com")
    assert (v.action, v.rule, v.source) == ("block", NOT_WEB, CUSTOM_GATE)
    assert (v.zone, v.role, v.period, v.inspection) == ("klaslokalen", "pupil", "2e-uur", "intercept")
    assert v.category == "schoolomgeving"
    porn = refusal(ctx, ip(CANTEEN), PORT_CLOSED, LESSON, "www.pornhub.com")
    assert (porn.category, porn.categories) == ("porno", frozenset({"porno"}))


def test_refusal_without_a_host_and_for_an_unknown_client(gate_policy: CompiledPolicy) -> None:
    ctx = Context(gate_policy, Categorizer(gate_policy, INDEX))
    v = refusal(ctx, ip(OUTSIDE), NOT_WEB, BREAK)
    assert (v.action, v.category, v.categories, v.zone, v.role) == ("block", None, frozenset(), "onbekend", "guest")


# ---- the engine: installed lists, names, ECH, services -------------------------------------------------

def every_list_name(path: Path) -> list[str]:
    return sorted({name for cat in load_policy(path).categories.values() for name in cat.lists})


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with every list of the default policy installed (with the real CLI)."""
    data = tmp_path_factory.mktemp("lists")
    install_every_list(DEFAULT, data, {"adult": ["pornhub.com"], "bank": ["ing.nl"]})
    return data


def engine(policy: Path = DEFAULT, data_dir: Path | None = None, at: dt.datetime = LESSON) -> Engine:
    return Engine(policy, data_dir, clock=lambda: at)


def test_engine_without_lists_is_not_ready(tmp_path: Path) -> None:
    """004 art. 12: a gateway started before `lists update` blocks all but the school environment."""
    e = engine(data_dir=tmp_path)
    assert e.missing_lists() == every_list_name(DEFAULT) and e.ctx.not_ready
    assert e.decide(ip(CANTEEN), "www.example.com").rule == NOT_READY
    assert e.decide(ip(CANTEEN), "www.example.com").source == GATE
    assert not e.decide(ip(CANTEEN), "school.magister.net").blocked
    assert engine(data_dir=None).ctx.not_ready


def test_engine_with_every_list_installed_is_ready(lists: Path) -> None:
    e = engine(data_dir=lists, at=BREAK)
    assert e.missing_lists() == [] and not e.ctx.not_ready
    assert not e.decide(ip(CANTEEN), "www.example.com").blocked
    assert e.decide(ip(CANTEEN), "www.pornhub.com").rule == "verboden-categorieen"


def test_an_installed_but_empty_list_counts_as_missing(tmp_path: Path) -> None:
    """A list that installed with no entry filters nothing: the filter is as blind as without it."""
    install_every_list(DEFAULT, tmp_path, {"adult": ["# leeg"]})
    e = engine(data_dir=tmp_path)
    assert e.missing_lists() == ["adult"] and e.ctx.not_ready


def test_a_list_the_policy_adds_later_is_missing_until_installed(tmp_path: Path, lists: Path) -> None:
    text = changed("    lists: [adult]\n", "    lists: [adult, sinfonietta-porn]\n")
    e = engine(write(tmp_path, text), lists)
    assert e.missing_lists() == ["sinfonietta-porn"] and e.ctx.not_ready


def test_missing_lists_allow_runs_the_filter_blind_but_says_so(tmp_path: Path) -> None:
    """settings.missing_lists: allow is the school's explicit choice: nothing is blocked for being
    unjudged, a listed site goes unfiltered, and the school's own sites still count."""
    e = engine(write(tmp_path, changed("missing_lists: block", "missing_lists: allow")), None, BREAK)
    assert e.missing_lists() == every_list_name(DEFAULT) and not e.ctx.not_ready
    assert not e.decide(ip(CANTEEN), "www.example.com").blocked
    assert not e.decide(ip(CANTEEN), "www.pornhub.com").blocked            # the list that would know is missing
    assert e.decide(ip(CLASSROOM), "www.tiktok.com", "/").blocked          # a site the policy names itself


def test_lists_installed_while_running_make_the_engine_ready(tmp_path: Path) -> None:
    e = engine(data_dir=tmp_path, at=BREAK)
    assert e.ctx.not_ready
    install_every_list(DEFAULT, tmp_path)
    assert e.reload_lists()
    assert e.missing_lists() == [] and not e.ctx.not_ready
    assert not e.decide(ip(CANTEEN), "www.example.com").blocked


def test_new_state_keeps_the_engine_not_ready(tmp_path: Path) -> None:
    """The console's state (bans, grants) is swapped in every few seconds; that must not make a
    blind filter look ready."""
    e = engine(data_dir=tmp_path)
    ban = Ban(1, CANTEEN, until=LESSON + dt.timedelta(days=1), source="004 art. 22 (sanctie)")
    e.set_state(State(bans=(ban,)))
    assert e.decide(ip(CANTEEN), "school.magister.net").rule == "uitsluiting"
    e.set_state(State())
    assert e.ctx.not_ready and e.decide(ip(CANTEEN), "www.example.com").rule == NOT_READY


@pytest.fixture(scope="module")
def path_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The canteen intercepted, and a category with one path on example.com and one on a site that
    is never decrypted (example.net)."""
    text = changed("    inspection: passthrough        # pupils'", "    inspection: intercept        # pupils'")
    text = changed("  bank:\n", "  spelletjes:\n    title: Spelletjes\n"
                   "    sites: [example.com/games, example.net/games]\n  bank:\n", text)
    text = changed("no_decrypt:                        # never decrypted, even in intercept zones\n",
                   "no_decrypt:\n  sites: [example.net]\n", text)
    text = changed("rules:\n", "rules:\n  - {name: geen-spelletjes, source: 'x art. 3', action: block, "
                   "categories: [spelletjes]}\n", text)
    return write(tmp_path_factory.mktemp("paths"), text)


def test_decide_name_in_an_intercept_zone_judges_the_front_page(path_policy: Path, lists: Path) -> None:
    """A rule on one path of a site must not take the whole name off the air where the proxy will
    see the paths: the resolver answers, and the request for /games is blocked later."""
    e = engine(path_policy, lists, BREAK)
    assert not e.decide_name(ip(CANTEEN), "example.com").blocked
    assert e.decide(ip(CANTEEN), "example.com", "/games/1").rule == "geen-spelletjes"


def test_decide_name_where_paths_are_never_seen_judges_the_name(path_policy: Path, lists: Path) -> None:
    """In a passthrough zone, and for a never-decrypted site in an intercept zone, the name is all the
    gateway will ever see: a blocked path blocks the name, as the SNI decision would."""
    e = engine(path_policy, lists, BREAK)
    assert e.decide_name(ip(STAFF), "example.com").rule == "geen-spelletjes"
    assert e.decide_name(ip(CANTEEN), "example.net").rule == "geen-spelletjes"


def test_decide_name_blocks_what_the_policy_blocks(lists: Path) -> None:
    """004 art. 11a: a forbidden site's name does not resolve, in every kind of zone."""
    e = engine(data_dir=lists)
    for client in (CLASSROOM, CANTEEN, STAFF, GUEST, OUTSIDE):
        assert e.decide_name(ip(client), "www.pornhub.com").rule == "verboden-categorieen"


def test_engine_refuse_names_the_gate_article_at_the_engines_time(lists: Path) -> None:
    v = engine(data_dir=lists).refuse(ip(CANTEEN), NOT_WEB, "www.pornhub.com")
    assert (v.action, v.rule, v.source, v.category, v.period) == ("block", NOT_WEB, GATE, "porno", "2e-uur")


def test_ech_is_refused_where_the_zone_says_so_004_art_12(lists: Path) -> None:
    """004 art. 12 (het filter niet omzeilen): a connection whose destination ECH hides is refused."""
    e = engine(data_dir=lists)
    for client in (CLASSROOM, CANTEEN, STAFF, OUTSIDE):
        v = e.ech(ip(client), "cloudflare-ech.com")
        assert (v.action, v.rule, v.source) == ("block", ECH_HIDDEN, GATE)


def test_ech_is_allowed_only_in_the_zone_that_allows_it(tmp_path: Path, lists: Path) -> None:
    e = engine(write(tmp_path, changed("    ech: refuse  ", "    ech: allow  ")), lists)
    staff = e.ech(ip(STAFF), "cloudflare-ech.com")
    assert (staff.action, staff.rule, staff.zone) == ("allow", ECH_ALLOWED, "medewerkers")
    assert e.ech(ip(CANTEEN), "cloudflare-ech.com").rule == ECH_HIDDEN
    assert e.ech(ip("10.40.0.0"), "cloudflare-ech.com").action == "allow"          # the whole staff network
    assert e.ech(ip("10.41.0.1"), "cloudflare-ech.com").blocked                    # and no further


def test_a_service_allows_its_stream_naming_its_own_source(lists: Path) -> None:
    """004 art. 2: staff mail (IMAP, submission) to the school's mail host passes; it names the
    service's own article, not the gate's."""
    e = engine(data_dir=lists)
    v = e.service(ip(STAFF), "52.96.1.2", 993)
    assert v is not None
    assert (v.action, v.rule, v.source, v.zone) == ("allow", "dienst:mail-medewerkers",
                                                    "004 art. 2: de Office 365-omgeving van de scholengroep",
                                                    "medewerkers")
    by_name = e.service(ip(STAFF), "smtp.office365.com", 587)
    assert by_name is not None and by_name.rule == "dienst:mail-medewerkers"
    teams = e.service(ip(CLASSROOM), "52.112.9.9", 3478, "udp")
    assert teams is not None and teams.rule == "dienst:teams-media"


def test_no_service_outside_its_zone_port_protocol_or_destination(lists: Path) -> None:
    """004 art. 12 (de firewall blokkeert): everything a service does not name stays shut."""
    e = engine(data_dir=lists)
    assert e.service(ip(CANTEEN), "52.96.1.2", 993) is None                 # pupils
    assert e.service(ip(OUTSIDE), "52.96.1.2", 993) is None                 # unknown clients
    assert e.service(ip(STAFF), "52.96.1.2", 995) is None                   # another port
    assert e.service(ip(STAFF), "52.96.1.2", 993, "udp") is None            # another protocol
    assert e.service(ip(STAFF), "203.0.113.5", 993) is None                 # another destination
    assert e.service(ip(STAFF), "imap.gmail.com", 993) is None


def test_a_banned_device_gets_no_service(lists: Path) -> None:
    """004 art. 22 (sanctie): an excluded device is off the network: the decision blocks every site
    first, and a service stream is no exception."""
    e = engine(data_dir=lists)
    e.set_state(State(bans=(Ban(1, STAFF, until=LESSON + dt.timedelta(days=1), source="004 art. 22 (sanctie)"),)))
    assert e.decide(ip(STAFF), "outlook.office365.com").rule == "uitsluiting"
    v = e.service(ip(STAFF), "52.96.1.2", 993)
    assert v is None or v.blocked


def test_a_banned_device_gets_no_ech_where_its_zone_allows_it(tmp_path: Path, lists: Path) -> None:
    """004 art. 22 (sanctie): the exclusion also closes the one kind of connection the filter cannot see into."""
    e = engine(write(tmp_path, changed("    ech: refuse  ", "    ech: allow  ")), lists)
    e.set_state(State(bans=(Ban(1, STAFF, until=LESSON + dt.timedelta(days=1), source="004 art. 22 (sanctie)"),)))
    assert e.ech(ip(STAFF), "cloudflare-ech.com").blocked


def test_a_refused_unknown_client_gets_no_service(tmp_path: Path, lists: Path) -> None:
    text = changed("unknown_clients: guest", "unknown_clients: refuse")
    text = changed("zones: [staff]\n    protocol: tcp", "zones: [staff, guest]\n    protocol: tcp", text)
    e = engine(write(tmp_path, text), lists)
    assert e.decide(ip(OUTSIDE), "outlook.office365.com").rule == "onbekend-netwerk"
    assert e.service(ip(GUEST), "52.96.1.2", 993) is not None                # the guest zone's own clients
    v = e.service(ip(OUTSIDE), "52.96.1.2", 993)
    assert v is None or v.blocked
