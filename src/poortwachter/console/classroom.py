"""The teacher's classroom (004 art. 9: the teacher decides when pupils go online in class) and
the examencoördinator's exam mode. A docent acts only on their own classroom zones; ICT on all."""

from __future__ import annotations

import datetime as dt

from starlette.datastructures import FormData
from starlette.responses import Response

from ..state import Sites
from ..workflow import Invalid
from ..workflow.classroom import end_exam, end_opening, list_exams, list_openings, open_classroom, start_exam
from . import forms
from .policyview import PolicyView
from .scope import sites_text
from .web import Ctx, flash

MODES = {
    "open": ("Openzetten: deze sites of categorieën zijn bereikbaar", "Open: these sites or categories can be reached"),
    "allowlist": ("Alleen deze sites: de rest is dicht", "Only these sites: everything else is closed"),
}
TEACHER_REASON = "Besluit van de docent (004 art. 9) / Teacher's decision"
DONE = {
    "geopend": ("Gedaan: het lokaal is aangepast; dit werkt binnen enkele seconden.",
                "Done: the classroom has been changed; this takes effect within seconds."),
    "beeindigd": ("Beëindigd.", "Ended."),
    "examen": ("De examenmodus staat aan.", "Exam mode is on."),
}


def _allowed_sites(form: FormData, policy: PolicyView, *, need_one: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sites and categories to open or allow; never a category or site that can never be opened.
    An empty allowlist is allowed (it closes the room); opening nothing is a mistake."""
    sites = forms.sites(form, "sites")
    categories = forms.choices(form, "categories", [c.name for c in policy.openable_categories()])
    locked = sorted({policy.title(cat) for site in sites if (cat := policy.locked(site))})
    if locked:
        raise Invalid(f"Een van de sites valt in een categorie die nooit open mag ({', '.join(locked)}) / "
                      f"One of the sites is in a category that can never be opened")
    if need_one and not sites and not categories:
        raise Invalid("Kies een categorie of noem een site / Choose a category or name a site")
    return sites, categories


def _until(ctx: Ctx, form: FormData) -> dt.datetime:
    if forms.text(form, "until_kind", limit=10) == "les":
        end = ctx.policy.period_end(ctx.now)
        if end is None or end <= ctx.now:
            raise Invalid("Er loopt nu geen lesuur; kies een tijd / No lesson is running now; choose a time")
        return end
    return forms.local_time_today(form, "until", ctx.policy.tz, ctx.now, "Tot", "Until")


def _zone(ctx: Ctx, form: FormData, zones: list[str]) -> str:
    return forms.choice(form, "zone", zones, "zone", "zone")


# --- klas ------------------------------------------------------------------------------------

def classroom(ctx: Ctx) -> Response:
    assert ctx.user is not None
    zones = ctx.policy.classroom_zones(ctx.user.role, ctx.user.zones)
    names = {z.name for z in zones}
    with ctx.store.read() as s:
        found = list_openings(s, now=ctx.now, zones=sorted(names))
    openings = [{"o": o, "sites": sites_text(Sites.of(o.sites, o.categories), ctx.policy),
                 "mode": MODES.get(o.mode, (o.mode, ""))}
                for o in sorted(found, key=lambda o: (o.zone, o.until))]
    moment = ctx.policy.moment(ctx.now)
    return ctx.render("classroom.html", zones=zones, openings=openings, modes=MODES,
                      categories=ctx.policy.openable_categories(), period=moment.period,
                      period_kind=moment.period_kind, period_end=moment.period_end,
                      done=flash(ctx, DONE))


def open_room(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    form = ctx.form
    zones = [z.name for z in ctx.policy.classroom_zones(ctx.user.role, ctx.user.zones)]
    zone = forms.text(form, "zone", limit=200)
    if zone and zone not in zones and ctx.user.role != "ict":
        # not one of this docent's rooms: let the service refuse it (Forbidden -> 403), not a form error
        zones = [*zones, zone]
    zone = _zone(ctx, form, zones)
    mode = forms.choice(form, "mode", MODES, "werking", "mode")
    sites, categories = _allowed_sites(form, ctx.policy, need_one=mode == "open")
    until = _until(ctx, form)
    reason = forms.text(form, "reason") or TEACHER_REASON
    with ctx.store.write() as s:
        open_classroom(s, user=ctx.user, zone=zone, mode=mode, sites=sites, categories=categories,  # type: ignore[arg-type]
                       until=until, reason=reason, now=ctx.now)
    return ctx.redirect("/klas?ok=geopend")


def end_room(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    opening_id = int(ctx.request.path_params["opening_id"])
    reason = forms.text(ctx.form, "reason") or "Eerder beëindigd / Ended early"
    with ctx.store.write() as s:
        end_opening(s, opening_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/klas?ok=beeindigd")


# --- examen ----------------------------------------------------------------------------------

def exams(ctx: Ctx) -> Response:
    zones = ctx.policy.exam_zones()
    with ctx.store.read() as s:
        found = list_exams(s, now=ctx.now)
    running = [{"e": e, "sites": sites_text(Sites.of(e.sites, e.categories), ctx.policy)}
               for e in sorted(found, key=lambda e: (e.zone, e.until))]
    return ctx.render("exams.html", zones=zones, exams=running,
                      categories=ctx.policy.openable_categories(), done=flash(ctx, DONE))


def begin_exam(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    form = ctx.form
    zone = _zone(ctx, form, [z.name for z in ctx.policy.exam_zones()])
    sites, categories = _allowed_sites(form, ctx.policy, need_one=False)
    until = forms.local_time_today(form, "until", ctx.policy.tz, ctx.now, "Tot", "Until")
    reason = forms.required(form, "reason", "Welk examen", "Which exam")
    with ctx.store.write() as s:
        start_exam(s, user=ctx.user, zone=zone, sites=sites, categories=categories, until=until,
                   reason=reason, now=ctx.now)
    return ctx.redirect("/examen?ok=examen")


def stop_exam(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    exam_id = int(ctx.request.path_params["exam_id"])
    reason = forms.text(ctx.form, "reason") or "Examen eerder klaar / Exam ended early"
    with ctx.store.write() as s:
        end_exam(s, exam_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/examen?ok=beeindigd")
