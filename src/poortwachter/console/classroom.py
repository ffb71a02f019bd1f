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
    "allowlist": ("Alleen deze sites en de schoolomgeving: de rest is dicht",
                  "Only these sites and the school environment: everything else is closed"),
}
TEACHER_REASON = "Besluit van de docent / Teacher's decision"
DONE = {
    "geopend": ("Gedaan: het lokaal is aangepast; dit werkt binnen enkele seconden.",
                "Done: the classroom has been changed; this takes effect within seconds."),
    "beeindigd": ("Beëindigd.", "Ended."),
    "examen": ("De examenmodus staat aan.", "Exam mode is on."),
}


def _allowed_sites(form: FormData, policy: PolicyView, opener: str, *,
                   need_one: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sites and categories to open or allow: only categories this kind of decision may open
    (the policy's opened_by), never a site in one it may not. An empty allowlist is allowed (it
    closes the room); opening nothing is a mistake."""
    sites = forms.sites(form, "sites")
    categories = forms.choices(form, "categories", [c.name for c in policy.openable_categories(opener)])
    never = sorted({policy.title(cat) for site in sites if (cat := policy.locked(site))})
    if never:
        raise Invalid(f"Een van de sites valt in een categorie die nooit open mag ({', '.join(never)}) / "
                      f"One of the sites is in a category that can never be opened")
    closed = sorted({policy.title(cat) for site in sites if (cat := policy.closed_to(site, opener))})
    if closed:
        raise Invalid(f"Een van de sites valt in een categorie die hier niet open mag ({', '.join(closed)}); "
                      f"vraag via de leidinggevende een deblokkering aan bij ICT / One of the sites is in a "
                      f"category that cannot be opened here; ask ICT for an unblock through your manager")
    if need_one and not sites and not categories:
        raise Invalid("Kies een categorie of noem een site / Choose a category or name a site")
    return sites, categories


def _when(ctx: Ctx, form: FormData) -> tuple[dt.datetime | None, dt.datetime]:
    """(start or None for now, end) from the form: this lesson (in a break: the next one), until
    a time today, a lesson on a later day, or a stretch of time."""
    tz = ctx.policy.tz
    kind = _kind(form)
    if kind == "les":
        lesson = ctx.policy.this_lesson(ctx.now)
        if lesson is None:
            raise Invalid("Er komt vandaag geen lesuur meer; kies een tijd / No lesson left today; choose a time")
        return None, lesson.end
    if kind == "lesuur":
        day = forms.local_date(form, "day", tz, "Datum", "Date")
        name = forms.text(form, "lesson", limit=64)
        lesson = next((x for x in ctx.policy.lessons(day) if x.name == name), None)
        if lesson is None:
            raise Invalid("Dat lesuur is er die dag niet / That lesson is not on that day")
        return lesson.start, lesson.end
    if kind == "periode":
        start = forms.local_datetime(form, "from", tz, "Van", "From")
        until = forms.local_datetime(form, "to", tz, "Tot", "Until")
        return start, until  # type: ignore[return-value]
    return None, forms.local_time_today(form, "until", tz, ctx.now, "Tot", "Until")


def _kind(form: FormData) -> str:
    """The chosen kind of "when". A time or a stretch typed while the default (this lesson) is
    still ticked is what the person meant: a page without scripts cannot tick it for them."""
    kind = forms.text(form, "until_kind", limit=10)
    if kind not in ("", "les"):
        return kind
    typed = [k for k, fields in (("tijd", ("until",)), ("periode", ("from", "to")))
             if any(forms.text(form, f, limit=40) for f in fields)]
    if len(typed) > 1:
        raise Invalid("Kies of je een tijd of een periode bedoelt / Choose whether you mean a time or a period")
    return typed[0] if typed else "les"


def _lessons(ctx: Ctx) -> dict[str, object]:
    """What the form shows about time: this lesson (or the next, in a break) and the day's lessons."""
    moment = ctx.policy.moment(ctx.now)
    today = ctx.now.astimezone(ctx.policy.tz).date()
    return {"period": moment.period, "period_kind": moment.period_kind, "period_end": moment.period_end,
            "lesson": ctx.policy.this_lesson(ctx.now), "lesson_names": _lesson_names(ctx, today),
            "today": today.isoformat(), "now": ctx.now}


def _lesson_names(ctx: Ctx, today: dt.date) -> list[str]:
    """The week's lesson names in timetable order (by the time of day they start), not by name:
    "10e-uur" comes after "9e-uur"."""
    starts: dict[str, dt.time] = {}
    for day in range(7):
        for lesson in ctx.policy.lessons(today + dt.timedelta(days=day)):
            start = lesson.start.astimezone(ctx.policy.tz).time()
            starts[lesson.name] = min(start, starts.get(lesson.name, start))
    return sorted(starts, key=lambda name: (starts[name], name))


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
    return ctx.render("classroom.html", zones=zones, openings=openings, modes=MODES,
                      categories=ctx.policy.openable_categories("docent"), done=flash(ctx, DONE),
                      typed=ctx.draft_at("/klas/openen"), **_lessons(ctx))


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
    sites, categories = _allowed_sites(form, ctx.policy, "docent", need_one=mode == "open")
    start, until = _when(ctx, form)
    reason = forms.text(form, "reason") or TEACHER_REASON
    with ctx.store.write() as s:
        open_classroom(s, user=ctx.user, zone=zone, mode=mode, sites=sites, categories=categories,  # type: ignore[arg-type]
                       until=until, start=start, reason=reason, now=ctx.now,
                       openable=ctx.policy.openable_names("docent"))
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
                      categories=ctx.policy.openable_categories("examencoordinator"), done=flash(ctx, DONE),
                      typed=ctx.draft_at("/examen/starten"), **_lessons(ctx))


def begin_exam(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    form = ctx.form
    zone = _zone(ctx, form, [z.name for z in ctx.policy.exam_zones()])
    sites, categories = _allowed_sites(form, ctx.policy, "examencoordinator", need_one=False)
    start, until = _when(ctx, form)
    reason = forms.required(form, "reason", "Welk examen", "Which exam")
    with ctx.store.write() as s:
        start_exam(s, user=ctx.user, zone=zone, sites=sites, categories=categories, until=until, start=start,
                   reason=reason, now=ctx.now, openable=ctx.policy.openable_names("examencoordinator"))
    return ctx.redirect("/examen?ok=examen")


def stop_exam(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    exam_id = int(ctx.request.path_params["exam_id"])
    reason = forms.text(ctx.form, "reason") or "Examen eerder klaar / Exam ended early"
    with ctx.store.write() as s:
        end_exam(s, exam_id, user=ctx.user, reason=reason, now=ctx.now)
    return ctx.redirect("/examen?ok=beeindigd")
