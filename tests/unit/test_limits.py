"""Download limits (004 art. 13) on SQLite and PostgreSQL: what the sensor imposes, once per client;
revoking, expiry and the change log; the counts the gateway publishes; the snapshot and the state
the gateway enforces from (and saves to disk).

Backends and per-test schemas come from test_store.py (fixtures `db_url`, `store`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pytest
from sqlalchemy import select

from poortwachter.auditlog.cases import approve_case, close_case, open_case
from poortwachter.state import Ban, DownloadLimit, State, state_from_dict, state_to_dict
from poortwachter.store import Store, downgrade, load_snapshot, load_state, migrate, open_store, state_revision
from poortwachter.store.db import current_revision, head_revision
from poortwachter.store.models import DownloadLimitRow
from poortwachter.workflow import Conflict, Forbidden, Invalid, NotFound, User, counts, record_expiries
from poortwachter.workflow.limits import (
    SENSOR,
    impose_download_limit,
    list_download_limits,
    revoke_download_limit,
)

from .test_store import db_url, store  # noqa: F401  (fixtures: both backends, schema per test)
from .test_workflow import HOUR, NOW, cheap_hashes, changes, people  # noqa: F401
from .test_workflow_concurrency import race

MB = 1_000_000
END_OF_DAY = dt.datetime(2025, 3, 10, 23, 0, tzinfo=dt.UTC)   # midnight in Amsterdam (CET)


def _impose(store: Store, address: str = "10.20.3.4", **kw: object) -> int | None:
    args: dict[str, object] = {"zone": "klaslokalen", "max_bytes": 50 * MB, "until": END_OF_DAY,
                               "reason": "overmatig downloaden: 2,1 GB in 1 uur", "now": NOW}
    args.update(kw)
    return impose_download_limit(store, address=address, **args)  # type: ignore[arg-type]


# --- imposing -------------------------------------------------------------------------------------

def test_impose_writes_the_limit_a_change_and_a_revision(store: Store) -> None:
    before = state_revision(store)
    limit_id = _impose(store)
    assert limit_id is not None
    assert state_revision(store) == before + 1
    with store.read() as s:
        row = s.get(DownloadLimitRow, limit_id)
        assert row is not None
        assert (row.address, row.zone, row.max_bytes, row.start, row.until, row.created_by) == (
            "10.20.3.4", "klaslokalen", 50 * MB, NOW, END_OF_DAY, SENSOR)
        assert row.revoked_at is None and row.expired_at is None
    assert changes(store) == [("add", "download_limit", limit_id, SENSOR,
                               "overmatig downloaden: 2,1 GB in 1 uur", NOW)]


def test_impose_is_idempotent_per_address(store: Store) -> None:
    first = _impose(store, "10.20.3.4")
    revision = state_revision(store)
    assert _impose(store, "10.20.3.4", max_bytes=1, now=NOW + HOUR) is None
    assert _impose(store, "::ffff:10.20.3.4") is None          # the same client as the gateway sees it
    assert state_revision(store) == revision                    # nothing written, no revision bump
    other = _impose(store, "2001:DB8::7")
    assert other is not None and other != first
    with store.read() as s:
        assert [(d.id, d.address, d.max_bytes) for d in list_download_limits(s, now=NOW)] == [
            (first, "10.20.3.4", 50 * MB), (other, "2001:db8::7", 50 * MB)]


def test_a_new_limit_once_the_old_one_ended_or_was_lifted(store: Store, people: dict[str, User]) -> None:
    first = _impose(store, until=NOW + HOUR)
    assert first is not None
    second = _impose(store, now=NOW + HOUR)                     # the first ended at NOW + 1 h
    assert second is not None and second != first
    with store.write() as s:
        revoke_download_limit(s, second, user=people["ict"], reason="vergissing", now=NOW + 2 * HOUR)
    third = _impose(store, now=NOW + 3 * HOUR)
    assert third is not None and third not in (first, second)


def test_racing_sensors_impose_once(store: Store) -> None:
    results = race(8, lambda n: _impose(store, "10.20.3.4", max_bytes=(n + 1) * MB))
    made = [r for r in results if r is not None]
    assert len(made) == 1 and results.count(None) == 7
    with store.read() as s:
        assert len(list(s.scalars(select(DownloadLimitRow)))) == 1
    assert [c[:2] for c in changes(store)] == [("add", "download_limit")]
    assert state_revision(store) == 1


@pytest.mark.parametrize(("kw", "nl"), [
    ({"address": "10.20.3.0/24"}, "Geen geldig adres"),
    ({"address": "pc-van-sam"}, "Geen geldig adres"),
    ({"max_bytes": -1}, "Maximum"),
    ({"max_bytes": 1.5}, "Maximum"),
    ({"until": NOW}, "Einde ligt niet in de toekomst"),
    ({"until": END_OF_DAY.replace(tzinfo=None)}, "Einde zonder tijdzone"),
    ({"reason": "  "}, "Reden ontbreekt"),
    ({"zone": ""}, "Zone ontbreekt"),
])
def test_bad_input_is_refused_without_a_trace(store: Store, kw: dict[str, object], nl: str) -> None:
    kw = dict(kw)   # shared by both backends' runs
    address = str(kw.pop("address", "10.20.3.4"))
    with pytest.raises(Invalid) as info:
        _impose(store, address, **kw)
    message = str(info.value)
    assert message.startswith(nl) and " / " in message
    assert address not in message                              # no address in an error message
    assert state_revision(store) == 0


# --- revoking -------------------------------------------------------------------------------------

def test_revoke_by_directie_or_ict_once(store: Store, people: dict[str, User]) -> None:
    limit_id = _impose(store)
    assert limit_id is not None
    with store.write() as s, pytest.raises(Forbidden):
        revoke_download_limit(s, limit_id, user=people["docent"], reason="r", now=NOW)
    with store.write() as s:
        revoke_download_limit(s, limit_id, user=people["directie"], reason="leerling sprak ICT aan", now=NOW)
    with store.write() as s, pytest.raises(Conflict):
        revoke_download_limit(s, limit_id, user=people["ict"], reason="nogmaals", now=NOW)
    with store.write() as s, pytest.raises(NotFound):
        revoke_download_limit(s, limit_id + 100, user=people["ict"], reason="r", now=NOW)
    assert changes(store)[-1] == ("revoke", "download_limit", limit_id, "directie:piet",
                                  "leerling sprak ICT aan", NOW)
    with store.read() as s:
        assert list_download_limits(s, now=NOW) == []
    assert load_state(store, NOW).download_limits == ()


def test_an_ended_limit_cannot_be_revoked(store: Store, people: dict[str, User]) -> None:
    limit_id = _impose(store, until=NOW + HOUR)
    assert limit_id is not None
    with store.write() as s, pytest.raises(Conflict):
        revoke_download_limit(s, limit_id, user=people["ict"], reason="te laat", now=NOW + HOUR)


# --- expiry and counts ------------------------------------------------------------------------------

def test_expiry_is_recorded_once_at_the_end(store: Store, people: dict[str, User]) -> None:
    ends = _impose(store, "10.20.3.4", until=NOW + HOUR)
    revoked = _impose(store, "10.20.3.5", until=NOW + HOUR)
    running = _impose(store, "10.20.3.6")
    assert ends and revoked and running
    with store.write() as s:
        revoke_download_limit(s, revoked, user=people["ict"], reason="r", now=NOW)
    with store.write() as s:
        assert record_expiries(s, now=NOW + 2 * HOUR) == 1
    with store.write() as s:
        assert record_expiries(s, now=NOW + 3 * HOUR) == 0
    assert changes(store)[-1] == ("expire", "download_limit", ends, "systeem", "verlopen / expired", NOW + HOUR)
    with store.read() as s:
        row = s.get(DownloadLimitRow, ends)
        assert row is not None and row.expired_at == NOW + HOUR
        assert [d.id for d in list_download_limits(s, now=NOW + 2 * HOUR)] == [running]


def test_counts_active_download_limits_and_open_cases(store: Store, people: dict[str, User]) -> None:
    with store.read() as s:
        found = counts(s, now=NOW)
    assert found["active_download_limits"] == 0 and found["open_cases"] == 0
    _impose(store, "10.20.3.4")
    _impose(store, "10.20.3.5", until=NOW + HOUR)
    lifted = _impose(store, "10.20.3.6")
    assert lifted is not None
    week = dt.timedelta(days=7)

    def case(s, subject: str, ends_at: dt.datetime) -> int:  # type: ignore[no-untyped-def]
        return open_case(s, user=people["directie"], reference="INC", article="004 art. 13", description="d",
                         reason="r", subject=subject, window_start=NOW - 2 * week, window_end=NOW - week,
                         now=NOW, ends_at=ends_at)

    with store.write() as s:
        revoke_download_limit(s, lifted, user=people["ict"], reason="r", now=NOW)
        case(s, "10.20.3.4", NOW + week)                                 # open
        approved = case(s, "10.20.3.5", NOW + week)
        approve_case(s, approved, user=people["ict"], now=NOW)           # approved
        closed = case(s, "10.20.3.6", NOW + week)
        close_case(s, closed, user=people["directie"], outcome="klaar", now=NOW)
        case(s, "10.20.3.7", NOW + 2 * HOUR)                             # open, ends sooner
    with store.read() as s:
        now, later, latest = counts(s, now=NOW), counts(s, now=NOW + 90 * dt.timedelta(minutes=1)), \
            counts(s, now=NOW + 3 * HOUR)
    assert (now["active_download_limits"], now["open_cases"]) == (2, 3)
    assert (later["active_download_limits"], later["open_cases"]) == (1, 3)
    assert (latest["active_download_limits"], latest["open_cases"]) == (1, 2)   # past its end: expired


# --- what the gateway loads -------------------------------------------------------------------------

def test_snapshot_holds_the_limits_in_force(store: Store, people: dict[str, User]) -> None:
    kept = _impose(store, "10.20.3.4")
    lifted = _impose(store, "10.20.3.5")
    short = _impose(store, "2001:db8::7", max_bytes=1, until=NOW + HOUR)
    assert kept and lifted and short
    with store.write() as s:
        revoke_download_limit(s, lifted, user=people["ict"], reason="r", now=NOW)
    snapshot = load_snapshot(store, NOW)
    assert snapshot.revision == state_revision(store)
    assert snapshot.state.download_limits == (
        DownloadLimit(kept, "10.20.3.4", 50 * MB, END_OF_DAY, NOW),
        DownloadLimit(short, "2001:db8::7", 1, NOW + HOUR, NOW))
    state = snapshot.state
    assert state and not state.any                     # limits never slow the decision down
    client = ipaddress.ip_address("10.20.3.4")
    assert state.download_limit_for(client, NOW) == state.download_limits[0]
    assert state.download_limit_for(ipaddress.ip_address("10.20.3.5"), NOW) is None
    v6 = ipaddress.ip_address("2001:db8::7")
    assert state.download_limit_for(v6, NOW + HOUR - dt.timedelta(seconds=1)) is not None
    assert state.download_limit_for(v6, NOW + HOUR) is None   # ends by the clock alone, no reload
    assert [d.id for d in load_state(store, NOW + HOUR).download_limits] == [kept]


def test_a_hand_edited_address_does_not_take_the_snapshot_down(store: Store) -> None:
    good = _impose(store, "10.20.3.4")
    bad = _impose(store, "10.20.3.5")
    with store.write() as s:
        row = s.get(DownloadLimitRow, bad)
        assert row is not None
        row.address = "pc-van-sam"
    assert [d.id for d in load_state(store, NOW).download_limits] == [good]


def test_state_round_trip_through_the_saved_snapshot() -> None:
    until = dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC)
    state = State(bans=(Ban(1, "10.0.0.0/28", until),),
                  download_limits=(DownloadLimit(7, "10.20.3.4", 50 * MB, until, until - 10 * HOUR),
                                   DownloadLimit(8, "2001:db8::7", 0, until)))
    saved = json.loads(json.dumps(state_to_dict(state)))          # as state_sync writes it to disk
    again = state_from_dict(saved)
    assert again == state
    assert again.limits == {ipaddress.ip_address("10.20.3.4"): state.download_limits[0],
                            ipaddress.ip_address("2001:db8::7"): state.download_limits[1]}
    del saved["download_limits"]                                    # saved by a gateway before limits
    assert state_from_dict(saved) == State(bans=state.bans)


def test_two_limits_for_one_client_the_stricter_counts() -> None:
    until = dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC)
    loose, strict = DownloadLimit(1, "10.20.3.4", 50 * MB, until), DownloadLimit(2, "10.20.3.4", 5 * MB, until)
    for order in ((loose, strict), (strict, loose)):
        assert State(download_limits=order).limits[ipaddress.ip_address("10.20.3.4")] == strict


# --- migration 0007 -----------------------------------------------------------------------------------

def test_migration_0007_adds_download_limits_and_downgrades(db_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    def tables() -> set[str]:
        engine = create_engine(db_url)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    assert head_revision() >= "0007"
    migrate(db_url, "0006")
    assert "download_limits" not in tables()
    migrate(db_url, "0007")
    assert current_revision(db_url) == "0007" and "download_limits" in tables()
    migrate(db_url)
    store = open_store(db_url)
    try:
        assert _impose(store) is not None
    finally:
        store.close()
    downgrade(db_url, "0006")
    assert current_revision(db_url) == "0006" and "download_limits" not in tables()


# --- the page a limited client gets -------------------------------------------------------------------

def test_download_limit_page_dutch_first_with_size_until_and_article() -> None:
    from types import SimpleNamespace

    from poortwachter import blockpage
    from poortwachter.decide import Verdict

    policy = SimpleNamespace(sensor=SimpleNamespace(excessive_download=SimpleNamespace(
        source="004 art. 13: overmatig downloaden <b>")))
    verdict = Verdict("block", blockpage.DOWNLOAD_LIMIT, blockpage.limit_source(policy), "video", "klas", "pupil",
                      "1e-blok")
    until = dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC)            # midnight in Amsterdam
    page = blockpage.render_download_limit(verdict, until, 1_500_000_000, "de ICT-afdeling").decode()
    assert page.index("Deze download is te groot") < page.index("This download is too large.")
    assert "groter zijn dan 1,5 GB" in page and "larger than 1.5 GB" in page
    assert '<dd id="until">25-11-2026 00:00</dd>' in page
    assert '<dd id="source">004 art. 13: overmatig downloaden &lt;b&gt;</dd>' in page   # escaped
    assert '<dd id="rule">download_limit</dd>' in page and 'id="unblock"' not in page   # no unblock request


def test_limit_source_read_defensively() -> None:
    from types import SimpleNamespace

    from poortwachter.blockpage import human_size, limit_source

    assert limit_source(SimpleNamespace()) == ""                                    # no sensor section
    assert limit_source(SimpleNamespace(sensor=None)) == ""
    assert limit_source(SimpleNamespace(sensor=SimpleNamespace(source=" 004 art. 13 "))) == "004 art. 13"
    assert limit_source(SimpleNamespace(sensor=SimpleNamespace(excessive_download=SimpleNamespace(source=""),
                                                               source="004 art. 12/13"))) == "004 art. 12/13"
    assert [human_size(n) for n in (0, 999, 100_000, 50_000_000, 1_250_000_000)] == [
        ("0 bytes", "0 bytes"), ("999 bytes", "999 bytes"), ("100 kB", "100 kB"), ("50 MB", "50 MB"),
        ("1,2 GB", "1.2 GB")]
