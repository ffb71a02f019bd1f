"""The store on both backends: migrations, repositories, the snapshot a gateway loads.

Every test runs on SQLite (a file in tmp_path) and on the PostgreSQL server at 127.0.0.1:5432
(database `test`, each test in its own fresh schema, dropped afterwards). The PostgreSQL session
runs in Pacific/Chatham (UTC+12:45/+13:45) so any time-zone slip shows. Set
POORTWACHTER_TEST_PG_URL to use another server.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, func, inspect, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from poortwachter.store import (
    Store,
    default_url,
    downgrade,
    load_snapshot,
    load_state,
    migrate,
    open_store,
    repo,
    state_revision,
)
from poortwachter.store.db import current_revision, head_revision
from poortwachter.store.models import BanRow, Base, ChangeRow, ExamRow

from ..dbfixtures import db_url, pg_schema, pg_url, store  # noqa: F401  (fixtures; test_workflow* import them from here)

AMS = ZoneInfo("Europe/Amsterdam")
NOW = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)   # a Monday, 10:00 in Amsterdam
HOUR = dt.timedelta(hours=1)
TABLES = {"bans", "grants", "openings", "exams", "changes", "meta"}


def _ban(session: Session, subject: str = "10.1.2.3", **kw: object) -> int:
    args: dict[str, object] = {"until": NOW + HOUR, "actor": "ict:jan", "reason": "art. 7: sanctie", "now": NOW}
    args.update(kw)
    return repo.add_ban(session, subject=subject, **args)  # type: ignore[arg-type]


def _one_of_each(store: Store) -> dict[str, int]:
    with store.write() as s:
        return {
            "ban": _ban(s, "10.1.2.0/28"),
            "grant": repo.add_grant(s, sites=["WWW.YouTube.COM.", "Wikipedia.org/wiki/Special"],
                                    categories=["video"], zones=["klaslokaal"], roles=["leerling"],
                                    start=NOW, end=NOW + 2 * HOUR, actor="ict:jan",
                                    reason="verzoek leidinggevende", approved_by="ict:els", now=NOW),
            "opening": repo.add_opening(s, zone="lokaal-2.14", mode="allowlist", sites=["kahoot.it"],
                                        until=NOW + HOUR, actor="docent:kim", reason="toets", now=NOW),
            "exam": repo.add_exam(s, zone="aula", sites=["examen.example.nl"], categories=["exam"],
                                  start=NOW - HOUR, until=NOW + 3 * HOUR, actor="ict:jan",
                                  reason="CE wiskunde", now=NOW),
        }


# --- schema and migrations -------------------------------------------------------------------

def test_migrations_create_the_schema(db_url: str) -> None:
    assert current_revision(db_url) is None
    store = open_store(db_url)
    try:
        assert TABLES | {"alembic_version"} <= set(inspect(store.engine).get_table_names())
        assert current_revision(db_url) == head_revision()
        assert state_revision(store) == 0
        assert not load_state(store, NOW)
    finally:
        store.close()


def test_models_match_the_migrations(store: Store) -> None:
    # Models and hand-written migrations must describe one schema, or the next migration lies.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def _checks(engine: Engine) -> dict[str, list[tuple[str | None, str]]]:
    inspector = inspect(engine)
    return {table: sorted((c["name"], c["sqltext"]) for c in inspector.get_check_constraints(table))
            for table in sorted(inspector.get_table_names()) if table != "alembic_version"}


def test_models_checks_match_the_migrations(store: Store, tmp_path: Path) -> None:
    # compare_metadata leaves CHECK constraints out: compare the migrated database's with those the
    # models create on the same backend, by name and by the SQL the backend keeps.
    if store.engine.dialect.name == "sqlite":
        models = create_engine(f"sqlite:///{tmp_path / 'models.db'}")
        Base.metadata.create_all(models)
        try:
            assert _checks(store.engine) == _checks(models)
        finally:
            models.dispose()
        return
    with pg_schema("pw_models") as schema:
        models = create_engine(pg_url(schema))
        try:
            Base.metadata.create_all(models)
            assert _checks(store.engine) == _checks(models)
        finally:
            models.dispose()


def test_opening_again_keeps_data_and_revision(db_url: str) -> None:
    first = open_store(db_url)
    with first.write() as s:
        ban_id = _ban(s)
    first.close()
    second = open_store(db_url)   # migrating an up-to-date database is a no-op
    try:
        assert [b.id for b in load_state(second, NOW).bans] == [ban_id]
        assert state_revision(second) == 1
    finally:
        second.close()


def test_downgrade_then_upgrade(db_url: str) -> None:
    store = open_store(db_url)
    with store.write() as s:
        _ban(s)
    store.close()

    downgrade(db_url)
    engine = create_engine(db_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert current_revision(db_url) is None

    migrate(db_url)
    assert current_revision(db_url) == head_revision()
    store = open_store(db_url)
    try:
        assert state_revision(store) == 0
        assert not load_state(store, NOW)
        with store.write() as s:
            _ban(s)
        assert state_revision(store) == 1
    finally:
        store.close()


def test_default_url_is_absolute_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_url(Path("data")) == f"sqlite:///{tmp_path.resolve()}/data/poortwachter.db"
    store = open_store(default_url(Path("data")))   # creates the directory
    store.close()
    assert (tmp_path / "data" / "poortwachter.db").is_file()


def test_sqlite_runs_in_wal_with_busy_timeout(tmp_path: Path) -> None:
    store = open_store(default_url(tmp_path))
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()) >= 1000
    finally:
        store.close()


# --- what the gateway sees -------------------------------------------------------------------

def test_added_objects_show_in_state(store: Store) -> None:
    ids = _one_of_each(store)
    state = load_state(store, NOW)

    (ban,) = state.bans
    assert (ban.id, ban.subject, ban.until) == (ids["ban"], "10.1.2.0/28", NOW + HOUR)
    assert state.ban_for(ipaddress.ip_address("10.1.2.9"), NOW) == ban
    assert state.ban_for(ipaddress.ip_address("10.1.2.19"), NOW) is None

    (grant,) = state.grants
    assert grant.id == ids["grant"] and grant.source == ""      # verdicts cite the policy's articles
    assert grant.sites.domains == {"www.youtube.com"}          # normalised like a request host
    assert grant.sites.paths == (("wikipedia.org", "/wiki/Special"),)
    assert grant.zones == {"klaslokaal"} and grant.roles == {"leerling"}
    assert state.grant_for("klaslokaal", "klaslokaal", "leerling", "www.youtube.com", "/", frozenset(), NOW) == grant
    assert state.grant_for("klaslokaal", "klaslokaal", "medewerker", "www.youtube.com", "/", frozenset(), NOW) is None

    (opening,) = state.openings
    assert (opening.id, opening.zone, opening.mode) == (ids["opening"], "lokaal-2.14", "allowlist")
    assert opening.sites.domains == {"kahoot.it"} and opening.source == ""

    (exam,) = state.exams
    assert (exam.id, exam.zone, exam.start) == (ids["exam"], "aula", NOW - HOUR)
    assert exam.allowlist.domains == {"examen.example.nl"} and exam.allowlist.categories == {"exam"}
    assert state.exam_for("aula", NOW) == exam


def test_revoked_objects_leave_state(store: Store) -> None:
    ids = _one_of_each(store)
    revoke = {"ban": repo.revoke_ban, "grant": repo.revoke_grant,
              "opening": repo.revoke_opening, "exam": repo.revoke_exam}
    with store.write() as s:
        for kind, object_id in ids.items():
            assert revoke[kind](s, object_id, actor="ict:els", reason="vergissing", now=NOW)
    assert not load_state(store, NOW)
    with store.write() as s:
        assert not repo.revoke_ban(s, ids["ban"], actor="ict:els", reason="nogmaals", now=NOW)
        assert not repo.revoke_exam(s, 9999, actor="ict:els", reason="bestaat niet", now=NOW)


def test_expired_objects_are_absent_and_future_ones_present(store: Store) -> None:
    with store.write() as s:
        _ban(s, "10.0.0.1", until=NOW)                                   # ended exactly now
        _ban(s, "10.0.0.2", start=NOW - 3 * HOUR, until=NOW - HOUR, now=NOW - 3 * HOUR)
        future = _ban(s, "10.0.0.3", start=NOW + HOUR, until=NOW + 2 * HOUR)
        repo.add_grant(s, sites=["old.example"], start=NOW - 2 * HOUR, end=NOW - HOUR,
                       actor="ict:jan", reason="gisteren", now=NOW)
        repo.add_opening(s, zone="lokaal-1", mode="open", sites=["a.example"], until=NOW - HOUR,
                         actor="docent:kim", reason="vorig uur", now=NOW - 2 * HOUR)
        repo.add_exam(s, zone="aula", until=NOW - dt.timedelta(seconds=1), actor="ict:jan",
                      reason="klaar", now=NOW - HOUR)
    state = load_state(store, NOW)
    assert [b.id for b in state.bans] == [future]
    assert not state.grants and not state.openings and not state.exams
    # Loaded ahead of time, the future ban switches itself on: no reload needed.
    client = ipaddress.ip_address("10.0.0.3")
    assert state.ban_for(client, NOW) is None
    assert state.ban_for(client, NOW + 90 * dt.timedelta(minutes=1)) is not None


def test_only_approved_grants_reach_the_gateway(store: Store) -> None:
    with store.write() as s:
        for status in ("pending", "rejected", "approved"):
            repo.add_grant(s, sites=[f"{status}.example"], start=NOW, end=NOW + HOUR, status=status,
                           actor="ict:jan", reason="verzoek", now=NOW)
    assert [g.sites.domains for g in load_state(store, NOW).grants] == [{"approved.example"}]


def test_timezone_round_trip(store: Store) -> None:
    # 10:30 in Amsterdam (CET) is 09:30 UTC; stored as local wall time it would end an hour late.
    until = dt.datetime(2025, 3, 10, 10, 30, tzinfo=AMS)
    with store.write() as s:
        ban_id = _ban(s, until=until, now=NOW.astimezone(AMS))
    with store.read() as s:
        row = s.get(BanRow, ban_id)
        assert row is not None
        assert row.until == until and row.until.utcoffset() == dt.timedelta(0)
        assert row.until.tzinfo is dt.UTC and row.created_at == NOW
    (ban,) = load_state(store, NOW + dt.timedelta(minutes=15)).bans
    assert ban.until == dt.datetime(2025, 3, 10, 9, 30, tzinfo=dt.UTC)
    assert not load_state(store, NOW + dt.timedelta(minutes=45)).bans        # compared in SQL
    # Summer time: 10:30 CEST is 08:30 UTC.
    summer = dt.datetime(2025, 7, 1, 10, 30, tzinfo=AMS)
    with store.write() as s:
        repo.add_exam(s, zone="aula", start=summer - HOUR, until=summer, actor="ict", reason="x", now=NOW)
    (exam,) = load_state(store, NOW).exams
    assert exam.until == dt.datetime(2025, 7, 1, 8, 30, tzinfo=dt.UTC)


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = dt.datetime(2025, 3, 10, 10, 0)
    with pytest.raises(ValueError), store.write() as s:
        _ban(s, until=naive)
    with pytest.raises(ValueError):
        load_state(store, naive)
    # Even past the repository, the column type refuses to guess.
    with pytest.raises(StatementError), store.write() as s:
        s.add(BanRow(subject="10.0.0.1", until=naive, reason="r", source="", created_by="a", created_at=NOW))
    assert state_revision(store) == 0
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(BanRow)) == 0


# --- revision and change log ----------------------------------------------------------------

def test_revision_bumps_once_per_change(store: Store) -> None:
    assert state_revision(store) == 0
    with store.write() as s:
        ban_id = _ban(s)
    assert state_revision(store) == 1
    with store.write() as s:
        repo.add_opening(s, zone="lokaal-1", mode="open", sites=["a.example"], until=NOW + HOUR,
                         actor="docent:kim", reason="les", now=NOW)
        repo.revoke_ban(s, ban_id, actor="ict:els", reason="opgeheven", now=NOW)
    assert state_revision(store) == 3
    with store.write() as s:
        assert not repo.revoke_ban(s, ban_id, actor="ict:els", reason="nogmaals", now=NOW)
    assert state_revision(store) == 3                 # nothing changed, nothing to reload
    snapshot = load_snapshot(store, NOW)
    assert snapshot.revision == 3 and len(snapshot.state.openings) == 1


def test_failed_unit_of_work_leaves_no_trace(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as s:
        _ban(s)
        raise RuntimeError("boom")
    assert state_revision(store) == 0
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(BanRow)) == 0
        assert s.scalar(select(func.count()).select_from(ChangeRow)) == 0


def test_changes_record_who_when_why(store: Store) -> None:
    with store.write() as s:
        ban_id = _ban(s, actor="ict:jan", reason="art. 7 lid 2: herhaald misbruik")
    with store.write() as s:
        exam_id = repo.add_exam(s, zone="aula", until=NOW + HOUR, actor=" ict:els ", reason="CE", now=NOW)
        repo.revoke_ban(s, ban_id, actor="directie:piet", reason="bezwaar toegekend", now=NOW + HOUR)
    with store.read() as s:
        rows = [(c.kind, c.object, c.object_id, c.actor, c.reason, c.at, c.revision)
                for c in s.scalars(select(ChangeRow).order_by(ChangeRow.id))]
        ban = s.get(BanRow, ban_id)
        assert ban is not None and ban.created_by == "ict:jan" and ban.revoked_at == NOW + HOUR
    assert rows == [
        ("add", "ban", ban_id, "ict:jan", "art. 7 lid 2: herhaald misbruik", NOW, 1),
        ("add", "exam", exam_id, "ict:els", "CE", NOW, 2),
        ("revoke", "ban", ban_id, "directie:piet", "bezwaar toegekend", NOW + HOUR, 3),
    ]


# --- validation at the edge ------------------------------------------------------------------

BAD_INPUT: dict[str, Callable[[Session], object]] = {
    "address": lambda s: _ban(s, "10.1.2.300"),
    "empty reason": lambda s: _ban(s, reason="  "),
    "empty actor": lambda s: _ban(s, actor=""),
    "end before start": lambda s: _ban(s, start=NOW + HOUR, until=NOW),
    "site": lambda s: repo.add_grant(s, sites=["ok.example", "bad host.example"], start=NOW,
                                     end=NOW + HOUR, actor="a", reason="r", now=NOW),
    "grant of nothing": lambda s: repo.add_grant(s, start=NOW, end=NOW + HOUR, actor="a", reason="r", now=NOW),
    "status": lambda s: repo.add_grant(s, sites=["a.example"], start=NOW, end=NOW + HOUR, actor="a",
                                       reason="r", status="maybe", now=NOW),  # type: ignore[arg-type]
    "mode": lambda s: repo.add_opening(s, zone="z", mode="half",  # type: ignore[arg-type]
                                       sites=["a.example"], until=NOW + HOUR, actor="a", reason="r", now=NOW),
    "open nothing": lambda s: repo.add_opening(s, zone="z", mode="open", until=NOW + HOUR, actor="a",
                                               reason="r", now=NOW),
    "empty zone": lambda s: repo.add_exam(s, zone=" ", until=NOW + HOUR, actor="a", reason="r", now=NOW),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_refused_without_echo(store: Store, case: str) -> None:
    with pytest.raises(ValueError) as info, store.write() as s:
        BAD_INPUT[case](s)
    message = str(info.value)
    assert " / " in message                                  # Dutch / English
    assert "10.1.2.300" not in message and "bad host" not in message
    assert state_revision(store) == 0


def test_an_allowlist_opening_may_close_the_room(store: Store) -> None:
    with store.write() as s:
        repo.add_opening(s, zone="lokaal-1", mode="allowlist", until=NOW + HOUR, actor="docent:kim",
                         reason="toets op papier", now=NOW)
    (opening,) = load_state(store, NOW).openings
    assert opening.mode == "allowlist" and not opening.sites


# --- transactions ----------------------------------------------------------------------------

def test_a_read_sees_one_snapshot(store: Store) -> None:
    # load_snapshot pairs a State with its revision; that only holds if a read unit of work does
    # not see commits made while it runs.
    with store.read() as reader:
        assert reader.scalar(select(func.count()).select_from(BanRow)) == 0
        with store.write() as s:
            _ban(s)
        assert reader.scalar(select(func.count()).select_from(BanRow)) == 0
    assert state_revision(store) == 1


def test_concurrent_writers_all_succeed(store: Store) -> None:
    threads, per_thread = 4, 10
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with store.write() as s:
                    # Read before write: under SQLite's deferred BEGIN this is the pattern that
                    # fails with "database is locked" instead of waiting its turn.
                    s.scalar(select(func.count()).select_from(ExamRow))
                    repo.add_exam(s, zone=f"zone-{n}", until=NOW + HOUR, actor=f"t{n}",
                                  reason=str(i), now=NOW)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    total = threads * per_thread
    assert state_revision(store) == total
    with store.read() as s:
        revisions = sorted(s.scalars(select(ChangeRow.revision)))
    assert revisions == list(range(1, total + 1))          # every change got its own revision
    assert len(load_state(store, NOW).exams) == total

