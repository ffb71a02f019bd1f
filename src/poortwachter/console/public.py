"""The public side: the unblock request form the block page links to, and the status page.

Pupils have no account: the form asks a name/class and why, and after sending shows the request
number and a status link with an unguessable token. A site in a category that can never be
opened (malware, phishing) is refused up front, before anyone types a reason. When the console
sends e-mail, the form also asks for an optional address, used only to tell the requester the
decision and erased then (workflow/requests.py); without e-mail it is not asked.
"""

from __future__ import annotations

from starlette.responses import Response

from ..workflow import Invalid
from ..workflow.records import request_record_by_token
from ..workflow.requests import PUBLIC_REASONS, get_request, submit_request
from . import display, forms
from .scope import GROUNDS, read_ground, read_scope, scope_values, site_of_url, typed_scope
from .web import Ctx, error_page, split_message, status_link

URL_LIMIT = 2000
# Staff who may submit a request already endorsed (with ground and scope).
ENDORSERS = frozenset({"leidinggevende", "ict"})

# The requester's headline per state (workflow.records.STATES); {start} and {end} are filled in.
STATUS = {
    "submitted": ("Ingediend: de leidinggevende bekijkt de aanvraag.",
                  "Submitted: a manager will look at the request."),
    "endorsed": ("Onderbouwd door de leidinggevende: ICT beslist.",
                 "Endorsed by a manager: ICT decides."),
    "scheduled": ("Goedgekeurd: de site gaat open op {start}.", "Approved: the site opens on {start}."),
    "active": ("Goedgekeurd: de site is open tot {end}.", "Approved: the site is open until {end}."),
    "expired": ("Verlopen: de site is sinds {end} weer dicht.", "Expired: the site has been closed again since {end}."),
    "revoked": ("Ingetrokken door ICT op {end}: de site is weer dicht.",
                "Revoked by ICT on {end}: the site is closed again."),
    "declined": ("Afgewezen.", "Declined."),
    "withdrawn": ("Ingetrokken.", "Withdrawn."),
}


def _lock_of(ctx: Ctx, url: str, category: str) -> str | None:
    """The not-overridable category this request falls in, if any."""
    if category and ctx.policy.locked_category(category):
        return category
    return ctx.policy.locked(url) if url else None


def _form_values(ctx: Ctx, url: str, category: str, rule: str, **extra: object) -> dict[str, object]:
    site = site_of_url(url)
    values: dict[str, object] = {
        "url": url, "category": category, "rule": rule,
        "category_title": ctx.policy.title(category) if category else "",
        "requester": ctx.user.display_name if ctx.user else "", "reason": "",
        "ask_email": ctx.notices is not None, "email": "",
        "endorser": ctx.user is not None and ctx.user.role in ENDORSERS,
        "grounds": GROUNDS, "ground": "",
        "error": None, "lock": None,
    }
    values.update(scope_values(ctx.policy, sites=[site] if site else [], zones=(), roles=(),
                               start=None, end=None, now=ctx.now))
    values.update(extra)
    lock = _lock_of(ctx, url, category)
    if lock:
        values["lock"] = ctx.policy.title(lock)
    return values


def request_form(ctx: Ctx) -> Response:
    typed = ctx.draft_at("/deblokkeren")
    if typed.action:   # the form came back (refused, or kept over a login): as it was typed
        values = _form_values(ctx, typed.get("url")[:URL_LIMIT], typed.get("category")[:200],
                              typed.get("rule")[:200], requester=typed.get("requester"),
                              reason=typed.get("reason"), email=typed.get("email"), ground=typed.get("ground"),
                              error=typed.error)
        values.update(typed_scope(values, typed))
        return ctx.render("unblock_form.html", **values)
    q = ctx.request.query_params
    url = q.get("url", "")[:URL_LIMIT]
    category = q.get("category", "")[:200]
    rule = q.get("rule", "")[:200]
    return ctx.render("unblock_form.html", **_form_values(ctx, url, category, rule))


def submit(ctx: Ctx) -> Response:
    assert ctx.form is not None
    form = ctx.form
    url = forms.text(form, "url", limit=URL_LIMIT)
    category = forms.text(form, "category", limit=200)
    rule = forms.text(form, "rule", limit=200)
    requester = forms.text(form, "requester", limit=200)
    reason = forms.text(form, "reason")
    email = forms.text(form, "email") if ctx.notices is not None else ""   # not asked without e-mail
    keep = {"requester": requester, "reason": reason, "email": email,
            "ground": forms.text(form, "ground", limit=40)}
    if _lock_of(ctx, url, category):
        return ctx.render("unblock_form.html", 400, **_form_values(ctx, url, category, rule, **keep))
    try:
        if not url:
            raise Invalid("Vul het adres van de site in / Fill in the address of the site")
        if not requester:
            raise Invalid("Vul je naam en klas in / Fill in your name and class")
        if not reason:
            raise Invalid("Vertel waarom je de site nodig hebt / Tell us why you need the site")
        endorse = ctx.user is not None and ctx.user.role in ENDORSERS and bool(keep["ground"])
        if endorse:
            ground = read_ground(form)
            scope = read_scope(form, ctx.policy)
            with ctx.store.write() as s:
                request_id = submit_request(
                    s, url=url, category=category, rule=rule, requester=requester, reason=reason,
                    now=ctx.now, user=ctx.user, ground=ground, sites=scope.sites, zones=scope.zones,
                    roles=scope.roles, start=scope.start, end=scope.end, requester_email=email,
                    notices=ctx.notices)
                view = get_request(s, request_id)
        else:
            with ctx.store.write() as s:
                # a logged-in docent's request is recorded as theirs; a pupil's as public
                request_id = submit_request(s, url=url, category=category, rule=rule, requester=requester,
                                            reason=reason, now=ctx.now, user=ctx.user, requester_email=email,
                                            notices=ctx.notices)
                view = get_request(s, request_id)
    except Invalid as exc:
        values = _form_values(ctx, url, category, rule, **keep)
        values["error"] = split_message(str(exc))
        return ctx.render("unblock_form.html", 400, **values)
    assert view is not None
    return ctx.redirect(status_link(request_id, view.token) + "&nieuw=1")


def status(ctx: Ctx) -> Response:
    request_id = int(ctx.request.path_params["request_id"])
    token = ctx.request.query_params.get("t", "")
    with ctx.store.read() as s:
        record = request_record_by_token(s, token, now=ctx.now)
    if record is None or record.id != request_id:
        # the same answer for a wrong token and a missing request: numbers cannot be probed
        return error_page(ctx, 404, "Deze aanvraag bestaat niet of de link is niet compleet.",
                          "This request does not exist or the link is incomplete.")
    view, tz = record.request, ctx.policy.tz
    link = status_link(view.id, view.token)
    ended = record.grant.ending.at if record.grant and record.grant.ending else record.effective.end
    nl, en = STATUS[record.state]
    moments = {"start": display.moment(record.effective.start, tz), "end": display.moment(ended, tz)}
    # the requester sees roles, not the names of staff, and only the reasons meant for them
    history = [e for e in record.history if e.kind != "add"]
    return ctx.render("request_status.html", rec=record, req=view, history=history, public_reasons=PUBLIC_REASONS,
                      status_text=(nl.format(**moments), en.format(**moments)),
                      new="nieuw" in ctx.request.query_params, link=link,
                      link_abs=str(ctx.request.base_url).rstrip("/") + link,
                      category_title=ctx.policy.title(view.category) if view.category else "")
