"""Retention (auditlog/retention.py): due events are erased, held ones stay, and `audit verify` still
checks the whole log afterwards. The clock is injected; the store is SQLite in tmp_path, with
real cases (auditlog/cases.py) for the holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from poortwachter.audit import checkpoint
from poortwachter.audit.log import events_log
from poortwachter.audit.notes import (
    Tombstone,
    erasure_digest,
    erasure_from_text,
    erasure_note,
    erasure_to_text,
    sign_erasure,
    verify_erasure,
)
from poortwachter.audit.pseudonym import period_of, pseudonym
from poortwachter.auditlog.cases import approve_case, close_case, open_case
from poortwachter.auditlog.exporters import DirectoryExporter
from poortwachter.auditlog.retention import Hold, RetentionPolicy, apply_retention
from poortwachter.auditlog.verify import Report, render, verify
from poortwachter.store import Store, default_url, open_store, repo
from poortwachter.store.models import AuditErasureRow, AuditEventRow, AuditTombstoneRow
from poortwachter.workflow.common import User

from .test_audit_verify import (
    ALLOW,
    BLOCK,
    SIGNING_KEY,
    SIGNING_PUBLIC,
    add_events,
    checkpoint_round,
    event,
    execute,
    period_key,
    run_cli,
)

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
GW1 = events_log("gw1")
DIRECTIE = User(1, "anna", "Anna", "directie", ())
ICT = User(2, "jan", "Jan", "ict", ())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(default_url(tmp_path / "data"))
    yield s
    s.close()


def remaining(store: Store) -> list[int]:
    with store.read() as s:
        return list(s.scalars(select(AuditEventRow.seq).order_by(AuditEventRow.seq)))


def tombstones(store: Store) -> list[int]:
    with store.read() as s:
        return list(s.scalars(select(AuditTombstoneRow.seq).order_by(AuditTombstoneRow.seq)))


def codes(report: Report) -> set[str]:
    return {f.code for f in report.findings}


AGES = {  # seq: (age, verdict)
    1: (181 * DAY, BLOCK),     # block past 180 days: goes
    2: (179 * DAY, BLOCK),     # block within 180 days: stays
    3: (31 * DAY, ALLOW),      # allowed past 30 days: goes
    4: (31 * DAY, BLOCK),      # a block of the same age: stays
    5: (29 * DAY, ALLOW),      # allowed within 30 days: stays
    6: (DAY, ALLOW),
}


def populate(store: Store) -> None:
    add_events(store, [event(seq, NOW - age, verdict=v) for seq, (age, v) in AGES.items()])


def retain(store: Store, out: Path, now: dt.datetime = NOW, **kw: object):  # type: ignore[no-untyped-def]
    checkpoint_round(store, out, now)                 # pin the log before anything is erased
    return apply_retention(store, now=now, signing_key=SIGNING_KEY, exporters=[DirectoryExporter(out)],
                           holds=kw.pop("holds", []), **kw)  # type: ignore[arg-type]


# --- the rules -----------------------------------------------------------------------------------------

def test_policy_defaults_and_cutoffs() -> None:
    policy = RetentionPolicy()
    assert (policy.allowed, policy.blocked) == (30 * DAY, 180 * DAY)
    assert policy.due(NOW - 30 * DAY - dt.timedelta(seconds=1), "allow", NOW)
    assert not policy.due(NOW - 30 * DAY, "allow", NOW)
    assert not policy.due(NOW - 31 * DAY, "block", NOW)
    assert policy.due(NOW - 181 * DAY, "block", NOW)
    assert policy.due(NOW - 181 * DAY, "anything-else", NOW)     # not "allow": kept as long as a block
    with pytest.raises(ValueError):
        RetentionPolicy(allowed=dt.timedelta(0))


def test_old_allowed_events_go_after_30_days_blocks_after_180(store: Store, tmp_path: Path) -> None:
    populate(store)
    result = retain(store, tmp_path / "out")
    assert remaining(store) == [2, 4, 5, 6]
    assert tombstones(store) == [1, 3]
    assert result.erased == {GW1: 2} and result.held == 0 and result.changed == 0 and result.exported == 1


def test_periods_are_configurable(store: Store, tmp_path: Path) -> None:
    populate(store)
    retain(store, tmp_path / "out", policy=RetentionPolicy(allowed=7 * DAY, blocked=30 * DAY))
    assert remaining(store) == [6] and tombstones(store) == [1, 2, 3, 4, 5]


def test_a_tombstone_keeps_nothing_personal(store: Store, tmp_path: Path) -> None:
    populate(store)
    retain(store, tmp_path / "out")
    with store.read() as s:
        columns = set(s.execute(text("SELECT * FROM audit_tombstones")).keys())
        events = s.execute(text("SELECT count(*) FROM audit_events WHERE seq IN (1, 3)")).scalar_one()
    assert columns == {"gateway", "seq", "at", "action", "leaf_hash", "erasure"}
    assert events == 0


# --- holds -----------------------------------------------------------------------------------------

def open_and_approve(store: Store, subject: str, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> int:
    with store.write() as s:
        case_id = open_case(s, user=DIRECTIE, reference="INC-1", article="004 art. 9", description="vastgesteld",
                            reason="onderzoek", subject=subject, window_start=start, window_end=end, now=now)
    with store.write() as s:
        approve_case(s, case_id, user=ICT, now=now)
    return case_id


def held_scenario(store: Store) -> tuple[dt.datetime, dt.datetime]:
    start, end = NOW - 35 * DAY, NOW - 33 * DAY
    add_events(store, [
        event(10, NOW - 34 * DAY, client="10.0.0.7", verdict=ALLOW),     # the subject, in the window
        event(11, NOW - 34 * DAY, client="10.0.0.8", verdict=ALLOW),     # someone else, in the window
        event(12, NOW - 40 * DAY, client="10.0.0.7", verdict=ALLOW),     # the subject, before the window
    ])
    return start, end


def test_an_open_case_holds_the_events_of_its_window(store: Store, tmp_path: Path) -> None:
    start, end = held_scenario(store)
    open_and_approve(store, "10.0.0.7", start, end, NOW - 10 * DAY)
    checkpoint_round(store, tmp_path / "out", NOW)
    result = apply_retention(store, now=NOW, signing_key=SIGNING_KEY)        # holds read from the cases
    assert remaining(store) == [10, 11] and tombstones(store) == [12]
    assert result.held == 2


def test_a_case_not_yet_approved_holds_too(store: Store, tmp_path: Path) -> None:
    start, end = held_scenario(store)
    with store.write() as s:
        open_case(s, user=DIRECTIE, reference="INC-2", article="004 art. 9", description="vastgesteld",
                  reason="onderzoek", subject="10.0.0.7", window_start=start, window_end=end, now=NOW - DAY)
    checkpoint_round(store, tmp_path / "out", NOW)
    apply_retention(store, now=NOW, signing_key=SIGNING_KEY)
    assert 10 in remaining(store)


def test_a_closed_or_expired_case_holds_nothing(store: Store, tmp_path: Path) -> None:
    start, end = held_scenario(store)
    case_id = open_and_approve(store, "10.0.0.7", start, end, NOW - 10 * DAY)
    with store.write() as s:
        close_case(s, case_id, user=DIRECTIE, outcome="afgehandeld", now=NOW - DAY)
    # and another one whose end time (30 days after opening) will have passed
    open_and_approve(store, "10.0.0.7", start, end, NOW - 20 * DAY)
    checkpoint_round(store, tmp_path / "out", NOW + 31 * DAY)
    apply_retention(store, now=NOW + 31 * DAY, signing_key=SIGNING_KEY)
    assert remaining(store) == []


def test_a_hold_with_the_case_pseudonyms_keeps_only_the_subject(store: Store, tmp_path: Path) -> None:
    start, end = held_scenario(store)
    at = NOW - 34 * DAY
    period = period_of(at)
    subject = ("gw1", period, pseudonym(period_key(period), "10.0.0.7"))
    hold = Hold(start, end, frozenset({subject}))
    assert hold.covers("gw1", at, period, subject[2])
    assert not hold.covers("gw1", at, period, pseudonym(period_key(period), "10.0.0.8"))
    assert not hold.covers("gw1", NOW - 40 * DAY, period, subject[2])
    result = retain(store, tmp_path / "out", holds=[hold])
    assert remaining(store) == [10] and tombstones(store) == [11, 12] and result.held == 1


# --- safety rules ----------------------------------------------------------------------------------------

def test_a_changed_event_is_kept_as_evidence(store: Store, tmp_path: Path) -> None:
    populate(store)
    checkpoint_round(store, tmp_path / "out", NOW)
    execute(store, "UPDATE audit_events SET zone = 'elders' WHERE seq = 3")
    result = apply_retention(store, now=NOW, signing_key=SIGNING_KEY, holds=[])
    assert 3 in remaining(store) and result.changed == 1 and tombstones(store) == [1]
    assert {"row", "mismatch"} <= codes(verify(store, tmp_path / "out"))


def test_nothing_is_erased_before_a_checkpoint_pinned_it(store: Store) -> None:
    populate(store)
    result = apply_retention(store, now=NOW, signing_key=SIGNING_KEY, holds=[])
    assert result.total == 0 and result.uncovered == 2 and len(remaining(store)) == 6


def test_erasing_in_small_batches_makes_one_record_per_batch(store: Store, tmp_path: Path) -> None:
    add_events(store, [event(seq, NOW - 200 * DAY) for seq in range(1, 8)])
    result = retain(store, tmp_path / "out", batch=3)
    assert result.total == 7 and len(result.erasures) == 3
    report = verify(store, tmp_path / "out")
    assert report.ok and report.erasures_valid == 3, render(report)


# --- verify after retention ----------------------------------------------------------------------------

def test_verify_still_passes_after_retention(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    populate(store)
    retain(store, out)
    report = verify(store, out)
    assert report.ok, render(report)
    assert [(s.size, s.erased) for s in report.logs if s.log == GW1] == [(6, 2)]
    add_events(store, [event(20, NOW)])
    checkpoint_round(store, out, NOW + DAY)                  # the log goes on after retention
    report = verify(store, out)
    assert report.ok and report.findings == [], render(report)


def test_a_deleted_tombstone_is_a_hole_in_the_log(store: Store, tmp_path: Path) -> None:
    populate(store)
    retain(store, tmp_path / "out")
    execute(store, "DELETE FROM audit_tombstones WHERE seq = 1")
    assert codes(verify(store, tmp_path / "out")) == {"behind", "erasure-mismatch"}


def test_an_erasure_without_its_exported_record_is_reported(store: Store, tmp_path: Path) -> None:
    populate(store)
    retain(store, tmp_path / "out")
    for path in (tmp_path / "out").rglob("*.erasure"):
        path.unlink()
    assert codes(verify(store, tmp_path / "out")) == {"erasure-unexported"}


def test_an_event_moved_into_the_tombstones_is_reported(store: Store, tmp_path: Path) -> None:
    """Someone with database access 'erases' a fresh event under an existing erasure record."""
    populate(store)
    retain(store, tmp_path / "out")
    with store.read() as s:
        erasure = s.scalar(select(AuditErasureRow.id))
        row = s.scalars(select(AuditEventRow).where(AuditEventRow.seq == 6)).one()
        values = {"g": row.gateway, "s": row.seq, "a": row.at.strftime("%Y-%m-%d %H:%M:%S.%f"), "c": row.action,
                  "h": bytes(row.leaf_hash), "e": erasure}
    execute(store, "DELETE FROM audit_events WHERE seq = 6")
    execute(store, "INSERT INTO audit_tombstones (gateway, seq, at, action, leaf_hash, erasure) "
            "VALUES (:g, :s, :a, :c, :h, :e)", **values)
    report = verify(store, tmp_path / "out")
    # the tree itself still matches; the record and the retention period do not
    assert codes(report) == {"erasure-mismatch", "erasure-early"} and not report.ok


def test_a_tombstone_made_to_look_older_is_reported(store: Store, tmp_path: Path) -> None:
    populate(store)
    retain(store, tmp_path / "out")
    execute(store, "UPDATE audit_tombstones SET at = '2020-01-01 00:00:00.000000' WHERE seq = 3")
    assert codes(verify(store, tmp_path / "out")) == {"erasure-mismatch"}


def test_retention_without_a_key_is_done_but_unsigned(store: Store, tmp_path: Path) -> None:
    populate(store)
    checkpoint_round(store, tmp_path / "out", NOW)
    result = apply_retention(store, now=NOW, holds=[])
    assert result.total == 2
    with store.read() as s:
        assert s.scalar(select(AuditErasureRow.note)) is None
    assert codes(verify(store, tmp_path / "out")) == {"erasure-unsigned"}


def test_an_erasure_signed_too_early_is_reported(store: Store, tmp_path: Path) -> None:
    """A signed record whose cut-offs do not cover what it erased (a wrong clock, a bad policy)."""
    out = tmp_path / "out"
    populate(store)
    retain(store, out)
    with store.read() as s:
        record_id = s.scalars(select(AuditErasureRow.id)).one()
        stones = [Tombstone(t.seq, t.at, t.action, bytes(t.leaf_hash)) for t in s.scalars(select(AuditTombstoneRow))]
    for path in out.rglob("*.erasure"):
        path.unlink()
    early = sign_erasure(SIGNING_KEY, GW1, record_id, len(stones), erasure_digest(stones),
                         NOW - 400 * DAY, NOW - 400 * DAY, NOW)
    DirectoryExporter(out).deliver([erasure_note(early)], NOW)
    assert codes(verify(store, out)) == {"erasure-early"}


# --- the erasure record ----------------------------------------------------------------------------------

def test_erasure_records_round_trip_and_resist_edits() -> None:
    stones = [Tombstone(3, NOW - 40 * DAY, "allow", b"\x05" * 32), Tombstone(1, NOW - 200 * DAY, "block", b"\x06" * 32)]
    record = sign_erasure(SIGNING_KEY, GW1, 7, 2, erasure_digest(stones), NOW - 30 * DAY, NOW - 180 * DAY, NOW)
    textual = erasure_to_text(record)
    parsed = erasure_from_text(textual)
    assert parsed == record and verify_erasure(SIGNING_PUBLIC, parsed)
    assert erasure_digest(stones) == erasure_digest(list(reversed(stones)))      # seq order, whatever the input
    edited = erasure_from_text(textual.replace("erasure 7 2", "erasure 7 3"))
    assert not verify_erasure(SIGNING_PUBLIC, edited)
    _, other = checkpoint.generate_signing_key()
    assert not verify_erasure(other, parsed)
    assert parsed.due(NOW - 31 * DAY, "allow") and not parsed.due(NOW - 31 * DAY, "block")


# --- the command -------------------------------------------------------------------------------------

def test_cli_retention_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    url = default_url(data_dir)
    store = open_store(url)
    populate(store)
    with store.write() as s:
        repo.lock_revision(s)
    store.close()
    (data_dir / "audit").mkdir(parents=True)
    (data_dir / "audit" / "checkpoint.key").write_text(SIGNING_KEY.hex() + "\n")
    out = tmp_path / "out"
    argv = ["audit", "retention", "--db", url, "--export-dir", str(out), "--at", NOW.isoformat()]
    assert run_cli(argv, data_dir) == 0
    assert "gewist / erased: 2" in capsys.readouterr().out
    assert run_cli(["audit", "verify", "--checkpoints", str(out), "--db", url], data_dir) == 0
    store = open_store(url)
    assert remaining(store) == [2, 4, 5, 6]
    store.close()
