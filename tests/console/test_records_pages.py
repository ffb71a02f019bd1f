"""One truth per object on the console's pages, forms that survive, and names people can read:

- requests, grants and exclusions show what ICT approved (not what was endorsed), their state now
  and their history, people by display name; the requester's status page says when and why the
  opening ended, naming roles, never staff; ICT extends a grant; ended grants have their page;
- a staff form whose session expired comes back after the login with what was typed; a refused
  form shows its error on the form with the typed values; a second decision's 409 says who and
  when and links back;
- host names in Unicode with their punycode beside them.
Everything runs on the real service layer and a SQLite store (see conftest.py)."""

from __future__ import annotations

import datetime as dt
import re
import time
from html import unescape

import pytest

from poortwachter.console.drafts import Draft, Drafts
from poortwachter.store import load_state, state_revision
from poortwachter.workflow import get_user, list_requests

from .conftest import NOW, PASSWORD, Console, csrf_of
from .test_pages import submit_public

ORIGIN = {"origin": "http://testserver"}            # what a browser sends with a form of this console
SAME_SITE = {"sec-fetch-site": "same-origin"}


def text_of(html: str) -> str:
    """The page's text as a person reads it: tags dropped, entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def endorse(console: Console, request_id: int, **extra: object) -> None:
    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    response = manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "lesstof", "sites": "youtube.com", "zones": ["lokaal-101", "lokaal-102"],
        "roles": ["pupil"], "start": "2025-03-10T10:40", "end": "2025-03-11T16:00",
        "motivation": "Interne motivering biologie", **extra})
    assert response.status_code == 303, response.text


def narrowed_approval(console: Console) -> tuple[int, str, int]:
    """A pupil's request, endorsed for two classrooms until tomorrow, approved by ICT for one
    classroom for three minutes. Returns (request, status link, grant)."""
    request_id, link = submit_public(console)
    endorse(console, request_id)
    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    response = ict.post(f"/aanvragen/{request_id}/goedkeuren", data={
        "csrf": csrf_of(detail), "sites": "youtube.com", "zones": ["lokaal-101"], "roles": ["pupil"],
        "start": "2025-03-10T10:40", "end": "2025-03-10T10:43", "reason": "Interne toelichting ICT"})
    assert response.status_code == 303, response.text
    (grant,) = load_state(console.store, NOW).grants
    return request_id, link, grant.id


# --- one truth per object --------------------------------------------------------------------------

def test_every_page_shows_what_ict_approved_not_what_was_endorsed(console: Console) -> None:
    request_id, link, grant_id = narrowed_approval(console)
    status = text_of(console.client().get(link).text)
    assert "Goedgekeurd: de site is open tot 10-03-2025 10:43" in status
    assert "Zones lokaal-101 " in status and "lokaal-102" not in status and "alle" not in status
    assert "10-03-2025 10:40 – 10-03-2025 10:43" in status and "11-03-2025" not in status

    ict = console.login("ict")
    detail = text_of(ict.get(f"/aanvragen/{request_id}").text)
    approved, _, endorsed = detail.partition("Onderbouwing van de leidinggevende")
    assert "Goedgekeurd door ICT: dit geldt" in approved
    assert "Zones lokaal-101 " in approved and "10-03-2025 10:40 – 10-03-2025 10:43" in approved
    assert "lokaal-101, lokaal-102" in endorsed and "11-03-2025 16:00" in endorsed   # what was proposed
    card = text_of(ict.get("/deblokkeringen").text)
    assert f"Deblokkering {grant_id}" in card and "Zones lokaal-101 " in card and "10-03-2025 10:43" in card
    assert "Goedgekeurd, loopt" in text_of(ict.get("/aanvragen").text)

    # after the end: expired, everywhere, before and after the sweep writes it down
    console.clock.now = NOW + dt.timedelta(minutes=4)
    status = text_of(console.client().get(link).text)
    assert "Verlopen: de site is sinds 10-03-2025 10:43 weer dicht" in status
    assert "de site is open" not in status and "Goedgekeurd:" not in status
    assert "Verlopen" in text_of(ict.get("/aanvragen").text)
    assert f"Deblokkering {grant_id}" not in ict.get("/deblokkeringen").text
    history = text_of(ict.get("/deblokkeringen/historie").text)
    assert f"Deblokkering {grant_id}" in history and "10-03-2025 10:43 (verlopen / expired)" in history


def test_the_requester_sees_the_revocation_and_why_with_roles_not_names(console: Console) -> None:
    request_id, link, grant_id = narrowed_approval(console)
    ict = console.login("ict")
    console.clock.now = NOW + dt.timedelta(minutes=1)
    response = ict.post(f"/deblokkeringen/{grant_id}/intrekken",
                        data={"csrf": csrf_of(ict.get("/deblokkeringen").text), "reason": "Verkeerd filmpje gedeeld"})
    assert response.status_code == 303
    page = console.client().get(link).text
    status = text_of(page)
    assert "Ingetrokken door ICT op 10-03-2025 10:41: de site is weer dicht" in status
    assert "Reden / Reason Verkeerd filmpje gedeeld" in status
    assert "Goedgekeurd: de site is opengezet" not in status and "de site is open tot" not in status
    # the history by role: the requester, the manager, ICT; never a name or an account id of staff
    for step in ("aanvrager / requester", "leidinggevende / manager", "ICT", "Eerder beëindigd / Ended early"):
        assert step in status
    for private in ("Test ict", "Test leidinggevende", "ict1", "leidinggevende1", "Interne motivering",
                    "Interne toelichting"):
        assert private not in page
    # staff see the people by name, and the same revocation
    detail = text_of(ict.get(f"/aanvragen/{request_id}").text)
    assert "Ingetrokken door ICT" in detail and "Verkeerd filmpje gedeeld" in detail
    assert "Test ict (ICT)" in detail and "Test leidinggevende (leidinggevende / manager)" in detail
    assert "ict:ict1" not in detail and "leidinggevende:leidinggevende1" not in detail


def test_active_unblocks_link_to_the_history_of_ended_ones(console: Console) -> None:
    _, _, revoked = narrowed_approval(console)
    ict = console.login("ict")
    page = ict.get("/deblokkeringen").text
    assert 'href="/deblokkeringen/historie"' in page
    ict.post(f"/deblokkeringen/{revoked}/intrekken", data={"csrf": csrf_of(page), "reason": "klaar"})
    history = text_of(ict.get("/deblokkeringen/historie").text)
    assert f"Deblokkering {revoked}" in history
    assert "Ingetrokken door ICT" in history and "Test ict (ICT): klaar" in history
    assert "Geen actieve deblokkeringen" in ict.get("/deblokkeringen").text


def test_ict_extends_a_grant_and_everyone_sees_the_new_end(console: Console) -> None:
    request_id, link, grant_id = narrowed_approval(console)
    ict = console.login("ict")
    page = ict.get("/deblokkeringen").text
    assert f'action="/deblokkeringen/{grant_id}/verlengen"' in page and 'value="2025-03-10T10:43"' in page
    response = ict.post(f"/deblokkeringen/{grant_id}/verlengen", data={
        "csrf": csrf_of(page), "end": "2025-03-10T11:20", "reason": "De les loopt uit"})
    assert response.status_code == 303 and response.headers["location"] == "/deblokkeringen?ok=verlengd"
    (grant,) = load_state(console.store, NOW + dt.timedelta(minutes=30)).grants   # the gateway keeps it open
    assert grant.end == dt.datetime(2025, 3, 10, 11, 20, tzinfo=NOW.tzinfo)
    card = text_of(ict.get("/deblokkeringen?ok=verlengd").text)
    assert "De deblokkering is verlengd" in card and "verlengd / extended" in card
    assert "Verlengd tot 10-03-2025 11:20 (was 10-03-2025 10:43) / Extended" in card
    status = text_of(console.client().get(link).text)
    assert "open tot 10-03-2025 11:20" in status and "De les loopt uit" in status
    assert "Verlengd tot 10-03-2025 11:20" in text_of(ict.get(f"/aanvragen/{request_id}").text)


def test_a_refused_extension_comes_back_on_the_form_with_what_was_typed(console: Console) -> None:
    _, _, grant_id = narrowed_approval(console)
    ict = console.login("ict")
    before = state_revision(console.store)
    response = ict.post(f"/deblokkeringen/{grant_id}/verlengen", data={
        "csrf": csrf_of(ict.get("/deblokkeringen").text), "end": "2025-03-10T10:42", "reason": "Typed reason 42"})
    assert response.status_code == 400
    page = text_of(response.text)
    assert "Het nieuwe einde ligt niet na het huidige" in page and "Wat je had ingevuld staat er nog" in page
    assert 'value="2025-03-10T10:42"' in response.text and 'value="Typed reason 42"' in response.text
    assert f'href="#deblokkering-{grant_id}"' in response.text   # the error at the top links to the form
    assert state_revision(console.store) == before


# --- 409: who decided first --------------------------------------------------------------------

def test_a_second_approval_says_who_decided_and_when_and_links_back(console: Console) -> None:
    request_id, _ = submit_public(console)
    endorse(console, request_id)
    first, second = console.login("ict"), console.login("ict")
    scope = {"sites": "youtube.com", "zones": ["lokaal-101"], "roles": ["pupil"], "start": "2025-03-10T10:40",
             "end": "2025-03-10T16:00"}
    form = second.get(f"/aanvragen/{request_id}").text   # both have the form open
    console.clock.now = NOW + dt.timedelta(minutes=2)
    assert first.post(f"/aanvragen/{request_id}/goedkeuren",
                      data={"csrf": csrf_of(first.get("/").text), **scope}).status_code == 303
    again = second.post(f"/aanvragen/{request_id}/goedkeuren", data={"csrf": csrf_of(form), **scope})
    assert again.status_code == 409
    page = text_of(again.text)
    assert f"Aanvraag {request_id} is al goedgekeurd door Test ict (ICT) op 10-03-2025 10:42." in page
    assert f"Request {request_id} was already approved by Test ict (ICT)" in page
    assert f'href="/aanvragen/{request_id}"' in again.text and "Terug naar aanvraag" in page
    assert len(load_state(console.store, console.clock.now).grants) == 1


def test_a_second_revocation_says_who_revoked_it(console: Console) -> None:
    _, _, grant_id = narrowed_approval(console)
    ict = console.login("ict")
    csrf = csrf_of(ict.get("/deblokkeringen").text)
    assert ict.post(f"/deblokkeringen/{grant_id}/intrekken", data={"csrf": csrf, "reason": "klaar"}).status_code == 303
    again = ict.post(f"/deblokkeringen/{grant_id}/intrekken", data={"csrf": csrf, "reason": "nogmaals"})
    assert again.status_code == 409
    assert f"Deblokkering {grant_id} is al ingetrokken door Test ict (ICT) op 10-03-2025 10:40" in text_of(again.text)
    assert f'href="/deblokkeringen/historie#deblokkering-{grant_id}"' in again.text
    late = ict.post(f"/deblokkeringen/{grant_id}/verlengen", data={"csrf": csrf, "end": "2025-03-10T12:00",
                                                                    "reason": "toch langer"})
    assert late.status_code == 409 and "al ingetrokken" in late.text


# --- errors on the form ------------------------------------------------------------------------

def test_a_refused_endorsement_shows_the_error_on_the_form_with_what_was_typed(console: Console) -> None:
    request_id, _ = submit_public(console)
    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    before = state_revision(console.store)
    response = manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "professioneel", "sites": "youtube.com\nvimeo.com",
        "zones": ["lokaal-102"], "start": "2025-03-10T12:00", "end": "2025-03-10T11:00",
        "motivation": "Mijn getypte motivering"})
    assert response.status_code == 400
    html = response.text
    assert "'Tot' moet na 'Vanaf' liggen" in text_of(html) and 'id="onderbouwen"' in html   # on the form's page
    form = html[html.index('id="onderbouwen"'):]
    assert "Wat je had ingevuld staat er nog" in form
    assert "Mijn getypte motivering</textarea>" in form and "youtube.com\nvimeo.com</textarea>" in form
    assert re.search(r'value="lokaal-102" checked', form) and not re.search(r'value="lokaal-101" checked', form)
    assert 'value="professioneel" required checked' in form
    assert 'value="2025-03-10T12:00"' in form and 'value="2025-03-10T11:00"' in form
    assert state_revision(console.store) == before


def test_a_refused_exclusion_keeps_what_was_typed(console: Console) -> None:
    directie = console.login("directie")
    response = directie.post("/uitsluitingen/toevoegen", data={
        "csrf": csrf_of(directie.get("/uitsluitingen").text), "subject": "10.0.0.0/8", "until": "2025-03-11T09:00",
        "reason": "Besluit 7 van de directie"})
    assert response.status_code == 400
    assert "te groot" in response.text and 'id="toevoegen"' in response.text
    assert 'value="10.0.0.0/8"' in response.text and 'value="2025-03-11T09:00"' in response.text
    assert "Besluit 7 van de directie</textarea>" in response.text


# --- a form that survives an expired session ---------------------------------------------------

def test_an_expired_session_keeps_the_typed_form_over_the_login(console: Console) -> None:
    request_id, _ = submit_public(console)
    manager = console.login("leidinggevende")
    old_csrf = csrf_of(manager.get(f"/aanvragen/{request_id}").text)
    console.clock.now = NOW + dt.timedelta(hours=9)                 # the session expires while typing
    typed = {"csrf": old_csrf, "ground": "lesstof", "sites": "youtube.com", "zones": ["lokaal-101"],
             "start": "2025-03-10T19:40", "end": "2025-03-11T16:00", "motivation": "Twintig minuten getypt"}
    before = state_revision(console.store)
    response = manager.post(f"/aanvragen/{request_id}/onderbouwen", data=typed, headers=ORIGIN)
    assert response.status_code == 303
    assert response.headers["location"] == f"/inloggen?verlopen=1&volgende=%2Faanvragen%2F{request_id}"
    assert state_revision(console.store) == before                  # nothing was endorsed
    kept = manager.cookies.get("pw_formulier")
    assert kept and kept not in response.headers["location"]       # the key is only in the cookie
    login_page = manager.get(response.headers["location"]).text
    assert "Je sessie was verlopen" in login_page and "Your session had expired" in login_page
    response = manager.post("/inloggen", data={"csrf": csrf_of(login_page), "gebruikersnaam": "leidinggevende1",
                                               "wachtwoord": PASSWORD, "volgende": f"/aanvragen/{request_id}"})
    assert response.headers["location"] == f"/aanvragen/{request_id}"
    assert "Twintig minuten" not in manager.get("/aanvragen").text  # only the form's own page takes it
    page = manager.get(f"/aanvragen/{request_id}").text
    assert "Je sessie was verlopen" in page
    assert "Twintig minuten getypt</textarea>" in page and 'value="2025-03-11T16:00"' in page
    assert re.search(r'value="lokaal-101" checked', page) and old_csrf not in page
    assert "Twintig minuten" not in manager.get(f"/aanvragen/{request_id}").text   # taken once
    # sent again with the new session's token, it goes through
    response = manager.post(f"/aanvragen/{request_id}/onderbouwen", data={**typed, "csrf": csrf_of(page)})
    assert response.status_code == 303
    with console.store.read() as s:
        assert [r.status for r in list_requests(s)] == ["endorsed"]


@pytest.mark.parametrize("headers", [{}, {"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"},
                                     {"sec-fetch-site": "same-site", "origin": "http://testserver"}])
def test_only_a_post_from_this_console_is_kept(console: Console, headers: dict[str, str]) -> None:
    """A form on another site (or a script) cannot plant values in someone's form: refused, not kept."""
    request_id, _ = submit_public(console)
    client = console.client()
    response = client.post(f"/aanvragen/{request_id}/onderbouwen", headers=headers, data={
        "csrf": csrf_of(client.get("/inloggen").text), "motivation": "geplant", "sites": "evil.example"})
    assert response.status_code == 401 and "Log eerst in" in response.text
    assert "pw_formulier" not in client.cookies
    login_page = client.get("/inloggen").text
    client.post("/inloggen", data={"csrf": csrf_of(login_page), "gebruikersnaam": "leidinggevende1",
                                   "wachtwoord": PASSWORD, "volgende": "/"})
    assert "geplant" not in client.get(f"/aanvragen/{request_id}").text


