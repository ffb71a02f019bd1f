"""Tamper evidence of the audit logs (auditlog/checkpointer.py, auditlog/verify.py, `poortwachter audit
verify`): every corruption of a real store is found against the checkpoints that left the box.

Events and ledger entries are written through the real code paths (store/audit_repo.py,
auditlog/cases.py), checkpoints are signed and exported by the real Checkpointer, the database is
then corrupted with plain SQL, as an administrator with database access could. The store is
SQLite in tmp_path; the main scenario also runs on PostgreSQL at 127.0.0.1:5432 (a fresh schema
per test; POORTWACHTER_TEST_PG_URL to use another server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import shutil
import socket
import socketserver
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select, text

from poortwachter.audit import checkpoint
from poortwachter.audit.log import LEDGER_LOG, events_log
from poortwachter.audit.notes import Note, checkpoint_note, notes_in_text, parse_note
from poortwachter.audit.pseudonym import period_of, pseudonym
from poortwachter.audit.record import AuditEvent, Seen, build_event
from poortwachter.audit.seal import generate_keypair
from poortwachter.audit.verify_cli import register
from poortwachter.auditlog.checkpointer import Checkpointer, CheckpointThread, gateway_checkpoints
from poortwachter.auditlog.exporters import DirectoryExporter, Exporter, ExportError, MailExporter, SyslogExporter
from poortwachter.auditlog.ledger import append_ledger
from poortwachter.auditlog.verify import Report, parse_key, read_exported, render, verify
from poortwachter.decide import Verdict
from poortwachter.store import Store, open_store, repo
from poortwachter.store.audit_repo import insert_events
from poortwachter.store.models import AuditCheckpointRow

from ..dbfixtures import BACKENDS, backend_url

T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
ESCROW_PRIVATE, ESCROW_PUBLIC = generate_keypair()
SIGNING_KEY, SIGNING_PUBLIC = checkpoint.generate_signing_key()
BLOCK = Verdict("block", "verboden-categorieen", "004 art. 11a", "porno", "klaslokaal", "leerling", "1e-blok")
ALLOW = Verdict("allow", "standaard", "", None, "kantine", "leerling", "pauze")
PERIOD_KEYS: dict[str, bytes] = {}


# --- building a store with logs --------------------------------------------------------------------

def period_key(period: str) -> bytes:
    return PERIOD_KEYS.setdefault(period, os.urandom(32))


def event(seq: int, at: dt.datetime, *, client: str = "10.1.2.3", verdict: Verdict = BLOCK,
          gateway: str = "gw1", host: str = "example.org") -> AuditEvent:
    seen = Seen(at.timestamp(), "http", verdict, ipaddress.ip_address(client), [host], "/pagina")
    period = period_of(at)
    return build_event(seen, seq=seq, gateway=gateway, at=at, period=period,
                       pseudonym=pseudonym(period_key(period), client), escrow_public=ESCROW_PUBLIC, urls=True)


def add_events(store: Store, events: list[AuditEvent]) -> None:
    with store.write() as s:
        result = insert_events(s, events)
    assert not result.conflicts


def add_ledger(store: Store, n: int, at: dt.datetime) -> None:
    with store.write() as s:
        repo.lock_revision(s)
        for i in range(n):
            append_ledger(s, at=at + i * MINUTE, actor="directie:anna", action="view", case_id=None,
                          events=i, note="json")


def checkpoint_round(store: Store, directory: Path, now: dt.datetime, **kw: Any) -> Checkpointer:
    cp = Checkpointer(store, SIGNING_KEY, exporters=[DirectoryExporter(directory)], now=lambda: now, **kw)
    cp.run_once()
    return cp


def execute(store: Store, sql: str, **params: Any) -> int:
    with store.engine.begin() as conn:
        return conn.execute(text(sql), params).rowcount


@pytest.fixture(params=BACKENDS)
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_url(request.param, tmp_path, timezone=None) as url:
        yield url


@pytest.fixture(params=["sqlite"])
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_url(request.param, tmp_path, timezone=None) as url:
        yield url


@dataclass
class Logged:
    store: Store
    url: str
    exported: Path
    data_dir: Path


SEQS = [100 + 10 * i for i in range(20)]     # gaps, as after restarts


def build(url: str, tmp_path: Path) -> Logged:
    """gw1: 20 events, gw2: 4, the ledger: 5 entries; checkpoints after the first half and at the end."""
    store = open_store(url)
    exported = tmp_path / "exported"
    add_events(store, [event(seq, T0 + i * MINUTE, verdict=BLOCK if i % 3 else ALLOW,
                             client=f"10.1.2.{i % 4}") for i, seq in enumerate(SEQS[:10])])
    add_events(store, [event(i, T0 + i * MINUTE, gateway="gw2") for i in range(1, 3)])
    add_ledger(store, 3, T0)
    checkpoint_round(store, exported, T0 + 30 * MINUTE)
    add_events(store, [event(seq, T0 + (10 + i) * MINUTE, verdict=BLOCK if i % 2 else ALLOW)
                       for i, seq in enumerate(SEQS[10:])])
    add_events(store, [event(i, T0 + i * MINUTE, gateway="gw2") for i in range(3, 5)])
    add_ledger(store, 2, T0 + 40 * MINUTE)
    checkpoint_round(store, exported, T0 + 60 * MINUTE)
    return Logged(store, url, exported, tmp_path / "data")


@pytest.fixture
def logged(any_url: str, tmp_path: Path) -> Iterator[Logged]:
    logs = build(any_url, tmp_path)
    yield logs
    logs.store.close()


@pytest.fixture
def logged_sqlite(sqlite_url: str, tmp_path: Path) -> Iterator[Logged]:
    logs = build(sqlite_url, tmp_path)
    yield logs
    logs.store.close()


def codes(report: Report, log: str | None = None, tamper: bool | None = None) -> set[str]:
    return {f.code for f in report.findings
            if (log is None or f.log == log) and (tamper is None or f.tamper == tamper)}


GW1 = events_log("gw1")


def check(logs: Logged) -> Report:
    return verify(logs.store, logs.exported)


# --- an untouched store ----------------------------------------------------------------------------

def test_an_untouched_store_verifies(logged: Logged) -> None:
    report = check(logged)
    assert report.ok, render(report)
    assert report.findings == []
    sizes = {s.log: (s.size, s.newest) for s in report.logs}
    assert sizes == {GW1: (20, 20), events_log("gw2"): (4, 4), LEDGER_LOG: (5, 5)}
    assert report.checkpoints_valid == 6 and report.checkpoints_forged == 0
    assert any(k.startswith("checkpoint-") for k in report.keys)   # the key exported with the notes


def test_every_corruption_is_found_on_both_backends(logged: Logged) -> None:
    """The main scenario on SQLite and PostgreSQL: a flipped bit, a deleted row, a row moved."""
    execute(logged.store, "UPDATE audit_events SET zone = 'klaslokaaL' WHERE gateway = 'gw1' AND seq = :s", s=SEQS[4])
    execute(logged.store, "DELETE FROM audit_events WHERE gateway = 'gw2' AND seq = 2")
    execute(logged.store, "UPDATE access_ledger SET events = 99 WHERE id = 2")
    report = check(logged)
    assert not report.ok
    assert codes(report, GW1) == {"row", "mismatch"}
    assert codes(report, events_log("gw2")) == {"mismatch", "behind"}
    assert codes(report, LEDGER_LOG) == {"row", "mismatch"}
    mismatch = next(f for f in report.findings if f.code == "mismatch" and f.log == GW1)
    assert "positie 0 en 10" in mismatch.nl and "position 0 and 10" in mismatch.en   # the first half


# --- rows ----------------------------------------------------------------------------------------------

def flip(data: bytes, bit: int = 0) -> bytes:
    return bytes([data[0] ^ (1 << bit)]) + data[1:]


def test_a_flipped_bit_in_a_sealed_blob(logged_sqlite: Logged) -> None:
    logs = logged_sqlite
    with logs.store.read() as s:
        sealed = s.execute(text("SELECT sealed FROM audit_events WHERE gateway='gw1' AND seq=:s"),
                           {"s": SEQS[15]}).scalar_one()
    execute(logs.store, "UPDATE audit_events SET sealed = :b WHERE gateway='gw1' AND seq=:s",
            b=flip(bytes(sealed), 3), s=SEQS[15])
    report = check(logs)
    assert codes(report, GW1) == {"row", "mismatch"}
    assert next(f for f in report.findings if f.code == "mismatch").nl.count("tussen positie 10 en 20")


def test_a_flipped_bit_in_the_stored_leaf_hash_alone(logged_sqlite: Logged) -> None:
    logs = logged_sqlite
    with logs.store.read() as s:
        leaf = s.execute(text("SELECT leaf_hash FROM audit_events WHERE gateway='gw1' AND seq=:s"),
                         {"s": SEQS[2]}).scalar_one()
    execute(logs.store, "UPDATE audit_events SET leaf_hash = :b WHERE gateway='gw1' AND seq=:s",
            b=flip(bytes(leaf)), s=SEQS[2])
    report = check(logs)
    assert not report.ok and codes(report, GW1) == {"row"}    # the tree is rebuilt from content


def test_a_changed_row_with_a_recomputed_leaf_hash(logged_sqlite: Logged) -> None:
    """The attacker also fixes the leaf hash: only the signed roots give it away."""
    logs = logged_sqlite
    forged = event(SEQS[3], T0 + 3 * MINUTE, verdict=ALLOW, client="10.9.9.9")
    execute(logs.store, "UPDATE audit_events SET action=:a, rule=:r, source=:src, zone=:z, category=NULL, slot=:sl, "
            "pseudonym=:p, sealed=:b, leaf_hash=:h WHERE gateway='gw1' AND seq=:s",
            a="allow", r=ALLOW.rule, src=ALLOW.source, z=ALLOW.zone, sl=ALLOW.period, p=forged.pseudonym,
            b=forged.sealed, h=forged.leaf_hash(), s=SEQS[3])
    report = check(logs)
    assert codes(report, GW1) == {"mismatch"}


def test_a_deleted_row(logged_sqlite: Logged) -> None:
    execute(logged_sqlite.store, "DELETE FROM audit_events WHERE gateway='gw1' AND seq=:s", s=SEQS[3])
    report = check(logged_sqlite)
    assert codes(report, GW1) == {"mismatch", "behind"}


def test_a_deleted_row_after_the_last_but_one_checkpoint(logged_sqlite: Logged) -> None:
    """No smaller checkpoint covers it, yet the log is one short of the newest: still found."""
    execute(logged_sqlite.store, "DELETE FROM audit_events WHERE gateway='gw1' AND seq=:s", s=SEQS[12])
    report = check(logged_sqlite)
    assert codes(report, GW1) == {"behind"} and not report.ok


def test_an_inserted_row(logged_sqlite: Logged) -> None:
    add_events(logged_sqlite.store, [event(SEQS[6] + 5, T0 + 6 * MINUTE)])   # between two old events
    report = check(logged_sqlite)
    assert codes(report, GW1, tamper=True) == {"mismatch"}


def test_a_row_appended_after_the_newest_checkpoint_is_only_uncovered(logged_sqlite: Logged) -> None:
    add_events(logged_sqlite.store, [event(SEQS[-1] + 10, T0 + 30 * MINUTE)])
    report = check(logged_sqlite)
    assert report.ok and codes(report, GW1) == {"uncovered"}


def test_reordered_seq(logged_sqlite: Logged) -> None:
    store = logged_sqlite.store
    execute(store, "UPDATE audit_events SET seq = -1 WHERE gateway='gw1' AND seq=:s", s=SEQS[7])
    execute(store, "UPDATE audit_events SET seq = :a WHERE gateway='gw1' AND seq=:b", a=SEQS[7], b=SEQS[8])
    execute(store, "UPDATE audit_events SET seq = :b WHERE gateway='gw1' AND seq=-1", b=SEQS[8])
    report = check(logged_sqlite)
    assert codes(report, GW1) == {"row", "mismatch"}


def test_reordered_ledger_entries(logged_sqlite: Logged) -> None:
    store = logged_sqlite.store
    execute(store, "UPDATE access_ledger SET id = 100 WHERE id = 1")
    execute(store, "UPDATE access_ledger SET id = 1 WHERE id = 2")
    execute(store, "UPDATE access_ledger SET id = 2 WHERE id = 100")
    assert codes(check(logged_sqlite), LEDGER_LOG) == {"mismatch"}


def test_a_truncated_log(logged_sqlite: Logged) -> None:
    execute(logged_sqlite.store, "DELETE FROM audit_events WHERE gateway='gw1' AND seq >= :s", s=SEQS[17])
    execute(logged_sqlite.store, "DELETE FROM access_ledger WHERE id > 3")
    report = check(logged_sqlite)
    assert codes(report, GW1) == {"behind"} and codes(report, LEDGER_LOG) == {"behind"}
    behind = next(f for f in report.findings if f.log == GW1)
    assert "17" in behind.nl and "20" in behind.en


def test_a_gateway_wiped_from_the_database_is_behind(logged_sqlite: Logged) -> None:
    execute(logged_sqlite.store, "DELETE FROM audit_events WHERE gateway='gw2'")
    report = check(logged_sqlite)
    assert codes(report, events_log("gw2")) == {"behind"}


def _sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def _backup(url: str, to: Path) -> None:
    src = sqlite3.connect(_sqlite_path(url))
    dst = sqlite3.connect(to)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def _restore(logs: Logged, backup: Path) -> None:
    logs.store.close()
    path = _sqlite_path(logs.url)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup, path)
    logs.store = open_store(logs.url)


def test_an_older_database_presented_as_newer(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    logs = Logged(store, sqlite_url, tmp_path / "exported", tmp_path / "data")
    add_events(store, [event(seq, T0 + i * MINUTE) for i, seq in enumerate(SEQS[:8])])
    add_ledger(store, 2, T0)
    checkpoint_round(store, logs.exported, T0 + 10 * MINUTE)
    backup = tmp_path / "backup.db"
    _backup(sqlite_url, backup)
    add_events(store, [event(seq, T0 + (8 + i) * MINUTE) for i, seq in enumerate(SEQS[8:])])
    add_ledger(store, 2, T0 + 20 * MINUTE)
    checkpoint_round(store, logs.exported, T0 + 30 * MINUTE)
    assert check(logs).ok

    _restore(logs, backup)                     # the old copy comes back
    report = check(logs)
    assert codes(report, GW1) == {"behind"} and codes(report, LEDGER_LOG) == {"behind"}

    # ... and grown again with other events to the same size: still not the signed history
    add_events(logs.store, [event(seq, T0 + (8 + i) * MINUTE, client="10.7.7.7") for i, seq in enumerate(SEQS[8:])])
    report = check(logs)
    assert codes(report, GW1) == {"mismatch"}
    logs.store.close()


# --- the checkpoints themselves ------------------------------------------------------------------------

def test_a_forged_checkpoint_is_reported(logged_sqlite: Logged) -> None:
    other, _ = checkpoint.generate_signing_key()
    with logged_sqlite.store.read() as s:
        root = s.scalars(select(AuditCheckpointRow.root).where(AuditCheckpointRow.log == GW1)
                         .order_by(AuditCheckpointRow.size.desc())).first()
    forged = checkpoint.sign(other, GW1, 12, bytes(root), T0 + 2 * 60 * MINUTE)
    (logged_sqlite.exported / "forged.checkpoint").write_text(checkpoint.to_text(forged))
    report = check(logged_sqlite)
    assert codes(report) == {"forged"} and report.checkpoints_forged == 1 and not report.ok


def test_an_edited_checkpoint_file_is_reported(logged_sqlite: Logged) -> None:
    path = next(logged_sqlite.exported.rglob("*.checkpoint"))
    text_ = path.read_text()
    lines = text_.split("\n")
    lines[1] = str(int(lines[1]) + 1)            # claim one more leaf, keep the signature
    path.write_text("\n".join(lines))
    assert "forged" in codes(check(logged_sqlite))


def test_a_damaged_checkpoint_file_is_reported(logged_sqlite: Logged) -> None:
    (logged_sqlite.exported / "broken.checkpoint").write_text("not a checkpoint\n")
    assert codes(check(logged_sqlite)) == {"damaged"}


def test_only_trusted_keys_count(logged_sqlite: Logged) -> None:
    _, stranger = checkpoint.generate_signing_key()
    report = verify(logged_sqlite.store, logged_sqlite.exported, keys=[stranger])
    assert report.checkpoints_valid == 0 and report.checkpoints_forged == 6 and not report.ok


def test_parse_key_takes_hex_and_verifier_keys() -> None:
    assert parse_key(SIGNING_PUBLIC.hex()) == SIGNING_PUBLIC
    assert parse_key(checkpoint.verifier_key(GW1, SIGNING_PUBLIC)) == SIGNING_PUBLIC
    with pytest.raises(ValueError):
        parse_key("abcd")


# --- the checkpointer ---------------------------------------------------------------------------------

def test_checkpointer_signs_only_what_grew_and_exports_once(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    out = tmp_path / "out"
    add_events(store, [event(1, T0), event(2, T0 + MINUTE)])
    now = [T0 + 5 * MINUTE]
    cp = Checkpointer(store, SIGNING_KEY, ledger=False, exporters=[DirectoryExporter(out)], now=lambda: now[0])
    first = cp.run_once()
    assert [(c.log, c.size) for c in first.signed] == [(GW1, 2)] and first.exported == 1
    now[0] += MINUTE
    assert cp.run_once().signed == []                          # nothing new: nothing signed
    add_events(store, [event(3, T0 + 2 * MINUTE)])
    now[0] += MINUTE
    assert [c.size for c in cp.run_once().signed] == [3]
    files = sorted(p.name for p in out.rglob("*.checkpoint"))
    assert len(files) == 2 and all(f.startswith("poortwachter%2Fevents%2Fgw1.") for f in files)
    assert len(list(out.glob("*.pub"))) == 1
    with store.read() as s:
        rows = s.execute(select(AuditCheckpointRow.size, AuditCheckpointRow.last_key,
                                AuditCheckpointRow.exported_at)).all()
    assert [(size, key) for size, key, _ in rows] == [(2, 2), (3, 3)] and all(r[2] for r in rows)
    store.close()


def test_checkpoint_times_only_move_forward(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    add_events(store, [event(1, T0)])
    now = [T0 + 10 * MINUTE]
    cp = Checkpointer(store, SIGNING_KEY, ledger=False, now=lambda: now[0])
    a = cp.run_once().signed[0]
    add_events(store, [event(2, T0 + MINUTE)])
    now[0] = T0                                                  # the clock stepped back
    b = cp.run_once().signed[0]
    assert b.at > a.at and b.size > a.size
    store.close()


def test_a_heartbeat_checkpoint_when_nothing_grew(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    add_events(store, [event(1, T0)])
    now = [T0]
    cp = Checkpointer(store, SIGNING_KEY, ledger=False, now=lambda: now[0], heartbeat=dt.timedelta(hours=1))
    assert len(cp.run_once().signed) == 1
    now[0] = T0 + dt.timedelta(minutes=59)
    assert cp.run_once().signed == []
    now[0] = T0 + dt.timedelta(minutes=61)
    assert [c.size for c in cp.run_once().signed] == [1]
    store.close()


def test_a_restarted_checkpointer_refuses_to_sign_a_rolled_back_log(logged_sqlite: Logged) -> None:
    execute(logged_sqlite.store, "DELETE FROM audit_events WHERE gateway='gw1' AND seq >= :s", s=SEQS[15])
    add_events(logged_sqlite.store, [event(SEQS[-1] + 100, T0 + 90 * MINUTE)])
    # the attacker also empties the outbox: the exported directory still knows better
    execute(logged_sqlite.store, "DELETE FROM audit_checkpoints")
    cp = checkpoint_round(logged_sqlite.store, logged_sqlite.exported, T0 + 2 * 60 * MINUTE)
    assert cp.status == {GW1: "behind"}
    with logged_sqlite.store.read() as s:
        assert s.scalar(select(AuditCheckpointRow.id).where(AuditCheckpointRow.log == GW1)) is None


def test_a_restarted_checkpointer_refuses_to_sign_a_changed_log(logged_sqlite: Logged) -> None:
    execute(logged_sqlite.store, "UPDATE audit_events SET leaf_hash = :h WHERE gateway='gw1' AND seq=:s",
            h=b"\x00" * 32, s=SEQS[1])
    add_events(logged_sqlite.store, [event(SEQS[-1] + 100, T0 + 90 * MINUTE)])
    cp = checkpoint_round(logged_sqlite.store, logged_sqlite.exported, T0 + 2 * 60 * MINUTE)
    assert cp.status == {GW1: "changed"}


class Flaky(Exporter):
    name = "flaky"

    def __init__(self) -> None:
        self.fail = True
        self.got: list[Note] = []

    def deliver(self, notes: Any, now: dt.datetime) -> None:
        if self.fail:
            raise ExportError("down")
        self.got.extend(notes)


def test_notes_wait_in_the_outbox_until_every_exporter_took_them(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    flaky = Flaky()
    now = [T0]
    cp = Checkpointer(store, SIGNING_KEY, ledger=False, exporters=[DirectoryExporter(tmp_path / "d"), flaky],
                      now=lambda: now[0])
    add_events(store, [event(1, T0)])
    assert cp.run_once().exported == 0
    add_events(store, [event(2, T0)])
    now[0] += MINUTE
    assert cp.run_once().exported == 0
    flaky.fail = False
    now[0] += MINUTE
    assert cp.run_once().exported == 2
    assert [n.number for n in flaky.got] == [1, 2]
    assert len(list((tmp_path / "d").rglob("*.checkpoint"))) == 2   # written twice, kept once
    store.close()


def test_the_directory_never_overwrites_a_note(tmp_path: Path) -> None:
    exporter = DirectoryExporter(tmp_path)
    cp = checkpoint.sign(SIGNING_KEY, GW1, 1, b"\x01" * 32, T0)
    note = checkpoint_note(cp)
    exporter.deliver([note], T0)
    exporter.deliver([note], T0)                          # the same again: fine
    other = Note("checkpoint", GW1, 1, T0, checkpoint.to_text(checkpoint.sign(SIGNING_KEY, GW1, 1, b"\x02" * 32, T0)))
    with pytest.raises(ExportError):
        exporter.deliver([other], T0)
    assert exporter.latest(GW1) == cp


# --- leaving the box: syslog and mail ------------------------------------------------------------------

def test_syslog_export_reaches_a_collector_and_verifies(logged_sqlite: Logged, tmp_path: Path) -> None:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    port = collector.getsockname()[1]
    try:
        execute(logged_sqlite.store, "UPDATE audit_checkpoints SET exported_at = NULL")
        cp = Checkpointer(logged_sqlite.store, SIGNING_KEY, exporters=[SyslogExporter(f"udp://127.0.0.1:{port}")],
                          now=lambda: T0 + 2 * 60 * MINUTE)
        assert cp.export_pending() == 6
        lines = [collector.recv(65536).decode() for _ in range(6)]
    finally:
        collector.close()
    assert all(line.startswith("<") and "poortwachter: poortwachter-note checkpoint" in line for line in lines)
    syslog_dir = tmp_path / "syslog"
    syslog_dir.mkdir()
    (syslog_dir / "messages").write_text("\n".join(["Nov 23 unrelated line", *lines]) + "\n")
    (syslog_dir / "key.pub").write_text(SIGNING_PUBLIC.hex())
    report = verify(logged_sqlite.store, syslog_dir)
    assert report.ok and report.checkpoints_valid == 6, render(report)
    execute(logged_sqlite.store, "DELETE FROM audit_events WHERE gateway='gw1' AND seq=:s", s=SEQS[0])
    assert not verify(logged_sqlite.store, syslog_dir).ok


class _SMTPSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to take mails (no extensions)."""

    def handle(self) -> None:
        def say(line: str) -> None:
            self.wfile.write((line + "\r\n").encode())

        say("220 sink")
        while True:
            line = self.rfile.readline().decode(errors="replace").strip()
            if not line:
                return
            verb = line.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                say("250 sink")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                say("250 ok")
            elif verb == "DATA":
                say("354 go on")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                self.server.mails.append(b"".join(data))  # type: ignore[attr-defined]
                say("250 queued")
            elif verb == "QUIT":
                say("221 bye")
                return
            else:
                say("502 no")


