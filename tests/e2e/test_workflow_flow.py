"""The whole unblock workflow (reglement 004 art. 9, 11a, 12) in real browsers, against the real
console and a real gateway that share one SQLite store and one clock file.

One gateway (mitmdump, polling the store every 0.2 s) and one console (`poortwachter console`, a
uvicorn subprocess) run on the same data directory; the accounts are made with the real CLI
(`poortwachter user add`), and the console mails its notifications to a local SMTP server
(aiosmtpd). The pupil's Chromium goes through the gateway from 127.0.0.1, which the
module's policy puts in the classroom zone "klas"; it reaches the console directly
(--proxy-bypass-list), as the school serves the console outside the filter. Staff use a second
Chromium without any proxy.

The clock file moves both programs through the timetable. Each test works on its own school day,
so what one test leaves in the store (a grant, an opening, an exam) can never be in force in
another, whatever the order the tests run in.

Screenshots for the docs: `POORTWACHTER_SCREENSHOTS=1 .venv/bin/python -m pytest
tests/e2e/test_workflow_flow.py` writes docs/img/console-*.png (see console_helpers.shot).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from poortwachter.store import default_url, open_store, state_revision
from poortwachter.store.models import UnblockRequestRow
from poortwachter.workflow import get_request, list_exams, list_exclusions, list_openings

from .console_helpers import (
    CHROMIUM,
    POLICY,
    ConsoleServer,
    Inbox,
    add_user,
    at,
    launch_pupil_browser,
    launch_staff_browser,
    local_input,
    login,
    new_page,
    shot,
    upstream_text,
    visit,
)
from .pki import TestCA
from .proxy import MITMDUMP, POORTWACHTER, free_port, wait_until
from .state_helpers import SYNC_DEADLINE, StateGateway
from .upstream import Upstream

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page
    from sqlalchemy.orm import Session

pytestmark = pytest.mark.e2e

PASSWORD = "een lang e2e-wachtwoord"
# username: (role, display name, zones); every account has the address mail_of(username)
ACCOUNTS = {
    "lg.jansen": ("leidinggevende", "Marieke Jansen", ()),
    "ict.devries": ("ict", "Jan de Vries", ()),
    "docent.bakker": ("docent", "Kim Bakker", ("klas",)),
    "exam.visser": ("examencoordinator", "Ruud Visser", ()),
    "dir.smit": ("directie", "Anouk Smit", ()),
}
PUPIL_MAIL = "sanne.deboer@thuis.example"    # left on the public form, for the decision

# One school day per test (all weekdays follow the same timetable in the module's policy).
FLOW_DAY = dt.date(2026, 11, 24)      # Tuesday
DOCENT_DAY = dt.date(2026, 11, 25)    # Wednesday
EXAM_DAY = dt.date(2026, 11, 26)      # Thursday
BAN_DAY = dt.date(2026, 11, 27)       # Friday
ACCOUNTS_DAY = dt.date(2026, 11, 30)  # Monday
PLANNED_DAY = dt.date(2026, 12, 2)    # a Wednesday no test works on: a lesson planned ahead

GAME_URL = "https://www.coolmathgames.com/0-breuken-spel"    # spellen: blocked for pupils at any time
SOCIAL_URL = "https://www.tiktok.com/@biologie-3b"           # sociale media: blocked for pupils in lessons
WIKI_URL = "https://nl.wikipedia.org/wiki/Fotosynthese"      # allowed (default)
SCHOOL_URL = "https://start.magister.net/leerling"          # the school environment (schoolomgeving)
EXAM_URL = "https://www.examenblad.nl/wiskunde-b"            # the exam's allowlist

GRANT_DEADLINE = 10.0   # an approved unblock must work within 10 s
MAIL_DEADLINE = 30.0    # the console hands due mail to the server every 5 s


def mail_of(username: str) -> str:
    return f"{username}@werkstroomschool.example"


@dataclass
class School:
    gateway: StateGateway
    console: ConsoleServer
    inbox: Inbox
    pupil_browser: Browser
    staff_browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.console.base

    def set_clock(self, when: dt.datetime) -> None:
        """Move the gateway and the console (one clock file) to `when`."""
        self.gateway.set_clock(when.isoformat())

    def pupil(self) -> Page:
        return self._page(self.pupil_browser)

    def staff(self) -> Page:
        return self._page(self.staff_browser)

    def _page(self, browser: Browser) -> Page:
        page = new_page(browser)
        self.contexts.append(page.context)
        return page

    def close_pages(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work on the shared store (to check what the console wrote)."""
        store = open_store(default_url(self.gateway.data_dir))
        try:
            with store.read() as s:
                yield s
        finally:
            store.close()

    def mail(self, address: str, subject: str) -> str:
        """The body of the first mail to `address` whose subject holds `subject`, once it came."""
        found: list[str] = []

        def arrived() -> bool:
            found[:] = [body for subj, body in self.inbox.to(address) if subject in subj]
            return bool(found)

        wait_until(arrived, MAIL_DEADLINE, f"a mail to {address}: {subject}")
        return found[0]

    def sync_gateway(self) -> None:
        """Wait until the gateway has loaded the store's current revision."""
        store = open_store(default_url(self.gateway.data_dir))
        try:
            revision = state_revision(store)
        finally:
            store.close()
        self.gateway.wait_for_revision(revision)


