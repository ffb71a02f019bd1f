"""Cases, the key ceremony and the access ledger (auditlog/cases.py, auditlog/keys.py,
auditlog/ledger.py, audit/cli.py).

Events are made the way the gateway makes them (audit/record.py build_event with a KeyStore's
period keys, stored with store/audit_repo.py), on SQLite and on the PostgreSQL server at
127.0.0.1:5432 when it is there. What is checked:
- no code path unseals an event without an approved, unexpired case AND enough shares: every
  missing piece is tried, and `unseal` / `open_period_key` are watched to be never called;
- a case opens only its subject's events inside its window (other subjects, and the same subject
  outside the window, stay sealed and absent), across gateways and pseudonym periods;
- every decision and every look writes one ledger entry, with counts only, never content.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from poortwachter.audit import shares
from poortwachter.audit.keystore import KeyStore, load_escrow_public, write_escrow_public
from poortwachter.audit.merkle import leaf_hash
from poortwachter.audit.record import Seen, build_event
from poortwachter.audit.seal import public_key_of
from poortwachter.audit.shares import combine, unprotect
from poortwachter.auditlog import cases, keys, ledger
from poortwachter.decide import Verdict
from poortwachter.store import Store, default_url, open_store
from poortwachter.store.audit_repo import insert_events, store_period_keys
from poortwachter.store.models import AuditEventRow, AuditKeyRow, CaseRow, EscrowHolderRow, LedgerRow
from poortwachter.workflow import Conflict, Forbidden, Invalid, NotFound, User

AMS = ZoneInfo("Europe/Amsterdam")
NOW = dt.datetime(2025, 3, 20, 12, 0, tzinfo=AMS)          # Thursday of ISO week 2025-W12
WINDOW = (dt.datetime(2025, 3, 10, 0, 0, tzinfo=AMS), dt.datetime(2025, 3, 16, 23, 0, tzinfo=AMS))
SUBJECT, OTHER = "10.20.3.4", "10.20.3.5"
PHRASES = {"directie": "directie-wachtzin-1", "ict": "ict-wachtzin-12345"}
BLOCK = Verdict("block", "verboden-categorieen", "004 art. 11a", "gokken", "klas", "pupil", "1e-blok")

ANNA = User(id=1, username="anna", display_name="Anna", role="directie", zones=())
BEA = User(id=2, username="bea", display_name="Bea", role="directie", zones=())
JAN = User(id=3, username="jan", display_name="Jan", role="ict", zones=())
KIM = User(id=4, username="kim", display_name="Kim", role="docent", zones=())

# (gateway, subject, local time, host): what the gateways saw, in time order per gateway.
SEEN = [
    ("gw1", SUBJECT, dt.datetime(2025, 3, 5, 10, 0), "voor-het-tijdvak.example"),      # W10, before the window
    ("gw1", SUBJECT, dt.datetime(2025, 3, 11, 9, 0), "in-tijdvak-1.example"),
    ("gw1", OTHER, dt.datetime(2025, 3, 11, 9, 30), "iemand-anders.example"),         # another subject
    ("gw1", SUBJECT, dt.datetime(2025, 3, 12, 14, 0), "in-tijdvak-2.example"),
    ("gw1", SUBJECT, dt.datetime(2025, 3, 16, 23, 30), "na-het-tijdvak-zelfde-week.example"),  # W11, after
    ("gw1", SUBJECT, dt.datetime(2025, 3, 18, 10, 0), "week-later.example"),           # W12
    ("gw2", SUBJECT, dt.datetime(2025, 3, 13, 10, 0), "in-tijdvak-gw2.example"),
    ("gw2", OTHER, dt.datetime(2025, 3, 13, 10, 5), "iemand-anders-gw2.example"),
]
INSIDE = {"in-tijdvak-1.example", "in-tijdvak-2.example", "in-tijdvak-gw2.example"}
ALL_HOSTS = {host for *_, host in SEEN}


@pytest.fixture(autouse=True)
def quick_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Still scrypt, at a smaller cost: these tests are about who may open what (the crypto's own
    tests use the real parameters, and one ceremony test below does too)."""
    monkeypatch.setattr(shares, "SCRYPT_N", 2**10)


@dataclass
class World:
    store: Store
    data_dir: Path
    ceremony: keys.Ceremony
    share_files: dict[str, dict[str, Any]]

    def shares(self, *labels: str, phrases: dict[str, str] | None = None) -> list[tuple[dict[str, Any], str]]:
        phrases = phrases or PHRASES
        return [(self.share_files[label], phrases[label]) for label in labels]

    def ledger(self) -> list[Any]:
        with self.store.read() as s:
            return [_plain(r) for r in s.scalars(select(LedgerRow).order_by(LedgerRow.id))]

    def case(self, case_id: int) -> Any:
        with self.store.read() as s:
            row = s.get(CaseRow, case_id)
            assert row is not None
            return _plain(row)