@pytest.fixture
def smtp_sink() -> Iterator[tuple[int, list[bytes]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPSink)
    server.mails = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.mails  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_mail_to_the_privacy_officer_carries_the_newest_checkpoints(logged_sqlite: Logged, tmp_path: Path,
                                                                    smtp_sink: tuple[int, list[bytes]]) -> None:
    port, mails = smtp_sink
    mail = MailExporter("127.0.0.1", port, "gateway@school.example", ["fg@school.example"],
                        interval=dt.timedelta(hours=24))
    execute(logged_sqlite.store, "UPDATE audit_checkpoints SET exported_at = NULL")
    cp = Checkpointer(logged_sqlite.store, SIGNING_KEY, exporters=[mail], now=lambda: T0 + 2 * 60 * MINUTE)
    assert cp.export_pending() == 6
    assert len(mails) == 1                         # one mail, the newest checkpoint of each log
    add_events(logged_sqlite.store, [event(SEQS[-1] + 10, T0 + 70 * MINUTE)])
    cp.run_once()
    assert len(mails) == 1                         # within the interval: waits
    assert mail.flush(T0 + 3 * 60 * MINUTE, force=True)
    assert len(mails) == 2
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "first.eml").write_bytes(mails[0])
    (inbox / "key.pub").write_text(SIGNING_PUBLIC.hex())
    exported = read_exported(inbox)
    assert sorted((c.log, c.size) for _, c in exported.checkpoints) == [
        (GW1, 20), (events_log("gw2"), 4), (LEDGER_LOG, 5)]
    report = verify(logged_sqlite.store, inbox)
    assert codes(report, tamper=True) == set() and codes(report, GW1) == {"uncovered"}
    execute(logged_sqlite.store, "UPDATE access_ledger SET actor = 'ict:x' WHERE id = 5")
    assert codes(verify(logged_sqlite.store, inbox), LEDGER_LOG) == {"row", "mismatch"}


