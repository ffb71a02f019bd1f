"""A real OpenID provider on loopback for the tests, standing in for Microsoft Entra ID.

`oidc/server.mjs` runs the npm package `oidc-provider` (pinned in oidc/package.json and
oidc/package-lock.json) under Node.js; this module installs it on first use (`npm ci`, skipped
when node_modules already holds what the lock file names), starts it on a free port of 127.0.0.1
with the users, groups and clients a test gives, waits (with a deadline) until its discovery
document answers, and stops it afterwards.

It also signs in without a browser, as a person would with the provider's own pages:

* `sign_in(http, start_url, username, password)` is the user agent: it opens the application's
  sign-in URL, follows the redirects to the provider, fills in the login form (and accepts the
  consent page), and follows the redirects back to the application until a page that is not a
  redirect; the application's session cookies are then in `http`.
* `authorization_code_login(provider, client, username, password)` is an application as well:
  an authorization request with PKCE (S256), state and nonce, the code exchanged at the token
  endpoint, the ID token verified against the JWKS with Authlib, and userinfo fetched.

    from tests.identity.oidc_provider import Client, User, authorization_code_login

    def test_staff(oidc_provider_factory):
        op = oidc_provider_factory(
            users=[User("j.devries@school.example", "geheim", groups=("g-ict",))],
            clients=[Client("console", ("http://127.0.0.1:8090/auth/callback",), "s3cret")])
        login = authorization_code_login(op, op.clients[0], "j.devries@school.example", "geheim")
        assert login.claims["groups"] == ["g-ict"]

The scope `profile` releases `groups` (as Entra ID puts groups in the ID token without an extra
scope), and so does the scope `groups` on its own; granted claims are in the ID token and at
userinfo alike.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from ..processes import stop

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
SERVER = OIDC_DIR / "server.mjs"
MIN_NODE = (20, 19)  # oidc-provider 9 (it warns below Node 22 but runs on 20.19 and later)
NPM_TIMEOUT = 300.0
START_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0


class OIDCSetupError(RuntimeError):
    """Node.js or npm missing or too old, `npm ci` failed, or the provider did not start."""


class SignInFailed(AssertionError):
    """The sign-in did not get through the provider's pages; `response` is the last page."""

    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


class WrongPassword(SignInFailed):
    """The provider's login page refused the username and password."""


class AuthorizationError(SignInFailed):
    """The provider sent the user agent back with `error=` (access_denied, invalid_request ...)."""

    def __init__(self, error: str, description: str, url: str) -> None:
        super().__init__(f"authorization error {error}: {description}")
        self.error = error
        self.description = description
        self.url = url


# --- what the test configures ------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    """A school account: `groups` ends up in the `groups` claim (Entra ID: the group object ids)."""

    username: str
    password: str
    groups: tuple[str, ...] = ()
    name: str | None = None
    email: str | None = None
    sub: str | None = None  # default: the username
    claims: Mapping[str, Any] = field(default_factory=dict)  # more claims, released with `profile`

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.username, "password": self.password, "groups": list(self.groups)}
        for key in ("name", "email", "sub"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.claims:
            out["claims"] = dict(self.claims)
        return out


@dataclass(frozen=True)
class Client:
    """A registered application. Without a secret it is a public client (PKCE alone); with one it
    authenticates at the token endpoint with client_secret_basic (unless `metadata` says otherwise).
    `skip_consent`: consent was given beforehand (an Entra ID admin consent), no consent page."""

    client_id: str
    redirect_uris: tuple[str, ...]
    client_secret: str | None = None
    skip_consent: bool = False
    post_logout_redirect_uris: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)  # more oidc-provider client metadata

    @property
    def auth_method(self) -> str:
        default = "none" if self.client_secret is None else "client_secret_basic"
        return str(self.metadata.get("token_endpoint_auth_method", default))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"client_id": self.client_id, "redirect_uris": list(self.redirect_uris),
                               **dict(self.metadata)}
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        if self.post_logout_redirect_uris:
            out["post_logout_redirect_uris"] = list(self.post_logout_redirect_uris)
        if self.skip_consent:
            out["skip_consent"] = True
        return out


# --- node and npm -----------------------------------------------------------------------------

def _node_version(node: str) -> tuple[int, ...]:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    if not match:
        raise OIDCSetupError(f"cannot read the Node.js version from {out!r}")
    return int(match[1]), int(match[2])