def _plain(row: Any) -> SimpleNamespace:
    """A row's column values, usable after its (read, rolled back) session."""
    return SimpleNamespace(**{c.key: getattr(row, c.key) for c in row.__table__.columns})


def ceremony(store: Store, data_dir: Path, phrases: dict[str, str] = PHRASES) -> keys.Ceremony:
    return keys.init_keys(store, data_dir, holders=keys.parse_holders("directie:Anna,ict:Jan"), threshold=2,
                          passphrases=phrases, actor="cli:test", now=NOW - dt.timedelta(days=60))


def record_events(store: Store, gateways: dict[str, KeyStore]) -> None:
    """What the recorder does: seal each event, store it with its period's sealed key."""
    seq: dict[str, int] = {}
    for gateway, subject, local, host in SEEN:
        at = local.replace(tzinfo=AMS).astimezone(dt.UTC)
        ks = gateways[gateway]
        period, ps = ks.pseudonym(subject, at)
        assert ps is not None
        seq[gateway] = seq.get(gateway, 0) + 1
        seen = Seen(at.timestamp(), "http", BLOCK, ipaddress.ip_address(subject), [host], "/pad")
        event = build_event(seen, seq=seq[gateway], gateway=gateway, at=at, period=period, pseudonym=ps,
                            escrow_public=ks.escrow_public, urls=True)
        sealed_key = ks.sealed_copy(period)
        assert sealed_key is not None
        with store.write() as s:
            insert_events(s, [event])
            store_period_keys(s, gateway, {period: sealed_key}, now=at)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    store = open_store(db_url)
    data_dir = tmp_path / "data"
    done = ceremony(store, data_dir)
    gw1 = KeyStore(data_dir / "audit")                       # the gateway on this box
    other = tmp_path / "gw2"
    write_escrow_public(other, done.escrow_public)           # a second gateway, its own period keys
    record_events(store, {"gw1": gw1, "gw2": KeyStore(other)})
    files = {label: keys.read_share_file(keys.share_file(data_dir, label)) for label in ("directie", "ict")}
    yield World(store, data_dir, done, files)
    store.close()


