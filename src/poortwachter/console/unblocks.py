"""Unblock requests for the leidinggevende (endorse, withdraw) and ICT (approve, decline), and ICT's
unblocks: those running or still to start (extend, revoke) and the history of ended ones.

Every page shows one truth per object (workflow/records.py): what ICT approved (not what was
endorsed), its state now, and who did what, when and why, people by name. Every decision goes
through the service layer, which checks the role again and records who, when and why. When
someone else decided first, the 409 page says who and when, and links back.
"""

from __future__ import annotations

from starlette.responses import Response

from ..state import Sites
from ..workflow import Conflict
from ..workflow.records import GrantRecord, grant_record, grant_records, request_record, request_records
from ..workflow.requests import (
    approve_request,
    decline_request,
    endorse_request,
    extend_grant,
    revoke_grant,
    withdraw_request,
)
from . import display, forms
from .scope import GROUNDS, read_ground, read_scope, scope_values, site_of_url, sites_text, typed_scope
from .web import Ctx, error_page, flash

DONE = {
    "onderbouwd": ("De aanvraag is onderbouwd en ligt nu bij ICT.", "The request is endorsed and now with ICT."),
    "goedgekeurd": ("Goedgekeurd: de deblokkering werkt binnen enkele seconden.",
                    "Approved: the unblock takes effect within seconds."),
    "afgewezen": ("De aanvraag is afgewezen.", "The request has been declined."),
    "ingetrokken": ("De deblokkering is ingetrokken.", "The unblock has been revoked."),
    "teruggetrokken": ("De aanvraag is ingetrokken.", "The request has been withdrawn."),
    "verlengd": ("De deblokkering is verlengd; dit werkt binnen enkele seconden.",
                 "The unblock has been extended; this takes effect within seconds."),
}
RECENT = 50      # decided requests on the list
HISTORY = 100    # ended unblocks on the history page
# What a request's decision was, for "already ..." (Dutch, English).
DECIDED = {
    "endorsed": ("onderbouwd", "endorsed"),
    "approved": ("goedgekeurd", "approved"),
    "declined": ("afgewezen", "declined"),
    "withdrawn": ("ingetrokken", "withdrawn"),
}


def request_list(ctx: Ctx) -> Response:
    with ctx.store.read() as s:
        every = request_records(s, now=ctx.now, history=False)
    every.sort(key=lambda r: r.request.created_at, reverse=True)
    submitted = [r for r in every if r.state == "submitted"]
    endorsed = [r for r in every if r.state == "endorsed"]
    decided = [r for r in every if r.state not in ("submitted", "endorsed")][:RECENT]
    return ctx.render("requests.html", submitted=submitted, endorsed=endorsed, decided=decided,
                      title=ctx.policy.title, done=flash(ctx, DONE))


def request_detail(ctx: Ctx) -> Response:
    request_id = int(ctx.request.path_params["request_id"])
    with ctx.store.read() as s:
        record = request_record(s, request_id, now=ctx.now)
    if record is None:
        return error_page(ctx, 404, "Deze aanvraag bestaat niet.", "This request does not exist.")
    req = record.request
    sites = list(req.sites) or ([site_of_url(req.url)] if site_of_url(req.url) else [])
    locks = {site: ctx.policy.title(cat) for site in [req.url, *sites] if (cat := ctx.policy.locked(site))}
    if req.category and ctx.policy.locked_category(req.category):
        locks[req.category] = ctx.policy.title(req.category)
    scope = scope_values(ctx.policy, sites=sites, zones=req.zones, roles=req.roles,
                         start=req.start, end=req.end, now=ctx.now)
    base = f"/aanvragen/{req.id}"
    return ctx.render("request_detail.html", rec=record, req=req, title=ctx.policy.title, grounds=GROUNDS,
                      endorse_scope=typed_scope(scope, ctx.draft_at(f"{base}/onderbouwen")),
                      approve_scope=typed_scope(scope, ctx.draft_at(f"{base}/goedkeuren")),
                      effective_sites=_sites(ctx, record.effective.sites, record.effective.categories),
                      locks=sorted(set(locks.values())), done=flash(ctx, DONE))


