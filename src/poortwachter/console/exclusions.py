"""Uitsluiting van het netwerk (directie, ICT): a device address or network excluded until a time;
and the download limits the network sensor imposed (004 art. 13), which directie or ICT may lift."""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from ..blockpage import human_size
from ..workflow.classroom import end_exclusion, exclude, list_exclusions
from ..workflow.limits import list_download_limits, revoke_download_limit
from . import forms
from .web import Ctx, flash

DONE = {
    "uitgesloten": ("Het apparaat is uitgesloten; dit werkt binnen enkele seconden.",
                    "The device is excluded; this takes effect within seconds."),
    "beeindigd": ("De uitsluiting is beëindigd.", "The exclusion has ended."),
    "opgeheven": ("De downloadlimiet is opgeheven; dit werkt binnen enkele seconden.",
                  "The download limit is lifted; this takes effect within seconds."),
}


def exclusions(ctx: Ctx) -> Response:
    with ctx.store.read() as s:
        bans = sorted(list_exclusions(s, now=ctx.now), key=lambda b: b.until)
        limits = sorted(list_download_limits(s, now=ctx.now), key=lambda d: d.until)
    tomorrow = ctx.now.replace(second=0, microsecond=0) + dt.timedelta(days=1)
    return ctx.render("exclusions.html", bans=bans, done=flash(ctx, DONE),
                      limits=[(d, human_size(d.max_bytes)) for d in limits],
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


def lift_limit(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    limit_id = int(ctx.request.path_params["limit_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        revoke_download_limit(s, limit_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/uitsluitingen?ok=opgeheven")