@pytest.fixture(scope="module")
def campus(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA) -> Iterator[School]:
    if not MITMDUMP.exists() or not POORTWACHTER.exists():
        pytest.skip("needs .venv/bin/mitmdump and .venv/bin/poortwachter (make venv)")
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium; `make test` does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")

    console_port = free_port()
    gw = StateGateway(tmp_path_factory.mktemp("workflow"), upstream, test_ca,
                      POLICY.format(console_port=console_port), at(FLOW_DAY, "09:00").isoformat())
    for username, (role, name, zones) in ACCOUNTS.items():
        add_user(gw.data_dir, username, role, name, PASSWORD, zones, policy=gw.policy, email=mail_of(username))
    inbox = Inbox().start(free_port())
    console = ConsoleServer(gw, console_port, smtp_port=inbox.port)
    try:
        gw.start()
        console.start()
        with sync_api.sync_playwright() as pw:
            pupil = launch_pupil_browser(pw, gw, console_port)
            staff = launch_staff_browser(pw, gw)
            try:
                yield School(gw, console, inbox, pupil, staff)
            finally:
                pupil.close()
                staff.close()
    finally:
        crashed = [name for name, proc in (("mitmdump", gw.proc), ("console", console.proc))
                   if proc is not None and proc.poll() is not None]
        console.stop()
        gw.stop()
        inbox.stop()
    if crashed:
        pytest.fail(f"{', '.join(crashed)} died during the tests:\n{gw.output()}\n--- console ---\n{console.output()}")


@pytest.fixture
def school(campus: School) -> Iterator[School]:
    """The module's school, with this test's browser pages closed afterwards."""
    yield campus
    campus.close_pages()


def _blocked_by(page: Page, url: str, rule: str | None) -> bool:
    """True when `url` gives the block page of `rule` (rule None: loads the upstream page)."""
    status, got_rule, text = visit(page, url)
    if rule is None:
        return status == 200 and text.strip() == upstream_text(url)
    return status == 403 and got_rule == rule


# --- the unblock request: pupil -> leidinggevende -> ICT -> gateway ----------------------------------