def open_and_approve(w: World, *, approve: bool = True, ends_at: dt.datetime | None = None) -> int:
    with w.store.write() as s:
        case_id = cases.open_case(s, user=ANNA, reference="INC-2025-014", article="004 art. 7",
                                  description="Gokken tijdens de les, vastgesteld door mentor",
                                  reason="Vaststellen welke gokdiensten", subject=SUBJECT,
                                  window_start=WINDOW[0], window_end=WINDOW[1], now=NOW, ends_at=ends_at)
    if approve:
        with w.store.write() as s:
            cases.approve_case(s, case_id, user=JAN, now=NOW)
    return case_id


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of the functions that open sealed data, as made through auditlog/cases.py."""
    calls: list[str] = []

    def watch(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(cases, "unseal", watch("unseal", cases.unseal))
    monkeypatch.setattr(cases, "open_period_key", watch("open_period_key", cases.open_period_key))
    return calls


# --- what a case opens ------------------------------------------------------------------------------

def test_approved_case_with_both_shares_opens_only_its_subject_in_its_window(world: World,
                                                                           opened: list[str]) -> None:
    case_id = open_and_approve(world)
    report = cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    assert {e.host for e in report.events} == INSIDE
    assert {e.client for e in report.events} == {SUBJECT}
    assert {e.gateway for e in report.events} == {"gw1", "gw2"}
    assert all(WINDOW[0] <= e.at <= WINDOW[1] for e in report.events)
    assert [e.at for e in report.events] == sorted(e.at for e in report.events)
    assert all(e.path == "/pad" and e.category == "gokken" for e in report.events)
    assert report.periods == ("2025-W11",) and not report.missing_periods and report.unreadable == 0
    # Only the subject's rows were opened: 3 events, and the 2 period keys (gw1, gw2) of W11.
    assert opened.count("unseal") == 3
    assert opened.count("open_period_key") == 2
    entry = world.ledger()[-1]
    assert (entry.action, entry.case_id, entry.events, entry.actor, entry.note) == ("view", case_id, 3, "ict:jan", "")
    assert report.ledger_id == entry.id


def test_a_window_over_two_weeks_uses_each_weeks_key(world: World) -> None:
    with world.store.write() as s:
        case_id = cases.open_case(s, user=ANNA, reference="INC-2", article="004 art. 7", description="d",
                                  reason="r", subject=SUBJECT, window_start=dt.datetime(2025, 3, 4, tzinfo=AMS),
                                  window_end=dt.datetime(2025, 3, 12, 12, 0, tzinfo=AMS), now=NOW)
        cases.approve_case(s, case_id, user=JAN, now=NOW)
    report = cases.unseal_case(world.store, case_id, user=ANNA, shares=world.shares("directie", "ict"), now=NOW)
    assert {e.host for e in report.events} == {"voor-het-tijdvak.example", "in-tijdvak-1.example"}
    assert report.periods == ("2025-W10", "2025-W11")


def test_a_case_for_another_subject_never_sees_the_first_subjects_events(world: World) -> None:
    with world.store.write() as s:
        case_id = cases.open_case(s, user=ANNA, reference="INC-3", article="004 art. 7", description="d",
                                  reason="r", subject=OTHER, window_start=WINDOW[0], window_end=WINDOW[1], now=NOW)
        cases.approve_case(s, case_id, user=JAN, now=NOW)
    report = cases.unseal_case(world.store, case_id, user=ANNA, shares=world.shares("ict", "directie"), now=NOW)
    assert {e.host for e in report.events} == {"iemand-anders.example", "iemand-anders-gw2.example"}
    assert world.ledger()[-1].events == 2


def test_events_stay_sealed_in_the_store(world: World) -> None:
    """Nothing of a subject or a host is readable in the rows themselves."""
    with world.store.read() as s:
        rows = [_plain(r) for r in s.scalars(select(AuditEventRow))]
    assert len(rows) == len(SEEN) and all(r.sealed and r.pseudonym for r in rows)
    blob = b"".join(repr(vars(r)).encode() + r.sealed for r in rows)
    for secret in [SUBJECT, OTHER, *ALL_HOSTS]:
        assert secret.encode() not in blob


# --- every missing piece: refused, recorded, and nothing opened --------------------------------------

def _refused(world: World, case_id: int, call: Callable[[], object], error: type[Exception],
             opened: list[str], code: str) -> None:
    before = len(world.ledger())
    with pytest.raises(error):
        call()
    assert opened == []                                # not one period key, not one event
    new = world.ledger()[before:]
    assert [e.action for e in new if e.action != "expire"] == ["refused"]
    assert new[-1].note == f"view:{code}" and new[-1].events is None and new[-1].case_id == case_id


def test_unapproved_case_opens_nothing(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world, approve=False)
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=ANNA,
                                                       shares=world.shares("directie", "ict"), now=NOW),
             cases.CaseNotUsable, opened, "not-approved")


def test_expired_case_opens_nothing_and_is_marked_expired(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world, ends_at=NOW + dt.timedelta(days=2))
    later = NOW + dt.timedelta(days=2)
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN,
                                                       shares=world.shares("directie", "ict"), now=later),
             cases.CaseNotUsable, opened, "expired")
    row = world.case(case_id)
    assert row.status == "expired" and row.expired_at == NOW + dt.timedelta(days=2)
    assert [e.action for e in world.ledger()][-2:] == ["expire", "refused"]


def test_closed_case_opens_nothing(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world)
    with world.store.write() as s:
        cases.close_case(s, case_id, user=ANNA, outcome="Afgehandeld", now=NOW)
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=ANNA,
                                                       shares=world.shares("directie", "ict"), now=NOW),
             cases.CaseNotUsable, opened, "closed")


def test_nobody_approves_their_own_case(world: World, opened: list[str]) -> None:
    """Anna opened the case as directie, and has since become ICT: still her own case."""
    case_id = open_and_approve(world, approve=False)
    anna_now_ict = User(id=ANNA.id, username="anna", display_name="Anna", role="ict", zones=())
    with pytest.raises(Forbidden), world.store.write() as s:
        cases.approve_case(s, case_id, user=anna_now_ict, now=NOW)
    assert world.case(case_id).status == "open"
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN,
                                                       shares=world.shares("directie", "ict"), now=NOW),
             cases.CaseNotUsable, opened, "not-approved")


def test_the_approver_has_another_role_than_the_opener(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even where ICT may open cases too, a second ICT member cannot approve an ICT case."""
    monkeypatch.setattr(cases, "OPENERS", ("directie", "ict"))
    piet = User(id=9, username="piet", display_name="Piet", role="ict", zones=())
    with world.store.write() as s:
        case_id = cases.open_case(s, user=piet, reference="INC", article="a", description="d", reason="r",
                                  subject=SUBJECT, window_start=WINDOW[0], window_end=WINDOW[1], now=NOW)
    with pytest.raises(Forbidden), world.store.write() as s:
        cases.approve_case(s, case_id, user=JAN, now=NOW)
    assert world.case(case_id).status == "open"


def test_approving_needs_an_approver_role(world: World) -> None:
    case_id = open_and_approve(world, approve=False)
    for user in (BEA, KIM):
        with pytest.raises(Forbidden), world.store.write() as s:
            cases.approve_case(s, case_id, user=user, now=NOW)
    assert world.case(case_id).status == "open"
    assert [e.action for e in world.ledger()][-1] == "open"


