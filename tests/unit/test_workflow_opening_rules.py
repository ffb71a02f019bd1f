"""What each role may open (the policy's `opened_by`), a restriction that replaces the room's
opening, and classroom openings and exams planned ahead: the workflow service on SQLite and
PostgreSQL (fixtures from test_store.py, people from test_workflow.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from poortwachter.store import Store, load_state
from poortwachter.workflow import Forbidden, Invalid, User, list_openings, open_classroom, start_exam

from .test_store import db_url, store  # noqa: F401  (fixtures: both backends, schema per test)
from .test_workflow import HOUR, MINUTE, NOW, changes, cheap_hashes, last_change_id, people, refused_without_trace  # noqa: F401

# what the default policy's opened_by gives each kind of decision (policy/default.yaml)
DOCENT = frozenset({"sociale-media", "schoolomgeving"})
EXAM = frozenset({"schoolomgeving"})


@pytest.mark.parametrize("role", ["docent", "ict"])
@pytest.mark.parametrize("category,allowed", [("sociale-media", True), ("schoolomgeving", True), ("porno", False),
                                              ("haat", False), ("hacken", False), ("omzeiling", False),
                                              ("malware", False)])
def test_a_classroom_opening_opens_only_what_teachers_may_open(store: Store, people: dict[str, User], role: str,
                                                               category: str, allowed: bool) -> None:
    """000, 004 art. 9: the teacher decides whether devices are used in class; a forbidden category
    goes through the manager to ICT (a grant), or never. The mechanism decides, not the person: ICT
    opening a classroom is held to the same list."""
    def opening(s):  # type: ignore[no-untyped-def]
        return open_classroom(s, user=people[role], zone="lokaal-1", mode="open", categories=[category],
                              until=NOW + HOUR, reason="les", now=NOW, openable=DOCENT)
    if allowed:
        with store.write() as s:
            opening(s)
        assert load_state(store, NOW).openings[0].sites.categories == {category}
    else:
        refused_without_trace(store, Forbidden, opening)


@pytest.mark.parametrize("category,allowed", [("schoolomgeving", True), ("sociale-media", False), ("porno", False)])
def test_an_exam_allows_only_what_the_exam_coordinator_may_open(store: Store, people: dict[str, User],
                                                               category: str, allowed: bool) -> None:
    def exam(s):  # type: ignore[no-untyped-def]
        return start_exam(s, user=people["examencoordinator"], zone="examenlokaal", categories=[category],
                          until=NOW + HOUR, reason="CE", now=NOW, openable=EXAM)
    if allowed:
        with store.write() as s:
            exam(s)
    else:
        refused_without_trace(store, Forbidden, exam)


def test_a_restriction_replaces_the_rooms_opening_and_says_so(store: Store, people: dict[str, User]) -> None:
    """A teacher opened social media, then restricts the room to one site: the opening ends (in the
    change log as replaced), only the restriction is in force; other rooms keep theirs."""
    kim = people["docent"]
    with store.write() as s:
        opened = open_classroom(s, user=kim, zone="lokaal-1", mode="open", categories=["sociale-media"],
                                until=NOW + HOUR, reason="les", now=NOW)
        other = open_classroom(s, user=kim, zone="lokaal-2", mode="open", categories=["sociale-media"],
                               until=NOW + HOUR, reason="les", now=NOW)
    before = last_change_id(store)
    with store.write() as s:
        restricted = open_classroom(s, user=kim, zone="lokaal-1", mode="allowlist", sites=["wikipedia.org"],
                                    until=NOW + HOUR, reason="toets", now=NOW + 5 * MINUTE)
    assert sorted(o.id for o in load_state(store, NOW + 6 * MINUTE).openings) == [other, restricted]
    log = changes(store, before)
    assert log[0][:4] == ("revoke", "opening", opened, "docent:kim") and "vervangen" in log[0][4]
    assert log[1][:3] == ("add", "opening", restricted)


def test_a_lesson_planned_ahead_waits_for_its_start_and_replaces_nothing(store: Store, people: dict[str, User]) -> None:
    """A teacher plans tomorrow's first lesson now: today's opening stays, the plan is listed and
    holds only from its start to its end; an exam can be planned the same way."""
    kim = people["docent"]
    tomorrow = NOW + dt.timedelta(days=1)
    with store.write() as s:
        today = open_classroom(s, user=kim, zone="lokaal-1", mode="open", categories=["sociale-media"],
                               until=NOW + HOUR, reason="les", now=NOW)
        planned = open_classroom(s, user=kim, zone="lokaal-1", mode="allowlist", sites=["kahoot.it"],
                                 start=tomorrow, until=tomorrow + 50 * MINUTE, reason="quiz", now=NOW)
        exam = start_exam(s, user=people["examencoordinator"], zone="examenlokaal", sites=["facet.onl"],
                          start=tomorrow, until=tomorrow + 2 * HOUR, reason="CE", now=NOW)
    assert [o.id for o in load_state(store, NOW).openings if o.start is None or o.start <= NOW] == [today]
    with store.read() as s:
        assert [o.id for o in list_openings(s, now=NOW, zones=["lokaal-1"])] == [today, planned]
    state = load_state(store, tomorrow + MINUTE)
    assert state.opening_for("lokaal-1", tomorrow + MINUTE).id == planned          # type: ignore[union-attr]
    assert state.exam_for("examenlokaal", tomorrow + MINUTE).id == exam            # type: ignore[union-attr]
    assert state.exam_for("examenlokaal", NOW + MINUTE) is None
    refused_without_trace(store, Invalid, lambda s: open_classroom(
        s, user=kim, zone="lokaal-1", mode="open", categories=["sociale-media"], start=tomorrow, until=tomorrow,
        reason="x", now=NOW))
