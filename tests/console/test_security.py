"""The console's security, route by route: authentication, authorisation per role, CSRF, session
fixation, logout, login throttling, cookies and headers. Everything runs against the real service
layer and a SQLite store; "nothing changed" is checked through the store's state revision, which
every recorded change bumps."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from starlette.routing import Mount, Route

from poortwachter.store import state_revision
from poortwachter.workflow import ROLES, exclude, get_user, list_requests, load_session, open_classroom, \
    start_exam, submit_request
from poortwachter.workflow.limits import impose_download_limit

from .conftest import HOST, NOW, PASSWORD, Console, csrf_of, login

PUBLIC = "public"
ANY = frozenset(ROLES)
ICT = frozenset({"ict"})
MANAGERS = frozenset({"leidinggevende", "ict"})
TEACHERS = frozenset({"docent", "ict"})
EXAMS = frozenset({"examencoordinator", "ict"})
EXCLUDERS = frozenset({"directie", "ict"})
CASES = frozenset({"directie", "ict"})
CASE_OPENERS = frozenset({"directie"})
CASE_APPROVERS = frozenset({"ict"})
LEDGER_READERS = frozenset({"directie", "ict", "fg", "mr"}) & ANY   # FG and MR once the accounts have them

# Every route and action of the console with who may use it. {id} is filled with a real object.
ROUTES: list[tuple[str, str, frozenset[str] | str]] = [
    ("GET", "/", ANY),
    ("GET", "/inloggen", PUBLIC),
    ("POST", "/inloggen", PUBLIC),
    ("POST", "/uitloggen", ANY),
    ("GET", "/deblokkeren", PUBLIC),
    ("POST", "/deblokkeren", PUBLIC),
    ("GET", "/aanvraag/{request_id}", PUBLIC),
    ("GET", "/aanvragen", MANAGERS),
    ("GET", "/aanvragen/{request_id}", MANAGERS),
    ("POST", "/aanvragen/{request_id}/onderbouwen", MANAGERS),
    ("POST", "/aanvragen/{request_id}/intrekken", MANAGERS),
    ("POST", "/aanvragen/{request_id}/goedkeuren", ICT),
    ("POST", "/aanvragen/{request_id}/afwijzen", ICT),
    ("GET", "/deblokkeringen", ICT),
    ("POST", "/deblokkeringen/{grant_id}/intrekken", ICT),
    ("POST", "/deblokkeringen/{grant_id}/verlengen", ICT),
    ("GET", "/deblokkeringen/historie", ICT),
    ("GET", "/klas", TEACHERS),
    ("POST", "/klas/openen", TEACHERS),
    ("POST", "/klas/{opening_id}/beeindigen", TEACHERS),
    ("GET", "/examen", EXAMS),
    ("POST", "/examen/starten", EXAMS),
    ("POST", "/examen/{exam_id}/beeindigen", EXAMS),
    ("GET", "/uitsluitingen", EXCLUDERS),
    ("POST", "/uitsluitingen/toevoegen", EXCLUDERS),
    ("POST", "/uitsluitingen/{ban_id}/beeindigen", EXCLUDERS),
    ("POST", "/uitsluitingen/downloadlimieten/{limit_id}/opheffen", EXCLUDERS),
    ("GET", "/zaken", CASES),
    ("POST", "/zaken/openen", CASE_OPENERS),
    ("GET", "/zaken/{case_id}", CASES),
    ("POST", "/zaken/{case_id}/goedkeuren", CASE_APPROVERS),
    ("POST", "/zaken/{case_id}/inzien", CASES),
    ("POST", "/zaken/{case_id}/exporteren", CASES),
    ("POST", "/zaken/{case_id}/sluiten", CASES),
    ("POST", "/zaken/{case_id}/informeren", CASES),
    ("GET", "/logboek", LEDGER_READERS),
    ("GET", "/gebruikers", ICT),
    ("POST", "/gebruikers/toevoegen", ICT),
    ("GET", "/gebruikers/{user_id}", ICT),
    ("POST", "/gebruikers/{user_id}/uitschakelen", ICT),
    ("POST", "/gebruikers/{user_id}/inschakelen", ICT),
    ("POST", "/gebruikers/{user_id}/herstellink", ICT),
    ("POST", "/gebruikers/{user_id}/wachtwoord", ICT),
    ("POST", "/gebruikers/{user_id}/rol", ICT),
    ("POST", "/gebruikers/{user_id}/zones", ICT),
    ("POST", "/gebruikers/{user_id}/email", ICT),
    ("GET", "/wachtwoord-instellen", PUBLIC),
    ("POST", "/wachtwoord-instellen", PUBLIC),
]
PROTECTED = [(m, p, r) for m, p, r in ROUTES if r != PUBLIC]
POSTS = [(m, p, r) for m, p, r in ROUTES if m == "POST"]

# A form that the handler would accept: a wrong role must be refused before any of it counts.
FORMS: dict[str, dict[str, object]] = {
    "/uitloggen": {},
    "/deblokkeren": {"url": "https://www.youtube.com/watch?v=1", "requester": "Piet 3B", "reason": "les"},
    "/inloggen": {"gebruikersnaam": "ict1", "wachtwoord": PASSWORD},
    "/aanvragen/{request_id}/onderbouwen": {"ground": "lesstof", "sites": "youtube.com", "start": "2025-03-10T11:00",
                                            "end": "2025-03-11T11:00", "motivation": "les"},
    "/aanvragen/{request_id}/intrekken": {"reason": "niet nodig"},
    "/aanvragen/{request_id}/goedkeuren": {"sites": "youtube.com", "start": "2025-03-10T11:00",
                                           "end": "2025-03-11T11:00"},
    "/aanvragen/{request_id}/afwijzen": {"reason": "nee"},
    "/deblokkeringen/{grant_id}/intrekken": {"reason": "klaar"},
    "/deblokkeringen/{grant_id}/verlengen": {"end": "2025-03-11T12:00", "reason": "les loopt uit"},
    "/klas/openen": {"zone": "lokaal-101", "mode": "open", "categories": "sociale-media", "until_kind": "les"},
    "/klas/{opening_id}/beeindigen": {"reason": "klaar"},
    "/examen/starten": {"zone": "examenzaal", "until": "11:15", "sites": "toets.example", "reason": "wiskunde"},
    "/examen/{exam_id}/beeindigen": {"reason": "klaar"},
    "/uitsluitingen/toevoegen": {"subject": "10.30.4.5", "until": "2025-03-11T10:00", "reason": "art. 7"},
    "/uitsluitingen/{ban_id}/beeindigen": {"reason": "klaar"},
    "/uitsluitingen/downloadlimieten/{limit_id}/opheffen": {"reason": "klaar"},
    "/zaken/openen": {"reference": "INC-1", "article": "art. 7", "description": "d", "reason": "r",
                      "subject": "10.30.4.5", "start": "2025-03-03T08:00", "end": "2025-03-07T16:00"},
    "/zaken/{case_id}/inzien": {"share_1": "{}", "passphrase_1": "x"},
    "/zaken/{case_id}/exporteren": {"share_1": "{}", "passphrase_1": "x", "format": "csv"},
    "/zaken/{case_id}/sluiten": {"outcome": "klaar"},
    "/zaken/{case_id}/informeren": {"note": "brief"},
    "/gebruikers/toevoegen": {"username": "nieuw", "name": "Nieuw", "role": "docent", "zones": "lokaal-102"},
    "/gebruikers/{user_id}/uitschakelen": {"reason": "uit dienst"},
    "/gebruikers/{user_id}/inschakelen": {"reason": "terug"},
    "/gebruikers/{user_id}/herstellink": {"reason": "vergeten"},
    "/gebruikers/{user_id}/wachtwoord": {"wachtwoord": "een nieuw wachtwoord", "nogmaals": "een nieuw wachtwoord",
                                         "reason": "vergeten"},
    "/gebruikers/{user_id}/rol": {"role": "leidinggevende", "reason": "teamleider"},
    "/gebruikers/{user_id}/zones": {"zones": "lokaal-102", "reason": "rooster"},
    "/gebruikers/{user_id}/email": {"email": "kim@school.example"},
    "/wachtwoord-instellen": {"t": "x" * 43, "wachtwoord": "een nieuw wachtwoord", "nogmaals": "een nieuw wachtwoord"},
}


@pytest.fixture
def objects(console: Console) -> dict[str, int]:
    """One of everything the routes act on, made through the service layer as ICT."""
    with console.store.write() as s:
        ict = get_user(s, 1)
        assert ict is not None and ict.role == "ict"
        request_id = submit_request(s, url="https://www.youtube.com/watch?v=1", category="video",
                                    rule="klaslokaal-les", requester="Piet 3B", reason="les", now=NOW)
        endorsed = submit_request(s, url="https://youtube.com/", category="video", rule="r", requester="Kim",
                                  reason="les", now=NOW, user=ict, ground="lesstof", sites=["youtube.com"],
                                  start=NOW, end=NOW + dt.timedelta(days=1))
        from poortwachter.workflow import approve_request

        grant_id = approve_request(s, endorsed, user=ict, now=NOW)
        opening_id = open_classroom(s, user=ict, zone="lokaal-101", mode="open", categories=["video"],
                                    until=NOW + dt.timedelta(minutes=30), reason="les", now=NOW)
        exam_id = start_exam(s, user=ict, zone="examenzaal", sites=["toets.example"],
                             until=NOW + dt.timedelta(minutes=30), reason="toets", now=NOW)
        ban_id = exclude(s, user=ict, subject="10.30.9.9", until=NOW + dt.timedelta(hours=2),
                         reason="art. 7", now=NOW)
        from poortwachter.auditlog.cases import open_case
        from poortwachter.workflow import list_users

        directie = next(u for u in list_users(s) if u.role == "directie")
        docent = next(u for u in list_users(s) if u.role == "docent")
        case_id = open_case(s, user=directie, reference="INC-1", article="art. 7", description="d", reason="r",
                            subject="10.30.9.9", window_start=NOW - dt.timedelta(days=2),
                            window_end=NOW - dt.timedelta(days=1), now=NOW)
    # the sensor's own write transaction, as it imposes limits
    limit_id = impose_download_limit(console.store, address="10.30.9.8", zone="lokaal-101", max_bytes=50_000_000,
                                     until=NOW + dt.timedelta(hours=8), reason="overmatig downloaden", now=NOW)
    assert limit_id is not None
    return {"request_id": request_id, "grant_id": grant_id, "opening_id": opening_id, "exam_id": exam_id,
            "ban_id": ban_id, "case_id": case_id, "limit_id": limit_id, "user_id": docent.id}


def fill(path: str, objects: dict[str, int]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(objects[m.group(1)]), path)


def form_for(path: str) -> dict[str, object]:
    return dict(FORMS.get(path, {}))


# --- the table covers the application ------------------------------------------------------------

def test_route_table_lists_every_route_with_its_roles(console: Console) -> None:
    """A route added to the app without a row here (and so without these tests) fails this test."""
    found: dict[tuple[str, str], frozenset[str] | str] = {}
    for route in console.app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static"
            continue
        assert isinstance(route, Route)
        roles = getattr(route.endpoint, "roles", None)
        assert roles is not None, f"{route.path} is not wrapped by page()"
        path = re.sub(r"\{(\w+):int\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method == "HEAD":
                continue
            found[(method, path)] = PUBLIC if not roles else frozenset(roles)
    assert found == {(m, p): r for m, p, r in ROUTES}


# --- without a login ------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path", "roles"), PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_without_login_every_protected_route_is_refused(console: Console, objects: dict[str, int],
                                                        method: str, path: str, roles: object) -> None:
    client = console.client()
    url = fill(path, objects)
    before = state_revision(console.store)
    if method == "GET":
        response = client.get(url)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/inloggen?volgende=")
    else:
        token = csrf_of(client.get("/inloggen").text)   # a valid anonymous CSRF token: only the login is missing
        response = client.post(url, data={"csrf": token, **form_for(path)})
        assert response.status_code == 401
        assert "Log eerst in" in response.text
    assert state_revision(console.store) == before


def test_login_redirect_returns_to_the_page_asked_for(console: Console) -> None:
    client = console.client()
    response = client.get("/aanvragen?x=1")
    assert response.headers["location"] == "/inloggen?volgende=%2Faanvragen%3Fx%3D1"
    page = client.get(response.headers["location"])
    response = client.post("/inloggen", data={"csrf": csrf_of(page.text), "gebruikersnaam": "ict1",
                                              "wachtwoord": PASSWORD, "volgende": "/aanvragen?x=1"})
    assert response.headers["location"] == "/aanvragen?x=1"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"])
def test_login_never_redirects_off_site(console: Console, target: str) -> None:
    client = console.client()
    page = client.get("/inloggen")
    response = client.post("/inloggen", data={"csrf": csrf_of(page.text), "gebruikersnaam": "ict1",
                                              "wachtwoord": PASSWORD, "volgende": target})
    assert response.status_code == 303
    assert response.headers["location"] == "/"


# --- with a wrong role ----------------------------------------------------------------------------

WRONG = [(role, m, p) for m, p, r in PROTECTED for role in ROLES if role not in r]


@pytest.mark.parametrize(("role", "method", "path"), WRONG, ids=[f"{r}-{m} {p}" for r, m, p in WRONG])
def test_wrong_role_gets_403_and_changes_nothing(console: Console, objects: dict[str, int],
                                                 role: str, method: str, path: str) -> None:
    client = console.login(role)
    url = fill(path, objects)
    before = state_revision(console.store)
    if method == "GET":
        response = client.get(url)
    else:
        token = csrf_of(client.get("/").text)  # this session's valid token: only the role is wrong
        response = client.post(url, data={"csrf": token, **form_for(path)})
    assert response.status_code == 403
    assert "Geen toegang" in response.text and "Forbidden" in response.text
    assert state_revision(console.store) == before


RIGHT_GETS = [(role, p) for m, p, r in PROTECTED if m == "GET" for role in sorted(r)]


@pytest.mark.parametrize(("role", "path"), RIGHT_GETS, ids=[f"{r}-{p}" for r, p in RIGHT_GETS])
def test_right_role_sees_the_page(console: Console, objects: dict[str, int], role: str, path: str) -> None:
    client = console.login(role)
    response = client.get(fill(path, objects))
    assert response.status_code == 200
    assert 'lang="nl"' in response.text


def test_docent_cannot_act_on_another_teachers_classroom(console: Console, objects: dict[str, int]) -> None:
    """The role may use /klas, but the zone is not theirs: the service refuses (403), nothing stored."""
    client = console.login("docent")
    token = csrf_of(client.get("/klas").text)
    assert 'value="lokaal-102"' not in client.get("/klas").text   # not offered ...
    before = state_revision(console.store)
    response = client.post("/klas/openen", data={"csrf": token, "zone": "lokaal-102", "mode": "open",
                                                 "categories": "sociale-media", "until_kind": "les"})
    assert response.status_code == 403                            # ... and refused when forged
    with console.store.write() as s:
        ict = get_user(s, 1)
        assert ict is not None
        other = open_classroom(s, user=ict, zone="lokaal-102", mode="open", sites=["x.example"],
                               until=NOW + dt.timedelta(minutes=10), reason="t", now=NOW)
    before = state_revision(console.store)
    response = client.post(f"/klas/{other}/beeindigen", data={"csrf": token})
    assert response.status_code == 403
    assert state_revision(console.store) == before


# --- CSRF -----------------------------------------------------------------------------------------

ALLOWED_POSTS = [(m, p, sorted(r)[0] if r != PUBLIC else None) for m, p, r in POSTS]


@pytest.mark.parametrize("token", ["missing", "wrong", "other-session"])
@pytest.mark.parametrize(("method", "path", "role"), ALLOWED_POSTS, ids=[p for _, p, _ in ALLOWED_POSTS])
def test_post_without_the_right_csrf_token_is_refused(console: Console, objects: dict[str, int], method: str,
                                                      path: str, role: str | None, token: str) -> None:
    client = console.login(role) if role else console.client()
    client.get("/inloggen")   # an anonymous visitor has the double-submit cookie
    data = form_for(path)
    if token == "wrong":
        data["csrf"] = "x" * 43
    elif token == "other-session":
        other = console.login("ict")   # a valid token, but of somebody else's session
        data["csrf"] = csrf_of(other.get("/").text)
    before = state_revision(console.store)
    sessions_before = _sessions(console)
    response = client.post(fill(path, objects), data=data)
    assert response.status_code == 403
    assert "formulier is verlopen" in response.text
    assert state_revision(console.store) == before
    assert _sessions(console) == sessions_before   # no login, no logout either


def _sessions(console: Console) -> int:
    from sqlalchemy import func, select

    from poortwachter.store.models import SessionRow

    with console.store.read() as s:
        return s.scalar(select(func.count()).select_from(SessionRow)) or 0


def test_anonymous_csrf_needs_cookie_and_field_to_match(console: Console) -> None:
    client = console.client()
    page = client.get("/deblokkeren?url=https://youtube.com/")
    token = csrf_of(page.text)
    assert client.cookies.get("pw_csrf") == token
    form = {"url": "https://youtube.com/", "requester": "Piet", "reason": "les"}
    # the field without the cookie (another browser, or a cross-site form post)
    stranger = console.client()
    assert stranger.post("/deblokkeren", data={"csrf": token, **form}).status_code == 403
    # the cookie with a field of the attacker's choosing
    assert client.post("/deblokkeren", data={"csrf": "a" * 43, **form}).status_code == 403
    # an attacker-planted short cookie is replaced, never trusted
    weak = console.client()
    weak.cookies.set("pw_csrf", "abc", domain=HOST)
    assert weak.post("/deblokkeren", data={"csrf": "abc", **form}).status_code == 403
    with console.store.read() as s:
        assert list_requests(s) == []
    assert client.post("/deblokkeren", data={"csrf": token, **form}).status_code == 303


# --- sessions -------------------------------------------------------------------------------------

def test_login_starts_a_new_session_and_kills_any_token_from_before(console: Console) -> None:
    """Session fixation: neither a planted token nor the browser's earlier session survives login."""
    client = console.client()
    planted = "planted-token-" + "p" * 30
    client.cookies.set("pw_sessie", planted, domain=HOST)
    assert login(client, "docent1").status_code == 303
    first = client.cookies.get("pw_sessie")
    assert first and first != planted
    # the same browser logs in again (e.g. as someone else): the earlier, valid token dies
    csrf = csrf_of(client.get("/").text)   # logged in: the form carries the session's token
    assert client.post("/inloggen", data={"csrf": csrf, "gebruikersnaam": "directie1",
                                          "wachtwoord": PASSWORD}).status_code == 303
    second = client.cookies.get("pw_sessie")
    assert second and second not in (first, planted)
    with console.store.write() as s:
        assert load_session(s, planted, now=NOW) is None
        assert load_session(s, first, now=NOW) is None
        loaded = load_session(s, second, now=NOW)
        assert loaded is not None and loaded[0].username == "directie1"
    stale = console.client()
    stale.cookies.set("pw_sessie", first, domain=HOST)
    response = stale.get("/")
    assert response.status_code == 303
    # the browser is told to drop the dead token (and gets an anonymous CSRF cookie instead)
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith('pw_sessie=""') or (c.startswith("pw_sessie=") and "Max-Age=0" in c) for c in cookies)
    assert any(c.startswith("pw_csrf=") and "Max-Age=0" not in c for c in cookies)