def test_mail_failure_keeps_the_notes_for_the_next_round(logged_sqlite: Logged) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                  # nobody listens here once closed
    mail = MailExporter("127.0.0.1", port, "a@b", ["fg@b"], timeout=2)
    execute(logged_sqlite.store, "UPDATE audit_checkpoints SET exported_at = NULL")
    cp = Checkpointer(logged_sqlite.store, SIGNING_KEY, exporters=[mail], now=lambda: T0 + 2 * 60 * MINUTE)
    assert cp.export_pending() == 0
    with logged_sqlite.store.read() as s:
        assert s.scalar(text("SELECT count(*) FROM audit_checkpoints WHERE exported_at IS NULL")) == 6


def test_marker_lines_round_trip() -> None:
    cp = checkpoint.sign(SIGNING_KEY, GW1, 7, b"\x03" * 32, T0)
    note = checkpoint_note(cp)
    found = list(notes_in_text(f"junk {note.marker()} trailing\nmore"))
    assert found == [note.text] and parse_note(found[0]) == cp


# --- the command ----------------------------------------------------------------------------------------

def run_cli(argv: list[str], data_dir: Path) -> int:
    parser = argparse.ArgumentParser(prog="poortwachter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.data_dir = data_dir
    return int(args.func(args))


def test_cli_exit_status_and_bilingual_report(logged_sqlite: Logged, capsys: pytest.CaptureFixture[str]) -> None:
    logs = logged_sqlite
    argv = ["audit", "verify", "--checkpoints", str(logs.exported), "--db", logs.url]
    assert run_cli(argv, logs.data_dir) == 0
    out = capsys.readouterr().out
    assert "Resultaat: in orde / Result: OK" in out and f"OK   {GW1}: 20" in out

    execute(logs.store, "DELETE FROM audit_events WHERE gateway='gw1' AND seq=:s", s=SEQS[5])
    assert run_cli(argv, logs.data_dir) == 1
    out = capsys.readouterr().out
    assert "GEKNOEID" in out and "TAMPERING" in out and "FOUT" in out
    assert "10.1.2" not in out                                # no client address in the report

    assert run_cli(argv + ["--json"], logs.data_dir) == 1
    assert '"ok": false' in capsys.readouterr().out


def test_cli_with_a_pinned_key(logged_sqlite: Logged, capsys: pytest.CaptureFixture[str]) -> None:
    logs = logged_sqlite
    base = ["audit", "verify", "--checkpoints", str(logs.exported), "--db", logs.url]
    assert run_cli(base + ["--key", SIGNING_PUBLIC.hex()], logs.data_dir) == 0
    _, stranger = checkpoint.generate_signing_key()
    assert run_cli(base + ["--key", stranger.hex()], logs.data_dir) == 1
    assert run_cli(base + ["--key", "nonsense"], logs.data_dir) == 2


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["audit", "verify", "--checkpoints", str(tmp_path / "none")], tmp_path) == 2
    assert "niet gevonden / Checkpoint directory not found" in capsys.readouterr().err


