"""Account administration and login throttling on SQLite and PostgreSQL: what ICT does with
accounts (and that nobody else may), the last-ICT guard, one-time reset links, disabling, zones
checked against the policy's names, the change log; and throttling by growing delays per address
(in memory) and per username (in the store) that slows a stranger without locking out the user.

Fixtures and helpers (people, cheap hashes, refused_without_trace) come from test_workflow.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from poortwachter.store import Store, state_revision
from poortwachter.store.models import ChangeRow, LoginThrottleRow, PasswordResetRow, SessionRow
from poortwachter.workflow import (
    ROLES,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Throttled,
    User,
    add_user,
    authenticate,
    check_reset_link,
    create_reset_link,
    disable_user,
    enable_user,
    get_account,
    list_accounts,
    load_session,
    redeem_reset_link,
    set_email,
    set_password,
    set_role,
    set_zones,
    start_session,
)
from poortwachter.workflow.throttle import ACCOUNT, FORGET, SOURCE, Schedule, SourceThrottle
from poortwachter.workflow.useradmin import RESET_VALID, reset_link

from .test_store import db_url, store  # noqa: F401  (fixtures: both backends, schema per test)
from .test_workflow import NOW, PASSWORD, cheap_hashes, changes, people, refused_without_trace  # noqa: F401
from .test_workflow_concurrency import race

ZONES = ("lokaal-1", "lokaal-2", "lokaal-3", "aula")   # the policy's zone names, as the caller passes them
NEW_PASSWORD = "een heel nieuw wachtwoord"
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
CLI = User(id=0, username="beheer", display_name="beheer", role="ict", zones=())   # the CLI acts as ICT


def login(store: Store, username: str, password: str, at: dt.datetime = NOW, *,
          known_source: bool = False) -> User | None:
    with store.write() as s:
        return authenticate(s, username=username, password=password, source="console", now=at,
                            known_source=known_source)


def session_of(store: Store, user: User) -> str:
    with store.write() as s:
        return start_session(s, user_id=user.id, now=NOW)[0]


def alive(store: Store, token: str) -> bool:
    with store.write() as s:
        return load_session(s, token, now=NOW + MINUTE) is not None


# --- migration 0008 ----------------------------------------------------------------------------

def test_migration_0008_keeps_accounts_and_requests_and_downgrades(db_url: str) -> None:
    from sqlalchemy import bindparam, create_engine, inspect

    from poortwachter.store import downgrade, migrate, open_store
    from poortwachter.store.models import UTCDateTime
    from poortwachter.store.db import current_revision, head_revision

    def columns(table: str) -> set[str]:
        engine = create_engine(db_url)
        try:
            return {c["name"] for c in inspect(engine).get_columns(table)}
        finally:
            engine.dispose()

    def tables() -> set[str]:
        engine = create_engine(db_url)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    def raw(sql: str, **values: object) -> list[tuple[object, ...]]:
        statement = text(sql)
        if "at" in values:   # stored as the models store times, on either backend
            statement = statement.bindparams(bindparam("at", type_=UTCDateTime()))
        engine = create_engine(db_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(statement, values)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()

    assert head_revision() >= "0008"
    migrate(db_url, "0007")      # a 0007 store with an account, a request and a login attempt
    raw("INSERT INTO users (username, display_name, role, password_hash, zones, active, created_at, created_by) "
        "VALUES ('kim', 'Kim', 'docent', 'x', '[]', :yes, :at, 'ict:jan')", yes=True, at=NOW)
    raw("INSERT INTO unblock_requests (token, url, sites, category, rule, requester, reason, zones, roles, motivation, "
        "status, created_by, created_at, decision_reason) VALUES ('t', 'https://a.example/', '[]', 'c', 'r', 'Sam', "
        "'les', '[]', '[]', '', 'submitted', 'public', :at, '')", at=NOW)
    raw("INSERT INTO login_attempts (username, at, success) VALUES ('kim', :at, :no)", at=NOW, no=False)

    migrate(db_url, "0008")
    assert current_revision(db_url) == "0008"
    assert "email" in columns("users") and "requester_email" in columns("unblock_requests")
    assert {"password_resets", "login_throttle"} <= tables() and "login_attempts" not in tables()
    assert raw("SELECT username, email FROM users") == [("kim", None)]
    assert raw("SELECT requester, requester_email FROM unblock_requests") == [("Sam", None)]
    store = open_store(db_url)   # (migrates to the newest)
    try:
        with store.write() as s:
            token = create_reset_link(s, 1, user=CLI, reason="na de upgrade", now=NOW)
            set_email(s, 1, "kim@school.example", user=CLI, now=NOW)
            redeem_reset_link(s, token, NEW_PASSWORD, now=NOW)
        assert login(store, "kim", "fout wachtwoord") is None
    finally:
        store.close()

    downgrade(db_url, "0007")
    assert current_revision(db_url) == "0007"
    assert "email" not in columns("users") and "requester_email" not in columns("unblock_requests")
    assert not {"password_resets", "login_throttle"} & tables() and "login_attempts" in tables()
    assert raw("SELECT username FROM users") == [("kim",)]
    migrate(db_url)
    assert current_revision(db_url) == head_revision()


# --- who may administer accounts ----------------------------------------------------------------

Admin = Callable[[Session, User, int], object]

STEPS: dict[str, Admin] = {
    "list_accounts": lambda s, u, target: list_accounts(s, user=u),
    "get_account": lambda s, u, target: get_account(s, target, user=u),
    "add_user": lambda s, u, target: add_user(s, user=u, username="nieuw", display_name="Nieuw", role="docent",
                                              zones=["lokaal-3"], zone_names=ZONES, email=None, now=NOW),
    "disable_user": lambda s, u, target: disable_user(s, target, user=u, reason="vertrokken", now=NOW),
    "set_role": lambda s, u, target: set_role(s, target, "leidinggevende", user=u, reason="promotie", now=NOW),
    "set_zones": lambda s, u, target: set_zones(s, target, ["lokaal-3"], zone_names=ZONES, user=u, reason="rooster",
                                                now=NOW),
    "set_email": lambda s, u, target: set_email(s, target, "kim@school.example", user=u, now=NOW),
    "set_password": lambda s, u, target: set_password(s, target, NEW_PASSWORD, user=u, reason="vergeten", now=NOW),
    "create_reset_link": lambda s, u, target: create_reset_link(s, target, user=u, reason="vergeten", now=NOW),
}


@pytest.mark.parametrize("step", STEPS)
def test_only_ict_administers_accounts(store: Store, people: dict[str, User], step: str) -> None:
    kim = people["docent"]
    for role in ROLES:
        if role == "ict":
            continue
        message = refused_without_trace(store, Forbidden, lambda s: STEPS[step](s, people[role], kim.id))
        assert "Niet toegestaan" in message
    with store.write() as s:
        STEPS[step](s, people["ict"], kim.id)


def test_enable_is_ict_only_too(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        disable_user(s, people["docent"].id, user=people["ict"], reason="verlof", now=NOW)
    for role in ROLES:
        if role != "ict":
            refused_without_trace(store, Forbidden, lambda s: enable_user(
                s, people["docent"].id, user=people[role], reason="terug", now=NOW))
    with store.write() as s:
        enable_user(s, people["docent"].id, user=people["ict"], reason="terug", now=NOW)


# --- disable and enable -------------------------------------------------------------------------

def test_a_disabled_account_cannot_log_in_and_loses_its_sessions_at_once(store: Store, people: dict[str, User]) -> None:
    kim, els = people["docent"], people["ict"]
    first, second = session_of(store, kim), session_of(store, kim)
    other = session_of(store, people["leidinggevende"])
    before = state_revision(store)
    with store.write() as s:
        disable_user(s, kim.id, user=els, reason="uit dienst", now=NOW)
    assert state_revision(store) == before + 1
    assert not alive(store, first) and not alive(store, second)
    assert alive(store, other)
    with store.read() as s:
        assert s.scalars(select(SessionRow).where(SessionRow.user_id == kim.id)).all() == []
        assert get_account(s, kim.id, user=els).active is False
        assert [a.username for a in list_accounts(s, user=els, include_disabled=False)].count("kim") == 0
    assert login(store, "kim", PASSWORD) is None                 # the right password, refused
    with pytest.raises(NotFound), store.write() as s:
        start_session(s, user_id=kim.id, now=NOW)
    refused_without_trace(store, Conflict, lambda s: disable_user(s, kim.id, user=els, reason="nogmaals", now=NOW))
    with store.write() as s:
        enable_user(s, kim.id, user=els, reason="terug van verlof", now=NOW + MINUTE)
    assert login(store, "kim", PASSWORD, NOW + 2 * MINUTE) == kim
    assert changes(store)[-2:] == [
        ("disable", "user", kim.id, "ict:els", "account uitgeschakeld / account disabled: uit dienst", NOW),
        ("enable", "user", kim.id, "ict:els", "account ingeschakeld / account enabled: terug van verlof", NOW + MINUTE),
    ]


def test_a_reason_is_required(store: Store, people: dict[str, User]) -> None:
    message = refused_without_trace(store, Invalid, lambda s: disable_user(
        s, people["docent"].id, user=people["ict"], reason="  ", now=NOW))
    assert message.startswith("Reden ontbreekt")


def test_unknown_accounts_are_not_found(store: Store, people: dict[str, User]) -> None:
    refused_without_trace(store, NotFound, lambda s: disable_user(s, 999, user=people["ict"], reason="x", now=NOW))
    refused_without_trace(store, NotFound, lambda s: set_role(s, 999, "docent", user=people["ict"], reason="x",
                                                              now=NOW))


# --- the last ICT account -------------------------------------------------------------------------

def test_the_last_active_ict_account_is_never_disabled_or_demoted(store: Store, people: dict[str, User]) -> None:
    els = people["ict"]
    message = refused_without_trace(store, Conflict, lambda s: disable_user(s, els.id, user=CLI, reason="x", now=NOW))
    assert "laatste actieve ICT-account" in message and "last active ICT account" in message
    refused_without_trace(store, Conflict, lambda s: set_role(s, els.id, "docent", user=CLI, reason="x", now=NOW))
    # with a second ICT account either may go, but then the other is the last one again
    with store.write() as s:
        bob = add_user(s, user=els, username="bob", display_name="Bob", role="ict", zones=(), zone_names=ZONES,
                       email=None, now=NOW, password=PASSWORD)
    with store.write() as s:
        set_role(s, bob, "docent", user=els, reason="andere taak", now=NOW)
    refused_without_trace(store, Conflict, lambda s: disable_user(s, els.id, user=CLI, reason="x", now=NOW))
    with store.write() as s:
        set_role(s, bob, "ict", user=els, reason="terug", now=NOW)
        disable_user(s, els.id, user=CLI, reason="vertrokken", now=NOW)
    # a disabled ICT account does not count as the one that keeps ICT in
    refused_without_trace(store, Conflict, lambda s: set_role(s, bob, "docent", user=CLI, reason="x", now=NOW))


def test_nobody_disables_or_demotes_their_own_account(store: Store, people: dict[str, User]) -> None:
    els = people["ict"]
    with store.write() as s:
        add_user(s, user=els, username="bob", display_name="Bob", role="ict", zones=(), zone_names=ZONES,
                 email=None, now=NOW, password=PASSWORD)
    message = refused_without_trace(store, Forbidden, lambda s: disable_user(s, els.id, user=els, reason="x", now=NOW))
    assert "eigen account" in message
    refused_without_trace(store, Forbidden, lambda s: set_role(s, els.id, "docent", user=els, reason="x", now=NOW))


def test_two_ict_members_demoting_each_other_at_once_leave_one(store: Store, people: dict[str, User]) -> None:
    """Els demotes Bob while Bob demotes Els. Bob's step must wait for Els's to commit and then
    find Els the last ICT account: it may not count ICT accounts before Els's change is in."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time; the interleaving needs PostgreSQL")
    els = people["ict"]
    with store.write() as s:
        bob_id = add_user(s, user=els, username="bob", display_name="Bob", role="ict", zones=(), zone_names=ZONES,
                          email=None, now=NOW, password=PASSWORD)
    bob = User(bob_id, "bob", "Bob", "ict", ())
    outcome: dict[str, object] = {}
    started = threading.Event()

    def bob_demotes_els() -> None:
        try:
            with store.write() as s:
                outcome["pid"] = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
                started.set()
                set_role(s, els.id, "docent", user=bob, reason="race", now=NOW)
            outcome["result"] = "demoted"
        except Conflict:
            outcome["result"] = "conflict"

    worker = threading.Thread(target=bob_demotes_els)
    with store.write() as s:
        set_role(s, bob_id, "docent", user=els, reason="race", now=NOW)     # not committed yet
        worker.start()
        assert started.wait(10)
        deadline = time.monotonic() + 10
        with store.engine.connect() as watch:   # wait until Bob's step waits for a lock Els holds
            while not watch.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = "
                                         "'Lock'"), {"pid": outcome["pid"]}).first():
                assert time.monotonic() < deadline, "Bob's step never waited for Els's"
                time.sleep(0.01)
    worker.join(30)
    assert not worker.is_alive() and outcome["result"] == "conflict"
    with store.read() as s:
        assert [a.username for a in list_accounts(s, user=CLI) if a.role == "ict" and a.active] == ["els"]


