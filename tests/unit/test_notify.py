"""E-mail notifications of the unblock-request workflow, without a mail server: who is told what
(workflow/notify.py, a pure function, tested on hand-made inputs), and the outbox on SQLite and
PostgreSQL (workflow/outbox.py): mails written in the step's own transaction or not at all, the
requester's address erased by the step that ends a request, claiming, retries with growing
delays, giving up, and migration 0009.

The mails travelling through a real console and a real SMTP server: tests/console/test_notify.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text, update

from poortwachter.store import Store
from poortwachter.store.models import MAIL_SUBJECT, OutboxRow, UnblockRequestRow, UserRow
from poortwachter.workflow import (
    Conflict,
    User,
    approve_request,
    create_user,
    decline_request,
    withdraw_request,
)
from poortwachter.workflow.notify import (
    Mail,
    Notices,
    Staff,
    Step,
    console_url,
    mails,
    request_path,
    status_path,
)
from poortwachter.workflow.outbox import (
    GIVE_UP,
    LEASE,
    RETRY_FIRST,
    RETRY_MAX,
    claim,
    mark_failed,
    mark_sent,
    retry_delay,
)

# `db_url` and `store` (both backends, a schema per test) come from tests/conftest.py.
from .test_workflow import (  # noqa: F401  (cheap_hashes and people: fixtures)
    HOUR,
    NOW,
    PASSWORD,
    cheap_hashes,
    endorse,
    people,
    public_request,
)
from .test_workflow_concurrency import race

NOTICES = Notices(console_url="https://console.school.example")
MINUTE = dt.timedelta(minutes=1)
PUPIL_MAIL = "sam@thuis.example"
STAFF = [
    Staff(1, "leidinggevende", "anna@school.example", True),
    Staff(2, "leidinggevende", "bob@school.example", True),
    Staff(3, "leidinggevende", None, True),                      # no address
    Staff(4, "leidinggevende", "oud@school.example", False),     # disabled
    Staff(5, "ict", "els@school.example", True),
    Staff(6, "ict", "ivo@school.example", True),
    Staff(7, "docent", "kim@school.example", True),
    Staff(8, "directie", "dir@school.example", True),
]


def step(status: str, *, actor_id: int | None = None, reason: str = "", address: str | None = PUPIL_MAIL,
         url: str = "https://www.youtube.com/watch?v=geheim", sites: tuple[str, ...] = ("www.youtube.com",)) -> Step:
    return Step(status=status, request_id=12, token="tok-en_12", url=url, sites=sites, requester_email=address,
                reason=reason, actor_id=actor_id)


def recipients(found: list[Mail]) -> list[str]:
    return [m.recipient for m in found]


# --- who ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "expected"), [
    ("submitted", ["anna@school.example", "bob@school.example"]),
    ("endorsed", ["els@school.example", "ivo@school.example"]),
    ("approved", [PUPIL_MAIL]),
    ("declined", [PUPIL_MAIL]),
    ("withdrawn", [PUPIL_MAIL]),
])
def test_each_step_tells_who_acts_next_or_the_requester_once_it_ends(status: str, expected: list[str]) -> None:
    found = mails(step(status), STAFF, NOTICES)
    assert recipients(found) == expected
    assert {m.kind for m in found} == {status}


def test_the_person_who_took_the_step_is_not_told() -> None:
    assert recipients(mails(step("submitted", actor_id=1), STAFF, NOTICES)) == ["bob@school.example"]
    assert recipients(mails(step("endorsed", actor_id=5), STAFF, NOTICES)) == ["ivo@school.example"]


def test_without_an_address_the_requester_gets_nothing() -> None:
    assert mails(step("declined", address=None), STAFF, NOTICES) == []


def test_two_accounts_with_one_address_get_one_mail() -> None:
    shared = [Staff(1, "ict", "ICT@school.example", True), Staff(2, "ict", "ict@school.example", True)]
    assert recipients(mails(step("endorsed"), shared, NOTICES)) == ["ICT@school.example"]


# --- what --------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["submitted", "endorsed"])
def test_staff_mails_name_the_host_the_status_and_the_console_page_only(status: str) -> None:
    for mail in mails(step(status, reason="mag niet weg"), STAFF, NOTICES):
        assert "\n" not in mail.subject and "www.youtube.com" in mail.subject
        assert mail.subject.index("Deblokkeringsaanvraag 12") < mail.subject.index("Unblock request 12")
        assert "https://console.school.example/aanvragen/12\n" in mail.body
        assert "www.youtube.com" in mail.body and "Status: " in mail.body
        for never in (PUPIL_MAIL, "geheim", "watch?v", "tok-en_12", "/aanvraag/", "mag niet weg"):
            assert never not in mail.subject + mail.body, never
        for other in STAFF:
            if other.email and other.email != mail.recipient:
                assert other.email not in mail.body


def test_the_requester_gets_the_decision_their_status_link_and_the_reason_their_page_shows() -> None:
    [declined] = mails(step("declined", reason="Er is een betere bron."), STAFF, NOTICES)
    assert declined.subject == "Je aanvraag 12 is afgewezen / Your request 12 has been declined: www.youtube.com"
    assert "Reden: Er is een betere bron.\n" in declined.body and "Reason: Er is een betere bron.\n" in declined.body
    assert "https://console.school.example/aanvraag/12?t=tok-en_12\n" in declined.body
    assert declined.body.index("is afgewezen") < declined.body.index("has been declined")
    [approved] = mails(step("approved"), STAFF, NOTICES)
    assert "goedgekeurd" in approved.body and "Reden" not in approved.body
    for mail in (declined, approved):
        assert "/aanvragen/" not in mail.body      # never a staff page
        assert all(s.email is None or s.email not in mail.body for s in STAFF)


def test_hosts_are_shown_as_the_console_shows_them() -> None:
    [mail] = mails(step("endorsed", url="https://XN--BCHERWURM-Q9A.de/boek"), STAFF[4:5], NOTICES)
    assert "bücherwurm.de (xn--bcherwurm-q9a.de)" in mail.body and "/boek" not in mail.body
    # a URL that is no URL: the first site's host
    [mail] = mails(step("endorsed", url="niet een url", sites=("wiki.example.org/pad",)), STAFF[4:5], NOTICES)
    assert "voor wiki.example.org onderbouwd" in mail.body and "/pad" not in mail.body


def test_a_long_host_is_cut_short_in_the_subject_only() -> None:
    host = ".".join(["a" * 60] * 4)
    [mail] = mails(step("endorsed", url=f"https://{host}/"), STAFF[4:5], NOTICES)
    assert len(mail.subject) <= MAIL_SUBJECT and mail.subject.endswith("…")
    assert host in mail.body


def test_links_use_the_console_url_in_one_form() -> None:
    assert console_url(" https://Console.School.example:8443/pw/ ") == "https://console.school.example:8443/pw"
    assert console_url("http://[::1]:8090") == "http://[::1]:8090"
    assert console_url("https://bücher.example") == "https://xn--bcher-kva.example"
    assert status_path(3, "a/b+c") == "/aanvraag/3?t=a%2Fb%2Bc" and request_path(3) == "/aanvragen/3"


@pytest.mark.parametrize("value", ["", "console.school.example", "ftp://x.example", "https://jan@x.example",
                                   "https://x.example/?a=1", "https://x.example/#top", "https://x.example:0",
                                   "https://x .example", "https://exa mple.org", "https://[::1"])
def test_console_url_refuses_what_is_no_console_address(value: str) -> None:
    with pytest.raises(ValueError) as refused:
        console_url(value)
    assert not value.strip() or value.strip() not in str(refused.value)


def test_retry_delays_double_up_to_the_cap() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[0] == RETRY_FIRST and delays[1] == 2 * RETRY_FIRST and delays[2] == 4 * RETRY_FIRST
    assert all(a <= b for a, b in zip(delays, delays[1:], strict=False))
    assert delays[-1] == RETRY_MAX and retry_delay(10_000) == RETRY_MAX


# --- the outbox in the store -------------------------------------------------------------------

@pytest.fixture
def addressed(store: Store, request: pytest.FixtureRequest) -> dict[str, User]:
    """The workflow tests' accounts (`people`), with an address for the leidinggevende, ICT and
    the docent."""
    accounts: dict[str, User] = request.getfixturevalue("people")
    with store.write() as s:
        for role in ("leidinggevende", "ict", "docent"):
            s.execute(update(UserRow).where(UserRow.id == accounts[role].id)
                      .values(email=f"{accounts[role].username}@school.example"))
    return accounts


def rows(db: Store) -> list[OutboxRow]:
    with db.read() as s:
        found = list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))
        s.expunge_all()
    return found


def address_of(db: Store, request_id: int) -> str | None:
    with db.read() as s:
        return s.scalar(select(UnblockRequestRow.requester_email).where(UnblockRequestRow.id == request_id))


def test_each_step_writes_its_mails_in_its_own_transaction(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
        assert [(r.kind, r.recipient) for r in s.scalars(select(OutboxRow))] == [("submitted", "anna@school.example")]
    assert address_of(store, request_id) == PUPIL_MAIL
    with store.write() as s:
        endorse(s, request_id, addressed["leidinggevende"], notices=NOTICES)
    with store.write() as s:
        approve_request(s, request_id, user=addressed["ict"], now=NOW, notices=NOTICES)
    assert [(r.kind, r.recipient, r.status, r.request_id) for r in rows(store)] == [
        ("submitted", "anna@school.example", "pending", request_id),
        ("endorsed", "els@school.example", "pending", request_id),
        ("approved", PUPIL_MAIL, "pending", request_id)]
    assert address_of(store, request_id) is None
    assert all(r.created_at == NOW and r.due_at == NOW and r.attempts == 0 for r in rows(store))


def test_a_step_that_fails_or_is_rolled_back_leaves_no_mail(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
        decline_request(s, request_id, user=addressed["ict"], reason="nee", now=NOW, notices=NOTICES)
    before = len(rows(store))
    with pytest.raises(Conflict), store.write() as s:
        withdraw_request(s, request_id, user=addressed["ict"], reason="toch niet", now=NOW, notices=NOTICES)
    with pytest.raises(RuntimeError), store.write() as s:
        public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
        raise RuntimeError("the database went away before the commit")
    assert len(rows(store)) == before == 2
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(UnblockRequestRow)) == 1


def test_the_step_that_ends_a_request_erases_the_address_even_with_mail_off(store: Store,
                                                                            addressed: dict[str, User]) -> None:
    with store.write() as s:
        first = public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
        second = public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
    with store.write() as s:   # the console restarted without --smtp since
        withdraw_request(s, first, user=addressed["leidinggevende"], reason="geen lesdoel", now=NOW)
        decline_request(s, second, user=addressed["ict"], reason="nee", now=NOW)
    assert address_of(store, first) is None and address_of(store, second) is None
    assert [r.kind for r in rows(store)] == ["submitted", "submitted"]


def test_a_withdrawal_tells_the_requester_with_its_reason(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
        withdraw_request(s, request_id, user=addressed["leidinggevende"], reason="Geen lesdoel.", now=NOW,
                         notices=NOTICES)
    [_, mail] = rows(store)
    assert (mail.kind, mail.recipient) == ("withdrawn", PUPIL_MAIL)
    assert "Reden: Geen lesdoel." in mail.body


def test_with_mail_off_nothing_is_written_and_no_address_kept(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s, requester_email=PUPIL_MAIL)
        endorse(s, request_id, addressed["leidinggevende"])
        approve_request(s, request_id, user=addressed["ict"], now=NOW)
    assert rows(store) == [] and address_of(store, request_id) is None


def test_a_staff_request_endorsed_at_once_goes_to_ict(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        public_request(s, user=addressed["leidinggevende"], ground="lesstof", sites=["youtube.com"], end=NOW + HOUR,
                       notices=NOTICES)
    assert [(r.kind, r.recipient) for r in rows(store)] == [("endorsed", "els@school.example")]


def test_a_claimed_mail_is_sent_once_and_then_forgets_its_recipient(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        public_request(s, notices=NOTICES)
    with store.write() as s:
        [mail] = claim(s, now=NOW)
        assert mail.recipient == "anna@school.example" and "Deblokkeringsaanvraag" in mail.subject
    with store.write() as s:
        assert claim(s, now=NOW + LEASE - MINUTE) == []      # claimed: nobody else sends it meanwhile
    with store.write() as s:
        [again] = claim(s, now=NOW + LEASE)                 # the sender died: sent again after the lease
        mark_sent(s, again.id, now=NOW + LEASE)
    [row] = rows(store)
    assert (row.status, row.recipient, row.body, row.due_at, row.attempts) == ("sent", "", "", None, 2)
    assert row.sent_at == NOW + LEASE and row.subject
    with store.write() as s:
        assert claim(s, now=NOW + 10 * HOUR) == []


def test_failures_are_retried_later_and_later_and_given_up_in_the_end(store: Store,
                                                                      addressed: dict[str, User]) -> None:
    with store.write() as s:
        public_request(s, notices=NOTICES)
    at = NOW
    for attempt in range(1, 5):
        with store.write() as s:
            [mail] = claim(s, now=at)
            assert mark_failed(s, mail.id, error="ConnectionRefusedError", permanent=False, now=at) == "pending"
        [row] = rows(store)
        assert row.attempts == attempt and row.due_at == at + retry_delay(attempt)
        assert row.last_error == "ConnectionRefusedError" and row.recipient == "anna@school.example"
        with store.write() as s:
            assert claim(s, now=row.due_at - dt.timedelta(seconds=1)) == []
        at = row.due_at
    with store.write() as s:   # still failing a week after it was queued: given up
        [mail] = claim(s, now=NOW + GIVE_UP)
        assert mark_failed(s, mail.id, error="TimeoutError", permanent=False, now=NOW + GIVE_UP) == "failed"
    [row] = rows(store)
    assert (row.status, row.recipient, row.body, row.due_at) == ("failed", "", "", None)


def test_a_recipient_refused_for_good_is_given_up_at_once(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        public_request(s, notices=NOTICES)
        [mail] = claim(s, now=NOW)
        assert mark_failed(s, mail.id, error="SMTPRecipientsRefused 550", permanent=True, now=NOW) == "failed"
    [row] = rows(store)
    assert (row.status, row.recipient, row.last_error) == ("failed", "", "SMTPRecipientsRefused 550")


def test_two_senders_never_claim_one_mail(store: Store, addressed: dict[str, User]) -> None:
    with store.write() as s:
        for _ in range(6):
            public_request(s, notices=NOTICES)

    def sender(_n: int) -> list[int]:
        with store.write() as s:
            return [mail.id for mail in claim(s, now=NOW)]

    claimed = [ids for ids in race(4, sender) if isinstance(ids, list)]
    every = [mail_id for ids in claimed for mail_id in ids]
    assert sorted(every) == sorted(set(every)) == [r.id for r in rows(store)]
    assert all(r.attempts == 1 for r in rows(store))


# --- migration 0009 ----------------------------------------------------------------------------

def test_migration_0009_adds_the_outbox_and_downgrades(db_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    from poortwachter.store import downgrade, migrate, open_store
    from poortwachter.store.db import current_revision, head_revision

    def tables() -> set[str]:
        engine = create_engine(db_url)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    assert head_revision() >= "0009"
    migrate(db_url, "0008")
    assert "outbox" not in tables()
    migrate(db_url, "0009")
    assert current_revision(db_url) == "0009" and "outbox" in tables()
    opened = open_store(db_url)
    try:
        with opened.write() as s:
            create_user(s, username="anna", display_name="Anna", role="leidinggevende", password=PASSWORD,
                        actor="test", now=NOW, email="anna@school.example")
            request_id = public_request(s, requester_email=PUPIL_MAIL, notices=NOTICES)
        with opened.write() as s:
            with pytest.raises(Exception):   # the table's own check: a status outside OUTBOX_STATES
                with s.begin_nested():
                    s.execute(text("UPDATE outbox SET status = 'weg'"))
        assert [(r.kind, r.request_id) for r in rows(opened)] == [("submitted", request_id)]
    finally:
        opened.close()

    downgrade(db_url, "0008")
    assert current_revision(db_url) == "0008" and "outbox" not in tables()
    assert "unblock_requests" in tables()
    migrate(db_url)
    assert current_revision(db_url) == head_revision()
