"""The console's pages and flows in a TestClient, on the real service layer and store: the unblock
flow from the public form to a grant the gateway enforces and its revocation, classroom openings,
exam mode, exclusions, the dashboard, and the accessibility basics of every page."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import select

from poortwachter.console.app import create_app
from poortwachter.gateway import Engine
from poortwachter.state import State
from poortwachter.store import load_state, state_revision
from poortwachter.store.models import ChangeRow, UserRow
from poortwachter.workflow import get_user, list_exams, list_openings, list_requests, submit_request

from .conftest import AMS, LESSON_END, NOW, POLICY, USERS, Clock, Console, csrf_of, make_users

BLOCKED = "https://www.youtube.com/watch?v=abc"


def allowed(state: State, client: str, host: str, when: dt.datetime = NOW) -> bool:
    """What the gateway would decide with this state (the same Engine the gateway runs)."""
    engine = Engine(POLICY, None, clock=lambda: when)
    engine.set_state(state)
    return not engine.decide(ipaddress.ip_address(client), host).blocked


def submit_public(console: Console, url: str = BLOCKED, **extra: str) -> tuple[int, str]:
    """A pupil sends the form the block page links to; returns (request number, status link)."""
    pupil = console.client()
    page = pupil.get("/deblokkeren", params={"url": url, "category": "video", "rule": "klaslokaal-les"})
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": url, "category": "video",
                                               "rule": "klaslokaal-les", "requester": "Piet, 3B",
                                               "reason": "Filmpje voor biologie", **extra})
    assert response.status_code == 303, response.text
    link = response.headers["location"]
    match = re.fullmatch(r"/aanvraag/(\d+)\?t=[\w-]+&nieuw=1", link)
    assert match, link
    return int(match.group(1)), link.replace("&nieuw=1", "")


def changes(console: Console) -> list[tuple[str, str, str]]:
    with console.store.read() as s:
        return [(c.kind, c.object, c.actor) for c in s.scalars(select(ChangeRow).order_by(ChangeRow.id))]


# --- the unblock flow ---------------------------------------------------------------------------

def test_full_flow_public_request_endorse_approve_grant_revoke(console: Console) -> None:
    # the form opens filled in from the block page's link
    page = console.client().get("/deblokkeren", params={"url": BLOCKED, "category": "video", "rule": "klaslokaal-les"})
    assert page.status_code == 200
    assert f'value="{BLOCKED}"' in page.text and "Video / Video" in page.text
    assert "Deblokkering aanvragen" in page.text and "Request an unblock" in page.text

    request_id, link = submit_public(console)
    status = console.client().get(link + "&nieuw=1")
    assert status.status_code == 200
    assert f"aanvraagnummer is <strong>{request_id}</strong>" in status.text
    assert link.replace("&", "&amp;") in status.text           # the link to keep
    assert "Ingediend" in status.text

    # the leidinggevende endorses with ground and scope
    manager = console.login("leidinggevende")
    listing = manager.get("/aanvragen").text
    assert f'href="/aanvragen/{request_id}"' in listing and "Piet, 3B" in listing
    detail = manager.get(f"/aanvragen/{request_id}").text
    assert "Filmpje voor biologie" in detail and "Onderbouwen" in detail and "Goedkeuren" not in detail
    response = manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "lesstof", "sites": "youtube.com",
        "zones": ["lokaal-101", "lokaal-102"], "roles": ["pupil"],
        "start": "2025-03-10T10:40", "end": "2025-03-11T16:00", "motivation": "Biologieles over cellen"})
    assert response.status_code == 303 and response.headers["location"] == f"/aanvragen/{request_id}?ok=onderbouwd"
    assert "ligt nu bij ICT" in manager.get(response.headers["location"]).text
    assert "onderbouwd door de leidinggevende" in console.client().get(link).text.lower()

    # ICT approves, narrowing the zones and the time
    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    assert "Goedkeuren" in detail and "Biologieles over cellen" in detail
    response = ict.post(f"/aanvragen/{request_id}/goedkeuren", data={
        "csrf": csrf_of(detail), "sites": "youtube.com", "zones": ["lokaal-101"], "roles": ["pupil"],
        "start": "2025-03-10T10:40", "end": "2025-03-10T16:00", "reason": "akkoord"})
    assert response.status_code == 303, response.text

    # the grant is in the state the gateway loads, and does what it should
    state = load_state(console.store, NOW)
    assert len(state.grants) == 1
    grant = state.grants[0]
    assert grant.sites.domains == frozenset({"youtube.com"})
    assert grant.zones == frozenset({"lokaal-101"}) and grant.roles == frozenset({"pupil"})
    assert grant.end == dt.datetime(2025, 3, 10, 16, 0, tzinfo=AMS)
    assert allowed(state, "10.20.1.7", "www.youtube.com")           # lokaal-101: opened
    assert not allowed(state, "10.20.2.7", "www.youtube.com")       # lokaal-102: narrowed away
    assert "Goedgekeurd" in console.client().get(link).text

    # ICT sees it among the active unblocks and revokes it
    unblocks = ict.get("/deblokkeringen").text
    assert f"Deblokkering {grant.id}" in unblocks and "youtube.com" in unblocks
    response = ict.post(f"/deblokkeringen/{grant.id}/intrekken",
                        data={"csrf": csrf_of(unblocks), "reason": "les is voorbij"})
    assert response.status_code == 303 and response.headers["location"] == "/deblokkeringen?ok=ingetrokken"
    state = load_state(console.store, NOW)
    assert state.grants == ()
    assert not allowed(state, "10.20.1.7", "www.youtube.com")
    outcome = console.client().get(link).text
    assert "Ingetrokken door ICT op 10-03-2025 10:40" in outcome and "les is voorbij" in outcome
    assert "Geen actieve deblokkeringen" in ict.get("/deblokkeringen").text

    assert changes(console)[-5:] == [("submit", "request", "publiek"),
                                     ("endorse", "request", "leidinggevende:leidinggevende1"),
                                     ("add", "grant", "ict:ict1"),
                                     ("approve", "request", "ict:ict1"),
                                     ("revoke", "grant", "ict:ict1")]


def test_ict_declines_and_the_requester_sees_why(console: Console) -> None:
    request_id, link = submit_public(console)
    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    response = ict.post(f"/aanvragen/{request_id}/afwijzen", data={"csrf": csrf_of(detail), "reason": "Gebruik de schoolvideo"})
    assert response.status_code == 303
    page = console.client().get(link).text
    assert "Afgewezen" in page and "Gebruik de schoolvideo" in page
    assert load_state(console.store, NOW).grants == ()


def test_leidinggevende_withdraws_a_request_they_will_not_back(console: Console) -> None:
    request_id, link = submit_public(console)
    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    assert "Afwijzen" not in detail   # declining is ICT's
    response = manager.post(f"/aanvragen/{request_id}/intrekken", data={"csrf": csrf_of(detail), "reason": "Niet voor de les"})
    assert response.status_code == 303
    assert "Ingetrokken" in console.client().get(link).text and "Niet voor de les" in console.client().get(link).text


def test_approving_twice_is_a_conflict_and_widening_is_refused(console: Console) -> None:
    request_id, _ = submit_public(console)
    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "professioneel", "sites": "www.youtube.com", "zones": ["lokaal-101"],
        "start": "2025-03-10T10:40", "end": "2025-03-10T16:00", "motivation": "m"})
    ict = console.login("ict")
    csrf = csrf_of(ict.get("/").text)
    scope = {"csrf": csrf, "sites": "www.youtube.com", "zones": ["lokaal-101"],
             "start": "2025-03-10T10:40", "end": "2025-03-10T16:00"}
    wider = ict.post(f"/aanvragen/{request_id}/goedkeuren", data={**scope, "sites": "youtube.com"})
    assert wider.status_code == 400 and "buiten het verzoek" in wider.text
    longer = ict.post(f"/aanvragen/{request_id}/goedkeuren", data={**scope, "end": "2025-03-12T16:00"})
    assert longer.status_code == 400
    assert ict.post(f"/aanvragen/{request_id}/goedkeuren", data=scope).status_code == 303
    again = ict.post(f"/aanvragen/{request_id}/goedkeuren", data=scope)
    assert again.status_code == 409
    assert len(load_state(console.store, NOW).grants) == 1


def test_manager_can_submit_a_request_already_endorsed(console: Console) -> None:
    manager = console.login("leidinggevende")
    page = manager.get("/deblokkeren", params={"url": BLOCKED})
    assert "Meteen onderbouwen" in page.text
    assert "www.youtube.com" in page.text   # the sites field is filled with the blocked host
    response = manager.post("/deblokkeren", data={
        "csrf": csrf_of(page.text), "url": BLOCKED, "requester": "Test leidinggevende", "reason": "Voor de sectie",
        "ground": "professioneel", "sites": "www.youtube.com", "start": "2025-03-10T10:40",
        "end": "2025-03-10T17:00"})
    assert response.status_code == 303
    with console.store.read() as s:
        [req] = list_requests(s)
    assert req.status == "endorsed" and req.ground == "professioneel"


def test_public_form_refuses_a_site_that_can_never_be_opened(console: Console) -> None:
    pupil = console.client()
    page = pupil.get("/deblokkeren", params={"url": "https://login.evil.example/steal", "category": "", "rule": "x"})
    assert page.status_code == 200
    assert "kan nooit worden opengezet" in page.text and "can never be unblocked" in page.text
    assert "Malware en phishing" in page.text
    assert 'action="/deblokkeren"' not in page.text      # no form to fill in for nothing
    # by category too, whatever the URL
    assert "kan nooit worden opengezet" in pupil.get("/deblokkeren", params={"url": "https://x.example/", "category": "malware"}).text
    # and a forged post is refused as well
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(pupil.get("/deblokkeren").text),
                                                "url": "https://login.evil.example/steal", "requester": "P", "reason": "r"})
    assert response.status_code == 400
    with console.store.read() as s:
        assert list_requests(s) == []


def test_approval_refuses_a_locked_site_slipped_into_the_scope(console: Console) -> None:
    request_id, _ = submit_public(console)
    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "lesstof", "sites": "www.youtube.com\nevil.example",
        "start": "2025-03-10T10:40", "end": "2025-03-10T16:00", "motivation": "m"})
    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    assert "Kan nooit worden opengezet" in detail              # warned before deciding
    response = ict.post(f"/aanvragen/{request_id}/goedkeuren", data={
        "csrf": csrf_of(detail), "sites": "www.youtube.com\nevil.example",
        "start": "2025-03-10T10:40", "end": "2025-03-10T16:00"})
    assert response.status_code == 400 and "nooit" in response.text
    assert load_state(console.store, NOW).grants == ()


def test_bad_public_input_keeps_what_was_typed(console: Console) -> None:
    pupil = console.client()
    page = pupil.get("/deblokkeren", params={"url": BLOCKED})
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": BLOCKED, "requester": "Piet",
                                                "reason": ""})
    assert response.status_code == 400
    assert "Vertel waarom" in response.text and 'value="Piet"' in response.text


# --- classroom, exam, exclusion -----------------------------------------------------------------

def test_docent_opens_social_media_until_the_end_of_the_lesson_and_ends_it_early(console: Console) -> None:
    docent = console.login("docent")
    page = docent.get("/klas").text
    assert "3e-uur" in page and "11:20" in page and 'value="lokaal-101"' in page
    assert 'value="malware"' not in page                       # a locked category is never offered
    assert not allowed(load_state(console.store, NOW), "10.20.1.7", "www.tiktok.com")
    response = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "open",
                                                 "categories": ["sociale-media"], "until_kind": "les"})
    assert response.status_code == 303, response.text
    with console.store.read() as s:
        [opening] = list_openings(s, now=NOW)
    assert opening.until == LESSON_END and opening.zone == "lokaal-101" and opening.created_by == "docent:docent1"
    state = load_state(console.store, NOW)
    assert allowed(state, "10.20.1.7", "www.tiktok.com")
    assert not allowed(state, "10.20.2.7", "www.tiktok.com")    # the other classroom is untouched
    assert not allowed(state, "10.20.1.7", "www.tiktok.com", LESSON_END + dt.timedelta(minutes=1))
    page = docent.get("/klas").text
    assert "Nu beëindigen" in page
    response = docent.post(f"/klas/{opening.id}/beeindigen", data={"csrf": csrf_of(page)})
    assert response.status_code == 303
    assert not allowed(load_state(console.store, NOW), "10.20.1.7", "www.tiktok.com")


def test_docent_restricts_the_room_to_an_allowlist_until_a_time(console: Console) -> None:
    docent = console.login("docent")
    csrf = csrf_of(docent.get("/klas").text)
    past = docent.post("/klas/openen", data={"csrf": csrf, "zone": "lokaal-101", "mode": "allowlist",
                                             "sites": "kahoot.it", "until_kind": "tijd", "until": "10:00"})
    assert past.status_code == 400 and "verleden" in past.text
    locked = docent.post("/klas/openen", data={"csrf": csrf, "zone": "lokaal-101", "mode": "open",
                                               "sites": "evil.example", "until_kind": "les"})
    assert locked.status_code == 400 and "nooit open" in locked.text
    response = docent.post("/klas/openen", data={"csrf": csrf, "zone": "lokaal-101", "mode": "allowlist",
                                                 "sites": "https://kahoot.it/join", "until_kind": "tijd",
                                                 "until": "11:00"})
    assert response.status_code == 303
    state = load_state(console.store, NOW)
    [opening] = state.openings
    assert opening.mode == "allowlist" and opening.until == dt.datetime(2025, 3, 10, 11, 0, tzinfo=AMS)
    assert allowed(state, "10.20.1.7", "kahoot.it")
    assert not allowed(state, "10.20.1.7", "www.wikipedia.org")


def test_no_lesson_means_no_end_of_lesson_option(console: Console) -> None:
    console.clock.now = dt.datetime(2025, 3, 10, 17, 0, tzinfo=AMS)
    docent = console.login("docent")
    page = docent.get("/klas").text
    assert "geen lesuur" in page and 'value="les"' not in page
    response = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "open",
                                                 "categories": ["video"], "until_kind": "les"})
    assert response.status_code == 400 and "geen lesuur" in response.text


def test_examencoordinator_runs_an_exam(console: Console) -> None:
    coordinator = console.login("examencoordinator")
    page = coordinator.get("/examen").text
    response = coordinator.post("/examen/starten", data={"csrf": csrf_of(page), "zone": "examenzaal",
                                                         "until": "11:15", "sites": "toets.example",
                                                         "reason": "Wiskunde B"})
    assert response.status_code == 303
    state = load_state(console.store, NOW)
    [exam] = state.exams
    assert exam.zone == "examenzaal" and exam.until == dt.datetime(2025, 3, 10, 11, 15, tzinfo=AMS)
    assert allowed(state, "10.20.99.3", "toets.example")
    assert not allowed(state, "10.20.99.3", "www.wikipedia.org")
    page = coordinator.get("/examen").text
    assert "toets.example" in page
    with console.store.read() as s:
        [running] = list_exams(s, now=NOW)
    assert coordinator.post(f"/examen/{running.id}/beeindigen", data={"csrf": csrf_of(page)}).status_code == 303
    assert load_state(console.store, NOW).exams == ()


def test_directie_excludes_a_device_and_ends_it_early(console: Console) -> None:
    directie = console.login("directie")
    page = directie.get("/uitsluitingen").text
    csrf = csrf_of(page)
    too_wide = directie.post("/uitsluitingen/toevoegen", data={"csrf": csrf, "subject": "10.0.0.0/8",
                                                               "until": "2025-03-11T10:00", "reason": "x"})
    assert too_wide.status_code == 400 and "te groot" in too_wide.text
    response = directie.post("/uitsluitingen/toevoegen", data={"csrf": csrf, "subject": "10.30.4.5",
                                                               "until": "2025-03-11T10:00", "reason": "Besluit 12, art. 7"})
    assert response.status_code == 303
    state = load_state(console.store, NOW)
    [ban] = state.bans
    assert ban.subject == "10.30.4.5" and ban.until == dt.datetime(2025, 3, 11, 10, 0, tzinfo=AMS)
    assert not allowed(state, "10.30.4.5", "www.wikipedia.org")
    assert allowed(state, "10.30.4.6", "www.wikipedia.org")
    page = directie.get("/uitsluitingen").text
    assert "Besluit 12, art. 7" in page
    response = directie.post(f"/uitsluitingen/{ban.id}/beeindigen", data={"csrf": csrf_of(page), "reason": "Opgelost"})
    assert response.status_code == 303
    assert load_state(console.store, NOW).bans == ()


# --- the dashboard ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("role", "sees", "not_sees"), [
    ("ict", ["/aanvragen", "/deblokkeringen", "/klas", "/examen", "/uitsluitingen"], []),
    ("leidinggevende", ["/aanvragen", "/deblokkeren"], ["/deblokkeringen", "/uitsluitingen", "/klas"]),
    ("docent", ["/klas"], ["/aanvragen", "/uitsluitingen", "/examen"]),
    ("directie", ["/uitsluitingen"], ["/aanvragen", "/klas", "/examen"]),
    ("examencoordinator", ["/examen"], ["/aanvragen", "/klas", "/uitsluitingen"]),
])
def test_dashboard_shows_what_the_role_can_do(console: Console, role: str, sees: list[str], not_sees: list[str]) -> None:
    submit_public(console)
    html = console.login(role).get("/").text
    for path in sees:
        assert f'href="{path}"' in html
    for path in not_sees:
        assert f'href="{path}"' not in html
    if "/aanvragen" in sees:
        assert re.search(r"<strong>1</strong> openstaand", html)


# --- expiry ----------------------------------------------------------------------------------------

def test_the_console_records_expiries_in_the_change_log(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    clock = Clock(NOW)
    app = create_app(f"sqlite:///{tmp_path / 'x.db'}", POLICY, tmp_path, clock=clock, expiry_every_s=0.02)
    store = app.state.console.store
    make_users(store)
    with store.write() as s:
        ict = get_user(s, 1)
        assert ict is not None
        from poortwachter.workflow import open_classroom

        opening = open_classroom(s, user=ict, zone="lokaal-101", mode="open", sites=["x.example"],
                                 until=NOW + dt.timedelta(minutes=5), reason="r", now=NOW)
    with TestClient(app):
        clock.now = NOW + dt.timedelta(minutes=6)
        deadline = time.monotonic() + 10
        found: list[tuple[str, int, str]] = []
        while time.monotonic() < deadline and not found:
            with store.read() as s:
                found = [(c.object, c.object_id, c.actor)
                         for c in s.scalars(select(ChangeRow).where(ChangeRow.kind == "expire"))]
            time.sleep(0.02)   # polling for the background task, not a timing assertion
    assert found == [("opening", opening, "systeem")]


# --- accessibility basics on every page ------------------------------------------------------------

class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.html_lang: str | None = None
        self.viewport = False
        self.ids: set[str] = set()
        self.label_for: set[str] = set()
        self.fields: list[tuple[str, str | None]] = []
        self.h1 = 0
        self.skip: str | None = None
        self.stylesheet = False
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag == "html":
            self.html_lang = a.get("lang")
        elif tag == "meta" and a.get("name") == "viewport":
            self.viewport = "width=device-width" in (a.get("content") or "")
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.stylesheet = True
        elif tag == "label" and a.get("for"):
            self.label_for.add(a["for"] or "")
        elif tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.fields.append((tag, a.get("id")))
        elif tag == "h1":
            self.h1 += 1
        elif tag == "a" and self.skip is None:
            self.skip = a.get("href")


def _pages(console: Console) -> list[tuple[str, str]]:
    request_id, link = submit_public(console)
    pages = [("anon", "/inloggen"), ("anon", "/deblokkeren?url=https://www.youtube.com/"), ("anon", link),
             ("anon", "/deblokkeren?url=https://evil.example/"), ("anon", "/aanvraag/999?t=nope")]
    for role in USERS:
        pages += [(role, "/"), (role, "/deblokkeren")]
    pages += [("leidinggevende", "/aanvragen"), ("leidinggevende", f"/aanvragen/{request_id}"),
              ("ict", f"/aanvragen/{request_id}"), ("ict", "/deblokkeringen"), ("docent", "/klas"), ("ict", "/klas"),
              ("examencoordinator", "/examen"), ("directie", "/uitsluitingen"), ("docent", "/uitsluitingen")]
    return pages


def test_every_page_has_the_accessibility_basics(console: Console) -> None:
    clients = {"anon": console.client()}
    for role, path in _pages(console):
        client = clients.get(role) or clients.setdefault(role, console.login(role))
        response = client.get(path)
        assert response.status_code in (200, 403, 404), (role, path)
        page = _Page()
        page.feed(response.text)
        where = f"{role} {path}"
        assert page.html_lang == "nl", where
        assert page.viewport and page.stylesheet, where
        assert page.skip == "#inhoud" and "inhoud" in page.ids, where   # the skip link comes first
        assert page.h1 == 1, where
        h1 = re.search(r"<h1>(.*?)</h1>", response.text, re.S)
        assert h1 and 'lang="en"' in h1.group(1) and "/ " in h1.group(1), where   # Dutch first, English second
        for tag, field_id in page.fields:
            assert field_id and field_id in page.label_for, f"{where}: <{tag} id={field_id}> has no <label>"


def test_stylesheet_has_focus_styles_and_a_phone_layout(console: Console) -> None:
    css = console.client().get("/static/console.css").text
    assert ":focus-visible" in css and "outline: 3px solid" in css
    assert "@media (max-width:" in css
    assert ".skip:focus" in css


def test_passwords_are_stored_as_argon2id(console: Console) -> None:
    with console.store.read() as s:
        hashes = list(s.scalars(select(UserRow.password_hash)))
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


def test_no_personal_data_in_log_lines(console: Console, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    submit_public(console, reason="geheim-reden-123")
    client = console.client()
    client.get("/aanvragen")
    from .conftest import login

    login(client, "ict1", "wrong password!")
    # the server side's loggers (the test client's own httpx lines are the "browser", not the console)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "asyncio")))
    for secret in ("Piet", "geheim-reden-123", "youtube", "ict1", "testclient"):
        assert secret not in text


def test_dashboard_counts_follow_the_store(console: Console) -> None:
    before = state_revision(console.store)
    submit_public(console)
    assert state_revision(console.store) == before + 1
    with console.store.write() as s:
        submit_request(s, url="https://a.example/", category="", rule="", requester="x", reason="y", now=NOW)
    html = console.login("ict").get("/").text
    assert re.search(r"<strong>2</strong> openstaand", html)
    assert re.search(r"<strong>0</strong> actief", html)