# --- passwords: set by ICT, or chosen through a one-time link ------------------------------------

def test_ict_sets_a_new_password_and_the_old_sessions_end(store: Store, people: dict[str, User]) -> None:
    kim = people["docent"]
    token = session_of(store, kim)
    with store.write() as s:
        set_password(s, kim.id, NEW_PASSWORD, user=people["ict"], reason="gelekt", now=NOW)
    assert not alive(store, token)
    assert login(store, "kim", PASSWORD) is None
    assert login(store, "kim", NEW_PASSWORD) == kim
    refused_without_trace(store, Invalid, lambda s: set_password(s, kim.id, "kort", user=people["ict"], reason="x",
                                                                  now=NOW))
    assert changes(store)[-1][:4] == ("password", "user", kim.id, "ict:els")


def test_a_reset_link_works_once(store: Store, people: dict[str, User]) -> None:
    kim = people["docent"]
    old_session = session_of(store, kim)
    with store.write() as s:
        token = create_reset_link(s, kim.id, user=people["ict"], reason="wachtwoord vergeten", now=NOW)
    assert len(token) >= 40
    assert reset_link("https://console.school.example/", token) == \
        f"https://console.school.example/wachtwoord-instellen?t={token}"
    with store.read() as s:   # only the hash is stored
        (row,) = s.scalars(select(PasswordResetRow))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.expires_at == NOW + RESET_VALID and not row.used
        every_value = " ".join(str(v) for r in s.execute(select(PasswordResetRow.__table__)) for v in r)
        assert token not in every_value
        assert check_reset_link(s, token, now=NOW + MINUTE) == "kim"
    assert alive(store, old_session)              # making a link alone changes nothing for the account
    with store.write() as s:
        assert redeem_reset_link(s, token, NEW_PASSWORD, now=NOW + MINUTE) == kim.id
    assert not alive(store, old_session)
    assert login(store, "kim", NEW_PASSWORD, NOW + 2 * MINUTE) == kim
    assert login(store, "kim", PASSWORD, NOW + 2 * MINUTE) is None
    # the second use, and looking at it, are refused like a link that never existed
    message = refused_without_trace(store, NotFound, lambda s: redeem_reset_link(
        s, token, "nog een ander wachtwoord", now=NOW + 2 * MINUTE))
    assert token not in message
    for bad in (token, "", "x" * 500, token[:-1]):
        with pytest.raises(NotFound), store.read() as s:
            check_reset_link(s, bad, now=NOW + 2 * MINUTE)
    assert changes(store)[-1] == ("password", "user", kim.id, "docent:kim",
                                  "wachtwoord gekozen met eenmalige link / password chosen with one-time link",
                                  NOW + MINUTE)


