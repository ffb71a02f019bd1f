"""Unblock requests for the leidinggevende (endorse) and ICT (approve, decline), and ICT's list
of active unblocks (revoke). Every decision goes through the service layer, which checks the
role again and records who, when and why."""

from __future__ import annotations

from starlette.responses import Response

from ..workflow.requests import (
    approve_request,
    decline_request,
    endorse_request,
    get_request,
    list_grants,
    list_requests,
    revoke_grant,
    withdraw_request,
)
from ..state import Sites
from . import forms
from .public import STATUS
from .scope import GROUNDS, read_ground, read_scope, scope_values, site_of_url, sites_text
from .web import Ctx, error_page, flash

DONE = {
    "onderbouwd": ("De aanvraag is onderbouwd en ligt nu bij ICT.", "The request is endorsed and now with ICT."),
    "goedgekeurd": ("Goedgekeurd: de deblokkering werkt binnen enkele seconden.",
                    "Approved: the unblock takes effect within seconds."),
    "afgewezen": ("De aanvraag is afgewezen.", "The request has been declined."),
    "ingetrokken": ("De deblokkering is ingetrokken.", "The unblock has been revoked."),
    "teruggetrokken": ("De aanvraag is ingetrokken.", "The request has been withdrawn."),
}
RECENT = 50


def request_list(ctx: Ctx) -> Response:
    with ctx.store.read() as s:
        every = list_requests(s)
    every.sort(key=lambda r: r.created_at, reverse=True)
    submitted = [r for r in every if r.status == "submitted"]
    endorsed = [r for r in every if r.status == "endorsed"]
    decided = [r for r in every if r.status not in ("submitted", "endorsed")][:RECENT]
    return ctx.render("requests.html", submitted=submitted, endorsed=endorsed, decided=decided,
                      status=STATUS, title=ctx.policy.title, done=flash(ctx, DONE))


def request_detail(ctx: Ctx) -> Response:
    request_id = int(ctx.request.path_params["request_id"])
    with ctx.store.read() as s:
        req = get_request(s, request_id)
    if req is None:
        return error_page(ctx, 404, "Deze aanvraag bestaat niet.", "This request does not exist.")
    sites = list(req.sites) or ([site_of_url(req.url)] if site_of_url(req.url) else [])
    locks = {site: ctx.policy.title(cat) for site in [req.url, *sites] if (cat := ctx.policy.locked(site))}
    if req.category and ctx.policy.locked_category(req.category):
        locks[req.category] = ctx.policy.title(req.category)
    scope = scope_values(ctx.policy, sites=sites, zones=req.zones, roles=req.roles,
                         start=req.start, end=req.end, now=ctx.now)
    return ctx.render("request_detail.html", req=req, status=STATUS, title=ctx.policy.title,
                      grounds=GROUNDS, scope=scope, locks=sorted(set(locks.values())),
                      done=flash(ctx, DONE))


def endorse(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    ground = read_ground(ctx.form)
    scope = read_scope(ctx.form, ctx.policy)
    motivation = forms.required(ctx.form, "motivation", "Motivering", "Motivation")
    with ctx.store.write() as s:
        endorse_request(s, request_id, user=ctx.user, ground=ground, sites=scope.sites, zones=scope.zones,
                        roles=scope.roles, start=scope.start, end=scope.end, motivation=motivation,
                        now=ctx.now)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=onderbouwd")


def approve(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    scope = read_scope(ctx.form, ctx.policy)
    reason = forms.text(ctx.form, "reason")
    with ctx.store.write() as s:
        approve_request(s, request_id, user=ctx.user, now=ctx.now, reason=reason, sites=scope.sites,
                        zones=scope.zones, roles=scope.roles, start=scope.start, end=scope.end,
                        locked=ctx.policy.locked)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=goedgekeurd")


def decline(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        decline_request(s, request_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=afgewezen")


def withdraw(ctx: Ctx) -> Response:
    """A leidinggevende who will not endorse a request closes it, with a reason the requester sees."""
    assert ctx.form is not None and ctx.user is not None
    request_id = int(ctx.request.path_params["request_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        withdraw_request(s, request_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect(f"/aanvragen/{request_id}?ok=teruggetrokken")


def grant_list(ctx: Ctx) -> Response:
    with ctx.store.read() as s:
        grants = list_grants(s, now=ctx.now)
        by_grant = {r.grant_id: r for r in list_requests(s, status="approved") if r.grant_id is not None}
    rows = [
        {"grant": g, "sites": sites_text(Sites.of(g.sites, g.categories), ctx.policy),
         "request": by_grant.get(g.id), "active": g.start <= ctx.now}
        for g in sorted(grants, key=lambda g: g.end)
    ]
    return ctx.render("grants.html", grants=rows, done=flash(ctx, DONE))


def revoke(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    grant_id = int(ctx.request.path_params["grant_id"])
    reason = forms.required(ctx.form, "reason", "Reden", "Reason")
    with ctx.store.write() as s:
        revoke_grant(s, grant_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/deblokkeringen?ok=ingetrokken")