def test_unblock_request_endorsed_approved_enforced_and_expired(school: School, tmp_path: Path) -> None:
    base = school.base
    school.set_clock(at(FLOW_DAY, "09:00"))
    upstream = school.gateway.upstream

    # 1. The pupil meets the block page and follows its link to the console's public form.
    pupil = school.pupil()
    wait_until(lambda: _blocked_by(pupil, GAME_URL, "spellen-leerlingen"), SYNC_DEADLINE,
               "the game site is blocked for pupils")
    assert not upstream.saw("www.coolmathgames.com")
    pupil.click("#unblock")
    pupil.wait_for_url(f"{base}/deblokkeren?**")
    assert pupil.input_value("#url") == GAME_URL
    assert pupil.input_value("input[name=category]") == "spellen"
    assert pupil.input_value("input[name=rule]") == "spellen-leerlingen"
    facts = pupil.locator("dl.facts").inner_text()
    assert "Spellen / Games" in facts and "spellen-leerlingen" in facts
    pupil.fill("#requester", "Sanne de Boer, 2B")
    pupil.fill("#reason", "Meneer Bakker laat ons in de wiskundeles breuken oefenen met het breukenspel.")
    pupil.fill("#email", PUPIL_MAIL)      # optional: asked because the console sends mail
    shot(pupil, "request-form", tmp_path, full_page=True)
    pupil.click("form[action='/deblokkeren'] button[type=submit]")
    pupil.wait_for_url(f"{base}/aanvraag/*")
    assert "Je aanvraag is verstuurd" in pupil.locator("main").inner_text()
    status_href = pupil.locator("a.link-box").get_attribute("href")
    assert status_href is not None and status_href.startswith("/aanvraag/") and "?t=" in status_href
    number = int(status_href.split("/")[2].split("?")[0])
    assert pupil.locator("a.link-box").inner_text() == base + status_href   # the link to keep
    assert pupil.locator("#status").inner_text().startswith("Ingediend")
    shot(pupil, "request-status", tmp_path)
    # The leidinggevende is told by mail: the number, the host and a link, nothing the pupil typed.
    body = school.mail(mail_of("lg.jansen"), f"Deblokkeringsaanvraag {number} ingediend")
    assert f"{base}/aanvragen/{number}" in body and "www.coolmathgames.com" in body
    assert "Sanne" not in body and PUPIL_MAIL not in body

    # 2. The leidinggevende logs in, finds the request and endorses it: ground, site, zone, +1 h.
    manager = school.staff()
    manager.goto(f"{base}/aanvragen")
    assert "/inloggen" in manager.url
    shot(manager, "login", tmp_path)
    login(manager, base, "lg.jansen", PASSWORD, "/aanvragen")
    row = manager.locator("tr", has=manager.locator(f'a[href="/aanvragen/{number}"]'))
    assert "Sanne de Boer, 2B" in row.inner_text() and GAME_URL in row.inner_text()
    shot(manager, "requests", tmp_path)
    manager.click(f'a[href="/aanvragen/{number}"]')
    manager.wait_for_url(f"{base}/aanvragen/{number}")
    endorse = manager.locator("form[action$='/onderbouwen']")
    assert manager.input_value("#onderbouw-sites") == "www.coolmathgames.com"   # the blocked URL's host
    # "from" defaults to now on the console's clock: the shared clock file, not the system clock
    assert manager.input_value("#onderbouw-start") == local_input(at(FLOW_DAY, "09:00"))
    manager.check("#ground-lesstof")
    manager.fill("#onderbouw-sites", "coolmathgames.com")
    endorse.locator("input[name=zones][value=klas]").check()
    manager.check("#onderbouw-role-pupil")
    manager.fill("#onderbouw-end", local_input(at(FLOW_DAY, "10:00")))
    manager.fill("#motivation", "Breuken oefenen in de wiskundeles van 2B (lesstof, sectie wiskunde).")
    shot(manager, "endorse", tmp_path, full_page=True)
    endorse.locator("button[type=submit]").click()
    manager.wait_for_url(f"{base}/aanvragen/{number}?ok=onderbouwd")
    assert manager.locator("#status").inner_text().startswith("Onderbouwd")
    # ICT is told by mail that a request waits for its decision.
    body = school.mail(mail_of("ict.devries"), f"Deblokkeringsaanvraag {number} onderbouwd")
    assert f"{base}/aanvragen/{number}" in body

    # An endorsement alone opens nothing: with the gateway on the newest store revision, still blocked.
    school.sync_gateway()
    assert _blocked_by(pupil, GAME_URL, "spellen-leerlingen")

    # 3. ICT logs in and approves the scope as endorsed.
    ict = school.staff()
    login(ict, base, "ict.devries", PASSWORD, f"/aanvragen/{number}")
    approve = ict.locator("form[action$='/goedkeuren']")
    assert ict.input_value("#goedkeur-sites") == "coolmathgames.com"
    assert approve.locator("input[name=zones][value=klas]").is_checked()
    assert ict.input_value("#goedkeur-end") == local_input(at(FLOW_DAY, "10:00"))
    ict.fill("#approve-reason", "Akkoord, alleen voor lokaal 2.14 tijdens het 1e en 2e uur.")
    shot(ict, "approve", tmp_path, full_page=True)
    approve.locator("button[type=submit]").click()
    ict.wait_for_url(f"{base}/aanvragen/{number}?ok=goedgekeurd")
    approved = time.monotonic()

    # 4. Within seconds the same URL loads in the pupil's browser, through the gateway.
    wait_until(lambda: _blocked_by(pupil, GAME_URL, None), GRANT_DEADLINE,
               "the approved unblock is enforced by the gateway", interval=0.2)
    print(f"\nunblock enforced {time.monotonic() - approved:.2f} s after ICT approved")
    assert upstream.saw("www.coolmathgames.com", "/0-breuken-spel")
    with school.read() as s:
        req = get_request(s, number)
    assert req is not None and req.status == "approved" and req.grant_id is not None
    assert (req.ground, req.sites, req.zones, req.roles) == ("lesstof", ("coolmathgames.com",), ("klas",), ("pupil",))
    assert (req.start, req.end) == (at(FLOW_DAY, "09:00"), at(FLOW_DAY, "10:00"))
    assert (req.endorsed_by, req.decided_by) == ("leidinggevende:lg.jansen", "ict:ict.devries")
    # The pupil gets the decision and their status link by mail; the address is gone from the request.
    body = school.mail(PUPIL_MAIL, f"Je aanvraag {number} is goedgekeurd")
    assert base + status_href in body
    with school.read() as s:
        stored = s.get(UnblockRequestRow, number)
        assert stored is not None and stored.requester_email is None

    ict.goto(f"{base}/deblokkeringen")
    card = ict.locator("li.card", has=ict.locator(f'a[href="/aanvragen/{number}"]'))
    assert "coolmathgames.com" in card.inner_text() and "24-11-2026 10:00" in card.inner_text()
    shot(ict, "grants", tmp_path, full_page=True)
    ict.goto(f"{base}/")
    tile = ict.locator("li.card", has=ict.locator('a[href="/deblokkeringen"]'))
    assert tile.locator("p.count strong").inner_text() == "1"
    shot(ict, "dashboard", tmp_path)

    # 5. The clock passes the end of the unblock: blocked again, by the clock alone.
    school.set_clock(at(FLOW_DAY, "10:01"))
    wait_until(lambda: _blocked_by(pupil, GAME_URL, "spellen-leerlingen"), SYNC_DEADLINE,
               "the unblock ended with its window")

    # 6. The pupil's status link shows the outcome: approved, and by now ended with its window.
    pupil.goto(base + status_href)
    status_text = pupil.locator("#status").inner_text()
    assert status_text.startswith("Verlopen: de site is sinds 24-11-2026 10:00 weer dicht"), status_text
    assert "coolmathgames.com" in pupil.locator("dl.facts").inner_text()
    shot(pupil, "request-outcome", tmp_path, full_page=True)

    # ICT finds it among the ended unblocks: what was approved, how it ended, and its history.
    ict.goto(f"{base}/deblokkeringen/historie")
    card = ict.locator("li.card", has=ict.locator(f'a[href="/aanvragen/{number}"]'))
    assert "coolmathgames.com" in card.inner_text() and "Verlopen" in card.inner_text()
    shot(ict, "grant-history", tmp_path, full_page=True)

    # Nothing personal in the console's log (no access log; see docs/console.md).
    log = school.console.output()
    assert "Sanne" not in log and "coolmathgames" not in log and "/aanvraag/" not in log


