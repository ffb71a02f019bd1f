"""The accounts pages (ICT) and the public page of a one-time link, against the real service layer:
adding an account whose user chooses the password, the link shown once and working once, disabling
that logs the user out at once, role, zones and e-mail, the last-ICT guard, and the accessibility
basics of the new pages. Who may use which route, and CSRF, are in test_security.py's table."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from sqlalchemy import select

from poortwachter.store import state_revision
from poortwachter.store.models import ChangeRow
from poortwachter.workflow import list_users

from .conftest import NOW, PASSWORD, USERS, Console, csrf_of, login
from .test_pages import _Page

NEW_PASSWORD = "een zin als wachtwoord"
LINK = re.compile(r'id="eenmalige-link">([^<]+)<')


def _id(console: Console, role: str) -> int:
    with console.store.read() as s:
        return next(u.id for u in list_users(s) if u.username == USERS[role])


def _post(client, path: str, **data: object):  # type: ignore[no-untyped-def]
    """A form as the browser sends it: with the session's CSRF token."""
    return client.post(path, data={"csrf": csrf_of(client.get("/").text), **data})


def _set_password(console: Console, link: str, password: str = NEW_PASSWORD):  # type: ignore[no-untyped-def]
    path = link.removeprefix("http://testserver")
    browser = console.client(address="10.20.1.50")
    page = browser.get(path)
    assert page.status_code == 200, page.text
    token = path.split("?t=", 1)[1]
    return browser.post("/wachtwoord-instellen", data={"csrf": csrf_of(page.text), "t": token,
                                                       "wachtwoord": password, "nogmaals": password})


