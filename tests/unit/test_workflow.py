"""The workflow service on SQLite and PostgreSQL: accounts, sessions, unblock requests,
classroom openings, exams, exclusions, expiry; authorization per role; the change log.

Backends and per-test schemas come from test_store.py (fixtures `db_url`, `store`). Password
hashing uses cheap argon2id parameters here (the real ones cost ~0.1 s per hash); one test checks
the real parameters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from poortwachter.store import Store, load_state, state_revision
from poortwachter.store.models import (
    BanRow,
    ChangeRow,
    GrantRow,
    LoginThrottleRow,
    SessionRow,
    UserRow,
)
from poortwachter.workflow import (
    ROLES,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    User,
    accounts,
    approve_request,
    authenticate,
    counts,
    create_grant,
    create_user,
    decline_request,
    end_exam,
    end_exclusion,
    end_opening,
    end_session,
    endorse_request,
    exclude,
    find_request,
    get_request,
    get_user,
    list_grants,
    list_openings,
    list_requests,
    list_users,
    load_session,
    open_classroom,
    record_expiries,
    revoke_grant,
    start_exam,
    start_session,
    submit_request,
    withdraw_request,
)

from .test_store import db_url, store  # noqa: F401  (fixtures: both backends, schema per test)

NOW = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)   # a Monday, 10:00 in Amsterdam
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
PASSWORD = "correct horse battery"
BLOCKED = "https://www.YouTube.com/watch?v=abc"
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "HASHER", CHEAP)


USERS = {  # role -> (username, zones)
    "ict": ("els", ()),
    "leidinggevende": ("anna", ()),
    "docent": ("kim", ("lokaal-1", "lokaal-2")),
    "directie": ("piet", ()),
    "examencoordinator": ("eva", ()),
    "fg": ("fenna", ()),
    "mr": ("mo", ()),
}


@pytest.fixture
def people(store: Store) -> dict[str, User]:
    with store.write() as s:
        ids = {role: create_user(s, username=name, display_name=name.title(), role=role, password=PASSWORD,
                                 zones=zones, actor="ict:setup", now=NOW)
               for role, (name, zones) in USERS.items()}
    with store.read() as s:
        found = {role: get_user(s, user_id) for role, user_id in ids.items()}
    assert all(found.values())
    return {role: u for role, u in found.items() if u is not None}


def changes(store: Store, after: int = 0) -> list[tuple[str, str, int, str, str, dt.datetime]]:
    with store.read() as s:
        rows = s.scalars(select(ChangeRow).where(ChangeRow.id > after).order_by(ChangeRow.id))
        return [(c.kind, c.object, c.object_id, c.actor, c.reason, c.at) for c in rows]


def last_change_id(store: Store) -> int:
    with store.read() as s:
        return s.scalar(select(func.max(ChangeRow.id))) or 0


def public_request(s: Session, **kw: object) -> int:
    args: dict[str, object] = {"url": BLOCKED, "category": "video", "rule": "categorie",
                               "requester": "Sam, 3B", "reason": "filmpje voor biologie", "now": NOW}
    args.update(kw)
    return submit_request(s, **args)  # type: ignore[arg-type]


def endorse(s: Session, request_id: int, user: User, **kw: object) -> None:
    args: dict[str, object] = {"ground": "lesstof", "sites": ["youtube.com"], "zones": ["klaslokalen"],
                               "roles": ["pupil"], "start": NOW, "end": NOW + 2 * HOUR,
                               "motivation": "video hoort bij de les", "now": NOW}
    args.update(kw)
    endorse_request(s, request_id, user=user, **args)  # type: ignore[arg-type]


def endorsed_request(store: Store, people: dict[str, User], **kw: object) -> int:
    with store.write() as s:
        request_id = public_request(s)
        endorse(s, request_id, people["leidinggevende"], **kw)
    return request_id


def view(store: Store, request_id: int):  # type: ignore[no-untyped-def]
    with store.read() as s:
        found = get_request(s, request_id)
    assert found is not None
    return found


def refused_without_trace(store: Store, exc: type[Exception], action: Callable[[Session], object]) -> str:
    """Run action in a write unit of work; it must raise exc and change nothing."""
    before = state_revision(store)
    with pytest.raises(exc) as info, store.write() as s:
        action(s)
    assert state_revision(store) == before
    message = str(info.value)
    assert " / " in message                    # Dutch / English
    return message


# --- migration 0002 --------------------------------------------------------------------------

def test_migration_0002_keeps_existing_state_and_downgrades(db_url: str) -> None:
    from sqlalchemy import column, create_engine, insert, inspect, table, text

    from poortwachter.store.models import UTCDateTime

    from poortwachter.store import downgrade, migrate, open_store
    from poortwachter.store.db import current_revision, head_revision

    def columns(table: str) -> set[str]:
        engine = create_engine(db_url)
        try:
            return {c["name"] for c in inspect(engine).get_columns(table)}
        finally:
            engine.dispose()

    migrate(db_url, "0001")
    engine = create_engine(db_url)
    bans_0001 = table("bans", column("subject"), column("until", UTCDateTime()), column("reason"),
                      column("source"), column("created_by"), column("created_at", UTCDateTime()))
    with engine.begin() as conn:   # a ban written by a 0001 gateway
        conn.execute(insert(bans_0001).values(subject="10.20.3.4", until=NOW + HOUR, reason="sanctie",
                                              source="", created_by="ict:jan", created_at=NOW))
    engine.dispose()
    migrate(db_url)
    assert current_revision(db_url) == head_revision()
    assert "expired_at" in columns("bans")
    store = open_store(db_url)
    try:
        (ban,) = load_state(store, NOW).bans
        assert ban.subject == "10.20.3.4"
        with store.write() as s:
            assert record_expiries(s, now=NOW + 2 * HOUR) == 1
    finally:
        store.close()
    downgrade(db_url, "0001")
    assert current_revision(db_url) == "0001"
    assert "expired_at" not in columns("bans") and "expired_at" not in columns("grants")
    engine = create_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.execute(text("SELECT subject FROM bans")).scalars().all() == ["10.20.3.4"]
    finally:
        engine.dispose()
    assert not {"users", "sessions", "login_attempts", "unblock_requests"} & tables
    migrate(db_url)
    assert current_revision(db_url) == head_revision()


# --- accounts --------------------------------------------------------------------------------

def test_create_user_stores_an_argon2id_hash_never_the_password(store: Store) -> None:
    with store.write() as s:
        user_id = create_user(s, username=" Jan.de-Vries ", display_name="Jan de Vries", role="ict",
                              password=PASSWORD, actor="ict:setup", now=NOW)
    with store.read() as s:
        row = s.get(UserRow, user_id)
        assert row is not None
        assert row.username == "jan.de-vries" and row.active and row.created_by == "ict:setup"
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
        every_value = " ".join(str(v) for r in s.execute(select(UserRow.__table__)) for v in r)
        assert PASSWORD not in every_value
        assert get_user(s, user_id) == User(user_id, "jan.de-vries", "Jan de Vries", "ict", ())
        assert list_users(s) == [get_user(s, user_id)]
    assert changes(store) == [("add", "user", user_id, "ict:setup",
                               "account aangemaakt, rol ict / account created, role ict", NOW)]
    assert state_revision(store) == 1


def test_real_hasher_is_argon2id_with_recommended_cost(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()   # the module's own hasher, not the cheap one
    with store.write() as s:
        user_id = create_user(s, username="jan", display_name="Jan", role="ict", password=PASSWORD,
                              actor="ict:setup", now=NOW)
    with store.read() as s:
        row = s.get(UserRow, user_id)
        assert row is not None and row.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


@pytest.mark.parametrize(("field", "value"), [
    ("role", "admin"), ("password", "Xq7!zp"), ("username", "jan de vries"), ("username", ""),
    ("display_name", "  "), ("zones", "lokaal-1"),
])
def test_create_user_refuses_bad_input(store: Store, field: str, value: str) -> None:
    args: dict[str, object] = {"username": "jan", "display_name": "Jan", "role": "docent",
                               "password": PASSWORD, "actor": "ict:setup", "now": NOW, field: value}
    message = refused_without_trace(store, Invalid, lambda s: create_user(s, **args))  # type: ignore[arg-type]
    assert value.strip() == "" or value not in message


def test_usernames_are_unique_regardless_of_case(store: Store) -> None:
    with store.write() as s:
        create_user(s, username="jan", display_name="Jan", role="ict", password=PASSWORD, actor="a", now=NOW)
    refused_without_trace(store, Conflict, lambda s: create_user(
        s, username="JAN", display_name="Ander", role="docent", password=PASSWORD, actor="a", now=NOW))


def test_authenticate(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        assert authenticate(s, username="KIM", password=PASSWORD, source="console", now=NOW) == people["docent"]
        assert authenticate(s, username="kim", password=PASSWORD + "!", source="console", now=NOW) is None
        assert authenticate(s, username="nobody", password=PASSWORD, source="console", now=NOW) is None
        assert authenticate(s, username="", password="", source="console", now=NOW) is None
        assert authenticate(s, username="kim", password="x" * 100_000, source="console", now=NOW) is None
        s.execute(update(UserRow).where(UserRow.username == "piet").values(active=False))
        assert authenticate(s, username="piet", password=PASSWORD, source="console", now=NOW) is None
        assert get_user(s, people["directie"].id) is None
        assert "piet" not in [u.username for u in list_users(s)]
    with store.read() as s:   # failures per username since its last success, unknown names too
        brakes = {b.username: b.failures for b in s.scalars(select(LoginThrottleRow))}
    assert brakes == {"kim": 2, "nobody": 1, "": 1, "piet": 1}


def _login(store: Store, password: str, at: dt.datetime, username: str = "kim") -> User | None:
    with store.write() as s:
        return authenticate(s, username=username, password=password, source="console", now=at)


def test_login_upgrades_an_outdated_hash(store: Store, people: dict[str, User],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    monkeypatch.setattr(accounts, "HASHER", stronger)
    assert _login(store, PASSWORD, NOW) == people["docent"]
    with store.read() as s:
        row = s.get(UserRow, people["docent"].id)
        assert row is not None and "m=2048,t=2,p=1" in row.password_hash
    assert _login(store, PASSWORD, NOW + MINUTE) == people["docent"]


# --- sessions --------------------------------------------------------------------------------

def test_session_stores_only_the_token_hash(store: Store, people: dict[str, User]) -> None:
    kim = people["docent"]
    with store.write() as s:
        token, csrf = start_session(s, user_id=kim.id, now=NOW)
    assert len(token) >= 40 and len(csrf) >= 40 and token != csrf
    with store.read() as s:
        (row,) = s.scalars(select(SessionRow))
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in {row.token_hash, row.csrf_token}
        assert row.expires_at == NOW + 8 * HOUR
    with store.write() as s:
        assert load_session(s, token, now=NOW + MINUTE) == (kim, csrf)
        assert load_session(s, token + "x", now=NOW) is None
        assert load_session(s, "", now=NOW) is None
        assert load_session(s, "x" * 10_000, now=NOW) is None


def test_session_expiry_slides_with_use_up_to_a_day(store: Store, people: dict[str, User]) -> None:
    kim = people["docent"]
    with store.write() as s:
        token, _ = start_session(s, user_id=kim.id, now=NOW)
    for hours in (7, 14, 21):      # each use moves the end to 8 h later
        with store.write() as s:
            found = load_session(s, token, now=NOW + hours * HOUR)
            assert found is not None and found[0] == kim
    with store.write() as s:        # but never past 24 h after login
        assert load_session(s, token, now=NOW + 24 * HOUR) is None
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(SessionRow)) == 0


def test_idle_session_expires_and_is_removed(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        token, _ = start_session(s, user_id=people["docent"].id, now=NOW, ttl=HOUR)
    with store.write() as s:
        assert load_session(s, token, now=NOW + HOUR - dt.timedelta(seconds=1)) is not None
    with store.write() as s:
        assert load_session(s, token, now=NOW + 2 * HOUR) is None
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(SessionRow)) == 0


def test_a_read_unit_of_work_checks_but_does_not_extend(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        token, _ = start_session(s, user_id=people["docent"].id, now=NOW, ttl=HOUR)
    with store.read() as s:
        assert load_session(s, token, now=NOW + 30 * MINUTE) is not None
    with store.write() as s:
        assert load_session(s, token, now=NOW + HOUR + MINUTE) is None


def test_end_session_and_deactivated_accounts(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        token, _ = start_session(s, user_id=people["docent"].id, now=NOW)
        other, _ = start_session(s, user_id=people["ict"].id, now=NOW)
    with store.write() as s:
        end_session(s, token)
        end_session(s, "unknown")
        assert load_session(s, token, now=NOW) is None
        assert load_session(s, other, now=NOW) is not None
        s.execute(update(UserRow).where(UserRow.id == people["ict"].id).values(active=False))
        assert load_session(s, other, now=NOW) is None
        with pytest.raises(NotFound):
            start_session(s, user_id=people["ict"].id, now=NOW)
        with pytest.raises(Invalid):
            start_session(s, user_id=people["docent"].id, now=NOW, ttl=dt.timedelta(days=3))


def test_starting_a_session_purges_ended_ones(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        start_session(s, user_id=people["docent"].id, now=NOW, ttl=HOUR)
        start_session(s, user_id=people["docent"].id, now=NOW, ttl=8 * HOUR)
    with store.write() as s:
        start_session(s, user_id=people["ict"].id, now=NOW + 2 * HOUR)
    with store.read() as s:
        assert sorted(r.expires_at for r in s.scalars(select(SessionRow))) == [NOW + 8 * HOUR, NOW + 10 * HOUR]


# --- unblock requests ------------------------------------------------------------------------

def test_public_submission(store: Store) -> None:
    with store.write() as s:
        request_id = public_request(s)
    r = view(store, request_id)
    assert (r.status, r.url, r.sites, r.category, r.rule) == ("submitted", BLOCKED, ("www.youtube.com",),
                                                             "video", "categorie")
    assert (r.requester, r.reason, r.ground, r.motivation) == ("Sam, 3B", "filmpje voor biologie", None, "")
    assert (r.endorsed_by, r.decided_by, r.grant_id, r.created_at) == (None, None, None, NOW)
    assert len(r.token) >= 20
    with store.read() as s:
        assert find_request(s, r.token) == r
        assert find_request(s, "guess") is None and find_request(s, "") is None
        assert get_request(s, request_id + 1) is None
    assert changes(store) == [("submit", "request", request_id, "publiek", "filmpje voor biologie", NOW)]
    assert not load_state(store, NOW)                       # nothing opened yet


@pytest.mark.parametrize(("field", "value"), [
    ("requester", " "), ("reason", ""), ("url", "javascript:alert(1)"), ("url", ""),
    ("sites", ["ok.example", "not a host"]), ("ground", "leuk"), ("reason", "x" * 5000),
])
def test_submission_refuses_bad_input_without_echo(store: Store, field: str, value: object) -> None:
    message = refused_without_trace(store, Invalid, lambda s: public_request(s, **{field: value}))
    assert "alert" not in message and "not a host" not in message


def test_a_leidinggevende_submitting_with_ground_endorses_at_once(store: Store, people: dict[str, User]) -> None:
    anna = people["leidinggevende"]
    with store.write() as s:
        request_id = public_request(s, user=anna, requester="", ground="professioneel",
                                    sites=["youtube.com"], zones=["klaslokalen"], end=NOW + HOUR)
    r = view(store, request_id)
    assert (r.status, r.requester, r.ground, r.endorsed_by, r.motivation) == (
        "endorsed", "Anna", "professioneel", "leidinggevende:anna", "filmpje voor biologie")
    assert (r.sites, r.zones, r.roles, r.start, r.end) == (("youtube.com",), ("klaslokalen",), (), NOW, NOW + HOUR)
    assert [c[:4] for c in changes(store, after=len(USERS))] == [
        ("submit", "request", request_id, "leidinggevende:anna"),
        ("endorse", "request", request_id, "leidinggevende:anna")]
    # a leidinggevende endorsing needs an end; a docent with a ground only submits
    refused_without_trace(store, Invalid, lambda s: public_request(s, user=anna, ground="lesstof"))
    with store.write() as s:
        docent_request = public_request(s, user=people["docent"], ground="lesstof", end=NOW + HOUR)
    assert view(store, docent_request).status == "submitted"


def test_endorse(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s)
    before = last_change_id(store)
    with store.write() as s:
        endorse(s, request_id, people["leidinggevende"], start=None, sites=["YouTube.com.", "ytimg.com"])
    r = view(store, request_id)
    assert (r.status, r.ground, r.sites, r.zones, r.roles) == (
        "endorsed", "lesstof", ("youtube.com", "ytimg.com"), ("klaslokalen",), ("pupil",))
    assert (r.start, r.end, r.motivation, r.endorsed_by, r.endorsed_at) == (
        NOW, NOW + 2 * HOUR, "video hoort bij de les", "leidinggevende:anna", NOW)
    assert changes(store, before) == [("endorse", "request", request_id, "leidinggevende:anna",
                                       "lesstof: video hoort bij de les", NOW)]
    refused_without_trace(store, Conflict, lambda s: endorse(s, request_id, people["ict"]))


@pytest.mark.parametrize(("field", "value"), [
    ("ground", "leuk"), ("sites", []), ("end", NOW - MINUTE), ("start", NOW + 3 * HOUR),
    ("motivation", " "), ("end", dt.datetime(2025, 3, 10, 12, 0)), ("zones", "klaslokalen"),
])
def test_endorse_refuses_bad_input(store: Store, people: dict[str, User], field: str, value: object) -> None:
    with store.write() as s:
        request_id = public_request(s)
    refused_without_trace(store, Invalid, lambda s: endorse(s, request_id, people["leidinggevende"], **{field: value}))
    assert view(store, request_id).status == "submitted"


def test_approve_creates_the_grant_the_gateway_enforces(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people)
    before = last_change_id(store)
    with store.write() as s:
        grant_id = approve_request(s, request_id, user=people["ict"], now=NOW, reason="akkoord")
    r = view(store, request_id)
    assert (r.status, r.grant_id, r.decided_by, r.decision_reason, r.grant_status, r.decided_at) == (
        "approved", grant_id, "ict:els", "akkoord", "approved", NOW)
    (grant,) = load_state(store, NOW).grants
    # the grant carries no article of its own: its verdicts cite the policy's articles.unblock
    assert grant.id == grant_id and grant.source == ""
    assert grant.sites.domains == {"youtube.com"} and grant.zones == {"klaslokalen"} and grant.roles == {"pupil"}
    assert (grant.start, grant.end) == (NOW, NOW + 2 * HOUR)
    assert grant.sites.covers("www.youtube.com", "/watch", frozenset())
    assert changes(store, before) == [
        ("add", "grant", grant_id, "ict:els", f"verzoek {request_id} (lesstof): akkoord", NOW),
        ("approve", "request", request_id, "ict:els", "akkoord", NOW)]
    with store.read() as s:
        (listed,) = list_grants(s, now=NOW)
        assert listed.id == grant_id and listed.approved_by == "ict:els"
    refused_without_trace(store, Conflict, lambda s: approve_request(s, request_id, user=people["ict"], now=NOW))


def test_only_endorsed_requests_can_be_approved(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s)
    refused_without_trace(store, Conflict, lambda s: approve_request(s, request_id, user=people["ict"], now=NOW))
    refused_without_trace(store, NotFound, lambda s: approve_request(s, 999, user=people["ict"], now=NOW))


@pytest.mark.parametrize(("narrowed", "expect"), [
    ({"sites": ["www.youtube.com"]}, {"domains": {"www.youtube.com"}}),
    ({"sites": ["youtube.com/watch"]}, {"paths": (("youtube.com", "/watch"),)}),
    ({"zones": ["klaslokalen"], "roles": ["pupil"]}, {}),
    ({"start": NOW + HOUR, "end": NOW + 90 * MINUTE}, {"start": NOW + HOUR, "end": NOW + 90 * MINUTE}),
])
def test_approval_may_narrow(store: Store, people: dict[str, User], narrowed: dict[str, object],
                             expect: dict[str, object]) -> None:
    request_id = endorsed_request(store, people)
    with store.write() as s:
        approve_request(s, request_id, user=people["ict"], now=NOW, **narrowed)  # type: ignore[arg-type]
    (grant,) = load_state(store, NOW - HOUR).grants
    for key, value in expect.items():
        assert (getattr(grant.sites, key) if key in ("domains", "paths") else getattr(grant, key)) == value


@pytest.mark.parametrize("wider", [
    {"sites": ["vimeo.com"]}, {"sites": ["com"]}, {"sites": []}, {"zones": ["medewerkers"]},
    {"zones": []}, {"roles": ["staff"]}, {"roles": []}, {"start": NOW - MINUTE}, {"end": NOW + 3 * HOUR},
    {"start": NOW + HOUR, "end": NOW + HOUR},
])
def test_approval_never_widens(store: Store, people: dict[str, User], wider: dict[str, object]) -> None:
    request_id = endorsed_request(store, people)
    refused_without_trace(store, Invalid, lambda s: approve_request(
        s, request_id, user=people["ict"], now=NOW, **wider))  # type: ignore[arg-type]
    assert view(store, request_id).status == "endorsed"
    assert not load_state(store, NOW).grants


def test_path_scope_narrows_to_deeper_paths_only(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people, sites=["wikipedia.org/wiki"], zones=[], roles=[])
    refused_without_trace(store, Invalid, lambda s: approve_request(
        s, request_id, user=people["ict"], now=NOW, sites=["wikipedia.org"]))
    with store.write() as s:     # endorsed scope "all zones, all roles": anything narrower goes
        approve_request(s, request_id, user=people["ict"], now=NOW, sites=["nl.wikipedia.org/wiki/Cel"],
                        zones=["klaslokalen"], roles=["pupil"])
    (grant,) = load_state(store, NOW).grants
    assert grant.sites.paths == (("nl.wikipedia.org", "/wiki/Cel"),) and grant.zones == {"klaslokalen"}


def test_a_window_already_over_cannot_be_approved(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people)
    refused_without_trace(store, Invalid, lambda s: approve_request(
        s, request_id, user=people["ict"], now=NOW + 3 * HOUR))


def test_not_overridable_categories_are_never_granted(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people, sites=["youtube.com", "evil.example"])
    asked: list[str] = []

    def locked(site: str) -> str | None:
        asked.append(site)
        return "malware" if site == "evil.example" else None

    message = refused_without_trace(store, Invalid, lambda s: approve_request(
        s, request_id, user=people["ict"], now=NOW, locked=locked))
    assert "malware" in message and "evil.example" not in message
    assert asked[-1] == "evil.example"
    assert view(store, request_id).status == "endorsed"
    with store.write() as s:       # narrowed to the innocent site, it goes through
        approve_request(s, request_id, user=people["ict"], now=NOW, sites=["youtube.com"], locked=locked)
    refused_without_trace(store, Invalid, lambda s: create_grant(
        s, user=people["ict"], sites=["www.evil.example/x"], end=NOW + HOUR, reason="r", now=NOW,
        locked=lambda site: "phishing" if site.endswith("evil.example") else None))


def test_decline(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people)
    refused_without_trace(store, Invalid, lambda s: decline_request(
        s, request_id, user=people["ict"], reason=" ", now=NOW))
    before = last_change_id(store)
    with store.write() as s:
        decline_request(s, request_id, user=people["ict"], reason="geen lesstof", now=NOW)
    r = view(store, request_id)
    assert (r.status, r.decided_by, r.decision_reason, r.grant_id) == ("declined", "ict:els", "geen lesstof", None)
    assert changes(store, before) == [("decline", "request", request_id, "ict:els", "geen lesstof", NOW)]
    refused_without_trace(store, Conflict, lambda s: approve_request(s, request_id, user=people["ict"], now=NOW))
    refused_without_trace(store, Conflict, lambda s: decline_request(
        s, request_id, user=people["ict"], reason="nogmaals", now=NOW))
    with store.write() as s:       # a submitted request can be declined as well
        other = public_request(s)
        decline_request(s, other, user=people["ict"], reason="nee", now=NOW)
    assert view(store, other).status == "declined"


def test_withdraw(store: Store, people: dict[str, User]) -> None:
    with store.write() as s:
        request_id = public_request(s)
    before = last_change_id(store)
    with store.write() as s:
        withdraw_request(s, request_id, user=people["leidinggevende"], reason="niet nodig", now=NOW)
    assert view(store, request_id).status == "withdrawn"
    assert changes(store, before) == [("withdraw", "request", request_id, "leidinggevende:anna", "niet nodig", NOW)]
    refused_without_trace(store, Conflict, lambda s: endorse(s, request_id, people["leidinggevende"]))


def test_revoke_grant(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people)
    with store.write() as s:
        grant_id = approve_request(s, request_id, user=people["ict"], now=NOW)
    before = last_change_id(store)
    with store.write() as s:
        revoke_grant(s, grant_id, user=people["ict"], reason="misbruikt", now=NOW + MINUTE)
    assert not load_state(store, NOW + MINUTE).grants
    assert changes(store, before) == [("revoke", "grant", grant_id, "ict:els", "misbruikt", NOW + MINUTE)]
    assert view(store, request_id).grant_status == "revoked"
    refused_without_trace(store, Conflict, lambda s: revoke_grant(
        s, grant_id, user=people["ict"], reason="nogmaals", now=NOW + MINUTE))
    refused_without_trace(store, NotFound, lambda s: revoke_grant(
        s, grant_id + 1, user=people["ict"], reason="bestaat niet", now=NOW))
    with store.read() as s:
        assert list_grants(s, now=NOW) == [] and len(list_grants(s, now=NOW, include_ended=True)) == 1


def test_list_requests_by_status(store: Store, people: dict[str, User]) -> None:
    first = endorsed_request(store, people)
    with store.write() as s:
        second = public_request(s)
        third = public_request(s)
        decline_request(s, third, user=people["ict"], reason="nee", now=NOW)
    with store.read() as s:
        assert [r.id for r in list_requests(s)] == [first, second, third]
        assert [r.id for r in list_requests(s, status="submitted")] == [second]
        assert [r.id for r in list_requests(s, status=("submitted", "endorsed"))] == [first, second]
        with pytest.raises(Invalid):
            list_requests(s, status="maybe")


def test_request_view_is_the_contract_plus_defaults() -> None:
    from poortwachter.workflow import RequestView

    names = [f.name for f in dataclasses.fields(RequestView)]
    contract = ["id", "url", "sites", "category", "rule", "requester", "ground", "zones", "roles", "start",
                "end", "motivation", "status", "endorsed_by", "decided_by", "decision_reason", "grant_id",
                "created_at"]
    assert names[:len(contract)] == contract
    assert all(f.default is not dataclasses.MISSING for f in dataclasses.fields(RequestView)[len(contract):])


# --- classroom, exams, exclusions ------------------------------------------------------------

def test_docent_opens_and_ends_own_classroom(store: Store, people: dict[str, User]) -> None:
    kim = people["docent"]
    with store.write() as s:
        opening_id = open_classroom(s, user=kim, zone="lokaal-1", mode="open", sites=["Kahoot.it"],
                                    categories=["sociale-media"], until=NOW + 50 * MINUTE,
                                    reason="les over sociale media", now=NOW)
    (opening,) = load_state(store, NOW).openings
    assert (opening.id, opening.zone, opening.mode, opening.until) == (opening_id, "lokaal-1", "open", NOW + 50 * MINUTE)
    assert opening.sites.domains == {"kahoot.it"} and opening.sites.categories == {"sociale-media"}
    with store.read() as s:
        assert [o.id for o in list_openings(s, now=NOW, zones=kim.zones)] == [opening_id]
        assert list_openings(s, now=NOW, zones=["lokaal-9"]) == []
    before = last_change_id(store)
    with store.write() as s:
        end_opening(s, opening_id, user=kim, reason="les klaar", now=NOW + 10 * MINUTE)
    assert not load_state(store, NOW + 10 * MINUTE).openings
    assert changes(store, before) == [("revoke", "opening", opening_id, "docent:kim", "les klaar", NOW + 10 * MINUTE)]
    refused_without_trace(store, Conflict, lambda s: end_opening(
        s, opening_id, user=kim, reason="nogmaals", now=NOW + 10 * MINUTE))
    refused_without_trace(store, NotFound, lambda s: end_opening(s, 999, user=kim, reason="x", now=NOW))


def test_docent_only_controls_own_zones(store: Store, people: dict[str, User]) -> None:
    kim, ict = people["docent"], people["ict"]
    refused_without_trace(store, Forbidden, lambda s: open_classroom(
        s, user=kim, zone="lokaal-9", mode="allowlist", until=NOW + HOUR, reason="toets", now=NOW))
    with store.write() as s:
        theirs = open_classroom(s, user=ict, zone="lokaal-9", mode="allowlist", until=NOW + HOUR,
                                reason="toets op papier", now=NOW)
    refused_without_trace(store, Forbidden, lambda s: end_opening(s, theirs, user=kim, reason="x", now=NOW))
    (opening,) = load_state(store, NOW).openings
    assert opening.mode == "allowlist" and not opening.sites        # the room closed


@pytest.mark.parametrize(("field", "value"), [
    ("mode", "half"), ("until", NOW), ("reason", ""), ("zone", " "), ("sites", ["bad host"]),
    ("until", dt.datetime(2025, 3, 10, 11, 0)),
])
def test_open_classroom_refuses_bad_input(store: Store, people: dict[str, User], field: str, value: object) -> None:
    args: dict[str, object] = {"zone": "lokaal-1", "mode": "open", "sites": ["kahoot.it"], "until": NOW + HOUR,
                               "reason": "les", "now": NOW, field: value}
    refused_without_trace(store, Invalid, lambda s: open_classroom(s, user=people["ict"], **args))  # type: ignore[arg-type]


def test_exam_mode(store: Store, people: dict[str, User]) -> None:
    eva = people["examencoordinator"]
    with store.write() as s:
        exam_id = start_exam(s, user=eva, zone="examenlokaal", sites=["examen.example.nl"],
                             until=NOW + 3 * HOUR, reason="CE wiskunde", now=NOW)
    (exam,) = load_state(store, NOW).exams
    assert (exam.id, exam.zone, exam.allowlist.domains) == (exam_id, "examenlokaal", {"examen.example.nl"})
    before = last_change_id(store)
    with store.write() as s:
        end_exam(s, exam_id, user=eva, reason="klaar", now=NOW + 2 * HOUR)
    assert not load_state(store, NOW + 2 * HOUR).exams
    assert changes(store, before) == [("revoke", "exam", exam_id, "examencoordinator:eva", "klaar", NOW + 2 * HOUR)]


def test_exclusion(store: Store, people: dict[str, User]) -> None:
    piet = people["directie"]
    with store.write() as s:
        ban_id = exclude(s, user=piet, subject="10.20.3.4", until=NOW + 24 * HOUR, reason="art. 7 sanctie", now=NOW)
    (ban,) = load_state(store, NOW).bans
    assert (ban.id, ban.subject, ban.until) == (ban_id, "10.20.3.4", NOW + 24 * HOUR)
    assert changes(store, last_change_id(store) - 1) == [
        ("add", "ban", ban_id, "directie:piet", "art. 7 sanctie", NOW)]
    for subject in ("10.20.3.400", "10.0.0.0/8", "fd00::/32", "10.20.3.4; drop table"):
        message = refused_without_trace(store, Invalid, lambda s: exclude(
            s, user=piet, subject=subject, until=NOW + HOUR, reason="r", now=NOW))
        assert subject not in message
    with store.write() as s:
        end_exclusion(s, ban_id, user=piet, reason="bezwaar toegekend", now=NOW + HOUR)
    assert not load_state(store, NOW + HOUR).bans


# --- authorization, per role, for every step that needs one -----------------------------------

Setup = dict[str, int]
Step = Callable[[Session, User, Setup], object]


def _setup(store: Store, people: dict[str, User]) -> Setup:
    ict = people["ict"]
    with store.write() as s:
        submitted = public_request(s)
        endorsed = public_request(s)
        endorse(s, endorsed, people["leidinggevende"])
        granted = public_request(s)
        endorse(s, granted, people["leidinggevende"])
        grant = approve_request(s, granted, user=ict, now=NOW)
        opening = open_classroom(s, user=ict, zone="lokaal-1", mode="open", sites=["kahoot.it"],
                                 until=NOW + HOUR, reason="les", now=NOW)
        exam = start_exam(s, user=ict, zone="aula", until=NOW + HOUR, reason="CE", now=NOW)
        ban = exclude(s, user=ict, subject="10.20.3.4", until=NOW + HOUR, reason="sanctie", now=NOW)
    return {"submitted": submitted, "endorsed": endorsed, "grant": grant, "opening": opening,
            "exam": exam, "ban": ban}


STEPS: dict[str, tuple[set[str], Step]] = {
    "endorse_request": ({"leidinggevende", "ict"}, lambda s, u, ids: endorse(s, ids["submitted"], u)),
    "approve_request": ({"ict"}, lambda s, u, ids: approve_request(s, ids["endorsed"], user=u, now=NOW)),
    "decline_request": ({"ict"}, lambda s, u, ids: decline_request(s, ids["endorsed"], user=u, reason="nee", now=NOW)),
    "withdraw_request": ({"leidinggevende", "ict"},
                         lambda s, u, ids: withdraw_request(s, ids["submitted"], user=u, reason="nee", now=NOW)),
    "revoke_grant": ({"ict"}, lambda s, u, ids: revoke_grant(s, ids["grant"], user=u, reason="weg", now=NOW)),
    "create_grant": ({"ict"}, lambda s, u, ids: create_grant(s, user=u, sites=["a.example"], end=NOW + HOUR,
                                                             reason="r", now=NOW)),
    "open_classroom": ({"docent", "ict"}, lambda s, u, ids: open_classroom(
        s, user=u, zone="lokaal-1", mode="open", sites=["a.example"], until=NOW + HOUR, reason="les", now=NOW)),
    "end_opening": ({"docent", "ict"}, lambda s, u, ids: end_opening(s, ids["opening"], user=u, reason="x", now=NOW)),
    "start_exam": ({"examencoordinator", "ict"}, lambda s, u, ids: start_exam(
        s, user=u, zone="aula", until=NOW + HOUR, reason="CE", now=NOW)),
    "end_exam": ({"examencoordinator", "ict"}, lambda s, u, ids: end_exam(s, ids["exam"], user=u, reason="x", now=NOW)),
    "exclude": ({"directie", "ict"}, lambda s, u, ids: exclude(
        s, user=u, subject="10.20.9.9", until=NOW + HOUR, reason="sanctie", now=NOW)),
    "end_exclusion": ({"directie", "ict"}, lambda s, u, ids: end_exclusion(s, ids["ban"], user=u, reason="x", now=NOW)),
}


@pytest.mark.parametrize("step", STEPS)
def test_authorization_per_role(store: Store, people: dict[str, User], step: str) -> None:
    allowed, run = STEPS[step]
    for role in ROLES:
        ids = _setup(store, people)   # fresh objects per role
        if role in allowed:
            with store.write() as s:
                run(s, people[role], ids)
        else:
            message = refused_without_trace(store, Forbidden, lambda s: run(s, people[role], ids))
            assert "Niet toegestaan" in message
    nobody = User(id=0, username="x", display_name="x", role="leerling", zones=())
    ids = _setup(store, people)
    refused_without_trace(store, Forbidden, lambda s: run(s, nobody, ids))


def test_everyone_may_submit_but_only_endorsers_endorse_on_submit(store: Store, people: dict[str, User]) -> None:
    for role, user in people.items():
        with store.write() as s:
            request_id = public_request(s, user=user, ground="lesstof", end=NOW + HOUR)
        assert view(store, request_id).status == ("endorsed" if role in ("leidinggevende", "ict") else "submitted")


# --- expiry and counts -----------------------------------------------------------------------

def test_expiry_is_recorded_once(store: Store, people: dict[str, User]) -> None:
    ict = people["ict"]
    with store.write() as s:
        grant = create_grant(s, user=ict, sites=["a.example"], end=NOW + HOUR, reason="r", now=NOW)
        opening = open_classroom(s, user=ict, zone="lokaal-1", mode="open", sites=["a.example"],
                                 until=NOW + 2 * HOUR, reason="les", now=NOW)
        exam = start_exam(s, user=ict, zone="aula", until=NOW + 30 * MINUTE, reason="CE", now=NOW)
        ban = exclude(s, user=ict, subject="10.20.3.4", until=NOW + 3 * HOUR, reason="sanctie", now=NOW)
        revoked = exclude(s, user=ict, subject="10.20.3.5", until=NOW + HOUR, reason="sanctie", now=NOW)
        end_exclusion(s, revoked, user=ict, reason="vergissing", now=NOW)
    before = last_change_id(store)
    with store.write() as s:
        assert record_expiries(s, now=NOW) == 0
        assert record_expiries(s, now=NOW + HOUR) == 2              # exam (09:30) and grant (10:00)
    with store.write() as s:
        assert record_expiries(s, now=NOW + HOUR) == 0
        assert record_expiries(s, now=NOW + 5 * HOUR) == 2          # opening and ban; not the revoked ban
        assert record_expiries(s, now=NOW + 6 * HOUR) == 0
    assert changes(store, before) == [
        ("expire", "exam", exam, "systeem", "verlopen / expired", NOW + 30 * MINUTE),
        ("expire", "grant", grant, "systeem", "verlopen / expired", NOW + HOUR),
        ("expire", "opening", opening, "systeem", "verlopen / expired", NOW + 2 * HOUR),
        ("expire", "ban", ban, "systeem", "verlopen / expired", NOW + 3 * HOUR),
    ]
    with store.read() as s:
        assert [b.expired_at for b in s.scalars(select(BanRow).order_by(BanRow.id))] == [NOW + 3 * HOUR, None]
        assert s.get(GrantRow, grant).expired_at == NOW + HOUR  # type: ignore[union-attr]
    # an ended object cannot be ended again
    refused_without_trace(store, Conflict, lambda s: revoke_grant(s, grant, user=ict, reason="x", now=NOW + 5 * HOUR))
    refused_without_trace(store, Conflict, lambda s: end_exclusion(s, ban, user=ict, reason="x", now=NOW + 2 * HOUR))


def test_expired_grant_shows_on_its_request(store: Store, people: dict[str, User]) -> None:
    request_id = endorsed_request(store, people)
    with store.write() as s:
        approve_request(s, request_id, user=people["ict"], now=NOW)
        record_expiries(s, now=NOW + 3 * HOUR)
    assert view(store, request_id).grant_status == "expired"


def test_counts(store: Store, people: dict[str, User]) -> None:
    ict = people["ict"]
    with store.read() as s:
        assert set(counts(s, now=NOW).values()) == {0}
    endorsed_request(store, people)
    with store.write() as s:
        public_request(s)
        approved = public_request(s)
        endorse(s, approved, people["leidinggevende"])
        approve_request(s, approved, user=ict, now=NOW)
        create_grant(s, user=ict, sites=["later.example"], start=NOW + HOUR, end=NOW + 2 * HOUR, reason="r", now=NOW)
        open_classroom(s, user=ict, zone="lokaal-1", mode="open", sites=["a.example"], until=NOW + HOUR,
                       reason="les", now=NOW)
        start_exam(s, user=ict, zone="aula", until=NOW + HOUR, reason="CE", now=NOW)
        gone = exclude(s, user=ict, subject="10.20.3.4", until=NOW + HOUR, reason="sanctie", now=NOW)
        exclude(s, user=ict, subject="10.20.3.5", until=NOW + HOUR, reason="sanctie", now=NOW)
        end_exclusion(s, gone, user=ict, reason="vergissing", now=NOW)
    with store.read() as s:
        assert counts(s, now=NOW) == {"pending_requests": 2, "submitted_requests": 1, "endorsed_requests": 1,
                                      "active_grants": 1, "active_openings": 1, "active_exams": 1,
                                      "active_exclusions": 1, "active_download_limits": 0, "open_cases": 0}
        assert counts(s, now=NOW + 90 * MINUTE)["active_grants"] == 2


# --- the change log as a whole ---------------------------------------------------------------

def test_every_change_has_its_own_revision(store: Store, people: dict[str, User]) -> None:
    _setup(store, people)
    with store.write() as s:
        record_expiries(s, now=NOW + 5 * HOUR)
    with store.read() as s:
        revisions = list(s.scalars(select(ChangeRow.revision).order_by(ChangeRow.id)))
    assert revisions == list(range(1, len(revisions) + 1)) and state_revision(store) == len(revisions)