# --- the docent's classroom: open social media until the end of this lesson, restrict, plan ahead ----

def test_docent_opens_social_media_until_the_end_of_the_lesson(school: School, tmp_path: Path) -> None:
    base = school.base
    school.set_clock(at(DOCENT_DAY, "09:30"))            # 2e-uur, 09:20-10:10
    pupil = school.pupil()
    wait_until(lambda: _blocked_by(pupil, SOCIAL_URL, "sociale-media-in-de-les"), SYNC_DEADLINE,
               "social media are blocked in the lesson")

    docent = school.staff()
    login(docent, base, "docent.bakker", PASSWORD, "/klas")
    # "until the end of this lesson" is read from the timetable at the console's (file) clock
    assert "(10:10)" in docent.locator("label[for=until-les]").inner_text()
    # only the categories the policy lets a docent open (opened_by): not games
    offered = docent.locator("input[name=categories]").evaluate_all("boxes => boxes.map(b => b.value)")
    assert sorted(offered) == ["schoolomgeving", "sociale-media"]
    docent.select_option("#zone", "klas")
    docent.check("#mode-open")
    docent.check("#cat-sociale-media")
    docent.check("#until-les")
    docent.click("form[action='/klas/openen'] button[type=submit]")
    docent.wait_for_url(f"{base}/klas?ok=geopend")
    card = docent.locator("li.card", has_text="klas")
    assert "25-11-2026 10:10" in card.inner_text()
    shot(docent, "klas", tmp_path, full_page=True)
    with school.read() as s:
        openings = list_openings(s, now=at(DOCENT_DAY, "09:30"), zones=["klas"])
    assert [(o.mode, o.categories, o.until) for o in openings] == [
        ("open", ("sociale-media",), at(DOCENT_DAY, "10:10"))]

    wait_until(lambda: _blocked_by(pupil, SOCIAL_URL, None), GRANT_DEADLINE,
               "the pupil reaches social media in the opened classroom", interval=0.2)

    # "Alleen deze sites": restricting the room replaces the opening; the school environment stays open.
    school.set_clock(at(DOCENT_DAY, "09:40"))
    docent.goto(f"{base}/klas")
    docent.select_option("#zone", "klas")
    docent.check("#mode-allowlist")
    docent.fill("#sites", "nl.wikipedia.org")
    docent.check("#until-les")
    docent.fill("#reason", "Zelf bronnen zoeken over fotosynthese")
    docent.click("form[action='/klas/openen'] button[type=submit]")
    docent.wait_for_url(f"{base}/klas?ok=geopend")
    with school.read() as s:
        openings = list_openings(s, now=at(DOCENT_DAY, "09:40"), zones=["klas"])
    assert [(o.mode, o.sites, o.until) for o in openings] == [
        ("allowlist", ("nl.wikipedia.org",), at(DOCENT_DAY, "10:10"))]
    shot(docent, "klas-alleen", tmp_path, full_page=True)
    wait_until(lambda: _blocked_by(pupil, SOCIAL_URL, "lokaal-allowlist"), GRANT_DEADLINE,
               "the restriction replaced the opening", interval=0.2)
    assert _blocked_by(pupil, WIKI_URL, None)
    assert _blocked_by(pupil, SCHOOL_URL, None)

    # The 3rd lesson starts right after the 2nd (no break): the restriction is over, the rule is back.
    school.set_clock(at(DOCENT_DAY, "10:10:30"))
    wait_until(lambda: _blocked_by(pupil, SOCIAL_URL, "sociale-media-in-de-les"), SYNC_DEADLINE,
               "social media blocked again after the lesson the docent opened")

    # In the break "this lesson" is the next one, and the form says which; a lesson can be planned ahead.
    school.set_clock(at(DOCENT_DAY, "11:05"))            # pauze, 11:00-11:20
    docent.goto(f"{base}/klas")
    assert "4e-uur (11:20–12:10)" in docent.locator("label[for=until-les]").inner_text()
    docent.select_option("#zone", "klas")
    docent.check("#mode-open")
    docent.check("#cat-sociale-media")
    docent.check("#until-lesuur")
    docent.fill("#day", PLANNED_DAY.isoformat())
    docent.select_option("#lesson", "1e-uur")
    docent.fill("#reason", "Les mediawijsheid: hoe werkt een algoritme?")
    docent.click("form[action='/klas/openen'] button[type=submit]")
    docent.wait_for_url(f"{base}/klas?ok=geopend")
    card = docent.locator("li.card", has_text="02-12-2026 08:30")
    assert "02-12-2026 09:20" in card.inner_text()
    shot(docent, "klas-gepland", tmp_path, full_page=True)
    with school.read() as s:
        openings = list_openings(s, now=at(DOCENT_DAY, "11:05"), zones=["klas"])
    assert [(o.mode, o.categories, o.start, o.until) for o in openings] == [
        ("open", ("sociale-media",), at(PLANNED_DAY, "08:30"), at(PLANNED_DAY, "09:20"))]


