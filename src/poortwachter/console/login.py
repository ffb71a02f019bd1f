"""Logging in and out.

A login always starts a NEW server-side session with a fresh token and ends the one the browser
came with, so a token planted before login (session fixation) is worthless afterwards.

Failed logins slow down, they never lock (workflow/throttle.py): this console holds the brake per
client address in its memory (Console.sources), the store the one per username. A refused
attempt gets the login page again with how long to wait, the same for every username.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..gateway import client_address
from ..workflow import Throttled
from ..workflow.accounts import authenticate, login_name
from ..workflow.sessions import end_session, start_session
from . import security
from .forms import text
from .web import Ctx, safe_next, split_message

# What the login records as the attempt's source: which door, not who or from where.
SOURCE = "console"


def login_form(ctx: Ctx) -> Response:
    if ctx.user is not None:
        return ctx.redirect(safe_next(ctx.request.query_params.get("volgende")))
    q = ctx.request.query_params
    return ctx.render("login.html", volgende=safe_next(q.get("volgende")), logged_out="uitgelogd" in q,
                      password_set="wachtwoord" in q, expired="verlopen" in q, error=False, wait=None,
                      username="")


def login(ctx: Ctx) -> Response:
    assert ctx.form is not None
    username = text(ctx.form, "gebruikersnaam", limit=200)
    password = ctx.form.get("wachtwoord")
    password = password if isinstance(password, str) and len(password) <= 1024 else ""
    target = safe_next(text(ctx.form, "volgende", limit=2000))
    page = {"volgende": target, "logged_out": False, "password_set": False, "username": username}
    user = None
    try:
        if username and password:
            with ctx.console.sources.attempt(source_of(ctx.request), login_name(username), ctx.now) as attempt:
                with ctx.store.write() as s:   # a failure is committed with this transaction
                    user = authenticate(s, username=username, password=password, source=SOURCE, now=ctx.now,
                                        known_source=attempt.known)
                if user is not None:
                    attempt.succeeded(ctx.now)
    except Throttled as exc:
        response = ctx.render("login.html", 429, error=False, wait=split_message(str(exc)), **page)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        return ctx.render("login.html", 401, error=True, wait=None, **page)
    with ctx.store.write() as s:
        if ctx.session_token:
            end_session(s, ctx.session_token)
        token, _csrf = start_session(s, user_id=user.id, now=ctx.now)
    response = ctx.redirect(target)
    security.set_cookie(response, ctx.request, security.session_cookie_name(ctx.request), token)
    ctx.after.clear()  # the old cookie's deletion or a fresh anonymous CSRF cookie no longer apply
    return response


def logout(ctx: Ctx) -> Response:
    if ctx.session_token:
        with ctx.store.write() as s:
            end_session(s, ctx.session_token)
    response = ctx.redirect("/inloggen?uitgelogd=1")
    security.delete_cookie(response, ctx.request, security.session_cookie_name(ctx.request))
    return response


def source_of(request: Request) -> str:
    """The client address in its canonical form (uvicorn's, or X-Forwarded-For's with
    --proxy-headers); kept only in this process's memory, never stored or logged."""
    host = request.client.host if request.client else ""
    try:
        return str(client_address(host))
    except ValueError:
        return host[:64]