def test_a_form_of_an_ended_session_comes_back_to_the_logged_in_person(console: Console) -> None:
    """Logged in again in another tab: the old tab's form does not end on a dead-end 403."""
    directie = console.login("directie")
    old_csrf = csrf_of(directie.get("/uitsluitingen").text)
    assert directie.post("/uitloggen", data={"csrf": old_csrf}).status_code == 303
    login_page = directie.get("/inloggen").text
    directie.post("/inloggen", data={"csrf": csrf_of(login_page), "gebruikersnaam": "directie1",
                                     "wachtwoord": PASSWORD, "volgende": "/"})
    before = state_revision(console.store)
    response = directie.post("/uitsluitingen/toevoegen", headers=SAME_SITE, data={
        "csrf": old_csrf, "subject": "10.30.4.5", "until": "2025-03-11T10:00", "reason": "Besluit 12"})
    assert response.status_code == 303 and response.headers["location"] == "/uitsluitingen"
    assert state_revision(console.store) == before                 # CSRF still holds: nothing done
    page = directie.get("/uitsluitingen").text
    assert 'value="10.30.4.5"' in page and "Besluit 12</textarea>" in page


def test_a_staff_request_on_the_public_form_survives_the_expired_session(console: Console) -> None:
    manager = console.login("leidinggevende")
    form = manager.get("/deblokkeren", params={"url": "https://www.youtube.com/watch?v=1"}).text
    console.clock.now = NOW + dt.timedelta(hours=9)
    response = manager.post("/deblokkeren", headers=ORIGIN, data={
        "csrf": csrf_of(form), "url": "https://www.youtube.com/watch?v=1", "requester": "Sectie biologie",
        "reason": "Voor drie klassen", "ground": "lesstof", "sites": "www.youtube.com",
        "start": "2025-03-10T19:40", "end": "2025-03-11T16:00"})
    assert response.status_code == 303 and "volgende=%2Fdeblokkeren" in response.headers["location"]
    with console.store.read() as s:
        assert list_requests(s) == []                                # not sent as an anonymous request
    login_page = manager.get(response.headers["location"]).text
    manager.post("/inloggen", data={"csrf": csrf_of(login_page), "gebruikersnaam": "leidinggevende1",
                                    "wachtwoord": PASSWORD, "volgende": "/deblokkeren"})
    page = manager.get("/deblokkeren").text
    assert 'value="Sectie biologie"' in page and "Voor drie klassen</textarea>" in page
    assert '<option value="lesstof" selected>' in page and 'value="2025-03-11T16:00"' in page


