"""Uitsluiting van het netwerk (directie, ICT): a device address or network excluded until a time;
and the download limits the network sensor imposed (004 art. 13), which directie or ICT may lift.

Every exclusion shows its article (its own, else the policy's), its window and state, who did what
and why (people by name), also for the ones that ended in the last RECENT_DAYS days.
"""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from ..blockpage import human_size
from ..workflow import Conflict
from ..workflow.classroom import end_exclusion, exclude
from ..workflow.limits import list_download_limits, revoke_download_limit
from ..workflow.records import exclusion_record, exclusion_records
from . import display, forms
from .web import Ctx, error_page, flash

DONE = {
    "uitgesloten": ("Het apparaat is uitgesloten; dit werkt binnen enkele seconden.",
                    "The device is excluded; this takes effect within seconds."),
    "beeindigd": ("De uitsluiting is beëindigd.", "The exclusion has ended."),
    "opgeheven": ("De downloadlimiet is opgeheven; dit werkt binnen enkele seconden.",
                  "The download limit is lifted; this takes effect within seconds."),
}
RECENT_DAYS = 14     # ended exclusions stay on the page this long
RECENT = 50


def exclusions(ctx: Ctx) -> Response:
    since = ctx.now - dt.timedelta(days=RECENT_DAYS)
    with ctx.store.read() as s:
        bans = exclusion_records(s, now=ctx.now)
        ended = exclusion_records(s, now=ctx.now, ended_since=since, limit=RECENT)
        limits = sorted(list_download_limits(s, now=ctx.now), key=lambda d: d.until)
    typed = ctx.draft_at("/uitsluitingen/toevoegen")
    tomorrow = ctx.now.replace(second=0, microsecond=0) + dt.timedelta(days=1)
    return ctx.render("exclusions.html", bans=bans, ended=ended, recent_days=RECENT_DAYS, done=flash(ctx, DONE),
                      article=ctx.policy.exclusion_article(), anchor=_form_id(ctx.draft.action if ctx.draft else ""),
                      limits=[(d, human_size(d.max_bytes)) for d in limits],
                      new={"subject": typed.get("subject"), "reason": typed.get("reason"),
                           "until": typed.get("until") or forms.input_value(tomorrow, ctx.policy.tz)})


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
    try:
        with ctx.store.write() as s:
            end_exclusion(s, ban_id, user=ctx.user, reason=reason, now=ctx.now)
    except Conflict:
        return _already_ended(ctx, ban_id)
    return ctx.redirect("/uitsluitingen?ok=beeindigd")


def lift_limit(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    limit_id = int(ctx.request.path_params["limit_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        revoke_download_limit(s, limit_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/uitsluitingen?ok=opgeheven")


def _form_id(action: str) -> str:
    """The id of the form on this page that posts to `action` ("" for none)."""
    parts = action.strip("/").split("/")
    if parts[-1:] == ["toevoegen"]:
        return "toevoegen"
    if parts[-1:] == ["opheffen"]:
        return f"downloadlimiet-{parts[-2]}"
    if parts[-1:] == ["beeindigen"]:
        return f"uitsluiting-{parts[-2]}"
    return ""


def _already_ended(ctx: Ctx, ban_id: int) -> Response:
    """409: the exclusion already ended. Say how, by whom and when, and link back."""
    with ctx.store.read() as s:
        record = exclusion_record(s, ban_id, now=ctx.now)
    link = (f"/uitsluitingen#uitsluiting-{ban_id}", "Terug naar de uitsluitingen", "Back to the exclusions")
    ending = record.ending if record is not None else None
    if ending is None:
        return error_page(ctx, 409, "Is al beëindigd.", "Has already ended.", link=link)
    tz = ctx.policy.tz
    if ending.by is None:
        return error_page(ctx, 409, f"Deze uitsluiting is al verlopen op {display.moment(ending.at, tz)}.",
                          f"This exclusion already expired on {display.moment(ending.at, tz)}.", link=link)
    return error_page(ctx, 409, f"Deze uitsluiting is al beëindigd door {display.person(ending.by)} op "
                                f"{display.moment(ending.at, tz)}.",
                      f"This exclusion was already ended by {display.person(ending.by)} on "
                      f"{display.moment(ending.at, tz)}.", link=link)