def endorse(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    ground = read_ground(ctx.form)
    scope = read_scope(ctx.form, ctx.policy)
    motivation = forms.required(ctx.form, "motivation", "Motivering", "Motivation")
    try:
        with ctx.store.write() as s:
            endorse_request(s, request_id, user=ctx.user, ground=ground, sites=scope.sites, zones=scope.zones,
                            roles=scope.roles, start=scope.start, end=scope.end, motivation=motivation,
                            now=ctx.now, notices=ctx.notices)
    except Conflict:
        return _already_decided(ctx, request_id)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=onderbouwd")


def approve(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    scope = read_scope(ctx.form, ctx.policy)
    reason = forms.text(ctx.form, "reason")
    try:
        with ctx.store.write() as s:
            approve_request(s, request_id, user=ctx.user, now=ctx.now, reason=reason, sites=scope.sites,
                            zones=scope.zones, roles=scope.roles, start=scope.start, end=scope.end,
                            locked=ctx.policy.closed_to_ict, notices=ctx.notices)
    except Conflict:
        return _already_decided(ctx, request_id)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=goedgekeurd")


def decline(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    try:
        with ctx.store.write() as s:
            decline_request(s, request_id, user=ctx.user, reason=reason, now=ctx.now, notices=ctx.notices)
    except Conflict:
        return _already_decided(ctx, request_id)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=afgewezen")


def withdraw(ctx: Ctx) -> Response:
    """A leidinggevende who will not endorse a request closes it, with a reason the requester sees."""
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    try:
        with ctx.store.write() as s:
            withdraw_request(s, request_id, user=ctx.user, reason=reason, now=ctx.now, notices=ctx.notices)
    except Conflict:
        return _already_decided(ctx, request_id)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=teruggetrokken")


def grant_list(ctx: Ctx) -> Response:
    with ctx.store.read() as s:
        grants = grant_records(s, now=ctx.now)
    tz = ctx.policy.tz
    rows = [{"grant": g, "sites": _sites(ctx, g.scope.sites, g.scope.categories),
             "end": forms.input_value(g.scope.end, tz)} for g in grants]
    # a form that came back: its card's id ("/deblokkeringen/5/verlengen" -> "deblokkering-5")
    anchor = f"deblokkering-{ctx.draft.action.split('/')[2]}" if ctx.draft else ""
    return ctx.render("grants.html", grants=rows, anchor=anchor, done=flash(ctx, DONE))


def grant_history(ctx: Ctx) -> Response:
    """Unblocks that ended (expired or revoked), the most recently ended first."""
    with ctx.store.read() as s:
        grants = grant_records(s, now=ctx.now, ended=True, limit=HISTORY)
    rows = [{"grant": g, "sites": _sites(ctx, g.scope.sites, g.scope.categories)} for g in grants]
    return ctx.render("grant_history.html", grants=rows, limit=HISTORY)


def revoke(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    grant_id = int(ctx.request.path_params["grant_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    try:
        with ctx.store.write() as s:
            revoke_grant(s, grant_id, user=ctx.user, reason=reason, now=ctx.now)
    except Conflict:
        return _grant_over(ctx, grant_id)
    return ctx.redirect("/deblokkeringen?ok=ingetrokken")


def extend(ctx: Ctx) -> Response:
    """ICT gives a running (or still to start) unblock a later end, with a reason."""
    assert ctx.form is not None and ctx.user is not None
    grant_id = int(ctx.request.path_params["grant_id"])
    end = forms.local_datetime(ctx.form, "end", ctx.policy.tz, "Nieuw einde", "New end")
    assert end is not None
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    try:
        with ctx.store.write() as s:
            extend_grant(s, grant_id, user=ctx.user, end=end, reason=reason, now=ctx.now,
                         locked=ctx.policy.closed_to_ict)
    except Conflict:
        return _grant_over(ctx, grant_id)
    return ctx.redirect("/deblokkeringen?ok=verlengd")


# --- helpers ---------------------------------------------------------------------------------

def _sites(ctx: Ctx, sites: tuple[str, ...], categories: tuple[str, ...]) -> list[str]:
    return sites_text(Sites.of(sites, categories), ctx.policy)


def _already_decided(ctx: Ctx, request_id: int) -> Response:
    """409: someone decided first. Say who and when, and link back to the request."""
    with ctx.store.read() as s:
        record = request_record(s, request_id, now=ctx.now)
    back = (f"/aanvragen/{request_id}", f"Terug naar aanvraag {request_id}", f"Back to request {request_id}")
    if record is None:
        return error_page(ctx, 404, "Deze aanvraag bestaat niet.", "This request does not exist.")
    req, tz = record.request, ctx.policy.tz
    if req.status == "submitted":
        return error_page(ctx, 409, f"Aanvraag {req.id} is nog niet onderbouwd door een leidinggevende.",
                          f"Request {req.id} has not been endorsed by a manager yet.", link=back)
    if req.status == "endorsed":
        who, at = record.endorsed_by, req.endorsed_at
    else:
        who, at = record.decided_by, req.decided_at
    nl, en = DECIDED[req.status]
    return error_page(ctx, 409, f"Aanvraag {req.id} is al {nl} door {display.person(who)} op {display.moment(at, tz)}.",
                      f"Request {req.id} was already {en} by {display.person(who)} on {display.moment(at, tz)}.",
                      link=back)


def _grant_over(ctx: Ctx, grant_id: int) -> Response:
    """409: the unblock already ended. Say how, by whom and when, and link to it."""
    with ctx.store.read() as s:
        record: GrantRecord | None = grant_record(s, grant_id, now=ctx.now)
    if record is None or record.ending is None:
        return error_page(ctx, 409, "Iemand anders heeft dit net al afgehandeld.",
                          "Someone else has just dealt with this.",
                          link=("/deblokkeringen", "Naar de actieve deblokkeringen", "To the active unblocks"))
    ending, tz = record.ending, ctx.policy.tz
    link = (f"/deblokkeringen/historie#deblokkering-{grant_id}", f"Naar deblokkering {grant_id} in de geschiedenis",
            f"To unblock {grant_id} in the history")
    if record.state == "revoked":
        return error_page(
            ctx, 409,
            f"Deblokkering {grant_id} is al ingetrokken door {display.person(ending.by)} op "
            f"{display.moment(ending.at, tz)}.",
            f"Unblock {grant_id} was already revoked by {display.person(ending.by)} on "
            f"{display.moment(ending.at, tz)}.",
            link=link)
    return error_page(ctx, 409, f"Deblokkering {grant_id} is al verlopen op {display.moment(ending.at, tz)}.",
                      f"Unblock {grant_id} already expired on {display.moment(ending.at, tz)}.", link=link)