def test_kept_forms_are_taken_once_by_their_page_and_forgotten_in_time() -> None:
    drafts = Drafts(ttl_s=0.2, limit=2)
    draft = Draft("/aanvragen/1/onderbouwen", (("motivation", "m"),), resumed=True)
    token = drafts.keep("/aanvragen/1", draft)
    assert drafts.take(token, "/aanvragen/2") is None and drafts.knows(token)
    assert drafts.take(token, "/aanvragen/1") == draft
    assert drafts.take(token, "/aanvragen/1") is None and not drafts.knows(token)
    old = drafts.keep("/a", draft)
    deadline = time.monotonic() + 5
    while drafts.knows(old):
        assert time.monotonic() < deadline, "a kept form outlived its time"
        time.sleep(0.05)   # waiting for the TTL to pass
    first, *_ = [drafts.keep(f"/{n}", draft) for n in range(3)]
    assert not drafts.knows(first)                                  # at most `limit` kept


def test_passwords_and_tokens_are_never_kept() -> None:
    from starlette.datastructures import FormData

    form = FormData([("csrf", "t"), ("wachtwoord", "geheim"), ("passphrase_1", "p"), ("share_1", "{}"),
                     ("reason", "r"), ("zones", "a"), ("zones", "b")])
    draft = Draft.of("/x", form)
    assert draft.fields == (("reason", "r"), ("zones", "a"), ("zones", "b")) and draft.getlist("zones") == ["a", "b"]