def test_cli_checkpoint_signs_with_the_ceremony_key(sqlite_url: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    store = open_store(sqlite_url)
    add_events(store, [event(1, T0), event(2, T0)])
    store.close()
    assert run_cli(["audit", "checkpoint", "--db", sqlite_url], data_dir) == 2       # no key yet
    (data_dir / "audit").mkdir(parents=True)
    (data_dir / "audit" / "checkpoint.key").write_text(SIGNING_KEY.hex() + "\n")
    out_dir = tmp_path / "out"
    assert run_cli(["audit", "checkpoint", "--db", sqlite_url, "--export-dir", str(out_dir)], data_dir) == 0
    assert f"{GW1} 2" in capsys.readouterr().out
    assert run_cli(["audit", "verify", "--checkpoints", str(out_dir), "--db", sqlite_url], data_dir) == 0


# --- the checkpoint thread ----------------------------------------------------------------------------

def test_the_thread_checkpoints_after_a_poke_and_on_stop(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store(sqlite_url)
    out = tmp_path / "out"
    built: list[Checkpointer] = []

    def factory() -> Checkpointer:
        built.append(Checkpointer(store, SIGNING_KEY, gateways=["gw1"], ledger=False,
                                  exporters=[DirectoryExporter(out)]))
        return built[-1]

    thread = CheckpointThread(factory, interval=3600, min_interval=0).start()
    try:
        add_events(store, [event(1, T0)])
        thread.poke()
        deadline = time.monotonic() + 20
        while not list(out.rglob("*.checkpoint")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(list(out.rglob("*.checkpoint"))) == 1
        add_events(store, [event(2, T0)])
    finally:
        assert thread.stop()
    assert len(built) == 1
    assert sorted(c.size for _, c in read_exported(out).checkpoints) == [1, 2]   # the last round on stop
    store.close()


def test_no_signing_key_no_checkpoint_thread(tmp_path: Path) -> None:
    assert gateway_checkpoints("sqlite://", tmp_path, "gw1", []) is None


def test_without_exported_keys_the_database_key_is_used_and_said_so(logged_sqlite: Logged) -> None:
    from poortwachter.store.models import AuditKeyRow

    for path in logged_sqlite.exported.glob("*.pub"):
        path.unlink()
    assert not verify(logged_sqlite.store, logged_sqlite.exported).checkpoints_valid   # no key at all
    with logged_sqlite.store.write() as s:
        s.add(AuditKeyRow(escrow_public=ESCROW_PUBLIC, checkpoint_public=SIGNING_PUBLIC, created_at=T0))
    report = verify(logged_sqlite.store, logged_sqlite.exported)
    assert report.ok and report.checkpoints_valid == 6
    assert any("not independent" in k for k in report.keys)
