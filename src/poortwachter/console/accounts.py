"""Gebruikers (ICT): the console's accounts. ICT adds them, disables and enables them, sets a new
password or makes a one-time link with which the user chooses one, and changes role, zones and
e-mail address. The public page of a one-time link is here too.

A one-time link is shown once, in the answer to the form that made it (never in a redirect, so it
stays out of the browser history and any log), and is stored only as a hash.
"""

from __future__ import annotations

from starlette.responses import Response

from ..roles import ROLES
from ..workflow import Invalid, NotFound
from ..workflow.useradmin import (
    RESET_VALID,
    add_user,
    check_reset_link,
    create_reset_link,
    disable_user,
    enable_user,
    get_account,
    list_accounts,
    redeem_reset_link,
    reset_link,
    set_email,
    set_password,
    set_role,
    set_zones,
)
from . import forms
from .web import Ctx, error_page, flash, split_message

DONE = {
    "uitgeschakeld": ("Het account is uitgeschakeld; wie ermee ingelogd was, is uitgelogd.",
                      "The account is disabled; whoever was logged in with it has been logged out."),
    "ingeschakeld": ("Het account is weer ingeschakeld.", "The account is enabled again."),
    "wachtwoord": ("Het nieuwe wachtwoord is ingesteld; bestaande sessies van dit account zijn beëindigd.",
                   "The new password is set; existing sessions of this account have ended."),
    "rol": ("De rol is gewijzigd.", "The role has been changed."),
    "zones": ("De zones zijn gewijzigd.", "The zones have been changed."),
    "email": ("Het e-mailadres is opgeslagen.", "The e-mail address has been saved."),
}
LINK_GONE = ("Deze link is ongeldig, al gebruikt of verlopen. Vraag ICT om een nieuwe.",
             "This link is not valid, already used or expired. Ask ICT for a new one.")


def accounts(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.store.read() as s:
        found = list_accounts(s, user=ctx.user)
    return ctx.render("accounts.html", accounts=found, roles=ROLES, zones=ctx.policy.zones(),
                      done=flash(ctx, DONE))


def add(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    form, zone_names = ctx.form, _zone_names(ctx)
    with ctx.store.write() as s:
        user_id = add_user(s, user=ctx.user, username=forms.text(form, "username", limit=64),
                           display_name=forms.text(form, "name", limit=200),
                           role=forms.choice(form, "role", ROLES, "rol", "role"),
                           zones=forms.choices(form, "zones", zone_names), zone_names=zone_names,
                           email=forms.text(form, "email", limit=254), now=ctx.now)
        token = create_reset_link(s, user_id, user=ctx.user, reason="nieuw account / new account", now=ctx.now)
    return _detail(ctx, user_id, token=token,
                   done=("Het account is aangemaakt.", "The account has been created."))


def detail(ctx: Ctx) -> Response:
    return _detail(ctx, _id(ctx), done=flash(ctx, DONE))


def disable(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    with ctx.store.write() as s:
        disable_user(s, _id(ctx), user=ctx.user, reason=_reason(ctx), now=ctx.now)
    return ctx.redirect(f"/gebruikers/{_id(ctx)}?ok=uitgeschakeld")


def enable(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    with ctx.store.write() as s:
        enable_user(s, _id(ctx), user=ctx.user, reason=_reason(ctx), now=ctx.now)
    return ctx.redirect(f"/gebruikers/{_id(ctx)}?ok=ingeschakeld")


def make_link(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    with ctx.store.write() as s:
        token = create_reset_link(s, _id(ctx), user=ctx.user, reason=_reason(ctx), now=ctx.now)
    return _detail(ctx, _id(ctx), token=token)


def new_password(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    password = _new_password(ctx)
    with ctx.store.write() as s:
        set_password(s, _id(ctx), password, user=ctx.user, reason=_reason(ctx), now=ctx.now)
    return ctx.redirect(f"/gebruikers/{_id(ctx)}?ok=wachtwoord")


def change_role(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    role = forms.choice(ctx.form, "role", ROLES, "rol", "role")
    with ctx.store.write() as s:
        set_role(s, _id(ctx), role, user=ctx.user, reason=_reason(ctx), now=ctx.now)
    return ctx.redirect(f"/gebruikers/{_id(ctx)}?ok=rol")


def change_zones(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    zone_names = _zone_names(ctx)
    zones = forms.choices(ctx.form, "zones", zone_names)
    with ctx.store.write() as s:
        set_zones(s, _id(ctx), zones, zone_names=zone_names, user=ctx.user, reason=_reason(ctx), now=ctx.now)
    return ctx.redirect(f"/gebruikers/{_id(ctx)}?ok=zones")


def change_email(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    with ctx.store.write() as s:
        set_email(s, _id(ctx), forms.text(ctx.form, "email", limit=254), user=ctx.user, now=ctx.now)
    return ctx.redirect(f"/gebruikers/{_id(ctx)}?ok=email")


# --- the public page of a one-time link ---------------------------------------------------------

def reset_form(ctx: Ctx) -> Response:
    token = ctx.request.query_params.get("t", "")
    try:
        with ctx.store.read() as s:
            username = check_reset_link(s, token, now=ctx.now)
    except NotFound:
        return error_page(ctx, 404, *LINK_GONE)
    return ctx.render("password_reset.html", token=token, username=username, error=None)


def reset(ctx: Ctx) -> Response:
    assert ctx.form is not None
    token = forms.text(ctx.form, "t", limit=200)
    try:
        password = _new_password(ctx)
        with ctx.store.write() as s:
            redeem_reset_link(s, token, password, now=ctx.now)
    except NotFound:
        return error_page(ctx, 404, *LINK_GONE)
    except Invalid as exc:
        with ctx.store.read() as s:
            username = check_reset_link(s, token, now=ctx.now)
        return ctx.render("password_reset.html", 400, token=token, username=username,
                          error=split_message(str(exc)))
    return ctx.redirect("/inloggen?wachtwoord=1")


# --- plumbing -----------------------------------------------------------------------------------

def _detail(ctx: Ctx, user_id: int, *, token: str | None = None,
            done: tuple[str, str] | None = None) -> Response:
    assert ctx.user is not None
    with ctx.store.read() as s:
        account = get_account(s, user_id, user=ctx.user)
    link = reset_link(str(ctx.request.base_url), token) if token else None
    return ctx.render("account_detail.html", account=account, roles=ROLES, zones=ctx.policy.zones(),
                      link=link, link_until=ctx.now + RESET_VALID if token else None, done=done,
                      self_=account.id == ctx.user.id)


def _id(ctx: Ctx) -> int:
    return int(ctx.request.path_params["user_id"])


def _zone_names(ctx: Ctx) -> list[str]:
    return [z.name for z in ctx.policy.zones()]


def _reason(ctx: Ctx) -> str:
    assert ctx.form is not None
    return forms.required(ctx.form, "reason", "Reden", "Reason")


def _new_password(ctx: Ctx) -> str:
    """The new password, typed twice (kept as typed: spaces count)."""
    assert ctx.form is not None
    first, again = ctx.form.get("wachtwoord"), ctx.form.get("nogmaals")
    if not isinstance(first, str) or not isinstance(again, str) or len(first) > 1024:
        raise Invalid("Vul het nieuwe wachtwoord twee keer in / Fill in the new password twice")
    if first != again:
        raise Invalid("De twee wachtwoorden verschillen / The two passwords differ")
    return first
