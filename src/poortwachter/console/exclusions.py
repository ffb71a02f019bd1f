"""Uitsluiting van het netwerk (directie, ICT): a device address or network excluded until a time."""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from ..workflow.classroom import end_exclusion, exclude, list_exclusions
from . import forms
from .web import Ctx, flash

DONE = {
    "uitgesloten": ("Het apparaat is uitgesloten; dit werkt binnen enkele seconden.",
                    "The device is excluded; this takes effect within seconds."),
    "beeindigd": ("De uitsluiting is beëindigd.", "The exclusion has ended."),
}


def exclusions(ctx: Ctx) -> Response:
    with ctx.store.read() as s:
        bans = sorted(list_exclusions(s, now=ctx.now), key=lambda b: b.until)
    tomorrow = ctx.now.replace(second=0, microsecond=0) + dt.timedelta(days=1)
    return ctx.render("exclusions.html", bans=bans, done=flash(ctx, DONE),
                      default_until=forms.input_value(tomorrow, ctx.policy.tz))


def add(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    subject = forms.required(ctx.form, "subject", "Apparaat (IP-adres of netwerk)", "Device (IP address or network)",
                             limit=64)
    until = forms.local_datetime(ctx.form, "until", ctx.policy.tz, "Tot", "Until")
    assert until is not None
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        exclude(s, user=ctx.user, subject=subject, until=until, reason=reason, now=ctx.now)
    return ctx.redirect("/uitsluitingen?ok=uitgesloten")


def end(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    ban_id = int(ctx.request.path_params["ban_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        end_exclusion(s, ban_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/uitsluitingen?ok=beeindigd")