def test_logout_ends_the_session_on_the_server(console: Console) -> None:
    client = console.login("ict")
    token = client.cookies.get("pw_sessie")
    assert token
    csrf = csrf_of(client.get("/").text)
    response = client.post("/uitloggen", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/inloggen?uitgelogd=1"
    assert 'pw_sessie=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    # a copy of the cookie kept elsewhere is worthless now
    replay = console.client()
    replay.cookies.set("pw_sessie", token, domain=HOST)
    assert replay.get("/aanvragen").status_code == 303
    assert replay.post("/aanvragen/1/afwijzen", data={"csrf": csrf, "reason": "x"}).status_code == 401
    with console.store.write() as s:
        assert load_session(s, token, now=NOW) is None


def test_session_expires_after_idle_time(console: Console) -> None:
    client = console.login("ict")
    assert client.get("/").status_code == 200
    console.clock.now = NOW + dt.timedelta(hours=9)
    assert client.get("/").status_code == 303


def test_wrong_passwords_slow_that_address_down_and_never_lock_the_account(console: Console) -> None:
    stranger = console.client(address="10.30.4.66")
    for _ in range(3):
        response = login(stranger, "ict1", "wrong password!")
        assert response.status_code == 401
        assert "Onjuiste gebruikersnaam of wachtwoord" in response.text
        assert "pw_sessie" not in stranger.cookies
    response = login(stranger, "ict1", PASSWORD)   # even the right password waits its turn
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert "Te veel mislukte pogingen; probeer het over 1 seconde opnieuw" in response.text
    assert "Too many failed attempts; try again in 1 second" in response.text
    assert 'name="gebruikersnaam"' in response.text                 # the form, to try again
    assert "pw_sessie" not in stranger.cookies
    # the real user, from their own machine, is not held up by the stranger's guesses
    assert login(console.client(address="10.20.1.5"), "ict1").status_code == 303
    # after the wait the stranger may try again; the next wait is longer
    console.clock.now = NOW + dt.timedelta(seconds=1)
    assert login(stranger, "ict1", "wrong password!").status_code == 401
    response = login(stranger, "ict1", "wrong password!")
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    console.clock.now = NOW + dt.timedelta(seconds=3)
    assert login(stranger, "ict1", PASSWORD).status_code == 303


def test_the_wait_says_nothing_about_the_username(console: Console) -> None:
    pages = []
    for n, username in enumerate(("ict1", "nobody")):
        client = console.client(address=f"10.30.4.{n + 1}")
        for _ in range(3):
            login(client, username, "wrong password!")
        response = login(client, username, "wrong password!")
        assert response.status_code == 429
        pages.append(re.sub(r'value="[^"]*"', "", response.text))
    assert pages[0] == pages[1]


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(console: Console) -> None:
    a = login(console.client(), "nobody", "wrong password!")
    b = login(console.client(), "ict1", "wrong password!")
    assert a.status_code == b.status_code == 401
    strip = lambda html: re.sub(r'value="[^"]*"', "", html)  # noqa: E731
    assert strip(a.text) == strip(b.text)


# --- cookies and headers --------------------------------------------------------------------------

def test_session_cookie_attributes_over_http(console: Console) -> None:
    client = console.client()
    page = client.get("/inloggen")
    csrf_cookie = page.headers["set-cookie"]
    assert "HttpOnly" in csrf_cookie and "SameSite=strict" in csrf_cookie and "Path=/" in csrf_cookie
    response = client.post("/inloggen", data={"csrf": csrf_of(page.text), "gebruikersnaam": "ict1",
                                              "wachtwoord": PASSWORD})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("pw_sessie=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie and "Max-Age" not in cookie and "expires" not in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 40 and token not in response.text


def test_session_cookie_over_https_is_secure_and_host_only(console: Console) -> None:
    client = console.client(https=True)
    page = client.get("/inloggen")
    assert page.headers["set-cookie"].startswith("__Host-pw_csrf=")
    response = client.post("/inloggen", data={"csrf": csrf_of(page.text), "gebruikersnaam": "ict1",
                                              "wachtwoord": PASSWORD})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-pw_sessie=") and "Secure" in cookie and "Domain" not in cookie
    assert client.get("/").status_code == 200
    assert "max-age=" in client.get("/").headers["strict-transport-security"]


@pytest.mark.parametrize("path", ["/inloggen", "/deblokkeren", "/static/console.css", "/aanvraag/999?t=x", "/nergens"])
def test_security_headers_on_every_response(console: Console, path: str) -> None:
    response = console.client().get(path)
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    if not path.startswith("/static/"):
        assert response.headers["cache-control"] == "no-store"
    assert "server" not in response.headers or "uvicorn" not in response.headers["server"]


def test_pages_have_no_inline_script_or_style(console: Console, objects: dict[str, int]) -> None:
    """CSP default-src 'self' blocks inline code; a page relying on it would silently break."""
    pages = [("ict", fill(p, objects)) for m, p, r in ROUTES if m == "GET" and (r == PUBLIC or "ict" in r)]
    client = console.login("ict")
    for _, path in pages:
        html = client.get(path).text
        assert "<script" not in html and "<style" not in html and " style=" not in html, path
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", html), path   # no event-handler attributes


# --- escaping -------------------------------------------------------------------------------------

def test_user_input_is_escaped(console: Console) -> None:
    client = console.client()
    page = client.get("/deblokkeren?url=https://youtube.com/%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>alert(1)" not in page.text
    response = client.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": "https://youtube.com/",
                                                 "requester": "<img src=x onerror=alert(1)>", "reason": "les"})
    assert response.status_code == 303
    manager = console.login("leidinggevende")
    html = manager.get("/aanvragen").text
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# --- status links ----------------------------------------------------------------------------------

def test_status_link_needs_the_token_of_that_request(console: Console) -> None:
    client = console.client()
    page = client.get("/deblokkeren")
    token = csrf_of(page.text)
    links = []
    for url in ("https://youtube.com/a", "https://youtube.com/b"):
        response = client.post("/deblokkeren", data={"csrf": token, "url": url, "requester": "P", "reason": "r"})
        links.append(response.headers["location"])
    (first, t1), (second, t2) = (re.match(r"/aanvraag/(\d+)\?t=([^&]+)", link).groups() for link in links)  # type: ignore[union-attr]
    anonymous = console.client()
    assert anonymous.get(f"/aanvraag/{first}?t={t1}").status_code == 200
    assert anonymous.get(f"/aanvraag/{first}").status_code == 404
    assert anonymous.get(f"/aanvraag/{first}?t={t2}").status_code == 404   # another request's token
    assert anonymous.get(f"/aanvraag/{first}?t={t1[:-1]}").status_code == 404
    assert len(t1) >= 20


# --- failures -------------------------------------------------------------------------------------

def test_unknown_page_and_method_get_bilingual_pages(console: Console) -> None:
    client = console.client()
    response = client.get("/nergens")
    assert response.status_code == 404 and "Deze pagina bestaat niet" in response.text
    assert "This page does not exist" in response.text and 'lang="nl"' in response.text
    response = client.delete("/deblokkeren")
    assert response.status_code == 405 and "Dat kan op deze pagina niet" in response.text


def test_database_failure_gives_503_and_logs_no_personal_data(console: Console, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.exc import OperationalError

    from poortwachter.console import public

    def down(*_args: object, **kwargs: object) -> int:
        # a driver error carries the statement's parameters in its message
        raise OperationalError("INSERT INTO unblock_requests ...", kwargs, Exception("connection refused"))

    monkeypatch.setattr(public, "submit_request", down)
    client = console.client()
    page = client.get("/deblokkeren")
    response = client.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": "https://youtube.com/",
                                                 "requester": "Piet Geheim 3B", "reason": "les"})
    assert response.status_code == 503
    assert "database is even niet bereikbaar" in response.text
    assert "Piet Geheim" not in response.text
    server_lines = [r.getMessage() for r in caplog.records if r.name.startswith(("poortwachter", "uvicorn", "starlette"))]
    assert any("OperationalError" in line for line in server_lines)
    assert not any("Piet" in line or "youtube" in line for line in server_lines)


def test_big_bodies_are_refused_unread(console: Console) -> None:
    client = console.client()
    token = csrf_of(client.get("/deblokkeren").text)
    response = client.post("/deblokkeren", data={"csrf": token, "url": "https://youtube.com/", "requester": "P",
                                                 "reason": "x" * 100_000})
    assert response.status_code == 413
    with console.store.read() as s:
        assert list_requests(s) == []