def test_a_reset_link_expires_and_a_newer_one_replaces_it(store: Store, people: dict[str, User]) -> None:
    kim, els = people["docent"], people["ict"]
    with store.write() as s:
        expired = create_reset_link(s, kim.id, user=els, reason="vergeten", now=NOW)
    refused_without_trace(store, NotFound, lambda s: redeem_reset_link(s, expired, NEW_PASSWORD, now=NOW + RESET_VALID))
    with store.write() as s:
        older = create_reset_link(s, kim.id, user=els, reason="vergeten", now=NOW + RESET_VALID)
        newer = create_reset_link(s, kim.id, user=els, reason="nog eens", now=NOW + RESET_VALID)
    refused_without_trace(store, NotFound, lambda s: redeem_reset_link(s, older, NEW_PASSWORD, now=NOW + RESET_VALID))
    # a too short password does not use the link up
    refused_without_trace(store, Invalid, lambda s: redeem_reset_link(s, newer, "kort", now=NOW + RESET_VALID))
    with store.write() as s:
        redeem_reset_link(s, newer, NEW_PASSWORD, now=NOW + RESET_VALID + MINUTE)


def test_a_disabled_account_gets_no_link_and_loses_the_one_it_had(store: Store, people: dict[str, User]) -> None:
    kim, els = people["docent"], people["ict"]
    with store.write() as s:
        token = create_reset_link(s, kim.id, user=els, reason="vergeten", now=NOW)
        disable_user(s, kim.id, user=els, reason="uit dienst", now=NOW)
    refused_without_trace(store, NotFound, lambda s: redeem_reset_link(s, token, NEW_PASSWORD, now=NOW))
    refused_without_trace(store, Conflict, lambda s: create_reset_link(s, kim.id, user=els, reason="x", now=NOW))
    with store.write() as s:   # enabling does not revive the old link
        enable_user(s, kim.id, user=els, reason="terug", now=NOW)
    refused_without_trace(store, NotFound, lambda s: redeem_reset_link(s, token, NEW_PASSWORD, now=NOW))