# --- names people can read ---------------------------------------------------------------------

def test_internationalised_hosts_in_unicode_with_their_punycode(console: Console) -> None:
    url = "https://xn--bcherwurm-q9a.de/boeken"
    request_id, link = submit_public(console, url)
    shown = "https://bücherwurm.de/boeken (xn--bcherwurm-q9a.de)"
    assert shown in text_of(console.client().get(link).text)
    manager = console.login("leidinggevende")
    assert shown in text_of(manager.get("/aanvragen").text)
    detail = manager.get(f"/aanvragen/{request_id}").text
    assert shown in text_of(detail)
    manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "lesstof", "sites": "xn--bcherwurm-q9a.de", "start": "2025-03-10T10:40",
        "end": "2025-03-10T16:00", "motivation": "m"})
    ict = console.login("ict")
    ict.post(f"/aanvragen/{request_id}/goedkeuren", data={
        "csrf": csrf_of(ict.get("/").text), "sites": "xn--bcherwurm-q9a.de", "start": "2025-03-10T10:40",
        "end": "2025-03-10T16:00"})
    assert "bücherwurm.de (xn--bcherwurm-q9a.de)" in text_of(ict.get("/deblokkeringen").text)
    assert "bücherwurm.de (xn--bcherwurm-q9a.de)" in text_of(console.client().get(link).text)