def test_one_share_of_two_opens_nothing(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world)
    for label in ("directie", "ict"):
        _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN,
                                                           shares=world.shares(label), now=NOW),
                 cases.SharesRefused, opened, "shares")


def test_the_same_share_twice_opens_nothing(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world)
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN,
                                                       shares=world.shares("ict", "ict"), now=NOW),
             cases.SharesRefused, opened, "shares")


def test_a_wrong_passphrase_opens_nothing(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world)
    wrong = {"directie": PHRASES["directie"], "ict": PHRASES["ict"] + "x"}
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN,
                                                       shares=world.shares("directie", "ict", phrases=wrong), now=NOW),
             cases.SharesRefused, opened, "shares")


def test_shares_of_another_key_open_nothing(world: World, opened: list[str], tmp_path: Path) -> None:
    """Two valid shares with their right passphrases, of another ceremony (another school)."""
    other_store = open_store(default_url(tmp_path / "elders"))
    try:
        ceremony(other_store, tmp_path / "elders")
    finally:
        other_store.close()
    foreign = [(keys.read_share_file(keys.share_file(tmp_path / "elders", label)), PHRASES[label])
               for label in ("directie", "ict")]
    case_id = open_and_approve(world)
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN, shares=foreign, now=NOW),
             cases.SharesRefused, opened, "wrong-key")


def test_mixed_shares_of_two_keys_open_nothing(world: World, opened: list[str], tmp_path: Path) -> None:
    other_store = open_store(default_url(tmp_path / "elders"))
    try:
        ceremony(other_store, tmp_path / "elders")
    finally:
        other_store.close()
    mixed = [(world.share_files["directie"], PHRASES["directie"]),
             (keys.read_share_file(keys.share_file(tmp_path / "elders", "ict")), PHRASES["ict"])]
    case_id = open_and_approve(world)
    _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN, shares=mixed, now=NOW),
             cases.SharesRefused, opened, "wrong-key")


def test_no_shares_and_garbage_shares_open_nothing(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world)
    for given in ([], [("", "")], [("{not json", "x" * 12)] * 2, [('{"kdf": {"n": 1048576, "r": 8, "p": 1}}', "x")] * 2):
        _refused(world, case_id, lambda: cases.unseal_case(world.store, case_id, user=JAN, shares=given, now=NOW),
                 cases.SharesRefused, opened, "shares")