# --- the examencoördinator: exam mode, only the allowlist ------------------------------------------

def test_exam_mode_leaves_only_the_allowlist(school: School, tmp_path: Path) -> None:
    base = school.base
    school.set_clock(at(EXAM_DAY, "09:00"))
    pupil = school.pupil()
    wait_until(lambda: _blocked_by(pupil, WIKI_URL, None), SYNC_DEADLINE, "Wikipedia is reachable before the exam")

    coordinator = school.staff()
    login(coordinator, base, "exam.visser", PASSWORD, "/examen")
    # an exam may allow only the categories the policy leaves to the examencoördinator (opened_by)
    offered = coordinator.locator("input[name=categories]").evaluate_all("boxes => boxes.map(b => b.value)")
    assert offered == ["schoolomgeving"]
    coordinator.select_option("#zone", "klas")
    coordinator.check("#until-tijd")
    coordinator.fill("#until", "10:45")
    coordinator.fill("#sites", "www.examenblad.nl")
    coordinator.fill("#reason", "Centraal examen wiskunde B, 5 havo")
    coordinator.click("form[action='/examen/starten'] button[type=submit]")
    coordinator.wait_for_url(f"{base}/examen?ok=examen")
    card = coordinator.locator("li.card", has_text="klas")
    assert "www.examenblad.nl" in card.inner_text() and "26-11-2026 10:45" in card.inner_text()
    with school.read() as s:
        exams = list_exams(s, now=at(EXAM_DAY, "09:00"))
    assert [(e.zone, e.sites, e.until) for e in exams] == [("klas", ("www.examenblad.nl",), at(EXAM_DAY, "10:45"))]

    wait_until(lambda: _blocked_by(pupil, WIKI_URL, "examen"), GRANT_DEADLINE,
               "exam mode closes everything but the allowlist", interval=0.2)
    assert _blocked_by(pupil, EXAM_URL, None)
    assert _blocked_by(pupil, SOCIAL_URL, "examen")

    # A test later today, planned ahead: the 4th lesson, only the school environment reachable.
    coordinator.goto(f"{base}/examen")
    coordinator.select_option("#zone", "klas")
    coordinator.check("#until-lesuur")
    coordinator.fill("#day", EXAM_DAY.isoformat())
    coordinator.select_option("#lesson", "4e-uur")
    coordinator.check("#cat-schoolomgeving")
    coordinator.fill("#reason", "Toets Nederlands 3 vwo, in itslearning")
    coordinator.click("form[action='/examen/starten'] button[type=submit]")
    coordinator.wait_for_url(f"{base}/examen?ok=examen")
    planned = coordinator.locator("li.card", has_text="26-11-2026 11:20")
    assert "26-11-2026 12:10" in planned.inner_text()
    shot(coordinator, "examen", tmp_path, full_page=True)

    # After the exam's end the usual rules apply again (11:00 is the break; the planned test starts 11:20).
    school.set_clock(at(EXAM_DAY, "11:05"))
    wait_until(lambda: _blocked_by(pupil, WIKI_URL, None), SYNC_DEADLINE, "Wikipedia reachable after the exam")