def test_the_exclusion_page_shows_the_article_the_end_and_people_by_name(console: Console) -> None:
    directie = console.login("directie")
    csrf = csrf_of(directie.get("/uitsluitingen").text)
    directie.post("/uitsluitingen/toevoegen", data={"csrf": csrf, "subject": "10.30.4.5", "until": "2025-03-11T10:00",
                                                    "reason": "Besluit 12"})
    directie.post("/uitsluitingen/toevoegen", data={"csrf": csrf, "subject": "10.30.4.6", "until": "2025-03-11T10:00",
                                                    "reason": "Besluit 13"})
    ended = load_state(console.store, NOW).bans[1].id
    directie.post(f"/uitsluitingen/{ended}/beeindigen", data={"csrf": csrf, "reason": "Opgelost"})
    page = text_of(directie.get("/uitsluitingen").text)
    active, _, recent = page.partition("Onlangs geëindigd")
    article = console.app.state.console.policy.exclusion_article()
    assert f"Reglement {article}" in active and "Reglement -" not in page and "Reglement – " not in page
    assert "10-03-2025 10:40 – 11-03-2025 10:00" in active and "Test directie (directie / management)" in active
    assert "10.30.4.6" in recent and "Test directie (directie / management): Opgelost" in recent
    assert "Loopt / Running" in active and "Eerder beëindigd / Ended early" in recent and "Goedgekeurd" not in page
    assert "directie:directie1" not in page
    again = directie.post(f"/uitsluitingen/{ended}/beeindigen", data={"csrf": csrf, "reason": "nogmaals"})
    assert again.status_code == 409
    assert "al beëindigd door Test directie (directie / management) op 10-03-2025 10:40" in text_of(again.text)


def test_a_deleted_account_is_shown_by_its_username(console: Console) -> None:
    from sqlalchemy import delete

    from poortwachter.store.models import SessionRow, UserRow

    request_id, _ = submit_public(console)
    endorse(console, request_id)
    with console.store.write() as s:
        manager = next(u for u in (get_user(s, i) for i in range(1, 10)) if u and u.role == "leidinggevende")
        s.execute(delete(SessionRow).where(SessionRow.user_id == manager.id))
        s.execute(delete(UserRow).where(UserRow.id == manager.id))
    detail = text_of(console.login("ict").get(f"/aanvragen/{request_id}").text)
    assert "leidinggevende1 (leidinggevende / manager)" in detail and "leidinggevende:leidinggevende1" not in detail