def test_ict_adds_an_account_and_the_user_chooses_a_password_with_the_link_once(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ict = console.login("ict")
    response = _post(ict, "/gebruikers/toevoegen", username="Nina", name="Nina de Boer", role="docent",
                     zones=["lokaal-101", "lokaal-102"], email="nina@school.example")
    assert response.status_code == 200                 # the page itself, not a redirect: the link is in no URL
    assert "location" not in response.headers
    (link,) = LINK.findall(response.text)
    assert link.startswith("http://testserver/wachtwoord-instellen?t=")
    assert "Eenmalige link" in response.text and "One-time link" in response.text
    nina_id = int(re.search(r'action="/gebruikers/(\d+)/rol"', response.text).group(1))  # type: ignore[union-attr]
    assert "herstellink" in response.text
    # shown once: the account's page does not show it again
    assert not LINK.search(ict.get(f"/gebruikers/{nina_id}").text)
    listing = ict.get("/gebruikers").text
    assert "nina" in listing and "lokaal-101, lokaal-102" in listing

    page = console.client().get(link.removeprefix("http://testserver"))
    assert "Nieuw wachtwoord kiezen" in page.text and "<strong>nina</strong>" in page.text
    assert _set_password(console, link).headers["location"] == "/inloggen?wachtwoord=1"
    assert "Je nieuwe wachtwoord is ingesteld" in console.client().get("/inloggen?wachtwoord=1").text
    nina = console.client()
    assert login(nina, "nina", NEW_PASSWORD).status_code == 303
    assert "Mijn lokaal" in nina.get("/").text
    # the link works once
    again = console.client().get(link.removeprefix("http://testserver"))
    assert again.status_code == 404 and "ongeldig, al gebruikt of verlopen" in again.text
    # the link is a key to an account: no line the console logs holds it (the test client's own do)
    token = link.split("?t=", 1)[1]
    server = [r for r in caplog.records if r.name.startswith(("poortwachter", "uvicorn", "starlette"))]
    assert not any(token in r.getMessage() for r in server)


def test_the_link_page_refuses_short_or_different_passwords_and_keeps_the_link(console: Console) -> None:
    ict = console.login("ict")
    kim = _id(console, "docent")
    response = _post(ict, f"/gebruikers/{kim}/herstellink", reason="wachtwoord vergeten")
    (link,) = LINK.findall(response.text)
    path = link.removeprefix("http://testserver")
    browser = console.client()
    page = browser.get(path)
    token = path.split("?t=", 1)[1]
    for first, again, nl in (("kort", "kort", "Wachtwoord te kort"),
                             (NEW_PASSWORD, NEW_PASSWORD + "!", "De twee wachtwoorden verschillen")):
        response = browser.post("/wachtwoord-instellen", data={"csrf": csrf_of(page.text), "t": token,
                                                               "wachtwoord": first, "nogmaals": again})
        assert response.status_code == 400 and nl in response.text
        assert f'value="{token}"' in response.text                     # the form again, same link
    assert _set_password(console, link).status_code == 303
    assert login(console.client(), USERS["docent"], NEW_PASSWORD).status_code == 303


def test_an_expired_or_unknown_link_is_refused_alike(console: Console) -> None:
    ict = console.login("ict")
    response = _post(ict, f"/gebruikers/{_id(console, 'docent')}/herstellink", reason="vergeten")
    (link,) = LINK.findall(response.text)
    console.clock.now = NOW + dt.timedelta(hours=1)
    expired = console.client().get(link.removeprefix("http://testserver"))
    unknown = console.client().get("/wachtwoord-instellen?t=" + "x" * 43)
    assert expired.status_code == unknown.status_code == 404
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731
    assert strip(expired.text) == strip(unknown.text)


def test_disabling_logs_the_user_out_at_once_and_enabling_lets_them_back(console: Console) -> None:
    docent = console.login("docent")
    assert docent.get("/klas").status_code == 200
    ict = console.login("ict")
    kim = _id(console, "docent")
    response = _post(ict, f"/gebruikers/{kim}/uitschakelen", reason="uit dienst")
    assert response.status_code == 303 and response.headers["location"] == f"/gebruikers/{kim}?ok=uitgeschakeld"
    assert "Het account is uitgeschakeld" in ict.get(response.headers["location"]).text
    assert docent.get("/klas").status_code == 303                   # the open session is gone
    assert login(console.client(), USERS["docent"]).status_code == 401
    assert "uitgeschakeld" in ict.get("/gebruikers").text
    assert _post(ict, f"/gebruikers/{kim}/inschakelen", reason="terug").status_code == 303
    assert login(console.client(), USERS["docent"]).status_code == 303


def test_ict_sets_a_password_role_zones_and_email(console: Console) -> None:
    ict = console.login("ict")
    kim = _id(console, "docent")
    assert _post(ict, f"/gebruikers/{kim}/wachtwoord", wachtwoord=NEW_PASSWORD, nogmaals=NEW_PASSWORD,
                 reason="in persoon").status_code == 303
    assert login(console.client(), USERS["docent"], NEW_PASSWORD).status_code == 303
    mismatch = _post(ict, f"/gebruikers/{kim}/wachtwoord", wachtwoord=NEW_PASSWORD, nogmaals="iets anders!",
                     reason="x")
    assert mismatch.status_code == 400 and "De twee wachtwoorden verschillen" in mismatch.text
    assert _post(ict, f"/gebruikers/{kim}/zones", zones=["lokaal-102"], reason="rooster").status_code == 303
    assert _post(ict, f"/gebruikers/{kim}/rol", role="leidinggevende", reason="teamleider").status_code == 303
    assert _post(ict, f"/gebruikers/{kim}/email", email="Kim@School.example").status_code == 303
    page = ict.get(f"/gebruikers/{kim}").text
    assert "Kim@school.example" in page and "Leidinggevende" in page and 'value="lokaal-102" checked' in page
    with console.store.read() as s:
        log = [(c.kind, c.actor, c.reason) for c in s.scalars(select(ChangeRow).where(ChangeRow.object == "user",
                                                                                    ChangeRow.object_id == kim))]
    assert log[-3:] == [("zones", "ict:ict1", "zones lokaal-101 -> lokaal-102: rooster"),
                        ("role", "ict:ict1", "rol docent -> leidinggevende / role docent -> leidinggevende: teamleider"),
                        ("email", "ict:ict1", "e-mailadres gewijzigd / e-mail address changed")]


def test_forged_zones_roles_and_addresses_are_refused(console: Console) -> None:
    ict = console.login("ict")
    kim = _id(console, "docent")
    before = state_revision(console.store)
    for path, data in ((f"/gebruikers/{kim}/zones", {"zones": ["doesnotexist"], "reason": "x"}),
                       (f"/gebruikers/{kim}/rol", {"role": "admin", "reason": "x"}),
                       (f"/gebruikers/{kim}/email", {"email": "<script>@x"}),
                       ("/gebruikers/toevoegen", {"username": "x", "name": "X", "role": "docent",
                                                  "zones": ["doesnotexist"]})):
        response = _post(ict, path, **data)
        assert response.status_code == 400, path
        assert "doesnotexist" not in response.text and "<script>" not in response.text
    assert state_revision(console.store) == before


def test_nobody_disables_or_demotes_themselves(console: Console) -> None:
    """The last-ICT guard itself is the service's (test_workflow_accounts.py); in the console the
    last ICT member can only reach their own account, which nobody disables or demotes."""
    ict = console.login("ict")
    me = _id(console, "ict")
    assert f'action="/gebruikers/{me}/uitschakelen"' not in ict.get(f"/gebruikers/{me}").text   # not offered ...
    before = state_revision(console.store)
    for path, data in ((f"/gebruikers/{me}/uitschakelen", {"reason": "x"}),
                       (f"/gebruikers/{me}/rol", {"role": "docent", "reason": "x"})):
        response = _post(ict, path, **data)
        assert response.status_code == 403 and "eigen account" in response.text   # ... and refused when forged
    assert state_revision(console.store) == before
    # another ICT member may, and the change applies to the open session at once
    made = _post(ict, "/gebruikers/toevoegen", username="bob", name="Bob", role="ict")
    (link,) = LINK.findall(made.text)
    assert _set_password(console, link).status_code == 303
    bob = console.client()
    assert login(bob, "bob", NEW_PASSWORD).status_code == 303
    assert _post(bob, f"/gebruikers/{me}/rol", role="docent", reason="andere taak").status_code == 303
    assert ict.get("/gebruikers").status_code == 403


def test_account_pages_have_the_accessibility_basics(console: Console) -> None:
    ict = console.login("ict")
    kim = _id(console, "docent")
    made = _post(ict, f"/gebruikers/{kim}/herstellink", reason="vergeten")
    (link,) = LINK.findall(made.text)
    pages = [(ict, "/gebruikers"), (ict, f"/gebruikers/{kim}"),
             (console.client(), link.removeprefix("http://testserver")), (console.client(), "/wachtwoord-instellen?t=nope")]
    for client, path in pages:
        response = client.get(path)
        page = _Page()
        page.feed(response.text)
        assert page.html_lang == "nl" and page.h1 == 1 and page.skip == "#inhoud", path
        h1 = re.search(r"<h1>(.*?)</h1>", response.text, re.S)
        assert h1 and 'lang="en"' in h1.group(1), path
        for tag, field_id in page.fields:
            assert field_id and field_id in page.label_for, f"{path}: <{tag} id={field_id}> has no <label>"
    assert 'href="/gebruikers"' in ict.get("/").text                  # in ICT's menu ...
    assert 'href="/gebruikers"' not in console.login("directie").get("/").text   # ... and nobody else's
    assert PASSWORD not in ict.get(f"/gebruikers/{kim}").text
