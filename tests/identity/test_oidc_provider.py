"""The OpenID provider that stands in for Microsoft Entra ID works as the console and the captive
portal will use it: discovery and JWKS, the authorization code flow with PKCE, an ID token whose
signature Authlib verifies against the JWKS and whose `groups` claim lists the user's groups, a
wrong password refused, and a sign-in through the provider's pages, without a browser and in
headless Chromium (Debian's /usr/bin/chromium through Playwright)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from .oidc_provider import (
    AuthorizationError,
    Client,
    OIDCProvider,
    OIDCSetupError,
    SignInFailed,
    User,
    WrongPassword,
    authorization_code_login,
    authorization_url,
    exchange_code,
    follow_sign_in,
    free_port,
    http_client,
    pkce_pair,
    sign_in,
    start_oidc_provider,
    verify_id_token,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-proxy-server"]

ICT = "3f2a9c1e-7b4d-4e21-9a57-0c8e6d1b2f40"  # Entra ID names groups by object id
DOCENTEN = "b81d44c0-2e6f-4c8a-8f3b-5d7e9a0c1f62"
JAN = User("j.devries@school.example", "Correct-Horse-7", groups=(ICT, DOCENTEN), name="Jan de Vries",
           email="j.devries@school.example", claims={"oid": "0d9c8b7a-1111-2222-3333-444455556666"})
PIM = User("p.jansen@school.example", "Leerling-Wachtwoord-3", name="Pim Jansen")  # in no group
NOWHERE = "http://127.0.0.1:9/cb"  # a redirect URI the helper never requests


class Application:
    """A minimal web application on 127.0.0.1 that signs its users in with the provider:
    /login/<client_id> starts the code flow with PKCE, /auth/callback exchanges the code and checks
    the ID token (Authlib), /me shows the signed-in user as JSON (401 without a session)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.callback = f"{self.url}/auth/callback"
        self.provider: OIDCProvider | None = None
        self.pending: dict[str, tuple[Client, str, str]] = {}
        self.sessions: dict[str, dict[str, object]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"content-type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                assert app.provider is not None
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path.startswith("/login/"):
                    client = app.provider.client(parts.path.removeprefix("/login/"))
                    verifier, challenge = pkce_pair()
                    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
                    app.pending[state] = (client, verifier, nonce)
                    url = authorization_url(app.provider, client, scope="openid profile email",
                                            redirect_uri=app.callback, state=state, nonce=nonce,
                                            code_challenge=challenge)
                    return self.reply(302, {}, {"location": url})
                if parts.path == "/auth/callback":
                    if "error" in query or query.get("state") not in app.pending:
                        return self.reply(403, {"error": query.get("error", "bad state")})
                    client, verifier, nonce = app.pending.pop(query["state"])
                    tokens = exchange_code(app.provider, client, query["code"], app.callback, verifier).json()
                    claims, _ = verify_id_token(app.provider, tokens["id_token"], client.client_id, nonce,
                                                tokens["access_token"])
                    sid = secrets.token_urlsafe(16)
                    app.sessions[sid] = {"client": client.client_id, "user": claims["preferred_username"],
                                         "groups": claims.get("groups")}
                    return self.reply(302, {}, {"location": "/me", "set-cookie": f"app={sid}; HttpOnly; Path=/"})
                if parts.path == "/me":
                    cookie = self.headers.get("cookie", "")
                    sid = next((c.split("=", 1)[1] for c in cookie.split("; ") if c.startswith("app=")), "")
                    if sid not in app.sessions:
                        return self.reply(401, {"error": "not signed in"})
                    return self.reply(200, app.sessions[sid])
                return self.reply(404, {"error": "not found"})

        return Handler


@pytest.fixture(scope="module")
def app() -> Iterator[Application]:
    application = Application()
    yield application
    application.close()


@pytest.fixture(scope="module")
def op(app: Application, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    clients = [
        Client("poortwachter-console", (app.callback, NOWHERE), client_secret="console-secret-0123456789",
               skip_consent=True),  # confidential, admin consent given: no consent page
        Client("captive-portal", (app.callback, NOWHERE)),  # public: PKCE alone, with a consent page
    ]
    try:
        with start_oidc_provider([JAN, PIM], clients, tmp_path_factory.mktemp("oidc")) as provider:
            app.provider = provider
            yield provider
    except OIDCSetupError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_discovery_and_jwks(op: OIDCProvider) -> None:
    meta = op.metadata
    assert meta["issuer"] == op.issuer == f"http://127.0.0.1:{op.port}"
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                     "end_session_endpoint"):
        assert meta[endpoint].startswith(op.issuer + "/"), endpoint
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert {"openid", "profile", "email", "groups"} <= set(meta["scopes_supported"])
    assert "groups" in meta["claims_supported"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    keys = op.jwks()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]
    assert "d" not in keys[0]  # public part only


def test_code_pkce_login_yields_verified_groups(op: OIDCProvider) -> None:
    client = op.client("poortwachter-console")
    login = authorization_code_login(op, client, JAN.username, JAN.password, redirect_uri=NOWHERE)
    assert login.id_token_header["alg"] == "RS256"
    assert login.id_token_header["kid"] in {k["kid"] for k in op.jwks()["keys"]}
    claims = login.claims
    assert claims["iss"] == op.issuer and claims["aud"] == client.client_id
    assert claims["sub"] == JAN.username and claims["preferred_username"] == JAN.username
    assert claims["groups"] == [ICT, DOCENTEN]
    assert claims["name"] == "Jan de Vries" and claims["email"] == JAN.email
    assert claims["oid"] == JAN.claims["oid"]
    assert login.userinfo["groups"] == [ICT, DOCENTEN] and login.userinfo["sub"] == claims["sub"]
    assert set(login.tokens["scope"].split()) == {"openid", "profile", "email"}

    # And Authlib, given the JWKS as an application fetches it, verifies it again on its own.
    again, _ = verify_id_token(op, login.id_token, client.client_id, claims["nonce"], jwks=op.jwks())
    assert again["groups"] == [ICT, DOCENTEN]

    # A user in no group gets an empty list.
    pim = authorization_code_login(op, client, PIM.username, PIM.password, redirect_uri=NOWHERE)
    assert pim.claims["groups"] == [] and pim.claims["sub"] == PIM.username


def test_groups_scope_alone_and_no_groups_without_it(op: OIDCProvider) -> None:
    client = op.client("poortwachter-console")
    only = authorization_code_login(op, client, JAN.username, JAN.password, scope="openid groups",
                                    redirect_uri=NOWHERE)
    assert only.claims["groups"] == [ICT, DOCENTEN]
    assert "email" not in only.claims and "name" not in only.claims
    bare = authorization_code_login(op, client, JAN.username, JAN.password, scope="openid", redirect_uri=NOWHERE)
    assert "groups" not in bare.claims and "groups" not in bare.userinfo


def test_id_token_signature_is_checked(op: OIDCProvider) -> None:
    client = op.client("poortwachter-console")
    login = authorization_code_login(op, client, PIM.username, PIM.password, redirect_uri=NOWHERE)
    header, payload, signature = login.id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = [ICT]  # a pupil making himself ICT
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(JoseError):
        verify_id_token(op, f"{header}.{forged}.{signature}", client.client_id, claims["nonce"])
    other = RSAKey.generate_key(2048, parameters={"kid": login.id_token_header["kid"], "alg": "RS256"})
    with pytest.raises(JoseError):  # a key set with another key under the same kid
        verify_id_token(op, login.id_token, client.client_id, claims["nonce"],
                        jwks={"keys": [other.as_dict(private=False)]})
    with pytest.raises(JoseError):  # a token for another client
        verify_id_token(op, login.id_token, "captive-portal", claims["nonce"])


def test_wrong_password_fails(op: OIDCProvider) -> None:
    client = op.client("poortwachter-console")
    with pytest.raises(WrongPassword) as refused:
        authorization_code_login(op, client, JAN.username, "Correct-Horse-8", redirect_uri=NOWHERE)
    assert refused.value.response is not None and refused.value.response.status_code == 401
    assert "Wrong username or password" in refused.value.response.text
    with pytest.raises(WrongPassword):
        authorization_code_login(op, client, "nobody@school.example", JAN.password, redirect_uri=NOWHERE)
    with pytest.raises(WrongPassword):  # one user's password is not another's
        authorization_code_login(op, client, PIM.username, JAN.password, redirect_uri=NOWHERE)


def test_pkce_is_required_and_checked(op: OIDCProvider) -> None:
    client = op.client("poortwachter-console")
    with http_client() as http:
        url = authorization_url(op, client, scope="openid", redirect_uri=NOWHERE, state="s", nonce="n",
                                code_challenge=None)
        with pytest.raises(AuthorizationError) as missing:
            follow_sign_in(http, url, JAN.username, JAN.password, stop_at=NOWHERE, accept_consent=True,
                           max_steps=10, deadline=float("inf"))
        assert missing.value.error == "invalid_request" and "PKCE" in missing.value.description

        verifier, challenge = pkce_pair()
        url = authorization_url(op, client, scope="openid", redirect_uri=NOWHERE, state="s", nonce="n",
                                code_challenge=challenge)
        callback, _ = follow_sign_in(http, url, JAN.username, JAN.password, stop_at=NOWHERE, accept_consent=True,
                                     max_steps=10, deadline=float("inf"))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    wrong = exchange_code(op, client, code, NOWHERE, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert exchange_code(op, client, code, NOWHERE, verifier).status_code == 200
    again = exchange_code(op, client, code, NOWHERE, verifier)  # a code is good once
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_public_client_consent_and_denial(op: OIDCProvider) -> None:
    portal = op.client("captive-portal")
    login = authorization_code_login(op, portal, JAN.username, JAN.password, redirect_uri=NOWHERE)
    assert login.claims["aud"] == "captive-portal" and login.claims["groups"] == [ICT, DOCENTEN]
    with pytest.raises(AuthorizationError) as denied:
        authorization_code_login(op, portal, PIM.username, PIM.password, redirect_uri=NOWHERE,
                                 accept_consent=False)
    assert denied.value.error == "access_denied"


def test_sign_in_without_browser_through_an_application(op: OIDCProvider, app: Application) -> None:
    with http_client() as http:
        assert http.get(f"{app.url}/me").status_code == 401
        page = sign_in(http, f"{app.url}/login/poortwachter-console", JAN.username, JAN.password)
        assert str(page.url) == f"{app.url}/me" and page.status_code == 200
        assert page.json() == {"client": "poortwachter-console", "user": JAN.username, "groups": [ICT, DOCENTEN]}
        assert http.get(f"{app.url}/me").json()["user"] == JAN.username  # the application's session cookie

        # Single sign-on: the provider's session in the same cookie jar, so no password is asked
        # again (the wrong one given here is never typed), only the portal's consent page.
        portal = sign_in(http, f"{app.url}/login/captive-portal", JAN.username, "not asked")
        assert portal.json()["client"] == "captive-portal"

    with http_client() as http, pytest.raises(SignInFailed):
        sign_in(http, f"{app.url}/login/poortwachter-console", JAN.username, "wrong")


def test_a_second_provider_from_the_factory(oidc_provider_factory: object) -> None:
    redirect = "http://127.0.0.1:9/portal"
    provider = oidc_provider_factory(users=[User("docent@school.example", "pw-1", groups=("g-docent",))],  # type: ignore[operator]
                                     clients=[Client("portal", (redirect,), skip_consent=True)])
    login = authorization_code_login(provider, provider.client("portal"), "DOCENT@school.example", "pw-1")
    assert login.claims["groups"] == ["g-docent"] and login.claims["aud"] == "portal"
    assert provider.proc is not None and provider.proc.poll() is None


def test_chromium_signs_in_through_the_provider_pages(op: OIDCProvider, app: Application) -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium; `make test` does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[test]')")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    outside: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, env=env,
                                     timeout=60_000)
        try:
            context = browser.new_context(locale="nl-NL")
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on("request", lambda r: r.url.startswith(("http://127.0.0.1:", "data:")) or outside.append(r.url))

            page.goto(f"{app.url}/login/captive-portal")
            assert page.url.startswith(op.issuer + "/interaction/")
            page.fill("#username", JAN.username)
            page.fill("#password", "Correct-Horse-8")
            page.click("#submit")
            assert page.locator("#error").inner_text() == "Wrong username or password."
            assert page.input_value("#username") == JAN.username

            page.fill("#password", JAN.password)
            page.click("#submit")
            page.wait_for_selector("#consent")
            assert page.locator("#client").inner_text() == "captive-portal"
            assert {"profile", "email"} <= set(page.locator("#scopes li").all_inner_texts())
            page.click("#accept")
            page.wait_for_url(f"{app.url}/me")
            body = json.loads(page.locator("body").inner_text())
            assert body == {"client": "captive-portal", "user": JAN.username, "groups": [ICT, DOCENTEN]}
        finally:
            browser.close()
    assert outside == []  # nothing but loopback