def _node_modules_complete() -> bool:
    """Whether node_modules holds every package of package-lock.json at its locked version."""
    lock = json.loads((OIDC_DIR / "package-lock.json").read_text())
    for path, entry in lock["packages"].items():
        if not path or entry.get("link") or entry.get("optional") and entry.get("os"):
            continue
        manifest = OIDC_DIR / path / "package.json"
        try:
            if json.loads(manifest.read_text()).get("version") != entry.get("version"):
                return False
        except (OSError, ValueError):
            return False
    return True


def ensure_node_modules(timeout: float = NPM_TIMEOUT) -> None:
    """`npm ci` in tests/identity/oidc/ unless node_modules already matches the lock file (then no
    npm and no network at all). Raises OIDCSetupError with what to do when something is missing."""
    node = shutil.which("node")
    if node is None:
        raise OIDCSetupError("Node.js not found: the OpenID provider of the identity tests runs on Node.js "
                             f">= {MIN_NODE[0]}.{MIN_NODE[1]} (with npm)")
    version = _node_version(node)
    if version < MIN_NODE:
        raise OIDCSetupError(f"Node.js {'.'.join(map(str, version))} is too old for oidc-provider 9: "
                             f"needs >= {MIN_NODE[0]}.{MIN_NODE[1]}")
    OIDC_DIR.joinpath(".install.lock").touch()
    with open(OIDC_DIR / ".install.lock") as lock:  # one `npm ci` at a time (parallel test runs)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _node_modules_complete():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise OIDCSetupError(f"npm not found: needed once to install {OIDC_DIR / 'package-lock.json'} "
                                 "(npm ci) for the identity tests' OpenID provider")
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
               "npm_config_audit": "false"}
        try:
            done = subprocess.run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=OIDC_DIR,
                                  env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OIDCSetupError(f"npm ci in {OIDC_DIR} did not finish within {timeout:.0f} s") from exc
        if done.returncode != 0 or not _node_modules_complete():
            raise OIDCSetupError(f"npm ci in {OIDC_DIR} failed (exit {done.returncode}):\n"
                                 f"{done.stdout[-2000:]}{done.stderr[-4000:]}")


# --- the provider process ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_client(**kwargs: Any) -> httpx.Client:
    """An httpx client for loopback: no proxy from the environment, no automatic redirects."""
    kwargs.setdefault("timeout", HTTP_TIMEOUT)
    return httpx.Client(trust_env=False, follow_redirects=False, **kwargs)


class OIDCProvider:
    """One oidc-provider process on 127.0.0.1; `issuer` is http://127.0.0.1:<port>."""

    def __init__(self, users: Sequence[User], clients: Sequence[Client], workdir: Path,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.users = list(users)
        self.clients = list(clients)
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.config_path = workdir / "oidc-provider.json"
        self.log_path = workdir / "oidc-provider.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._metadata: dict[str, Any] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def client(self, client_id: str) -> Client:
        return next(c for c in self.clients if c.client_id == client_id)

    def start(self) -> OIDCProvider:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps({"users": [u.to_json() for u in self.users],
                                                "clients": [c.to_json() for c in self.clients]}, indent=2))
        for _attempt in range(3):  # a free port can be taken between probing and listening
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    ["node", str(SERVER), "--port", str(self.port), "--config", str(self.config_path)],
                    cwd=OIDC_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            if self.proc.returncode != 3:  # 3: the port was taken; anything else is final
                break
        self.stop()
        raise OIDCSetupError(f"the OpenID provider did not start within {self.start_timeout:.0f} s:\n{self.log()}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        with http_client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    response = http.get(self.discovery_url)
                    if response.status_code == 200 and response.json().get("issuer") == self.issuer:
                        self._metadata = response.json()
                        return True
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)  # polling the discovery document until the provider listens
        stop(self.proc)
        return False

    def stop(self) -> None:
        stop(self.proc)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    @property
    def metadata(self) -> dict[str, Any]:
        """The discovery document (as read when the provider came up)."""
        assert self._metadata is not None, "provider not started"
        return self._metadata

    def jwks(self) -> dict[str, Any]:
        with http_client() as http:
            response = http.get(self.metadata["jwks_uri"])
            response.raise_for_status()
            return dict(response.json())

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def start_oidc_provider(users: Sequence[User], clients: Sequence[Client], workdir: Path,
                        start_timeout: float = START_TIMEOUT) -> Iterator[OIDCProvider]:
    """Install (first use), start, and at the end stop a provider; usable in fixtures of any scope.
    Raises OIDCSetupError when Node.js/npm are missing or the provider does not come up."""
    ensure_node_modules()
    provider = OIDCProvider(users, clients, workdir, start_timeout).start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def oidc_provider_factory(tmp_path: Path) -> Iterator[Callable[..., OIDCProvider]]:
    """`oidc_provider_factory(users=[...], clients=[...])` starts a provider for this test (stopped at
    its end); a test fails with a clear message when Node.js or npm are missing."""
    started: list[OIDCProvider] = []

    def start(users: Sequence[User], clients: Sequence[Client], **kwargs: Any) -> OIDCProvider:
        try:
            ensure_node_modules()
            provider = OIDCProvider(users, clients, tmp_path / f"oidc-{len(started)}", **kwargs)
            started.append(provider)
            return provider.start()
        except OIDCSetupError as exc:
            pytest.fail(str(exc), pytrace=False)

    yield start
    for provider in started:
        provider.stop()


