"""The whole unblock workflow (reglement 004 art. 9, 11a, 12) in real browsers, against the real
console and a real gateway that share one SQLite store and one clock file.

One gateway (mitmdump, polling the store every 0.2 s) and one console (`poortwachter console`, a
uvicorn subprocess) run on the same data directory; the accounts are made with the real CLI
(`poortwachter user add`). The pupil's Chromium goes through the gateway from 127.0.0.1, which the
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
from poortwachter.workflow import get_request, list_exams, list_exclusions, list_openings

from .console_helpers import (
    CHROMIUM,
    POLICY,
    ConsoleServer,
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
# username: (role, display name, zones)
ACCOUNTS = {
    "lg.jansen": ("leidinggevende", "Marieke Jansen", ()),
    "ict.devries": ("ict", "Jan de Vries", ()),
    "docent.bakker": ("docent", "Kim Bakker", ("klas",)),
    "exam.visser": ("examencoordinator", "Ruud Visser", ()),
    "dir.smit": ("directie", "Anouk Smit", ()),
}

# One school day per test (all weekdays follow the same timetable in the module's policy).
FLOW_DAY = dt.date(2026, 11, 24)      # Tuesday
DOCENT_DAY = dt.date(2026, 11, 25)    # Wednesday
EXAM_DAY = dt.date(2026, 11, 26)      # Thursday
BAN_DAY = dt.date(2026, 11, 27)       # Friday

GAME_URL = "https://www.coolmathgames.com/0-breuken-spel"    # spellen: blocked for pupils at any time
SOCIAL_URL = "https://www.tiktok.com/@biologie-3b"           # sociale media: blocked for pupils in lessons
WIKI_URL = "https://nl.wikipedia.org/wiki/Fotosynthese"      # allowed (default)
EXAM_URL = "https://www.examenblad.nl/wiskunde-b"            # the exam's allowlist

GRANT_DEADLINE = 10.0   # an approved unblock must work within 10 s


@dataclass
class School:
    gateway: StateGateway
    console: ConsoleServer
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
        add_user(gw.data_dir, username, role, name, PASSWORD, zones, policy=gw.policy)
    console = ConsoleServer(gw, console_port)
    try:
        gw.start()
        console.start()
        with sync_api.sync_playwright() as pw:
            pupil = launch_pupil_browser(pw, gw, console_port)
            staff = launch_staff_browser(pw, gw)
            try:
                yield School(gw, console, pupil, staff)
            finally:
                pupil.close()
                staff.close()
    finally:
        crashed = [name for name, proc in (("mitmdump", gw.proc), ("console", console.proc))
                   if proc is not None and proc.poll() is not None]
        console.stop()
        gw.stop()
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
    shot(pupil, "request-form", tmp_path)
    pupil.click("form[action='/deblokkeren'] button[type=submit]")
    pupil.wait_for_url(f"{base}/aanvraag/*")
    assert "Je aanvraag is verstuurd" in pupil.locator("main").inner_text()
    status_href = pupil.locator("a.link-box").get_attribute("href")
    assert status_href is not None and status_href.startswith("/aanvraag/") and "?t=" in status_href
    number = int(status_href.split("/")[2].split("?")[0])
    assert pupil.locator("a.link-box").inner_text() == base + status_href   # the link to keep
    assert pupil.locator("#status").inner_text().startswith("Ingediend")
    shot(pupil, "request-status", tmp_path)

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

    ict.goto(f"{base}/deblokkeringen")
    card = ict.locator("li.card", has=ict.locator(f'a[href="/aanvragen/{number}"]'))
    assert "coolmathgames.com" in card.inner_text() and "24-11-2026 10:00" in card.inner_text()
    shot(ict, "grants", tmp_path)
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
    shot(pupil, "request-outcome", tmp_path)

    # Nothing personal in the console's log (no access log; see docs/console.md).
    log = school.console.output()
    assert "Sanne" not in log and "coolmathgames" not in log and "/aanvraag/" not in log


# --- the docent's classroom: open social media until the end of this lesson --------------------------

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

    # The 3rd lesson starts right after the 2nd (no break): the opening is over, the rule is back.
    school.set_clock(at(DOCENT_DAY, "10:10:30"))
    wait_until(lambda: _blocked_by(pupil, SOCIAL_URL, "sociale-media-in-de-les"), SYNC_DEADLINE,
               "social media blocked again after the lesson the docent opened")


# --- the examencoördinator: exam mode, only the allowlist ------------------------------------------

def test_exam_mode_leaves_only_the_allowlist(school: School, tmp_path: Path) -> None:
    base = school.base
    school.set_clock(at(EXAM_DAY, "09:00"))
    pupil = school.pupil()
    wait_until(lambda: _blocked_by(pupil, WIKI_URL, None), SYNC_DEADLINE, "Wikipedia is reachable before the exam")

    coordinator = school.staff()
    login(coordinator, base, "exam.visser", PASSWORD, "/examen")
    coordinator.select_option("#zone", "klas")
    coordinator.fill("#until", "10:45")
    coordinator.fill("#sites", "www.examenblad.nl")
    coordinator.fill("#reason", "Centraal examen wiskunde B, 5 havo")
    coordinator.click("form[action='/examen/starten'] button[type=submit]")
    coordinator.wait_for_url(f"{base}/examen?ok=examen")
    card = coordinator.locator("li.card", has_text="klas")
    assert "www.examenblad.nl" in card.inner_text() and "26-11-2026 10:45" in card.inner_text()
    shot(coordinator, "examen", tmp_path, full_page=True)
    with school.read() as s:
        exams = list_exams(s, now=at(EXAM_DAY, "09:00"))
    assert [(e.zone, e.sites, e.until) for e in exams] == [("klas", ("www.examenblad.nl",), at(EXAM_DAY, "10:45"))]

    wait_until(lambda: _blocked_by(pupil, WIKI_URL, "examen"), GRANT_DEADLINE,
               "exam mode closes everything but the allowlist", interval=0.2)
    assert _blocked_by(pupil, EXAM_URL, None)
    assert _blocked_by(pupil, SOCIAL_URL, "examen")

    # After the exam's end the usual rules apply again (11:00 is the break).
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