def test_a_new_password_lifts_the_username_brake(store: Store, people: dict[str, User]) -> None:
    for _ in range(ACCOUNT.free):
        assert login(store, "kim", "fout wachtwoord") is None
    with pytest.raises(Throttled):
        login(store, "kim", PASSWORD)
    with store.write() as s:
        set_password(s, people["docent"].id, NEW_PASSWORD, user=people["ict"], reason="vastgelopen", now=NOW)
    assert login(store, "kim", NEW_PASSWORD) == people["docent"]


def test_ict_adds_an_account_whose_user_chooses_the_password(store: Store, people: dict[str, User]) -> None:
    els = people["ict"]
    with store.write() as s:
        user_id = add_user(s, user=els, username="Nina", display_name="Nina de Boer", role="docent",
                           zones=["lokaal-3"], zone_names=ZONES, email="Nina@School.Example", now=NOW)
        token = create_reset_link(s, user_id, user=els, reason="nieuw account", now=NOW)
    with store.read() as s:
        nina = get_account(s, user_id, user=els)
    assert (nina.username, nina.role, nina.zones, nina.email, nina.active, nina.created_by) == \
        ("nina", "docent", ("lokaal-3",), "Nina@school.example", True, "ict:els")
    with store.write() as s:
        redeem_reset_link(s, token, NEW_PASSWORD, now=NOW)
    found = login(store, "nina", NEW_PASSWORD)
    assert found is not None and found.zones == ("lokaal-3",)


