"""The classroom and exam pages offer what the role may open and nothing else (the policy's
`opened_by`), say what "this lesson" means in a break, and plan a lesson or an exam ahead."""

from __future__ import annotations

import datetime as dt

from poortwachter.store import load_state
from poortwachter.workflow import list_exams, list_openings

from .conftest import AMS, Console, csrf_of


def test_the_teacher_is_offered_only_what_teachers_may_open_and_cannot_post_more(console: Console) -> None:
    """000, 004 art. 9 and 12: a teacher decides on devices in the lesson, never on pornography. The
    form does not offer it, and a crafted post naming it is refused without any change."""
    docent = console.login("docent")
    page = docent.get("/klas").text
    assert 'value="sociale-media"' in page and 'value="video"' in page
    assert 'value="porno"' not in page and 'value="malware"' not in page
    response = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "open",
                                                 "categories": ["porno"], "until_kind": "les"})
    assert response.status_code == 400 and "Ongeldige keuze" in response.text
    site = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "open",
                                             "sites": "www.pornhub.com\nkahoot.it", "until_kind": "les"})
    assert site.status_code == 400 and "nooit open" in site.text
    # the refusal is on the form itself, with what was typed still there
    assert 'id="openen"' in site.text and "www.pornhub.com\nkahoot.it</textarea>" in site.text
    assert not load_state(console.store, console.clock.now).openings


def test_in_the_break_this_lesson_is_the_next_one(console: Console) -> None:
    """At 10:15 (the break, 10:10-10:30) "until the end of this lesson" is the end of the 3rd lesson
    (11:20), and the form says so; it is not the end of the break."""
    console.clock.now = dt.datetime(2025, 3, 10, 10, 15, tzinfo=AMS)
    docent = console.login("docent")
    page = docent.get("/klas").text
    assert "volgende lesuur" in page and "3e-uur" in page and "11:20" in page
    response = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "open",
                                                 "categories": ["video"], "until_kind": "les"})
    assert response.status_code == 303
    with console.store.read() as s:
        [opening] = list_openings(s, now=console.clock.now)
    assert opening.until == dt.datetime(2025, 3, 10, 11, 20, tzinfo=AMS) and opening.start is None


def test_a_lesson_on_another_day_is_planned_ahead(console: Console) -> None:
    docent = console.login("docent")
    page = docent.get("/klas").text
    response = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "allowlist",
                                                 "sites": "kahoot.it", "until_kind": "lesuur", "day": "2025-03-11",
                                                 "lesson": "1e-uur"})
    assert response.status_code == 303, response.text
    with console.store.read() as s:
        [planned] = list_openings(s, now=console.clock.now)
    assert planned.start is not None and planned.start.astimezone(AMS).date() == dt.date(2025, 3, 11)
    assert not load_state(console.store, console.clock.now).opening_for("lokaal-101", console.clock.now)
    assert "Vanaf" in docent.get("/klas").text
    wrong = docent.post("/klas/openen", data={"csrf": csrf_of(page), "zone": "lokaal-101", "mode": "open",
                                              "categories": ["video"], "until_kind": "lesuur", "day": "2025-03-15",
                                              "lesson": "1e-uur"})        # a Saturday: no such lesson
    assert wrong.status_code == 400 and "lesuur is er die dag niet" in wrong.text


def test_an_exam_is_planned_ahead_with_only_what_an_exam_may_allow(console: Console) -> None:
    coordinator = console.login("examencoordinator")
    page = coordinator.get("/examen").text
    assert 'value="porno"' not in page
    response = coordinator.post("/examen/starten", data={
        "csrf": csrf_of(page), "zone": "examenzaal", "until_kind": "periode", "from": "2025-03-12T09:00",
        "to": "2025-03-12T11:00", "sites": "toets.example", "reason": "CE Nederlands"})
    assert response.status_code == 303, response.text
    with console.store.read() as s:
        [exam] = list_exams(s, now=console.clock.now)
    assert exam.start == dt.datetime(2025, 3, 12, 9, 0, tzinfo=AMS)
    assert load_state(console.store, console.clock.now).exam_for("examenzaal", console.clock.now) is None


def test_a_time_typed_while_this_lesson_is_ticked_is_the_time_meant(console: Console) -> None:
    """A page without scripts cannot tick "until a time" when a time is typed: an exam coordinator
    who types 10:45 gets an exam until 10:45, not one that ends with the lesson; the card names the
    exam."""
    console.clock.now = dt.datetime(2025, 3, 10, 8, 40, tzinfo=AMS)
    coordinator = console.login("examencoordinator")
    page = coordinator.get("/examen").text
    response = coordinator.post("/examen/starten", data={
        "csrf": csrf_of(page), "zone": "examenzaal", "until_kind": "les", "until": "10:45",
        "sites": "toets.example", "reason": "CE Engels"})
    assert response.status_code == 303, response.text
    with console.store.read() as s:
        [exam] = list_exams(s, now=console.clock.now)
    assert exam.until == dt.datetime(2025, 3, 10, 10, 45, tzinfo=AMS)
    assert "examenzaal: CE Engels" in coordinator.get("/examen").text
    both = coordinator.post("/examen/starten", data={
        "csrf": csrf_of(page), "zone": "examenzaal", "until_kind": "les", "until": "10:45",
        "from": "2025-03-12T09:00", "to": "2025-03-12T11:00", "sites": "toets.example", "reason": "CE Duits"})
    assert both.status_code == 400 and "tijd of een periode" in both.text


def test_the_lessons_to_plan_are_in_timetable_order_and_the_next_one_is_chosen(console: Console) -> None:
    console.clock.now = dt.datetime(2025, 3, 10, 10, 15, tzinfo=AMS)      # the break before the 3e-uur
    page = console.login("docent").get("/klas").text
    options = page[page.index('id="lesson"'):]
    options = options[:options.index("</select>")]
    names = [part.split('"')[0] for part in options.split('<option value="')[1:]]
    assert names[:3] == ["1e-uur", "2e-uur", "3e-uur"] and names == sorted(names, key=lambda n: int(n.split("e")[0]))
    assert '<option value="3e-uur" selected>' in options