# --- directie: exclude a device from the network -------------------------------------------------

def test_directie_excludes_the_device_and_lifts_it(school: School, tmp_path: Path) -> None:
    base = school.base
    school.set_clock(at(BAN_DAY, "09:00"))
    pupil = school.pupil()
    wait_until(lambda: _blocked_by(pupil, WIKI_URL, None), SYNC_DEADLINE, "Wikipedia is reachable")

    directie = school.staff()
    login(directie, base, "dir.smit", PASSWORD, "/uitsluitingen")
    directie.fill("#subject", "127.0.0.1")
    directie.fill("#until", local_input(at(BAN_DAY, "12:00")))
    directie.fill("#reason", "Besluit directie 27-11: misbruik van het schoolnetwerk (000 art. 7)")
    directie.click("form[action='/uitsluitingen/toevoegen'] button[type=submit]")
    directie.wait_for_url(f"{base}/uitsluitingen?ok=uitgesloten")
    wait_until(lambda: _blocked_by(pupil, WIKI_URL, "uitsluiting"), GRANT_DEADLINE,
               "the exclusion is enforced", interval=0.2)
    assert "uitgesloten van het schoolnetwerk" in pupil.locator("main").inner_text()
    shot(directie, "uitsluitingen", tmp_path, full_page=True)

    with school.read() as s:
        (ban,) = list_exclusions(s, now=at(BAN_DAY, "09:00"))
    directie.fill(f"#end-{ban.id}", "Gesprek met ouders gehad")
    directie.click(f"form[action='/uitsluitingen/{ban.id}/beeindigen'] button[type=submit]")
    directie.wait_for_url(f"{base}/uitsluitingen?ok=beeindigd")
    wait_until(lambda: _blocked_by(pupil, WIKI_URL, None), GRANT_DEADLINE, "the exclusion is lifted", interval=0.2)


