"""One truth per object (workflow/records.py) and grant extension (extend_grant), on SQLite and
PostgreSQL: the effective scope is what ICT approved, the state follows the clock and the change
log, the history names people by display name (or their username once the account is gone)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, select

from poortwachter.store import Store, load_state, state_revision
from poortwachter.store.models import ChangeRow, UserRow
from poortwachter.workflow import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    User,
    approve_request,
    decline_request,
    exclude,
    extend_grant,
    record_expiries,
    revoke_grant,
)
from poortwachter.workflow.records import people as people_of
from poortwachter.workflow.records import (
    STATES,
    Person,
    exclusion_records,
    grant_record,
    grant_records,
    request_record,
    request_record_by_token,
    request_records,
)
from poortwachter.workflow.requests import extension_reason, parse_extension

from .test_store import db_url, store  # noqa: F401  (fixtures: both backends, schema per test)
from .test_workflow import (  # noqa: F401  (people: the fixture of one account per role)
    HOUR,
    MINUTE,
    NOW,
    changes,
    endorsed_request,
    last_change_id,
    people,
    public_request,
    refused_without_trace,
)


def approved(store: Store, users: dict[str, User], **narrow: object) -> tuple[int, int]:
    """A request endorsed for two zones, pupils, NOW .. NOW+2h; approved with `narrow`."""
    request_id = endorsed_request(store, users, zones=["lokaal-1", "lokaal-2"])
    with store.write() as s:
        grant_id = approve_request(s, request_id, user=users["ict"], now=NOW, **narrow)  # type: ignore[arg-type]
    return request_id, grant_id


# --- the effective scope ------------------------------------------------------------------------

def test_an_approved_request_shows_what_ict_approved_not_what_was_endorsed(
        store: Store, people: dict[str, User]) -> None:
    request_id, grant_id = approved(store, people, zones=["lokaal-1"], end=NOW + 3 * MINUTE)
    with store.read() as s:
        record = request_record(s, request_id, now=NOW + MINUTE)
    assert record is not None and record.grant is not None and record.grant.id == grant_id
    assert record.endorsed is not None and record.endorsed.zones == ("lokaal-1", "lokaal-2")
    assert record.endorsed.end == NOW + 2 * HOUR
    assert record.effective.zones == ("lokaal-1",) and record.effective.roles == ("pupil",)
    assert (record.effective.start, record.effective.end) == (NOW, NOW + 3 * MINUTE)
    assert record.state == "active"
    assert record.endorsed_by == Person("leidinggevende:anna", "leidinggevende", "Anna")
    assert record.decided_by == Person("ict:els", "ict", "Els")


def test_before_approval_the_proposal_is_the_endorsed_scope_or_the_blocked_site(
        store: Store, people: dict[str, User]) -> None:
    endorsed = endorsed_request(store, people)
    with store.write() as s:
        submitted = public_request(s)
    with store.read() as s:
        first, second = (request_record(s, i, now=NOW) for i in (endorsed, submitted))
    assert first is not None and first.state == "endorsed" and first.effective.end == NOW + 2 * HOUR
    assert second is not None and second.state == "submitted"
    assert second.effective.sites == ("www.youtube.com",) and second.effective.end is None
    assert second.endorsed is None and second.grant is None


# --- the state ----------------------------------------------------------------------------------

def test_states_follow_the_clock_and_the_change_log(store: Store, people: dict[str, User]) -> None:
    request_id, grant_id = approved(store, people, start=NOW + HOUR)
    with store.write() as s:
        declined = public_request(s)
        decline_request(s, declined, user=people["ict"], reason="nee", now=NOW)

    def state(request: int, at: dt.datetime) -> str:
        with store.read() as s:
            record = request_record(s, request, now=at)
        assert record is not None and record.state in STATES
        return record.state

    assert state(request_id, NOW) == "scheduled"
    assert state(request_id, NOW + HOUR) == "active"
    # expired as soon as the end has passed, before the sweep has written it, and after
    assert state(request_id, NOW + 2 * HOUR) == "expired"
    with store.write() as s:
        assert record_expiries(s, now=NOW + 3 * HOUR) == 1
    assert state(request_id, NOW + 3 * HOUR) == "expired"
    with store.read() as s:
        grant = grant_record(s, grant_id, now=NOW + 3 * HOUR)
    assert grant is not None and grant.ending is not None
    assert (grant.ending.at, grant.ending.by, grant.ending.reason) == (NOW + 2 * HOUR, None, "")
    assert state(declined, NOW) == "declined"


def test_a_revoked_grant_says_who_revoked_it_when_and_why(store: Store, people: dict[str, User]) -> None:
    request_id, grant_id = approved(store, people)
    with store.write() as s:
        revoke_grant(s, grant_id, user=people["ict"], reason="les verplaatst", now=NOW + MINUTE)
    with store.read() as s:
        record = request_record(s, request_id, now=NOW + 2 * MINUTE)
        by_token = request_record_by_token(s, record.request.token if record else "", now=NOW + 2 * MINUTE)
    assert record is not None and by_token is not None and by_token.id == request_id
    assert record.state == "revoked" and record.grant is not None and record.grant.ending is not None
    ending = record.grant.ending
    assert (ending.at, ending.by, ending.reason) == (NOW + MINUTE, Person("ict:els", "ict", "Els"), "les verplaatst")
    # the history: the request's steps and the grant's, oldest first; the grant's `add` is the approval
    assert [(e.kind, e.obj, e.by.name) for e in record.history] == [
        ("submit", "request", "publiek"), ("endorse", "request", "Anna"), ("approve", "request", "Els"),
        ("revoke", "grant", "Els")]
    assert record.history[-1].reason == "les verplaatst"


# --- grant lists --------------------------------------------------------------------------------

def test_grant_records_current_and_ended(store: Store, people: dict[str, User]) -> None:
    _, running = approved(store, people)
    _, revoked = approved(store, people, end=NOW + HOUR)
    _, expiring = approved(store, people, end=NOW + 30 * MINUTE)
    with store.write() as s:
        revoke_grant(s, revoked, user=people["ict"], reason="klaar", now=NOW + 10 * MINUTE)
    at = NOW + 40 * MINUTE
    with store.read() as s:
        current = grant_records(s, now=at)
        ended = grant_records(s, now=at, ended=True)
        last = grant_records(s, now=at, ended=True, limit=1)
    assert [g.id for g in current] == [running]
    assert [(g.id, g.state) for g in ended] == [(expiring, "expired"), (revoked, "revoked")]   # latest end first
    assert [g.id for g in last] == [expiring]
    assert all(g.request_id is not None for g in current + ended)


# --- extension ----------------------------------------------------------------------------------

def test_ict_extends_a_grant_and_the_change_log_keeps_both_ends(store: Store, people: dict[str, User]) -> None:
    request_id, grant_id = approved(store, people, end=NOW + 3 * MINUTE)
    before = last_change_id(store)
    with store.write() as s:
        extend_grant(s, grant_id, user=people["ict"], end=NOW + HOUR, reason="les loopt uit", now=NOW + MINUTE)
    (grant,) = load_state(store, NOW + 30 * MINUTE).grants   # the gateway keeps it open past the old end
    assert grant.id == grant_id and grant.end == NOW + HOUR
    (entry,) = changes(store, before)
    assert entry[:4] == ("extend", "grant", grant_id, "ict:els") and entry[5] == NOW + MINUTE
    assert parse_extension(entry[4]) == (NOW + HOUR, NOW + 3 * MINUTE, "les loopt uit")
    with store.read() as s:
        record = request_record(s, request_id, now=NOW + 30 * MINUTE)
    assert record is not None and record.state == "active" and record.effective.end == NOW + HOUR
    assert record.grant is not None and record.grant.extended
    extension = record.history[-1]
    assert (extension.kind, extension.until, extension.was, extension.reason, extension.by.name) == (
        "extend", NOW + HOUR, NOW + 3 * MINUTE, "les loopt uit", "Els")


@pytest.mark.parametrize("role", ["leidinggevende", "docent", "directie", "examencoordinator", "fg", "mr"])
def test_only_ict_extends_a_grant(store: Store, people: dict[str, User], role: str) -> None:
    _, grant_id = approved(store, people)
    refused_without_trace(store, Forbidden, lambda s: extend_grant(
        s, grant_id, user=people[role], end=NOW + 5 * HOUR, reason="langer", now=NOW))


def test_extension_needs_a_later_end_a_reason_and_a_grant_that_has_not_ended(
        store: Store, people: dict[str, User]) -> None:
    _, grant_id = approved(store, people)
    ict = people["ict"]
    refused_without_trace(store, Invalid, lambda s: extend_grant(
        s, grant_id, user=ict, end=NOW + HOUR, reason="korter", now=NOW))
    refused_without_trace(store, Invalid, lambda s: extend_grant(
        s, grant_id, user=ict, end=NOW + 2 * HOUR, reason="even lang", now=NOW))
    refused_without_trace(store, Invalid, lambda s: extend_grant(
        s, grant_id, user=ict, end=NOW + 5 * HOUR, reason="  ", now=NOW))
    refused_without_trace(store, NotFound, lambda s: extend_grant(
        s, grant_id + 99, user=ict, end=NOW + 5 * HOUR, reason="x", now=NOW))
    refused_without_trace(store, Invalid, lambda s: extend_grant(
        s, grant_id, user=ict, end=NOW + 5 * HOUR, reason="x", now=NOW,
        locked=lambda site: "malware" if site == "youtube.com" else None))
    # over: expired (recorded or not) or revoked
    refused_without_trace(store, Conflict, lambda s: extend_grant(
        s, grant_id, user=ict, end=NOW + 5 * HOUR, reason="te laat", now=NOW + 2 * HOUR))
    with store.write() as s:
        revoke_grant(s, grant_id, user=ict, reason="klaar", now=NOW + MINUTE)
    refused_without_trace(store, Conflict, lambda s: extend_grant(
        s, grant_id, user=ict, end=NOW + 5 * HOUR, reason="weer open", now=NOW + 2 * MINUTE))


def test_extension_reason_round_trip_and_other_text() -> None:
    local = dt.timezone(dt.timedelta(hours=1))
    text = extension_reason(NOW, NOW + HOUR, "reden: met dubbele punt\nen regel")
    assert parse_extension(text) == (NOW + HOUR, NOW, "reden: met dubbele punt\nen regel")
    assert parse_extension(extension_reason(NOW.astimezone(local), NOW + HOUR, "x"))[1] == NOW  # type: ignore[index]
    assert parse_extension("verlengd") is None
    assert parse_extension("tot / until morgen (was vandaag): x") is None
    assert parse_extension("tot / until 2025-03-10T10:00:00 (was 2025-03-10T09:00:00): naive") is None


# --- people -------------------------------------------------------------------------------------

def test_people_by_display_name_with_the_username_once_the_account_is_gone(
        store: Store, people: dict[str, User]) -> None:
    request_id, _ = approved(store, people)
    with store.write() as s:
        s.execute(delete(UserRow).where(UserRow.username == "anna"))
    with store.read() as s:
        found = people_of(s, ["ict:els", "leidinggevende:anna", "publiek", "systeem", "system:sensor", "test",
                           "ict:onbekend"])
        record = request_record(s, request_id, now=NOW)
    assert found["ict:els"] == Person("ict:els", "ict", "Els")
    assert found["leidinggevende:anna"] == Person("leidinggevende:anna", "leidinggevende", "anna")
    assert found["publiek"].role == "publiek" and found["systeem"].role == "systeem"
    assert found["system:sensor"] == Person("system:sensor", "systeem", "sensor")
    assert found["test"] == Person("test", "", "test")
    assert found["ict:onbekend"].name == "onbekend"
    assert record is not None and record.endorsed_by is not None and record.endorsed_by.name == "anna"


def test_request_records_in_one_go(store: Store, people: dict[str, User]) -> None:
    first, grant_id = approved(store, people)
    with store.write() as s:
        second = public_request(s)
        revoke_grant(s, grant_id, user=people["ict"], reason="klaar", now=NOW + MINUTE)
    revision = state_revision(store)
    with store.read() as s:
        records = request_records(s, now=NOW + HOUR)
        listed = request_records(s, now=NOW + HOUR, history=False)
    assert [(r.id, r.state) for r in records] == [(first, "revoked"), (second, "submitted")]
    assert [len(r.history) for r in records] == [4, 1]
    # for a list: the states and how grants ended, without every request's history
    assert [(r.id, r.state) for r in listed] == [(first, "revoked"), (second, "submitted")]
    assert listed[0].history == (listed[0].history[0],) and listed[0].history[0].kind == "revoke"
    assert listed[0].grant is not None and listed[0].grant.ending == records[0].grant.ending  # type: ignore[union-attr]
    assert state_revision(store) == revision   # reading changes nothing


# --- exclusions ---------------------------------------------------------------------------------

def test_exclusion_records_show_state_article_end_and_who_ended_it(store: Store, people: dict[str, User]) -> None:
    from poortwachter.workflow import end_exclusion

    directie = people["directie"]
    with store.write() as s:
        running = exclude(s, user=directie, subject="10.1.2.3", until=NOW + HOUR, reason="besluit 12", now=NOW)
        ended = exclude(s, user=directie, subject="10.1.2.4", until=NOW + HOUR, reason="besluit 13", now=NOW)
        end_exclusion(s, ended, user=people["ict"], reason="opgelost", now=NOW + MINUTE)
        expired = exclude(s, user=directie, subject="10.1.2.5", until=NOW + 5 * MINUTE, reason="besluit 14", now=NOW)
    at = NOW + 10 * MINUTE
    with store.read() as s:
        current = exclusion_records(s, now=at)
        recent = exclusion_records(s, now=at, ended_since=NOW)
        nothing = exclusion_records(s, now=at, ended_since=NOW + 6 * MINUTE)
        old_rows = list(s.scalars(select(ChangeRow).where(ChangeRow.object == "ban")))
    assert [(b.id, b.state, b.until, b.created_by.name) for b in current] == [(running, "active", NOW + HOUR, "Piet")]
    assert current[0].start == NOW and current[0].source == ""
    assert [(b.id, b.state) for b in recent] == [(expired, "expired"), (ended, "revoked")]   # latest end first
    revoked = recent[1]
    assert revoked.ending is not None and revoked.ending.by is not None
    assert (revoked.ending.at, revoked.ending.by.name, revoked.ending.reason) == (NOW + MINUTE, "Els", "opgelost")
    assert [e.kind for e in revoked.history] == ["add", "revoke"]
    assert nothing == []
    assert len(old_rows) == 4