# --- the user agent without a browser ---------------------------------------------------------

class _Forms(HTMLParser):
    """The forms of a page: id, method, action and the named inputs with their values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"id": a.get("id", ""), "method": a.get("method", "get").lower(),
                               "action": a.get("action", ""), "inputs": {}})
        elif (tag == "input" or tag == "button" and a.get("type", "submit") == "submit") and self.forms \
                and a.get("name"):
            self.forms[-1]["inputs"].setdefault(a["name"], a.get("value", ""))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _forms(response: httpx.Response) -> tuple[dict[str, dict[str, Any]], str]:
    parser = _Forms()
    parser.feed(response.text)
    return {f["id"]: f for f in parser.forms}, " ".join(" ".join(parser.text).split())


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parts = urlsplit(str(url))
    return parts.scheme, parts.hostname or "", parts.port


def follow_sign_in(http: httpx.Client, url: str, username: str, password: str, *, stop_at: str | None,
           accept_consent: bool, max_steps: int, deadline: float) -> tuple[str, httpx.Response | None]:
    """Follow redirects and the provider's pages from `url`, filling in the login form and
    answering the consent page. Returns (url, None) when a redirect points at `stop_at` (that URL
    is not requested), else (final url, final response). `deadline` is a time.monotonic() value."""
    response = http.get(url)
    submitted_login = False
    for _step in range(max_steps):
        if time.monotonic() > deadline:
            raise SignInFailed(f"sign-in did not finish in time, at {response.url}", response)
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            query = parse_qs(urlsplit(target).query)
            if "error" in query and "iss" in query and "code" not in query:  # from the provider (RFC 9207)
                raise AuthorizationError(query["error"][0], query.get("error_description", [""])[0], target)
            if stop_at is not None and target.split("?", 1)[0] == stop_at.split("?", 1)[0]:
                return target, None
            response = http.get(target)
            continue
        forms, text = _forms(response)
        if "login" in forms and "username" in forms["login"]["inputs"]:
            if submitted_login and response.status_code == 401:
                raise WrongPassword(f"the provider refused {username!r}: {text}", response)
            form = forms["login"]
            data = {**form["inputs"], "username": username, "password": password}
            response = http.post(urljoin(str(response.url), form["action"]), data=data)
            submitted_login = True
            continue
        if "consent" in forms:
            if accept_consent:
                form = forms["consent"]
                response = http.post(urljoin(str(response.url), form["action"]), data=form["inputs"])
            else:
                abort = next(f for f in forms.values() if f["action"].endswith("/abort"))
                response = http.post(urljoin(str(response.url), abort["action"]), data=abort["inputs"])
            continue
        return str(response.url), response
    raise SignInFailed(f"sign-in took more than {max_steps} steps, at {response.url}", response)


def sign_in(http: httpx.Client, start_url: str, username: str, password: str, *, accept_consent: bool = True,
            max_steps: int = 30, timeout: float = 30.0) -> httpx.Response:
    """Sign in to an application as its user would, without a browser: GET `start_url` (the
    application's sign-in link, or any page that sends a client without a session to sign in),
    through the provider's login and consent pages, and back to the application. Returns the first
    response that is not a redirect and not one of the provider's pages; the application's cookies
    are then in `http` (made with `http_client()`, or any httpx client with follow_redirects=False).
    Raises WrongPassword, AuthorizationError (e.g. access_denied) or SignInFailed."""
    _url, response = follow_sign_in(http, start_url, username, password, stop_at=None, accept_consent=accept_consent,
                            max_steps=max_steps, deadline=time.monotonic() + timeout)
    assert response is not None
    return response


# --- an application of its own: code flow with PKCE -------------------------------------------

def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 says."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Login:
    tokens: dict[str, Any]  # the token endpoint's answer: access_token, id_token, token_type, scope ...
    claims: dict[str, Any]  # the ID token's claims, verified (signature against the JWKS, iss, aud, nonce ...)
    userinfo: dict[str, Any]  # the userinfo endpoint's answer for the access token
    id_token_header: dict[str, Any]

    @property
    def id_token(self) -> str:
        return str(self.tokens["id_token"])


def verify_id_token(provider: OIDCProvider, id_token: str, client_id: str, nonce: str | None,
                    access_token: str | None = None, jwks: Mapping[str, Any] | None = None,
                    leeway: int = 120) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify an ID token with Authlib as its OpenID client does (authlib's parse_id_token): the
    signature against the provider's JWKS with the algorithms of the discovery document, then iss,
    aud, exp, iat, nonce and at_hash. Returns (claims, header); raises joserfc/authlib errors."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.jwk import KeySet
    from joserfc.jws import JWSRegistry

    key_set = KeySet.import_key_set(dict(jwks) if jwks is not None else provider.jwks())
    algorithms = provider.metadata.get("id_token_signing_alg_values_supported")
    token = jwt.decode(id_token, key=key_set, registry=JWSRegistry(algorithms=algorithms, strict_check_header=False))
    params: dict[str, Any] = {"nonce": nonce, "client_id": client_id}
    if access_token is not None:
        params["access_token"] = access_token
    claims = CodeIDToken(token.claims, token.header, {"iss": {"essential": True, "values": [provider.issuer]}},
                         params)
    claims.validate(leeway=leeway)
    return dict(claims), dict(token.header)


def authorization_url(provider: OIDCProvider, client: Client, *, scope: str, redirect_uri: str, state: str,
                      nonce: str, code_challenge: str | None, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": redirect_uri,
              "scope": scope, "state": state, "nonce": nonce, **extra}
    if code_challenge is not None:
        params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    return f"{provider.metadata['authorization_endpoint']}?{urlencode(params)}"


def exchange_code(provider: OIDCProvider, client: Client, code: str, redirect_uri: str,
                  code_verifier: str | None) -> httpx.Response:
    """The token request (authorization_code grant) with the client's authentication method."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        data["code_verifier"] = code_verifier
    auth = None
    if client.auth_method == "client_secret_basic":
        auth = httpx.BasicAuth(client.client_id, client.client_secret or "")
    elif client.auth_method == "client_secret_post":
        data |= {"client_id": client.client_id, "client_secret": client.client_secret or ""}
    else:
        data["client_id"] = client.client_id
    with http_client() as http:
        return http.post(provider.metadata["token_endpoint"], data=data, auth=auth)


def authorization_code_login(provider: OIDCProvider, client: Client, username: str, password: str, *,
                             scope: str = "openid profile email", redirect_uri: str | None = None,
                             http: httpx.Client | None = None, accept_consent: bool = True,
                             timeout: float = 30.0, **extra: str) -> Login:
    """A whole sign-in as an application (the `client`) and its user: authorization request with
    PKCE (S256), state and nonce; the provider's pages filled in; the code from the redirect (the
    redirect URI itself is not requested, so nothing needs to listen there); the code exchanged;
    the ID token verified with Authlib; userinfo fetched. `http` keeps the provider's session
    cookie between logins (single sign-on); `extra` goes into the authorization request
    (prompt, login_hint, max_age ...). Raises WrongPassword, AuthorizationError or SignInFailed."""
    redirect_uri = redirect_uri or client.redirect_uris[0]
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    url = authorization_url(provider, client, scope=scope, redirect_uri=redirect_uri, state=state, nonce=nonce,
                            code_challenge=challenge, **extra)
    own = http is None
    agent = http or http_client()
    try:
        callback, _ = follow_sign_in(agent, url, username, password, stop_at=redirect_uri, accept_consent=accept_consent,
                             max_steps=30, deadline=time.monotonic() + timeout)
    finally:
        if own:
            agent.close()
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    if query.get("state") != state:
        raise SignInFailed(f"state mismatch in {callback}")
    if query.get("iss") not in (None, provider.issuer):  # RFC 9207
        raise SignInFailed(f"iss mismatch in {callback}")
    response = exchange_code(provider, client, query["code"], redirect_uri, verifier)
    if response.status_code != 200:
        raise SignInFailed(f"token request failed: {response.status_code} {response.text}", response)
    tokens = dict(response.json())
    claims, header = verify_id_token(provider, tokens["id_token"], client.client_id, nonce, tokens.get("access_token"))
    with http_client() as api:
        info = api.get(provider.metadata["userinfo_endpoint"],
                       headers={"authorization": f"Bearer {tokens['access_token']}"})
        info.raise_for_status()
    return Login(tokens=tokens, claims=claims, userinfo=dict(info.json()), id_token_header=header)
