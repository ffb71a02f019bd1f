"""Security plumbing of the console: response headers, cookies, CSRF and status-link tokens.

- The session cookie holds only a random token (the store keeps its sha256); HttpOnly,
  SameSite=Strict, path=/, and Secure with the __Host- prefix when served over https.
- CSRF: a logged-in visitor's forms carry the session's CSRF token; an anonymous visitor (a pupil
  on the public form, anyone on the login form) gets a double-submit cookie whose value the form
  must repeat. Both are compared in constant time.
- A request's status link carries the request's own random token (the service keeps it), so a
  link cannot be guessed from the sequential request number.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "pw_sessie"
CSRF_COOKIE = "pw_csrf"
DRAFT_COOKIE = "pw_formulier"   # the token of a form kept over a login (drafts.py)
CSRF_FIELD = "csrf"

HEADERS = {
    # default-src 'self' as asked; the rest only narrows it (no plugins, no framing, no <base>,
    # forms post only to this console).
    "content-security-policy": ("default-src 'self'; object-src 'none'; base-uri 'none'; "
                                "frame-ancestors 'none'; form-action 'self'"),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",  # status links carry a token in the query string
    "x-content-type-options": "nosniff",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """Adds the security headers to every response, static files and error pages included.
    Pages (not static files) are never cached: they show personal data and CSRF tokens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if not static:
                    headers["cache-control"] = "no-store"
                if https:
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def session_cookie_name(request: Request) -> str:
    # __Host-: the browser only accepts it with Secure, path=/ and no Domain (no subdomain can set it).
    return f"__Host-{SESSION_COOKIE}" if is_https(request) else SESSION_COOKIE


def csrf_cookie_name(request: Request) -> str:
    return f"__Host-{CSRF_COOKIE}" if is_https(request) else CSRF_COOKIE


def draft_cookie_name(request: Request) -> str:
    return f"__Host-{DRAFT_COOKIE}" if is_https(request) else DRAFT_COOKIE


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """A session-lifetime cookie: the server decides when a session ends."""
    response.set_cookie(name, value, path="/", httponly=True, samesite="strict", secure=is_https(request))


def delete_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=is_https(request))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; an empty expected token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