# --- role, zones and e-mail ----------------------------------------------------------------------

def test_role_and_zone_changes_are_recorded_with_old_and_new(store: Store, people: dict[str, User]) -> None:
    kim, els = people["docent"], people["ict"]
    with store.write() as s:
        set_zones(s, kim.id, ["lokaal-3", "aula"], zone_names=ZONES, user=els, reason="nieuw rooster", now=NOW)
        set_role(s, kim.id, "leidinggevende", user=els, reason="teamleider", now=NOW)
    assert changes(store)[-2:] == [
        ("zones", "user", kim.id, "ict:els", "zones lokaal-1,lokaal-2 -> lokaal-3,aula: nieuw rooster", NOW),
        ("role", "user", kim.id, "ict:els", "rol docent -> leidinggevende / role docent -> leidinggevende: teamleider",
         NOW),
    ]
    assert login(store, "kim", PASSWORD) == User(kim.id, "kim", "Kim", "leidinggevende", ("lokaal-3", "aula"))
    refused_without_trace(store, Invalid, lambda s: set_role(s, kim.id, "admin", user=els, reason="x", now=NOW))
    refused_without_trace(store, Invalid, lambda s: set_role(s, kim.id, "leidinggevende", user=els, reason="x",
                                                             now=NOW))


def test_zones_must_be_the_policys(store: Store, people: dict[str, User]) -> None:
    kim, els = people["docent"], people["ict"]
    message = refused_without_trace(store, Invalid, lambda s: set_zones(
        s, kim.id, ["lokaal-1", "doesnotexist"], zone_names=ZONES, user=els, reason="x", now=NOW))
    assert "doesnotexist" not in message and "lokaal-3" in message     # names what the policy has
    refused_without_trace(store, Invalid, lambda s: add_user(
        s, user=els, username="nieuw", display_name="N", role="docent", zones=["doesnotexist"], zone_names=ZONES,
        email=None, now=NOW))
    refused_without_trace(store, Invalid, lambda s: set_zones(s, kim.id, "lokaal-1", zone_names=ZONES, user=els,
                                                              reason="x", now=NOW))
    with store.write() as s:   # no zones at all is fine
        set_zones(s, kim.id, [], zone_names=ZONES, user=els, reason="geen klas meer", now=NOW)