def test_roles_without_cases_cannot_look(world: World, opened: list[str]) -> None:
    case_id = open_and_approve(world)
    before = len(world.ledger())
    with pytest.raises(Forbidden):
        cases.unseal_case(world.store, case_id, user=KIM, shares=world.shares("directie", "ict"), now=NOW)
    with pytest.raises(Forbidden):
        cases.unseal_case(world.store, case_id, user=None, shares=world.shares("directie", "ict"), now=NOW)
    with pytest.raises(NotFound):
        cases.unseal_case(world.store, 999, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    assert opened == [] and len(world.ledger()) == before


def test_a_case_closed_while_opening_shows_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state is checked again when the look is recorded; a report is never handed out after
    the case was closed in the meantime."""
    case_id = open_and_approve(world)
    real = cases._open_events

    def close_meanwhile(*args: Any) -> Any:
        found = real(*args)
        with world.store.write() as s:
            cases.close_case(s, case_id, user=ANNA, outcome="Ingetrokken", now=NOW)
        return found

    monkeypatch.setattr(cases, "_open_events", close_meanwhile)
    with pytest.raises(cases.CaseNotUsable):
        cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    assert [(e.action, e.note) for e in world.ledger()][-2:] == [("close", ""), ("refused", "view:closed")]


def test_an_altered_row_is_counted_unreadable_never_shown(world: World) -> None:
    """A row of another subject given the subject's pseudonym (or any edited clear field) does not
    open: the seal's associated data is the row's clear part."""
    case_id = open_and_approve(world)
    with world.store.write() as s:
        rows = list(s.scalars(select(AuditEventRow).order_by(AuditEventRow.id)))
        mine = next(r for r in rows if r.gateway == "gw1" and r.period == "2025-W11" and
                    r.at == dt.datetime(2025, 3, 11, 8, 0, tzinfo=dt.UTC))
        other = next(r for r in rows if r.gateway == "gw1" and r.at == dt.datetime(2025, 3, 11, 8, 30, tzinfo=dt.UTC))
        other.pseudonym = mine.pseudonym             # moved onto the subject
        mine.zone = "aula"                           # an edited clear field
    report = cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    assert {e.host for e in report.events} == {"in-tijdvak-2.example", "in-tijdvak-gw2.example"}
    assert report.unreadable == 2
    assert world.ledger()[-1].events == 2


def test_a_forged_row_about_someone_else_is_never_shown(world: World) -> None:
    """Anyone with the (public) escrow key and write access can seal a row that opens; one that
    carries the subject's pseudonym but names someone else inside is dropped, not shown."""
    from poortwachter.audit.record import AuditEvent, details
    from poortwachter.audit.seal import seal

    case_id = open_and_approve(world)
    with world.store.read() as s:
        model = _plain(s.scalars(select(AuditEventRow).where(AuditEventRow.gateway == "gw1",
                                                             AuditEventRow.period == "2025-W11")
                                 .order_by(AuditEventRow.id).limit(1)).one())
    clear = AuditEvent(seq=999, at=model.at, gateway="gw1", kind="http", zone="klas", role="pupil", slot=None,
                       category="gokken", action="block", rule="r", source="s", period=model.period,
                       pseudonym=model.pseudonym, sealed=None)
    seen = Seen(0.0, "http", BLOCK, ipaddress.ip_address(OTHER), ["vervalst.example"], None)
    forged = dataclasses.replace(clear, sealed=seal(world.ceremony.escrow_public, details(seen, urls=False),
                                                    clear.aad()))
    with world.store.write() as s:
        insert_events(s, [forged])
    report = cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    assert {e.host for e in report.events} == INSIDE and report.unreadable == 1


def test_a_week_without_a_stored_key_is_reported(world: World) -> None:
    with world.store.write() as s:
        case_id = cases.open_case(s, user=ANNA, reference="INC-4", article="a", description="d", reason="r",
                                  subject=SUBJECT, window_start=dt.datetime(2025, 2, 24, tzinfo=AMS),
                                  window_end=dt.datetime(2025, 3, 6, tzinfo=AMS), now=NOW)
        cases.approve_case(s, case_id, user=JAN, now=NOW)
    report = cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    assert report.missing_periods == ("2025-W09",)
    assert {e.host for e in report.events} == {"voor-het-tijdvak.example"}


def test_no_other_code_unseals() -> None:
    """Structural: outside the crypto modules, only auditlog/cases.py calls what opens sealed data
    (keys.py recombines shares once, at the ceremony, to check them before the key is dropped)."""
    root = Path(__file__).resolve().parents[2]
    allowed = {
        "unseal": {"src/poortwachter/auditlog/cases.py", "src/poortwachter/audit/pseudonym.py"},
        "open_period_key": {"src/poortwachter/auditlog/cases.py"},
        "combine": {"src/poortwachter/auditlog/cases.py", "src/poortwachter/auditlog/keys.py"},
        "unprotect": {"src/poortwachter/auditlog/cases.py", "src/poortwachter/auditlog/keys.py"},
    }
    found: dict[str, set[str]] = {name: set() for name in allowed}
    for base in ("src", "addons"):
        for path in (root / base).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            # "combine" and "unprotect" are common words (datetime.combine): count them only where
            # they come from audit/shares.py; the other two names are counted wherever they are called.
            from_shares = {alias.asname or alias.name for node in ast.walk(tree)
                           if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("shares")
                           for alias in node.names}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                if isinstance(func, ast.Name):
                    name = func.id if func.id in ("unseal", "open_period_key") or func.id in from_shares else ""
                elif isinstance(func, ast.Attribute):
                    owner = func.value.id if isinstance(func.value, ast.Name) else ""
                    name = func.attr if func.attr in ("unseal", "open_period_key") or owner == "shares" else ""
                else:
                    name = ""
                if name in found:
                    found[name].add(str(path.relative_to(root)))
    for name, files in found.items():
        assert files <= allowed[name], f"{name} called in {sorted(files - allowed[name])}"
    assert "src/poortwachter/auditlog/cases.py" in found["unseal"]


# --- the ledger ------------------------------------------------------------------------------------

def test_every_decision_and_look_is_in_the_ledger_with_counts_only(world: World) -> None:
    case_id = open_and_approve(world)
    cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    report = cases.unseal_case(world.store, case_id, user=ANNA, shares=world.shares("directie", "ict"), now=NOW,
                               purpose="export", note="csv")
    with world.store.write() as s:
        cases.close_case(s, case_id, user=ANNA, outcome="Sanctie opgelegd: uitsluiting 1 dag", now=NOW)
        cases.inform_case(s, case_id, user=ANNA, note="Gesprek met leerling en ouders op 21-03", now=NOW)
    entries = world.ledger()
    assert [(e.action, e.actor, e.events, e.note) for e in entries] == [
        ("keys", "cli:test", None, "2-of-2"),
        ("open", "directie:anna", None, ""),
        ("approve", "ict:jan", None, ""),
        ("view", "ict:jan", 3, ""),
        ("export", "directie:anna", 3, "csv"),
        ("close", "directie:anna", None, ""),
        ("inform", "directie:anna", None, ""),
    ]
    assert report.ledger_id == entries[4].id
    assert all(e.case_id == case_id for e in entries[1:])
    # never content: no subject, host, description, outcome or note in any column
    dump = json.dumps([[str(getattr(e, c)) for c in ("at", "actor", "action", "case_id", "events", "note")]
                       for e in entries])
    for secret in [SUBJECT, *ALL_HOSTS, "Gokken", "uitsluiting", "ouders", "INC-2025-014"]:
        assert secret not in dump
    # each entry's leaf hash is that of its canonical bytes, rebuilt from the row
    for e in entries:
        assert e.leaf_hash == leaf_hash(ledger.ledger_canonical_of(e))  # type: ignore[arg-type]
        assert json.loads(ledger.ledger_canonical_of(e))["action"] == e.action  # type: ignore[arg-type]


def test_ledger_reading_roles(world: World) -> None:
    open_and_approve(world)
    with world.store.read() as s:
        assert [e.action for e in ledger.list_ledger(s, user=ANNA)] == ["approve", "open", "keys"]
        assert ledger.list_ledger(s, user=JAN)[0].reference == "INC-2025-014"
        with pytest.raises(Forbidden):
            ledger.list_ledger(s, user=KIM)
        with pytest.raises(Forbidden):
            cases.list_cases(s, user=KIM)


def test_expiry_sweep_records_once(world: World) -> None:
    case_id = open_and_approve(world, ends_at=NOW + dt.timedelta(days=1))
    still_open = open_and_approve(world, approve=False, ends_at=NOW + dt.timedelta(days=10))
    later = NOW + dt.timedelta(days=1, minutes=1)
    with world.store.write() as s:
        assert cases.expire_cases(s, now=later) == 1
    with world.store.write() as s:
        assert cases.expire_cases(s, now=later) == 0
    assert world.case(case_id).status == "expired" and world.case(still_open).status == "open"
    assert [e.actor for e in world.ledger() if e.action == "expire"] == ["systeem"]
    with world.store.read() as s:
        assert cases.held_windows(s, now=later) == [(WINDOW[0], WINDOW[1])]   # the open one only


# --- the life of a case -----------------------------------------------------------------------------

def test_close_then_inform_once(world: World) -> None:
    case_id = open_and_approve(world)
    with pytest.raises(Conflict), world.store.write() as s:
        cases.inform_case(s, case_id, user=ANNA, note="brief", now=NOW)
    with world.store.write() as s:
        cases.close_case(s, case_id, user=JAN, outcome="klaar", now=NOW)
    with pytest.raises(Conflict), world.store.write() as s:
        cases.close_case(s, case_id, user=ANNA, outcome="nog eens", now=NOW)
    with world.store.write() as s:
        cases.inform_case(s, case_id, user=ANNA, note="brief aan ouders", now=NOW)
    with pytest.raises(Conflict), world.store.write() as s:
        cases.inform_case(s, case_id, user=ANNA, note="nog eens", now=NOW)
    row = world.case(case_id)
    assert (row.status, row.closed_by, row.informed_by, row.informed_note) == (
        "closed", "ict:jan", "directie:anna", "brief aan ouders")
    with pytest.raises(Conflict), world.store.write() as s:
        cases.approve_case(s, case_id, user=JAN, now=NOW)


@pytest.mark.parametrize(("change", "message"), [
    ({"window_end": NOW + dt.timedelta(minutes=1)}, "kijkt terug"),                       # no wiretap
    ({"window_start": WINDOW[1], "window_end": WINDOW[0]}, "eindigt voor"),
    ({"window_start": WINDOW[1] - dt.timedelta(days=32)}, "te lang"),
    ({"subject": "10.20.3.0/24"}, "IP-adres"),
    ({"subject": "leerling 3B"}, "IP-adres"),
    ({"reference": " "}, "Kenmerk"),
    ({"reason": ""}, "Waarom"),
    ({"ends_at": NOW + dt.timedelta(days=91)}, "90 dagen"),
    ({"window_end": WINDOW[1].replace(tzinfo=None)}, "tijdzone"),
])
def test_opening_refuses_bad_cases_without_echo(world: World, change: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"reference": "INC", "article": "art. 7", "description": "d", "reason": "r",
                            "subject": SUBJECT, "window_start": WINDOW[0], "window_end": WINDOW[1]}
    args.update(change)
    with pytest.raises(Invalid) as err, world.store.write() as s:
        cases.open_case(s, user=ANNA, now=NOW, **args)
    assert message in str(err.value)
    assert "10.20.3" not in str(err.value) and "leerling" not in str(err.value)
    with pytest.raises(Forbidden), world.store.write() as s:
        cases.open_case(s, user=JAN, now=NOW, **{**args, **{"reference": "INC", "subject": SUBJECT}})


def test_subject_is_normalised_as_the_gateway_records_it() -> None:
    from poortwachter.gateway import client_address

    for raw in ("::ffff:10.20.3.4", " 10.20.3.4 ", "fe80::1%eth0", "2001:DB8::0:1"):
        assert cases.normalise_subject(raw) == str(client_address(raw.strip()))


# --- reports ---------------------------------------------------------------------------------------

def test_reports_as_json_and_csv(world: World) -> None:
    case_id = open_and_approve(world)
    report = cases.unseal_case(world.store, case_id, user=JAN, shares=world.shares("directie", "ict"), now=NOW)
    data = json.loads(cases.report_json(report))
    assert data["case"]["subject"] == SUBJECT and data["ledger_entry"] == report.ledger_id
    assert {e["host"] for e in data["events"]} == INSIDE
    lines = cases.report_csv(report).splitlines()
    assert lines[0].split(",")[:3] == ["at", "gateway", "kind"] and len(lines) == 1 + len(INSIDE)
    assert not any(h in cases.report_csv(report) for h in ALL_HOSTS - INSIDE)
    assert cases._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and cases._cell("/pad") == "/pad"


# --- the key ceremony --------------------------------------------------------------------------------

def test_ceremony_writes_shares_and_public_keys_never_the_private_key(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shares, "SCRYPT_N", 2**15)          # the real cost, once
    data_dir = tmp_path / "data"
    store = open_store(default_url(data_dir))
    try:
        done = ceremony(store, data_dir)
        audit = data_dir / "audit"
        assert load_escrow_public(audit) == done.escrow_public
        with store.read() as s:
            key = _plain(s.scalars(select(AuditKeyRow)).one())
            holders = [_plain(h) for h in s.scalars(select(EscrowHolderRow).order_by(EscrowHolderRow.share_index))]
        assert (key.escrow_public, key.checkpoint_public) == (done.escrow_public, done.checkpoint_public)
        assert [(h.holder, h.name, h.share_index, h.threshold) for h in holders] == [
            ("directie", "Anna", 1, 2), ("ict", "Jan", 2, 2)]
        from poortwachter.audit import checkpoint

        seed = keys.load_checkpoint_key(data_dir)
        assert checkpoint.public_key_of(seed) == done.checkpoint_public
        for path in (*done.share_files, done.checkpoint_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((audit / "shares").stat().st_mode) == 0o700
        blobs = {label: keys.read_share_file(keys.share_file(data_dir, label)) for label in PHRASES}
        assert blobs["directie"]["kdf"]["n"] == 2**15
        private = combine([unprotect(blobs[label], PHRASES[label]) for label in PHRASES])
        assert public_key_of(private) == done.escrow_public
        # the private key is in no file of the data directory (the database included)
        for path in data_dir.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert private not in content and private.hex().encode() not in content, path
        # one share alone is not the key
        assert unprotect(blobs["ict"], PHRASES["ict"]).data != private
        with pytest.raises(keys.KeysExist):
            ceremony(store, data_dir)
    finally:
        store.close()


@pytest.mark.parametrize(("phrases", "message"), [
    ({"directie": "kort", "ict": "ict-wachtzin-12345"}, "te kort"),
    ({"directie": "dezelfde-wachtzin", "ict": "dezelfde-wachtzin"}, "eigen wachtzin"),
])
def test_ceremony_refuses_weak_passphrases_and_writes_nothing(tmp_path: Path, phrases: dict[str, str],
                                                              message: str) -> None:
    store = open_store(default_url(tmp_path / "data"))
    try:
        with pytest.raises(Invalid, match=message):
            ceremony(store, tmp_path / "data", phrases)
        assert not (tmp_path / "data" / "audit").exists()
    finally:
        store.close()


def test_a_ceremony_the_store_refuses_leaves_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    store = open_store(default_url(data_dir))
    try:
        with store.write() as s:    # a key made elsewhere appears between the check and the commit
            s.add(AuditKeyRow(escrow_public=b"x" * 32, checkpoint_public=b"y" * 32, created_at=NOW))
        monkeypatch.setattr(keys, "existing_keys", lambda *a, **k: [])
        with pytest.raises(keys.KeysExist):
            ceremony(store, data_dir)
        audit = data_dir / "audit"
        assert not [p for p in audit.rglob("*") if p.is_file()]
    finally:
        store.close()


def test_holders_parse() -> None:
    assert keys.parse_holders("directie:Anna de Vries, ict:Jan,fg") == [
        keys.Holder("directie", "Anna de Vries"), keys.Holder("ict", "Jan"), keys.Holder("fg", "fg")]
    for bad in ("directie:A,directie:B", "../x:A", "Directie Team:A"):
        with pytest.raises(Invalid):
            keys.parse_holders(bad)


# --- the command line ------------------------------------------------------------------------------

class Fd:
    """Lines for --password-fd / --passphrase-fd, through a real pipe."""

    def __init__(self, *lines: str) -> None:
        self.read, write = os.pipe()
        os.write(write, "".join(line + "\n" for line in lines).encode())
        os.close(write)

    def __str__(self) -> str:
        return str(self.read)

    def close(self) -> None:
        os.close(self.read)


def run_cli(data_dir: Path, *args: str, lines: tuple[str, ...] = ()) -> int:
    from poortwachter.audit.cli import main

    fd = Fd(*lines)
    try:
        argv = ["--data-dir", str(data_dir), *[str(fd) if a == "FD" else a for a in args]]
        return main(argv)
    finally:
        fd.close()


def test_cli_ceremony_and_a_case_from_open_to_export(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from poortwachter.workflow import accounts, create_user

    from argon2 import PasswordHasher

    monkeypatch.setattr(accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    data_dir = tmp_path / "data"
    at = ("--at", NOW.isoformat())
    assert run_cli(data_dir, "keys", "init", "--holders", "directie:Anna,ict:Jan", "--passphrase-fd", "FD", *at,
                   lines=(PHRASES["directie"], PHRASES["ict"])) == 0
    out = capsys.readouterr().out
    assert "directie (Anna)" in out and "verwijder" in out
    assert run_cli(data_dir, "keys", "init", "--passphrase-fd", "FD", *at,
                   lines=(PHRASES["directie"], PHRASES["ict"])) == 1          # keys exist
    store = open_store(default_url(data_dir))
    try:
        with store.write() as s:
            for name, role in (("anna", "directie"), ("jan", "ict"), ("kim", "docent")):
                create_user(s, username=name, display_name=name, role=role, password="wachtwoord-" + name,
                            actor="test", now=NOW)
        record_events(store, {"gw1": KeyStore(data_dir / "audit"),
                              "gw2": KeyStore(_gw2(tmp_path, load_escrow_public(data_dir / "audit")))})
    finally:
        store.close()

    def as_user(name: str, *args: str, lines: tuple[str, ...] = ()) -> int:
        return run_cli(data_dir, *args, "--user", name, "--password-fd", "FD", *at,
                       lines=("wachtwoord-" + name, *lines))

    opening = ("case", "open", "--subject", SUBJECT, "--from", "2025-03-10T00:00", "--until", "2025-03-16T23:00",
               "--reference", "INC-7", "--article", "004 art. 7", "--description", "gokken", "--reason", "welke sites")
    assert as_user("kim", *opening) == 1                                        # a docent may not
    assert run_cli(data_dir, *opening, "--user", "anna", "--password-fd", "FD", *at, lines=("fout",)) == 1
    assert as_user("anna", *opening) == 0
    shares_args = ("--share", str(keys.share_file(data_dir, "directie")), "--share",
                   str(keys.share_file(data_dir, "ict")), "--passphrase-fd", "FD")
    assert as_user("anna", "case", "view", "1", *shares_args, lines=(PHRASES["directie"], PHRASES["ict"])) == 1
    assert as_user("anna", "case", "approve", "1") == 1                          # not the opener
    assert as_user("jan", "case", "approve", "1") == 0
    capsys.readouterr()
    assert as_user("jan", "case", "view", "1", *shares_args, lines=(PHRASES["directie"], "fout-fout-fout")) == 2
    assert as_user("jan", "case", "view", "1", *shares_args, lines=(PHRASES["directie"], PHRASES["ict"])) == 0
    out = capsys.readouterr().out
    assert all(h in out for h in INSIDE) and not any(h in out for h in ALL_HOSTS - INSIDE)
    target = tmp_path / "zaak-1.csv"
    assert as_user("anna", "case", "export", "1", *shares_args, "--format", "csv", "--out", str(target),
                   lines=(PHRASES["directie"], PHRASES["ict"])) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert {line.split(",")[11] for line in target.read_text().splitlines()[1:]} == INSIDE
    assert as_user("anna", "case", "close", "1", "--outcome", "afgehandeld") == 0
    assert as_user("anna", "case", "inform", "1", "--note", "gesprek") == 0
    capsys.readouterr()
    assert as_user("anna", "case", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["state"] == "closed" and listed[0]["informed_by"] == "directie:anna"
    assert run_cli(data_dir, "case", "ledger", "--json", *at) == 0
    ledger = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["note"], e["events"]) for e in reversed(ledger)] == [
        ("keys", "2-of-2", None), ("open", "", None), ("refused", "view:not-approved", None),
        ("approve", "", None), ("refused", "view:shares", None), ("view", "", 3), ("export", "csv", 3),
        ("close", "", None), ("inform", "", None)]
    assert SUBJECT not in json.dumps(ledger)


def _gw2(tmp_path: Path, escrow: bytes | None) -> Path:
    assert escrow is not None
    directory = tmp_path / "gw2"
    write_escrow_public(directory, escrow)
    return directory
