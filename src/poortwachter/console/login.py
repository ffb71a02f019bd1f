"""Logging in and out.

A login always starts a NEW server-side session with a fresh token and ends the one the browser
came with, so a token planted before login (session fixation) is worthless afterwards.
"""

from __future__ import annotations

from starlette.responses import Response

from ..workflow.accounts import authenticate
from ..workflow.sessions import end_session, start_session
from . import security
from .forms import text
from .web import Ctx, safe_next

# What the login records as the attempt's source: which door, not who or from where.
SOURCE = "console"


def login_form(ctx: Ctx) -> Response:
    if ctx.user is not None:
        return ctx.redirect(safe_next(ctx.request.query_params.get("volgende")))
    return ctx.render("login.html", volgende=safe_next(ctx.request.query_params.get("volgende")),
                      logged_out="uitgelogd" in ctx.request.query_params, error=False, username="")


def login(ctx: Ctx) -> Response:
    assert ctx.form is not None
    username = text(ctx.form, "gebruikersnaam", limit=200)
    password = ctx.form.get("wachtwoord")
    password = password if isinstance(password, str) and len(password) <= 1024 else ""
    target = safe_next(text(ctx.form, "volgende", limit=2000))
    with ctx.store.write() as s:
        # Throttled propagates (429); a failed attempt is committed with this transaction.
        user = authenticate(s, username=username, password=password, source=SOURCE, now=ctx.now) \
            if username and password else None
    if user is None:
        return ctx.render("login.html", 401, volgende=target, logged_out=False, error=True,
                          username=username)
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