def test_email_is_set_in_one_form_and_never_written_to_the_change_log(store: Store, people: dict[str, User]) -> None:
    kim, els = people["docent"], people["ict"]
    with store.write() as s:
        set_email(s, kim.id, "  Kim.Bakker@School.EXAMPLE ", user=els, now=NOW)
    with store.read() as s:
        assert get_account(s, kim.id, user=els).email == "Kim.Bakker@school.example"
    for bad in ("kim", "kim@", "kim@school", "<kim@school.example>", "a b@school.example", "k" * 250 + "@x.nl"):
        message = refused_without_trace(store, Invalid, lambda s, bad=bad: set_email(s, kim.id, bad, user=els, now=NOW))
        assert bad.strip() not in message
    with store.write() as s:
        set_email(s, kim.id, "", user=els, now=NOW)
    with store.read() as s:
        assert get_account(s, kim.id, user=els).email is None
        logged = " ".join(c.reason for c in s.scalars(select(ChangeRow)))
    assert "Kim.Bakker" not in logged and "school.example" not in logged
    assert [c[4] for c in changes(store)[-2:]] == ["e-mailadres gewijzigd / e-mail address changed",
                                                   "e-mailadres verwijderd / e-mail address removed"]


# --- throttling: the schedule ----------------------------------------------------------------------

