"""The five example policies against the reglementen they express (policy/examples/*.yaml).

Every rule of every example is tested twice at least: once where it must fire and once where it
must not, each case named after the article it enforces. The thing under test is the policy plus
the real decision (`poortwachter.decide.decide`); the category lists are a small in-test fake index
over a handful of real list entries, because the compiled list index is not what is tested here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from poortwachter.decide import Categorizer, Context, Request, Verdict, decide
from poortwachter.policy.compiled import CompiledPolicy
from poortwachter.policy.load import load_policy
from poortwachter.policy.model import Policy
from poortwachter.state import EMPTY, Ban, Exam, Grant, Opening, Sites, State

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "policy" / "examples"
AMS = ZoneInfo("Europe/Amsterdam")

# seed number -> example file
SCHOOLS = {
    "000": "roc-top",
    "001": "roc-kop-van-noord-holland",
    "002": "praktijkschool-de-noordhoek",
    "003": "carolus-clusius-college",
    "004": "omo-de-langstraat",
}

# Decisions that do not come from a rule of the policy file; the coverage check treats the first two
# like rules (the default and a locked category are part of the policy), the rest are run-time state.
DEFAULT = "standaard"
LOCKED = "niet-te-openen"


# --- a tiny category index ------------------------------------------------------------------------
# Real entries of the UT1 lists and the Sinfonietta hosts lists, plus two the school might meet
# (sense.info, a sexual-education site, stands in for a list false positive).
DOMAINS: dict[str, frozenset[str]] = {
    "adult": frozenset({"pornhub.com", "xvideos.com", "sense.info"}),
    "sinfonietta-porn": frozenset({"007angels.com"}),
    "agressif": frozenset({"stormfront.org", "14words.com"}),
    "hacking": frozenset({"elitehackers.de", "hackedlogins.com"}),
    "ddos": frozenset({"anonymous-stresser.com", "alphastress.com"}),
    "cryptojacking": frozenset({"01xmrpool.com"}),
    "vpn": frozenset({"nordvpn.com"}),
    "redirector": frozenset({"nordvpn.com"}),
    "doh": frozenset({"dns.google", "cloudflare-dns.com"}),
    "warez": frozenset({"1337x.to"}),
    "social_networks": frozenset({"tiktok.com", "instagram.com", "facebook.com", "snapchat.com",
                                  "linkedin.com", "x.com", "twitter.com", "discord.com"}),
    "sinfonietta-social": frozenset({"snapchat.com", "facebook.com"}),
    "audio-video": frozenset({"youtube.com"}),
    "games": frozenset({"roblox.com"}),
    "liste_bu": frozenset({"wikipedia.org", "linkedin.com"}),
    "bank": frozenset({"ing.nl"}),
}
URLS: dict[str, frozenset[str]] = {
    "malware": frozenset({"0001-5cf.pages.dev/awards"}),
}


class FakeIndex:
    """host -> list names whose domains hold the host or a parent domain; host+path -> url lists."""

    def host_categories(self, host: str) -> frozenset[str]:
        out: set[str] = set()
        h = host
        while True:
            out.update(name for name, doms in DOMAINS.items() if h in doms)
            dot = h.find(".")
            if dot < 0:
                return frozenset(out)
            h = h[dot + 1:]

    def url_categories(self, host: str, path: str, only: frozenset[str] | None = None) -> frozenset[str]:
        bare = host[4:] if host.startswith("www.") else host   # squidGuard strips www.
        url = bare + path
        return frozenset(name for name, urls in URLS.items() if any(url.startswith(u) for u in urls))


@cache
def policy_of(seed: str) -> Policy:
    return load_policy(EXAMPLES / f"{SCHOOLS[seed]}.yaml")


@cache
def compiled(seed: str) -> CompiledPolicy:
    return CompiledPolicy(policy_of(seed))


def at(day: str, hhmm: str) -> dt.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=AMS)


def until(moment: dt.datetime) -> dt.datetime:
    return moment + dt.timedelta(hours=1)


# --- the cases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str                    # "<seed> <article>: <situation>, <outcome>"
    client: str
    host: str
    when: dt.datetime
    action: str                # expected "allow" / "block"
    rule: str                  # the rule (or decision step) expected to decide
    about: str | None = None   # the rule this case is about, if not the deciding one (a "does not fire" case)
    path: str | None = None    # None: only the host is known (passthrough / SNI)
    state: State = EMPTY
    source: str | None = None  # expected source when the decision comes from run-time state
    category: str | None = None

    @property
    def seed(self) -> str:
        return self.id[:3]

    @property
    def subject(self) -> str:
        return self.about or self.rule

    @property
    def fires(self) -> bool:
        return self.subject == self.rule


def run(case: Case) -> Verdict:
    policy = compiled(case.seed)
    ctx = Context(policy, Categorizer(policy, FakeIndex()), case.state)
    return decide(Request(ipaddress.ip_address(case.client), case.host, case.path), ctx, case.when)


# Dates: 2026-11-23 is an ordinary Monday for every school, 2026-11-25 a Wednesday,
# 2026-11-27 a Friday, 2026-11-28 a Saturday, 2026-12-21 in the Christmas holiday;
# 2026-11-09 is the Monday of Carolus Clusius' first toetsweek; 2027-03-10 De Noordhoek's study day.
MON, WED, FRI, SAT, XMAS = "2026-11-23", "2026-11-25", "2026-11-27", "2026-11-28", "2026-12-21"


# 000 ROC TOP -------------------------------------------------------------------------------------
T_LOKAAL, T_LOKAAL6, T_PLEIN = "10.10.5.5", "fd00:10:1::5", "10.10.130.3"
T_EXAM, T_STAFF, T_GAST = "10.10.200.21", "10.11.2.2", "192.168.100.50"
T_LES, T_PAUZE = at(MON, "09:00"), at(MON, "10:05")

ROC_TOP = [
    Case("000 Afspraken, acceptabele doeleinden: student on the studieplein, pornographic site blocked",
         T_PLEIN, "www.pornhub.com", T_PAUZE, "block", "verboden-sites", category="porno"),
    Case("000 Afspraken, acceptabele doeleinden: staff, racist site blocked",
         T_STAFF, "stormfront.org", T_LES, "block", "verboden-sites", category="haat"),
    Case("000 Afspraken, acceptabele doeleinden: guest, porn from the Sinfonietta hosts list blocked",
         T_GAST, "007angels.com", T_LES, "block", "verboden-sites", category="porno"),
    Case("000 Afspraken, acceptabele doeleinden: student on the studieplein, Wikipedia allowed",
         T_PLEIN, "nl.wikipedia.org", T_LES, "allow", DEFAULT, about="verboden-sites"),
    Case("000 Afspraken, hacken: staff, hacking site blocked",
         T_STAFF, "www.elitehackers.de", T_LES, "block", "hacken", category="hacken"),
    Case("000 Afspraken, hacken: student, DDoS stresser blocked",
         T_PLEIN, "anonymous-stresser.com", T_PAUZE, "block", "hacken"),
    Case("000 Afspraken, hacken: student on the studieplein, GitHub allowed",
         T_PLEIN, "github.com", T_PAUZE, "allow", DEFAULT, about="hacken"),
    Case("000 Afspraken, acceptabele doeleinden: student, VPN site blocked",
         T_PLEIN, "nordvpn.com", T_PAUZE, "block", "filter-omzeilen", category="omzeiling"),
    Case("000 Afspraken, acceptabele doeleinden: guest, DNS-over-HTTPS blocked",
         T_GAST, "cloudflare-dns.com", T_LES, "block", "filter-omzeilen"),
    Case("000 Afspraken, acceptabele doeleinden: staff may use a VPN for work",
         T_STAFF, "nordvpn.com", T_LES, "allow", DEFAULT, about="filter-omzeilen"),
    Case("000 Afspraken, examens en toetsen: student in the exam room, Wikipedia blocked",
         T_EXAM, "nl.wikipedia.org", T_LES, "block", "examens", path="/wiki/Examen"),
    Case("000 Afspraken, examens en toetsen: student in the exam room, social media blocked in the break too",
         T_EXAM, "www.instagram.com", T_PAUZE, "block", "examens", path="/"),
    Case("000 Afspraken, examens en toetsen: student in the exam room reaches the exam platform",
         T_EXAM, "facet.cito.nl", T_LES, "allow", "examens", path="/login"),
    Case("000 Afspraken, examens en toetsen: student in an ordinary classroom, Wikipedia allowed",
         T_LOKAAL, "nl.wikipedia.org", T_LES, "allow", DEFAULT, about="examens"),
    Case("000 Afspraken, examens en toetsen: teacher's exam mode in an ordinary classroom blocks the rest",
         T_LOKAAL, "nl.wikipedia.org", T_LES, "block", "examen", about="examens",
         state=State(exams=(Exam(1, "lokalen", Sites.of(["cito.nl"]), until(T_LES),
                                 source="000 Afspraken, examens en toetsen"),)),
         source="000 Afspraken, examens en toetsen"),
    Case("000 Afspraken, mobiele telefoon: student in a classroom during a lesson, YouTube blocked until the teacher opens it",
         T_LOKAAL, "www.youtube.com", T_LES, "block", "lessen-docent-bepaalt", category="sociale-media"),
    Case("000 Afspraken, mobiele telefoon: student in a classroom during a lesson, Instagram blocked (IPv6)",
         T_LOKAAL6, "www.instagram.com", T_LES, "block", "lessen-docent-bepaalt"),
    Case("000 Afspraken, mobiele telefoon: student in a classroom during the break, Instagram allowed",
         T_LOKAAL, "www.instagram.com", T_PAUZE, "allow", DEFAULT, about="lessen-docent-bepaalt"),
    Case("000 Afspraken, mobiele telefoon: student on the studieplein during lesson time, Instagram allowed",
         T_PLEIN, "www.instagram.com", T_LES, "allow", DEFAULT, about="lessen-docent-bepaalt"),
    Case("000 Afspraken, mobiele telefoon: student in a classroom during a lesson, lesson sites allowed",
         T_LOKAAL, "nl.wikipedia.org", T_LES, "allow", DEFAULT, about="lessen-docent-bepaalt"),
    Case("000 Afspraken, mobiele telefoon: the teacher opens YouTube for the lesson",
         T_LOKAAL, "www.youtube.com", T_LES, "allow", "lokaal-open", about="lessen-docent-bepaalt",
         state=State(openings=(Opening(1, "lokalen", "open", Sites.of(["youtube.com"]), until(T_LES),
                                       source="000 Afspraken, mobiele telefoon"),)),
         source="000 Afspraken, mobiele telefoon"),
    Case("000 Afspraken: student on the studieplein, TikTok allowed",
         T_PLEIN, "www.tiktok.com", T_LES, "allow", DEFAULT),
    Case("000 Afspraken: student in a classroom after school on Friday, YouTube allowed",
         T_LOKAAL, "www.youtube.com", at(FRI, "16:00"), "allow", DEFAULT),
    Case("000 Afspraken: the default does not open pornography",
         T_LOKAAL, "www.pornhub.com", at(FRI, "16:00"), "block", "verboden-sites", about=DEFAULT),
    Case("000 Afspraken, acceptabele doeleinden: malware URL blocked, not openable",
         T_EXAM, "0001-5cf.pages.dev", T_LES, "block", LOCKED, path="/awards", category="malware"),
    Case("000 Afspraken, acceptabele doeleinden: an ICT grant cannot open cryptojacking",
         T_STAFF, "pool.01xmrpool.com", T_LES, "block", LOCKED,
         state=State(grants=(Grant(1, Sites.of(["01xmrpool.com"]), T_LES, until(T_LES)),))),
    Case("000 Afspraken, acceptabele doeleinden: same host, other path, not malware",
         T_STAFF, "0001-5cf.pages.dev", T_LES, "allow", DEFAULT, about=LOCKED, path="/"),
    Case("000 Afspraken, sancties: a student excluded from the school network is blocked everywhere",
         T_PLEIN, "nl.wikipedia.org", T_LES, "block", "uitsluiting",
         state=State(bans=(Ban(1, T_PLEIN, until(T_LES), source="000 Afspraken, sancties"),)),
         source="000 Afspraken, sancties"),
]


# 001 ROC Kop van Noord-Holland --------------------------------------------------------------------
K_LOKAAL, K_LOKAAL6, K_OPEN = "10.50.4.4", "fd00:50::4", "10.51.7.7"
K_STAFF, K_COMM, K_GAST = "10.52.3.3", "10.52.50.12", "10.59.1.1"
K_LES, K_PAUZE, K_LUNCH = at(MON, "09:00"), at(MON, "10:15"), at(MON, "12:10")

ROC_KOP = [
    Case("001 §2, §4 (fatsoensnormen): communications staff, pornographic site blocked",
         K_COMM, "www.pornhub.com", K_LES, "block", "fatsoensnormen", category="porno"),
    Case("001 §2, §4 (fatsoensnormen): student on the studieplein in the break, racist site blocked",
         K_OPEN, "stormfront.org", K_PAUZE, "block", "fatsoensnormen", category="haat"),
    Case("001 §2, §4 (fatsoensnormen): guest after working time, porn from the Sinfonietta list blocked",
         K_GAST, "007angels.com", at(MON, "18:00"), "block", "fatsoensnormen"),
    Case("001 §2, §4 (fatsoensnormen): student on the studieplein, Wikipedia allowed",
         K_OPEN, "nl.wikipedia.org", K_LES, "allow", DEFAULT, about="fatsoensnormen"),
    Case("001 (Wetboek van Strafrecht art. 138ab): staff, hacking site blocked",
         K_STAFF, "www.elitehackers.de", K_LES, "block", "hacken", category="hacken"),
    Case("001 (Wetboek van Strafrecht art. 138b): guest on Saturday, DDoS stresser blocked",
         K_GAST, "anonymous-stresser.com", at(SAT, "11:00"), "block", "hacken"),
    Case("001 (Wetboek van Strafrecht art. 138ab): staff, GitHub allowed",
         K_STAFF, "github.com", K_LES, "allow", DEFAULT, about="hacken"),
    Case("001 (Wetboek van Strafrecht art. 350a): communications staff, malware URL blocked, not openable",
         K_COMM, "0001-5cf.pages.dev", K_LES, "block", LOCKED, path="/awards", category="malware"),
    Case("001 (Wetboek van Strafrecht art. 350a): an ICT grant cannot open cryptojacking",
         K_STAFF, "01xmrpool.com", K_LES, "block", LOCKED,
         state=State(grants=(Grant(1, Sites.of(["01xmrpool.com"]), K_LES, until(K_LES)),))),
    Case("001 (Wetboek van Strafrecht art. 350a): same host, other path, not malware",
         K_STAFF, "0001-5cf.pages.dev", K_LES, "allow", DEFAULT, about=LOCKED, path="/"),
    Case("001 §4: communications staff (directie's permission) active on Instagram during working time",
         K_COMM, "www.instagram.com", K_LES, "allow", "communicatie-toestemming-directie"),
    Case("001 §4: communications staff on LinkedIn during working time",
         K_COMM, "www.linkedin.com", K_LUNCH, "allow", "communicatie-toestemming-directie"),
    Case("001 §4: communications staff, a non-social site is not this permission",
         K_COMM, "nl.wikipedia.org", K_LES, "allow", DEFAULT, about="communicatie-toestemming-directie"),
    Case("001 §4: other staff have no standing permission, Instagram blocked during working time",
         K_STAFF, "www.instagram.com", K_LES, "block", "medewerkers-werktijd",
         about="communicatie-toestemming-directie"),
    Case("001 §4: staff during working time, Facebook blocked",
         K_STAFF, "www.facebook.com", K_LES, "block", "medewerkers-werktijd", category="sociale-media"),
    Case("001 §4: staff during the lunch break (still working time), LinkedIn blocked",
         K_STAFF, "www.linkedin.com", K_LUNCH, "block", "medewerkers-werktijd"),
    Case("001 §4: staff, Instagram's image servers blocked too (school's own sites entry)",
         K_STAFF, "scontent.cdninstagram.com", K_LES, "block", "medewerkers-werktijd"),
    Case("001 §4: staff during working time, YouTube lesson video allowed (watching is not being active)",
         K_STAFF, "www.youtube.com", K_LES, "allow", DEFAULT, about="medewerkers-werktijd"),
    Case("001 §4: staff after working time, Instagram allowed",
         K_STAFF, "www.instagram.com", at(MON, "18:00"), "allow", DEFAULT, about="medewerkers-werktijd"),
    Case("001 §4: staff on Saturday, Instagram allowed",
         K_STAFF, "www.instagram.com", at(SAT, "11:00"), "allow", DEFAULT, about="medewerkers-werktijd"),
    Case("001 §4: staff in the Christmas holiday, Instagram allowed",
         K_STAFF, "www.instagram.com", at(XMAS, "11:00"), "allow", DEFAULT, about="medewerkers-werktijd"),
    Case("001 §4: the directie allows one staff member social media for an open day (ICT grant)",
         K_STAFF, "www.instagram.com", K_LES, "allow", "deblokkering", about="medewerkers-werktijd",
         state=State(grants=(Grant(1, Sites.of(["instagram.com"]), K_LES, until(K_LES),
                                   zones=frozenset({"medewerkers"}), roles=frozenset({"staff"}),
                                   source="001 §4"),)),
         source="001 §4"),
    Case("001 §4: student in a classroom during a lesson, Snapchat blocked",
         K_LOKAAL, "www.snapchat.com", K_LES, "block", "studenten-tijdens-lessen", category="sociale-media"),
    Case("001 §4: student in a classroom during a lesson, TikTok blocked (IPv6)",
         K_LOKAAL6, "www.tiktok.com", K_LES, "block", "studenten-tijdens-lessen"),
    Case("001 §4: student in a classroom during the break, Snapchat allowed",
         K_LOKAAL, "www.snapchat.com", K_PAUZE, "allow", DEFAULT, about="studenten-tijdens-lessen"),
    Case("001 §4: student on the studieplein during lesson time (no lesson), Snapchat allowed",
         K_OPEN, "www.snapchat.com", K_LES, "allow", DEFAULT, about="studenten-tijdens-lessen"),
    Case("001 §4: student in a classroom during a lesson, other sites allowed",
         K_LOKAAL, "nl.wikipedia.org", K_LES, "allow", DEFAULT, about="studenten-tijdens-lessen"),
    Case("001 §4: the teacher allows LinkedIn for a job-application lesson",
         K_LOKAAL, "www.linkedin.com", K_LES, "allow", "lokaal-open", about="studenten-tijdens-lessen",
         state=State(openings=(Opening(1, "studenten-lokalen", "open", Sites.of(["linkedin.com"]),
                                       until(K_LES), source="001 §4"),)),
         source="001 §4"),
    Case("001 §4: guest during working time, Instagram allowed",
         K_GAST, "www.instagram.com", K_LES, "allow", DEFAULT),
    Case("001 §4: a client outside every zone is a guest, Instagram allowed",
         "192.0.2.44", "www.instagram.com", K_LES, "allow", DEFAULT),
    Case("001 §4: the default does not cover staff during working time",
         K_STAFF, "x.com", K_LES, "block", "medewerkers-werktijd", about=DEFAULT),
]


# 002 Praktijkschool De Noordhoek ------------------------------------------------------------------
N_KLAS, N_TEL, N_STAFF, N_GAST = "172.20.3.4", "172.20.17.8", "172.20.33.1", "172.20.48.9"
N_LES, N_PAUZE = at(MON, "10:30"), at(MON, "10:05")

NOORDHOEK = [
    Case("002 Algemeen: pupil's phone in the break, pornographic site blocked",
         N_TEL, "www.xvideos.com", N_PAUZE, "block", "obsceen-en-haat", category="porno"),
    Case("002 Algemeen: staff, discriminating site blocked",
         N_STAFF, "14words.com", N_LES, "block", "obsceen-en-haat", category="haat"),
    Case("002 Algemeen: staff, Wikipedia allowed",
         N_STAFF, "nl.wikipedia.org", N_LES, "allow", DEFAULT, about="obsceen-en-haat"),
    Case("002 Protocol Veilige School: pupil in the break, hacking site blocked",
         N_TEL, "hackedlogins.com", N_PAUZE, "block", "hacken", category="hacken"),
    Case("002 Protocol Veilige School, Wetboek van Strafrecht art. 138ab: staff, hacking site blocked too",
         N_STAFF, "hackedlogins.com", N_LES, "block", "hacken"),
    Case("002 Protocol Veilige School: staff, GitHub allowed",
         N_STAFF, "github.com", N_LES, "allow", DEFAULT, about="hacken"),
    Case("002 (Wetboek van Strafrecht art. 350a): pupil's phone in the break, malware URL blocked, not openable",
         N_TEL, "0001-5cf.pages.dev", N_PAUZE, "block", LOCKED, path="/awards", category="malware"),
    Case("002 (Wetboek van Strafrecht art. 350a): an ICT grant cannot open cryptojacking",
         N_STAFF, "01xmrpool.com", N_LES, "block", LOCKED,
         state=State(grants=(Grant(1, Sites.of(["01xmrpool.com"]), N_LES, until(N_LES)),))),
    Case("002 (Wetboek van Strafrecht art. 350a): same host, other path, not malware",
         N_STAFF, "0001-5cf.pages.dev", N_LES, "allow", DEFAULT, about=LOCKED, path="/"),
    Case("002 Regels 9: pupil's phone in the break, VPN blocked",
         N_TEL, "nordvpn.com", N_PAUZE, "block", "filter-omzeilen", category="omzeiling"),
    Case("002 Regels 9: guest, DNS-over-HTTPS blocked",
         N_GAST, "dns.google", N_LES, "block", "filter-omzeilen"),
    Case("002 Regels 9: staff may use a VPN",
         N_STAFF, "nordvpn.com", N_LES, "allow", DEFAULT, about="filter-omzeilen"),
    Case("002 Regels 9: pupil in a lesson, social media blocked",
         N_KLAS, "www.tiktok.com", N_LES, "block", "sociale-media-tijdens-les", path="/", category="sociale-media"),
    Case("002 Regels 9: pupil's phone on the wifi during a lesson, Instagram blocked",
         N_TEL, "www.instagram.com", N_LES, "block", "sociale-media-tijdens-les"),
    Case("002 Regels 9: pupil's phone in the break, Instagram allowed",
         N_TEL, "www.instagram.com", N_PAUZE, "allow", "pauze-telefoon", about="sociale-media-tijdens-les"),
    Case("002 Regels 9: staff during a lesson, social media allowed",
         N_STAFF, "www.instagram.com", N_LES, "allow", DEFAULT, about="sociale-media-tijdens-les"),
    Case("002 Regels 9: the teacher gives permission for Instagram in this lesson",
         N_KLAS, "www.instagram.com", N_LES, "allow", "lokaal-open", about="sociale-media-tijdens-les",
         path="/", state=State(openings=(Opening(1, "klassen", "open", Sites.of(["instagram.com"]),
                                                 until(N_LES), source="002 Regels 9"),)),
         source="002 Regels 9"),
    Case("002 Regels 9: pupil in a lesson, a site the teacher did not point to is blocked",
         N_KLAS, "nos.nl", N_LES, "block", "les-alleen-aangewezen-sites", path="/"),
    Case("002 Regels 9: pupil's phone during a lesson, a game is blocked",
         N_TEL, "www.roblox.com", N_LES, "block", "les-alleen-aangewezen-sites"),
    Case("002 Regels 9: pupil in a lesson reaches the lesson material (It's up to you)",
         N_KLAS, "www.itsuptoyou.nl", N_LES, "allow", "les-alleen-aangewezen-sites", path="/"),
    Case("002 Regels 9: pupil in a lesson reaches SOMtoday",
         N_KLAS, "leerling.somtoday.nl", N_LES, "allow", "les-alleen-aangewezen-sites", path="/"),
    Case("002 Regels 9: the teacher points the class to Wikipedia",
         N_KLAS, "nl.wikipedia.org", N_LES, "allow", "lokaal-open", about="les-alleen-aangewezen-sites",
         path="/wiki/Sliedrecht",
         state=State(openings=(Opening(1, "klassen", "open", Sites.of(["wikipedia.org"]), until(N_LES),
                                       source="002 Regels 9"),)),
         source="002 Regels 9"),
    Case("002 Regels 9: pupil in the break, news site allowed",
         N_TEL, "nos.nl", N_PAUZE, "allow", "pauze-telefoon", about="les-alleen-aangewezen-sites"),
    Case("002 Regels 9: pupil before school, news site allowed",
         N_TEL, "nos.nl", at(MON, "08:00"), "allow", DEFAULT, about="les-alleen-aangewezen-sites"),
    Case("002 Regels 9: study day without lessons, news site allowed",
         N_KLAS, "nos.nl", at("2027-03-10", "10:30"), "allow", DEFAULT, about="les-alleen-aangewezen-sites",
         path="/"),
    Case("002 Regels 9: staff during a lesson, any site allowed",
         N_STAFF, "nos.nl", N_LES, "allow", DEFAULT, about="les-alleen-aangewezen-sites"),
    Case("002 Regels 9: in the break a pupil may use the phone, TikTok allowed",
         N_TEL, "www.tiktok.com", N_PAUZE, "allow", "pauze-telefoon"),
    Case("002 Regels 9: in the lunch break a pupil on a school laptop, YouTube allowed",
         N_KLAS, "www.youtube.com", at(MON, "12:00"), "allow", "pauze-telefoon", path="/"),
    Case("002 Regels 9: the break does not open pornography",
         N_TEL, "www.pornhub.com", N_PAUZE, "block", "obsceen-en-haat", about="pauze-telefoon"),
    Case("002 Regels 9: the break rule is for pupils; staff fall to the default",
         N_STAFF, "www.tiktok.com", N_PAUZE, "allow", DEFAULT, about="pauze-telefoon"),
    Case("002 Regels 9: Wednesday afternoon, no lessons, TikTok allowed",
         N_TEL, "www.tiktok.com", at(WED, "14:00"), "allow", DEFAULT),
    Case("002 Regels 9: the default does not apply during a lesson",
         N_TEL, "www.tiktok.com", N_LES, "block", "sociale-media-tijdens-les", about=DEFAULT),
]


# 003 Carolus Clusius College ----------------------------------------------------------------------
C_LOKAAL, C_LOKAAL6, C_TOETS = "10.3.10.20", "fd00:ccc:3::20", "10.3.250.15"
C_AULA, C_STAFF, C_GAST = "10.4.1.30", "10.5.2.2", "10.9.0.9"
C_LES = at(MON, "10:30")                        # 3e uur of an ordinary week
TOETSWEEK = "2026-11-09"
C_TOETSBLOK, C_TOETSPAUZE = at(TOETSWEEK, "09:00"), at(TOETSWEEK, "10:15")

CAROLUS = [
    Case("003 §3 Gebruik: pupil in a classroom, pornographic site blocked",
         C_LOKAAL, "www.pornhub.com", C_LES, "block", "onacceptabele-inhoud", path="/", category="porno"),
    Case("003 §3 Gebruik: staff, racist site blocked",
         C_STAFF, "stormfront.org", C_LES, "block", "onacceptabele-inhoud", category="haat"),
    Case("003 §3 Gebruik: pupil in a classroom, Wikipedia allowed",
         C_LOKAAL, "nl.wikipedia.org", C_LES, "allow", DEFAULT, about="onacceptabele-inhoud", path="/"),
    Case("003 §3 Gebruik: pupil in the aula, hacking site blocked",
         C_AULA, "www.elitehackers.de", C_LES, "block", "hacken", category="hacken"),
    Case("003 §3 Gebruik: staff, hacking site blocked",
         C_STAFF, "hackedlogins.com", C_LES, "block", "hacken"),
    Case("003 §3 Gebruik: pupil in the aula, GitHub allowed",
         C_AULA, "github.com", C_LES, "allow", DEFAULT, about="hacken"),
    Case("003 §3 Gebruik: pupil in a classroom cannot reach the intranet",
         C_LOKAAL, "intranet.ccc.internal", C_LES, "block", "niet-openbare-bronnen", path="/",
         category="niet-openbaar"),
    Case("003 §3 Gebruik: guest cannot reach the management server by its address",
         C_GAST, "10.1.0.20", C_LES, "block", "niet-openbare-bronnen"),
    Case("003 §3 Gebruik: staff reach the intranet",
         C_STAFF, "intranet.ccc.internal", C_LES, "allow", DEFAULT, about="niet-openbare-bronnen"),
    Case("003 §3 Gebruik: pupil reaches Magister with their own account",
         C_LOKAAL, "ccc.magister.net", C_LES, "allow", DEFAULT, about="niet-openbare-bronnen", path="/"),
    Case("003 §3 Toegang: other raw IP addresses stay reachable for pupils (unlimited access)",
         C_AULA, "142.250.180.14", C_LES, "allow", DEFAULT, about="niet-openbare-bronnen"),
    Case("003 §3 Gebruik: pupil in the aula, torrent site blocked (endangers the wireless network)",
         C_AULA, "1337x.to", C_LES, "block", "draadloos-netwerk", category="netwerk-belasting"),
    Case("003 §3 Gebruik: staff, DDoS stresser blocked",
         C_STAFF, "alphastress.com", C_LES, "block", "draadloos-netwerk"),
    Case("003 §3 Gebruik: pupil in the aula, WeTransfer allowed",
         C_AULA, "wetransfer.com", C_LES, "allow", DEFAULT, about="draadloos-netwerk"),
    Case("003 §3 Gebruik: pupil, VPN blocked",
         C_AULA, "nordvpn.com", C_LES, "block", "filter-omzeilen", category="omzeiling"),
    Case("003 §3 Gebruik: guest, DNS-over-HTTPS blocked",
         C_GAST, "dns.google", C_LES, "block", "filter-omzeilen"),
    Case("003 §3 Gebruik: staff may use a VPN",
         C_STAFF, "nordvpn.com", C_LES, "allow", DEFAULT, about="filter-omzeilen"),
    Case("003 §4 Richtlijnen leerlingen: pupil in a classroom during a toetsweek test, TikTok blocked",
         C_LOKAAL, "www.tiktok.com", C_TOETSBLOK, "block", "sociale-media-toetsweek", path="/",
         category="sociale-media"),
    Case("003 §4 Richtlijnen leerlingen: pupil in a classroom during the last test block, YouTube blocked (IPv6)",
         C_LOKAAL6, "www.youtube.com", at(TOETSWEEK, "13:00"), "block", "sociale-media-toetsweek", path="/"),
    Case("003 §4 Richtlijnen leerlingen: pupil in the exam room during a toetsweek test, Instagram blocked",
         C_TOETS, "www.instagram.com", C_TOETSBLOK, "block", "sociale-media-toetsweek", path="/"),
    Case("003 §4 Richtlijnen leerlingen: between two tests (toetsweek break), TikTok allowed in the classroom",
         C_LOKAAL, "www.tiktok.com", C_TOETSPAUZE, "allow", DEFAULT, about="sociale-media-toetsweek", path="/"),
    Case("003 §4 Richtlijnen leerlingen: pupil in the aula during a test block (not in a test), TikTok allowed",
         C_AULA, "www.tiktok.com", C_TOETSBLOK, "allow", DEFAULT, about="sociale-media-toetsweek"),
    Case("003 §4 Richtlijnen leerlingen: staff during a test block, TikTok allowed",
         C_STAFF, "www.tiktok.com", C_TOETSBLOK, "allow", DEFAULT, about="sociale-media-toetsweek"),
    Case("003 §4 Richtlijnen leerlingen: after the last test of the day, TikTok allowed",
         C_LOKAAL, "www.tiktok.com", at(TOETSWEEK, "14:30"), "allow", DEFAULT, about="sociale-media-toetsweek",
         path="/"),
    Case("003 §3 Toegang: no time limits, pupil in a classroom during an ordinary lesson, TikTok allowed",
         C_LOKAAL, "www.tiktok.com", C_LES, "allow", DEFAULT, about="sociale-media-toetsweek", path="/"),
    Case("003 §4 Richtlijnen leerlingen: pupil in the exam room outside the toetsweek (resit), Instagram blocked",
         C_TOETS, "www.instagram.com", C_LES, "block", "sociale-media-toetslokaal", path="/"),
    Case("003 §4 Richtlijnen leerlingen: pupil in the exam room between two tests, Snapchat blocked",
         C_TOETS, "www.snapchat.com", C_TOETSPAUZE, "block", "sociale-media-toetslokaal", path="/"),
    Case("003 §4 Richtlijnen leerlingen: pupil in the exam room, Wikipedia allowed",
         C_TOETS, "nl.wikipedia.org", C_LES, "allow", DEFAULT, about="sociale-media-toetslokaal", path="/"),
    Case("003 §4 Richtlijnen leerlingen: pupil in a classroom outside the toetsweek, Instagram allowed",
         C_LOKAAL, "www.instagram.com", C_LES, "allow", DEFAULT, about="sociale-media-toetslokaal", path="/"),
    Case("003 §4 Richtlijnen leerlingen: a proefwerk in an ordinary lesson is the teacher's exam mode",
         C_LOKAAL, "www.instagram.com", C_LES, "block", "examen", about="sociale-media-toetslokaal", path="/",
         state=State(exams=(Exam(1, "lokalen", Sites.of(["magister.net"]), until(C_LES),
                                 source="003 §4 Richtlijnen leerlingen"),)),
         source="003 §4 Richtlijnen leerlingen"),
    Case("003 §3 Toegang: pupil in the aula in the evening, TikTok allowed",
         C_AULA, "www.tiktok.com", at(MON, "20:00"), "allow", DEFAULT),
    Case("003 §3 Toegang: unlimited access does not open pornography",
         C_AULA, "www.pornhub.com", C_LES, "block", "onacceptabele-inhoud", about=DEFAULT),
    Case("003 §3 Gebruik: malware URL blocked, not openable",
         C_LOKAAL, "www.0001-5cf.pages.dev", C_LES, "block", LOCKED, path="/awards/", category="malware"),
    Case("003 §3 Gebruik: same host, other path, not malware",
         C_LOKAAL, "www.0001-5cf.pages.dev", C_LES, "allow", DEFAULT, about=LOCKED, path="/"),
]


# 004 OMO Scholengroep De Langstraat ---------------------------------------------------------------
O_KLAS, O_KLAS6, O_B012 = "10.20.1.5", "fd00:20::5", "10.20.12.30"
O_OPEN, O_OPEN6, O_STAFF, O_GAST = "10.30.2.7", "fd00:30::7", "10.40.3.9", "10.60.0.8"
O_LES, O_PAUZE = at(MON, "10:00"), at(MON, "10:15")

OMO = [
    Case("004 art. 11a: pupil in the canteen, pornographic site blocked",
         O_OPEN, "www.pornhub.com", O_PAUZE, "block", "verboden-categorieen", category="porno"),
    Case("004 art. 11a: staff, racist site blocked",
         O_STAFF, "stormfront.org", O_LES, "block", "verboden-categorieen", category="haat"),
    Case("004 art. 11a: a client outside every zone (guest), porn from the Sinfonietta list blocked",
         "192.0.2.10", "007angels.com", O_LES, "block", "verboden-categorieen"),
    Case("004 art. 11a: staff, Wikipedia allowed",
         O_STAFF, "nl.wikipedia.org", O_LES, "allow", DEFAULT, about="verboden-categorieen"),
    Case("004 art. 11a.i, art. 12: a teacher's own opening never opens a forbidden category (a misclassified "
         "sex-education site)", O_KLAS, "www.sense.info", O_LES, "block", "verboden-categorieen",
         about="verboden-categorieen", path="/",
         state=State(openings=(Opening(1, "klaslokalen", "open", Sites.of(["sense.info"]), until(O_LES)),))),
    Case("004 art. 11a.i, art. 12: the same site, part of the lesson, opened by ICT on the manager's request",
         O_KLAS, "www.sense.info", O_LES, "allow", "deblokkering", about="verboden-categorieen", path="/",
         state=State(grants=(Grant(1, Sites.of(["sense.info"]), O_LES, until(O_LES), zones=frozenset({"klaslokalen"})),)),
         source="004 art. 12"),
    Case("004 art. 11a.ii: ICT opens a blocked site for a mentor's professional context (art. 12 grant)",
         O_STAFF, "14words.com", O_LES, "allow", "deblokkering", about="verboden-categorieen",
         state=State(grants=(Grant(1, Sites.of(["14words.com"]), O_LES, until(O_LES),
                                   roles=frozenset({"staff"}), source="004 art. 12"),)),
         source="004 art. 12"),
    Case("004 art. 11b: pupil in the canteen, hacking site blocked",
         O_OPEN, "elitehackers.de", O_PAUZE, "block", "hacken", category="hacken"),
    Case("004 art. 11b: staff, DDoS stresser blocked (art. 13 overbelasten)",
         O_STAFF, "anonymous-stresser.com", O_LES, "block", "hacken"),
    Case("004 art. 11b: pupil in the canteen, GitHub allowed",
         O_OPEN, "github.com", O_PAUZE, "allow", "openbare-ruimte", about="hacken"),
    Case("004 art. 13: pupil in the canteen, torrent site blocked (overmatig downloaden)",
         O_OPEN, "www.1337x.to", O_PAUZE, "block", "overmatig-downloaden", category="downloaden"),
    Case("004 art. 13: staff, torrent site blocked",
         O_STAFF, "1337x.to", O_LES, "block", "overmatig-downloaden"),
    Case("004 art. 13: staff, WeTransfer allowed",
         O_STAFF, "wetransfer.com", O_LES, "allow", DEFAULT, about="overmatig-downloaden"),
    Case("004 art. 12: pupil in the canteen, VPN blocked (omzeilen van de firewall)",
         O_OPEN, "nordvpn.com", O_PAUZE, "block", "filter-omzeilen", category="omzeiling"),
    Case("004 art. 12: guest, DNS-over-HTTPS blocked",
         O_GAST, "dns.google", O_LES, "block", "filter-omzeilen"),
    Case("004 art. 12: staff may use a VPN",
         O_STAFF, "nordvpn.com", O_LES, "allow", DEFAULT, about="filter-omzeilen"),
    Case("004 art. 12: pupil in the canteen, a raw IPv4 address blocked",
         O_OPEN, "142.250.180.14", O_PAUZE, "block", "ip-adressen-leerlingen"),
    Case("004 art. 12: pupil in the canteen, a raw IPv6 address blocked",
         O_OPEN6, "2a00:1450:400e:80f::200e", O_PAUZE, "block", "ip-adressen-leerlingen"),
    Case("004 art. 12: staff may use a raw IP address",
         O_STAFF, "142.250.180.14", O_LES, "allow", DEFAULT, about="ip-adressen-leerlingen"),
    Case("004 art. 12: pupil in the canteen, the same site by name allowed",
         O_OPEN, "www.google.com", O_PAUZE, "allow", "openbare-ruimte", about="ip-adressen-leerlingen"),
    Case("004 art. 9: pupil in classroom during lesson, social media blocked",
         O_KLAS, "www.tiktok.com", O_LES, "block", "klaslokaal-alleen-schoolomgeving", path="/"),
    Case("004 art. 9: pupil in classroom during lesson, other internet blocked too",
         O_KLAS, "nos.nl", O_LES, "block", "klaslokaal-alleen-schoolomgeving", path="/"),
    Case("004 art. 9: pupil in classroom during the break, Instagram blocked (the room, not the lesson)",
         O_KLAS6, "www.instagram.com", O_PAUZE, "block", "klaslokaal-alleen-schoolomgeving", path="/"),
    Case("004 art. 2: pupil in classroom during lesson reaches Magister",
         O_KLAS, "omo.magister.net", O_LES, "allow", "klaslokaal-alleen-schoolomgeving", path="/"),
    Case("004 art. 2: pupil in classroom during lesson reaches Teams",
         O_KLAS, "teams.microsoft.com", O_LES, "allow", "klaslokaal-alleen-schoolomgeving", path="/"),
    Case("004 art. 9: same pupil in the canteen during lesson, social media allowed",
         O_OPEN, "www.tiktok.com", O_LES, "allow", "openbare-ruimte", about="klaslokaal-alleen-schoolomgeving"),
    Case("004 art. 9: staff during a lesson, social media allowed",
         O_STAFF, "www.tiktok.com", O_LES, "allow", DEFAULT, about="klaslokaal-alleen-schoolomgeving"),
    Case("004 art. 9: the teacher of B0.12 decides otherwise and opens YouTube there",
         O_B012, "www.youtube.com", O_LES, "allow", "lokaal-open", about="klaslokaal-alleen-schoolomgeving",
         path="/watch",
         state=State(openings=(Opening(1, "computerlokaal-b012", "open", Sites.of(["youtube.com"]),
                                       until(O_LES), source="004 art. 9"),)),
         source="004 art. 9"),
    Case("004 art. 9: the opening of B0.12 does not open the other classrooms",
         O_KLAS, "www.youtube.com", O_LES, "block", "klaslokaal-alleen-schoolomgeving", path="/watch",
         state=State(openings=(Opening(1, "computerlokaal-b012", "open", Sites.of(["youtube.com"]),
                                       until(O_LES), source="004 art. 9"),))),
    Case("004 art. 9: pupil in the canteen, TikTok allowed",
         O_OPEN, "www.tiktok.com", O_PAUZE, "allow", "openbare-ruimte"),
    Case("004 art. 9: pupil in the canteen, Instagram images allowed (IPv6)",
         O_OPEN6, "scontent.cdninstagram.com", O_LES, "allow", "openbare-ruimte"),
    Case("004 art. 9: the canteen does not open pornography",
         O_OPEN, "www.pornhub.com", O_LES, "block", "verboden-categorieen", about="openbare-ruimte"),
    Case("004 art. 9: the canteen rule does not reach into the classroom",
         O_KLAS, "www.tiktok.com", O_PAUZE, "block", "klaslokaal-alleen-schoolomgeving", about="openbare-ruimte",
         path="/"),
    Case("004 art. 11: staff during a lesson, TikTok allowed",
         O_STAFF, "www.tiktok.com", O_LES, "allow", DEFAULT),
    Case("004 art. 11: guest, YouTube allowed",
         O_GAST, "www.youtube.com", O_LES, "allow", DEFAULT),
    Case("004 art. 11: pupils in the canteen are decided by art. 9, not the default",
         O_OPEN, "nos.nl", O_LES, "allow", "openbare-ruimte", about=DEFAULT),
    Case("004 art. 12 (virussen): malware URL blocked in the classroom, not openable",
         O_KLAS, "0001-5cf.pages.dev", O_LES, "block", LOCKED, path="/awards", category="malware"),
    Case("004 art. 12 (virussen): an ICT grant cannot open cryptojacking",
         O_STAFF, "01xmrpool.com", O_LES, "block", LOCKED,
         state=State(grants=(Grant(1, Sites.of(["01xmrpool.com"]), O_LES, until(O_LES)),))),
    Case("004 art. 12 (virussen): same host, other path, not malware",
         O_STAFF, "0001-5cf.pages.dev", O_LES, "allow", DEFAULT, about=LOCKED, path="/"),
    Case("004 art. 22: a pupil excluded from the school network is blocked everywhere",
         O_OPEN, "omo.magister.net", O_LES, "block", "uitsluiting",
         state=State(bans=(Ban(1, O_OPEN, until(O_LES), source="004 art. 22"),)),
         source="004 art. 22"),
]

ALL = ROC_TOP + ROC_KOP + NOORDHOEK + CAROLUS + OMO


def expected_source(case: Case, verdict: Verdict) -> str:
    if case.source is not None:
        return case.source
    policy = policy_of(case.seed)
    if case.rule == DEFAULT:
        return policy.default_source
    if case.rule == LOCKED:
        assert verdict.category is not None
        return policy.categories[verdict.category].source
    return next(r.source for r in policy.rules if r.name == case.rule)


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_rule_against_its_article(case: Case) -> None:
    verdict = run(case)
    assert (verdict.action, verdict.rule) == (case.action, case.rule)
    assert verdict.source == expected_source(case, verdict)
    assert verdict.source.startswith(case.seed)
    if not case.fires:
        assert verdict.rule != case.subject
    if case.category is not None:
        assert verdict.category == case.category


@pytest.mark.parametrize("seed", sorted(SCHOOLS))
def test_every_rule_is_tested_both_ways(seed: str) -> None:
    """Each rule of the example (and its default and locked categories) has a case where it fires
    and one where it does not."""
    policy = policy_of(seed)
    names = [r.name for r in policy.rules] + [DEFAULT]
    if any(not c.overridable for c in policy.categories.values()):
        names.append(LOCKED)
    cases = [c for c in ALL if c.seed == seed]
    for name in names:
        assert any(c.rule == name and c.fires for c in cases), f"{seed}: no case where {name!r} fires"
        assert any(c.subject == name and not c.fires for c in cases), f"{seed}: no case where {name!r} does not fire"
    assert {c.subject for c in cases} <= set(names) | {"uitsluiting"}, "a case is about an unknown rule"


@pytest.mark.parametrize("seed", sorted(SCHOOLS))
def test_example_validates_and_cites_its_seed(seed: str) -> None:
    policy = load_policy(EXAMPLES / f"{SCHOOLS[seed]}.yaml")   # raises PolicyError if it does not validate
    assert policy.rules
    for rule in policy.rules:
        assert rule.source.startswith(seed + " "), rule.name
    for name, cat in policy.categories.items():
        assert not cat.source or cat.source.startswith(seed + " "), name
    assert policy.default_source.startswith(seed + " ")


@pytest.mark.parametrize("seed", sorted(SCHOOLS))
def test_example_header_names_school_and_seed(seed: str) -> None:
    text = (EXAMPLES / f"{SCHOOLS[seed]}.yaml").read_text(encoding="utf-8")
    header = text[: text.index("\nschool:")]
    assert f"/seeds/{seed}_" in header
    assert policy_of(seed).school in header
    assert "Enforced by this policy" in header and "Not network-enforceable" in header


@pytest.mark.parametrize("seed", sorted(SCHOOLS))
def test_when_tags_exist_in_the_timetable(seed: str) -> None:
    """`when` words are not checked by the loader: a typo would silently never match."""
    tt = policy_of(seed).timetable
    words = {"lesson", "break", "school_day", "school_hours", "outside_school_hours", "weekend", "holiday",
             "exam_week", "excursion", "study_day", "other"}
    words |= {p.name for periods in tt.schedules.values() for p in periods}
    words |= {h.name for h in tt.holidays} | {s.name for s in tt.special_days}
    for rule in policy_of(seed).rules:
        assert set(rule.when or ()) <= words, rule.name


def test_toetsweek_blocks_exist_only_in_the_toetsweek() -> None:
    """003: the test-block names that `sociale-media-toetsweek` relies on are tagged only on toetsweek days."""
    clock = compiled("003").clock
    assert "toetsblok-1" in clock.moment(C_TOETSBLOK).tags
    assert "exam_week" in clock.moment(C_TOETSBLOK).tags
    ordinary = clock.moment(at(MON, "09:00")).tags
    assert not ordinary & {"toetsblok-1", "toetsblok-2", "toetsblok-3", "exam_week"}


@pytest.mark.parametrize("seed", sorted(SCHOOLS))
def test_zones_and_inspection_are_sensible(seed: str) -> None:
    """BYOD in the public areas is never intercepted; every zone kind a rule names exists."""
    policy = policy_of(seed)
    for name, zone in policy.zones.items():
        if zone.kind.value == "public_area":
            assert zone.inspection.value == "passthrough", name
    kinds = {z.kind.value for z in policy.zones.values()} | set(policy.zones)
    for rule in policy.rules:
        assert set(rule.zones or ()) <= kinds, rule.name