# --- ICT: accounts (Gebruikers) ----------------------------------------------------------------

def test_ict_adds_an_account_the_user_chooses_a_password_and_ict_disables_it(school: School, tmp_path: Path) -> None:
    base = school.base
    school.set_clock(at(ACCOUNTS_DAY, "08:00"))
    new_password = "fotosynthese in lokaal twee veertien"

    # ICT adds the account; the answer shows a one-time link, once.
    ict = school.staff()
    login(ict, base, "ict.devries", PASSWORD, "/gebruikers")
    ict.fill("#username", "docent.mulder")
    ict.fill("#name", "Sara Mulder")
    ict.select_option("#role", "docent")
    ict.fill("#email", mail_of("docent.mulder"))
    ict.click("form[action='/gebruikers/toevoegen'] button[type=submit]")
    ict.wait_for_url(f"{base}/gebruikers/toevoegen")     # an answer, not a redirect: the link stays out of the history
    link = ict.locator("#eenmalige-link").inner_text()
    assert link.startswith(f"{base}/wachtwoord-instellen?t=")
    action = ict.locator("form[action$='/zones']").get_attribute("action")
    assert action is not None
    account = action.rsplit("/", 1)[0]                    # /gebruikers/{id}
    shot(ict, "account-new", tmp_path, full_page=True)

    # She teaches in lokaal 2.14: ICT adds the zone, with a reason.
    zones = ict.locator(f"form[action='{account}/zones']")
    zones.locator("input[name=zones][value=klas]").check()
    ict.fill("#zones-reason", "Geeft les in lokaal 2.14")
    zones.locator("button[type=submit]").click()
    ict.wait_for_url(f"{base}{account}?ok=zones")
    assert "klas" in ict.locator("dl.facts").inner_text()

    # The new user chooses her password with the link (once), logs in and finds her classroom.
    user = school.staff()
    user.goto(link)
    assert "docent.mulder" in user.locator("main").inner_text()
    user.fill("#wachtwoord", new_password)
    user.fill("#nogmaals", new_password)
    shot(user, "set-password", tmp_path)
    user.click("form[action='/wachtwoord-instellen'] button[type=submit]")
    user.wait_for_url(f"{base}/inloggen?wachtwoord=1")
    login(user, base, "docent.mulder", new_password, "/klas")
    assert user.locator("#zone option[value=klas]").count() == 1
    again = user.context.new_page().goto(link)
    assert again is not None and again.status == 404

    # ICT disables the account: her open session ends at once.
    ict.fill("#disable-reason", "Invalbaan afgelopen")
    ict.click(f"form[action='{account}/uitschakelen'] button[type=submit]")
    ict.wait_for_url(f"{base}{account}?ok=uitgeschakeld")
    user.goto(f"{base}/klas")
    assert "/inloggen" in user.url
    ict.goto(f"{base}/gebruikers")
    row = ict.locator("tr", has=ict.locator(f'a[href="{account}"]'))
    assert "uitgeschakeld" in row.inner_text()
    shot(ict, "accounts", tmp_path, full_page=True)