def test_waits_start_after_the_free_failures_and_double_up_to_the_cap() -> None:
    assert [SOURCE.wait(n).total_seconds() for n in range(16)] == \
        [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
    assert [ACCOUNT.wait(n).total_seconds() for n in (9, 10, 11, 15, 16, 100, 10_000)] == [0, 1, 2, 32, 60, 60, 60]
    assert SOURCE.retry_after(5, NOW, NOW + SECOND) == 3
    assert SOURCE.retry_after(5, NOW, NOW + 4 * SECOND) == 0
    assert SOURCE.retry_after(50, NOW, NOW + FORGET) == 0        # forgotten after a quiet day


# --- throttling per address (memory) ---------------------------------------------------------------

def _try(throttle: SourceThrottle, address: str, username: str, ok: bool, at: dt.datetime) -> int:
    """One attempt: 0 if judged (ok or not), else the seconds to wait."""
    try:
        with throttle.attempt(address, username, at) as attempt:
            if ok:
                attempt.succeeded(at)
    except Throttled as exc:
        return exc.retry_after
    return 0


def test_a_strangers_guesses_slow_only_the_stranger() -> None:
    throttle, at, waits = SourceThrottle(), NOW, []
    while len(waits) < 12:                      # the stranger guesses as fast as allowed
        wait = _try(throttle, "10.30.4.66", "kim", False, at)
        if wait:
            waits.append(wait)
            assert _try(throttle, "10.30.4.66", "kim", False, at) == wait   # hammering does not add to it
            assert _try(throttle, "10.20.1.5", "kim", True, at) == 0         # the real user, from their own address
            at += dt.timedelta(seconds=wait)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert _try(throttle, "10.30.4.66", "anna", False, at) == 0 and _try(throttle, "10.30.4.66", "x", False, at) == 900


def test_a_success_clears_only_the_own_failures_of_an_address() -> None:
    throttle = SourceThrottle()
    for name in ("kim", "anna"):                 # a shared machine: kim mistypes, someone tries anna
        assert _try(throttle, "10.20.1.5", name, False, NOW) == 0
    assert _try(throttle, "10.20.1.5", "kim", True, NOW) == 0    # kim gets it right: her failure is gone
    for _ in range(2):                           # anna's still counts: two more make three
        assert _try(throttle, "10.20.1.5", "piet", False, NOW) == 0
    assert _try(throttle, "10.20.1.5", "piet", False, NOW) == 1


def test_an_attempt_that_was_not_judged_does_not_count() -> None:
    throttle = SourceThrottle()
    for _ in range(5):
        with pytest.raises(RuntimeError), throttle.attempt("10.20.1.5", "kim", NOW):
            raise RuntimeError("database away")   # or the username brake refused it
    assert _try(throttle, "10.20.1.5", "kim", False, NOW) == 0


def test_parallel_guesses_from_one_address_get_the_free_tries_only() -> None:
    """Twelve guesses at once; the admitted ones are still being checked (they wait for `release`)
    while the others ask, so none may count on the others' outcome being known."""
    throttle, release, lock = SourceThrottle(), threading.Event(), threading.Lock()
    asked: list[int] = []

    def guess(n: int) -> int:
        try:
            with throttle.attempt("10.30.4.66", "kim", NOW):
                with lock:
                    asked.append(n)
                assert release.wait(10)          # the password check, taking its time
        except Throttled as exc:
            with lock:
                asked.append(n)
            return exc.retry_after
        return 0

    results: list[int | Exception] = []
    workers = threading.Thread(target=lambda: results.extend(race(12, guess)))
    workers.start()
    deadline = time.monotonic() + 10
    while len(asked) < 12:                       # every guess admitted or refused ...
        assert time.monotonic() < deadline
        time.sleep(0.005)
    release.set()                                # ... before any admitted one is done
    workers.join(10)
    assert sorted(results) == [0] * SOURCE.free + [1] * (12 - SOURCE.free)   # type: ignore[type-var]


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from poortwachter.workflow import throttle as module

    monkeypatch.setattr(module, "MAX_SOURCES", 50)
    throttle = SourceThrottle(Schedule(free=1, first=MINUTE, cap=MINUTE))
    for n in range(200):
        _try(throttle, f"10.9.{n // 250}.{n % 250}", "kim", False, NOW)
    assert len(throttle._sources) == 50
    assert _try(throttle, "10.9.0.199", "kim", False, NOW) == 60     # the newest are kept


# --- throttling per username (the store) -----------------------------------------------------------

def test_the_username_brake_grows_and_never_locks(store: Store, people: dict[str, User]) -> None:
    at = NOW
    for _ in range(ACCOUNT.free):
        assert login(store, "kim", "fout wachtwoord", at) is None
    waits = []
    for _ in range(8):
        with pytest.raises(Throttled) as info:
            login(store, "kim", PASSWORD, at)                    # even the right password waits
        waits.append(info.value.retry_after)
        at += dt.timedelta(seconds=info.value.retry_after)
        assert login(store, "kim", "fout wachtwoord", at) is None
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]                  # never longer than a minute
    with store.read() as s:                                        # refused attempts were not counted
        brake = s.get(LoginThrottleRow, "kim")
        assert brake is not None and brake.failures == ACCOUNT.free + 8 and brake.last_failure_at == at
    assert login(store, "kim", PASSWORD, at + MINUTE) == people["docent"]
    with store.read() as s:
        assert s.get(LoginThrottleRow, "kim") is None              # a success starts afresh


def test_unknown_usernames_get_the_same_brake_and_quiet_ones_are_forgotten(store: Store,
                                                                         people: dict[str, User]) -> None:
    for name in ("kim", "niemand"):
        for _ in range(ACCOUNT.free):
            assert login(store, name, "fout wachtwoord") is None
        with pytest.raises(Throttled) as info:
            login(store, name, "fout wachtwoord")
        assert str(info.value) == ("Te veel mislukte pogingen; probeer het over 1 seconde opnieuw / "
                                   "Too many failed attempts; try again in 1 second")
    assert login(store, "anna", "fout wachtwoord", NOW + FORGET) is None    # purges the quiet rows
    with store.read() as s:
        assert [b.username for b in s.scalars(select(LoginThrottleRow))] == ["anna"]


def test_an_address_that_logged_in_before_is_not_held_by_the_username_brake(store: Store,
                                                                             people: dict[str, User]) -> None:
    for _ in range(ACCOUNT.free):
        assert login(store, "kim", "fout wachtwoord") is None
    with pytest.raises(Throttled):
        login(store, "kim", PASSWORD)
    assert login(store, "kim", PASSWORD, known_source=True) == people["docent"]


class Console:
    """Both brakes together, as the console runs them (console/login.py)."""

    def __init__(self, store: Store) -> None:
        self.store, self.throttle = store, SourceThrottle()

    def login(self, address: str, password: str, at: dt.datetime) -> User | None | int:
        """The user, None (wrong), or the seconds to wait."""
        try:
            with self.throttle.attempt(address, "kim", at) as admitted:
                user = login(self.store, "kim", password, at, known_source=admitted.known)
                if user is not None:
                    admitted.succeeded(at)
                return user
        except Throttled as exc:
            return exc.retry_after

    def stranger(self, until: dt.datetime, after_each: Callable[[dt.datetime], None] = lambda at: None) -> int:
        """A stranger at 10.30.4.66 guesses kim's password as fast as the waits allow; returns how
        many guesses were judged. Stops right after a judged guess."""
        at, judged = NOW, 0
        while True:
            result = self.login("10.30.4.66", f"gok {judged}", at)
            if isinstance(result, int):
                at += dt.timedelta(seconds=result)
                continue
            judged += 1
            after_each(at)
            if at >= until:
                return judged


def test_a_strangers_failures_from_one_address_do_not_stop_the_real_user_from_another(
        store: Store, people: dict[str, User]) -> None:
    console, kim = Console(store), people["docent"]

    def kim_logs_in(at: dt.datetime) -> None:    # right after every guess, from the staff room
        assert console.login("10.20.1.5", PASSWORD, at) == kim

    judged = console.stranger(NOW + dt.timedelta(hours=1), kim_logs_in)
    assert 10 < judged < 20                        # an hour bought the stranger about a dozen guesses


def test_guessing_spread_over_addresses_is_slowed_but_the_user_gets_in(store: Store, people: dict[str, User]) -> None:
    console, kim = Console(store), people["docent"]
    assert console.login("10.20.1.5", PASSWORD, NOW) == kim       # kim's own machine, earlier
    console.stranger(NOW + dt.timedelta(hours=1))
    with store.read() as s:
        brake = s.get(LoginThrottleRow, "kim")
        assert brake is not None and brake.failures > ACCOUNT.free
        at = brake.last_failure_at                                 # right after the stranger's last guess
    # a machine never used for kim waits at most the username brake's minute ...
    wait = console.login("10.20.1.77", PASSWORD, at)
    assert isinstance(wait, int) and 0 < wait <= ACCOUNT.cap.total_seconds()
    # ... kim's own machine not at all, and the stranger still waits many minutes
    assert console.login("10.20.1.5", PASSWORD, at) == kim
    stranger = console.login("10.30.4.66", "nog een gok", at)
    assert isinstance(stranger, int) and stranger > 5 * 60


def test_a_clock_stepped_back_never_makes_the_wait_longer_than_the_schedule() -> None:
    """An NTP step back after failures must not lock the real user out for hours: the wait stays
    within what the schedule gives for that many failures."""
    from poortwachter.workflow.throttle import SOURCE

    last = dt.datetime(2025, 3, 10, 18, 0, tzinfo=dt.UTC)
    stepped_back = last - dt.timedelta(hours=9)
    assert SOURCE.retry_after(5, last, stepped_back) <= SOURCE.wait(5).total_seconds()
    assert SOURCE.retry_after(2, last, stepped_back) == 0
