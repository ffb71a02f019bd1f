"""Audit recording under load through a real gateway, while its database goes away and comes back.

A steady stream of plain-HTTP requests (several client threads, several zones, blocked and allowed)
goes through mitmdump, which records an audit event for each (`blocks_and_hosts`: every block, and
every allowed request with its host). The gateway reaches PostgreSQL only through a forwarder the
test cuts in the middle of the stream and restores. Afterwards every request a client saw answered
is in the database exactly once, in order, sealed, and the spool is empty. A gateway killed with
SIGKILL while it spools loses nothing that was in its spool.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from poortwachter.audit.keystore import write_escrow_public
from poortwachter.audit.pseudonym import open_period_key, pseudonym
from poortwachter.audit.record import RESTART, AuditEvent
from poortwachter.audit.seal import generate_keypair, unseal
from poortwachter.audit.spool import read_records
from poortwachter.store import open_store

from .clients import httpx_client
from .pki import TestCA
from .proxy import CLASSROOM, GUEST, LESSON, MITMDUMP, PUBLIC, STAFF, TEST_POLICY, wait_until
from .state_helpers import StateGateway, TcpForwarder, pg_address, pg_schema, pg_unreachable, pg_url
from .upstream import Upstream

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

GATEWAY_NAME = "e2e-audit"
SOURCES = (CLASSROOM, PUBLIC, STAFF, GUEST)     # one client thread per zone
PER_THREAD = 500                                # 2,000 requests ...
DURATION = 20.0                                 # ... over about 20 seconds
SETTLE = 60.0                                   # seconds for the spool to drain after the stream
# A new connection per request: through tests/e2e/redirect_upstream.py, a keep-alive client
# connection stalls on its sixth request (bare mitmdump with that addon does it too).
CLOSE = {"Connection": "close"}
COLUMNS = ("id, seq, at, gateway, kind, zone, role, slot, category, action, rule, source, period, "
           "pseudonym, sealed, leaf_hash")


class AuditGateway(StateGateway):
    def argv(self) -> list[str]:
        return super().argv() + [
            "--set", f"poortwachter_audit_gateway={GATEWAY_NAME}",
            "--set", "poortwachter_audit_urls=true",
            "--set", "poortwachter_audit_interval=0.1",
            "--set", "poortwachter_audit_timeout=1.0",
        ]

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "audit" / "spool"

    def spool_files(self) -> list[Path]:
        return sorted(self.spool_dir.glob("*.spool"))

    def metric(self, name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


@dataclass
class Setup:
    forwarder: TcpForwarder
    schema: str
    direct_url: str                      # the test's own way to the database
    escrow_private: bytes
    gateway: AuditGateway

    def rows(self) -> list[tuple]:  # type: ignore[type-arg]
        engine = create_engine(self.direct_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(f"SELECT {COLUMNS} FROM audit_events WHERE kind != 'restart' "
                                              "ORDER BY id")))
        finally:
            engine.dispose()

    def count(self) -> int:
        engine = create_engine(self.direct_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM audit_events WHERE kind != 'restart'"))
                           .scalar_one())
        finally:
            engine.dispose()


@pytest.fixture
def setup(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA) -> Iterator[Setup]:
    if not MITMDUMP.exists():
        pytest.skip("needs .venv/bin/mitmdump (make venv)")
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    forwarder = TcpForwarder(pg_address())
    try:
        with pg_schema() as schema:
            open_store(pg_url(schema)).close()       # the tables exist before the gateway starts
            gw = AuditGateway(tmp_path_factory.mktemp("audit-gateway"), upstream, test_ca,
                              TEST_POLICY.read_text(encoding="utf-8"), LESSON,
                              db_url=pg_url(schema, forwarder.address))
            private, public = generate_keypair()
            write_escrow_public(gw.data_dir / "audit", public)
            s = Setup(forwarder, schema, pg_url(schema), private, gw)
            try:
                yield s
            finally:
                forwarder.restore()
                crashed = gw.proc is not None and gw.proc.poll() not in (None, -signal.SIGKILL)
                gw.stop()
                if crashed:
                    pytest.fail(f"mitmdump died during the test:\n{gw.output()}")
    finally:
        forwarder.close()


# --- the client side --------------------------------------------------------------------------

@dataclass
class Load:
    """Client threads, one per zone, each with its own httpx client through the gateway, paced to a
    steady rate. Every request has its own path, so each answer can be matched with its event."""

    gw: AuditGateway
    per_thread: int = PER_THREAD
    duration: float = DURATION
    answered: dict[tuple[str, str], int] = field(default_factory=dict)     # (client, path) -> status
    failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for n, source in enumerate(SOURCES):
            t = threading.Thread(target=self._run, args=(n, source), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def join(self) -> None:
        for t in self._threads:
            t.join(timeout=self.duration + 60)

    def _run(self, n: int, source: str) -> None:
        interval = self.duration / self.per_thread
        started = time.monotonic()
        client = httpx_client(self.gw, source)
        try:
            for i in range(self.per_thread):
                if self.stop.is_set():
                    return
                # every fifth a site blocked in the lesson (for pupils), the rest allowed
                host = "www.tiktok.com" if i % 5 == 0 else "www.example.com"
                path = f"/t{n}/{i}"
                try:
                    r = client.get(f"http://{host}{path}", headers=CLOSE)
                except Exception:   # a killed gateway, a reset: not answered
                    with self._lock:
                        self.failed += 1
                    client.close()
                    client = httpx_client(self.gw, source)
                else:
                    assert r.status_code in (200, 403), r.status_code
                    with self._lock:
                        self.answered[(source, path)] = r.status_code
                pause = started + (i + 1) * interval - time.monotonic()
                if pause > 0:
                    self.stop.wait(pause)      # pacing only: nothing is asserted about timing
        finally:
            client.close()

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.answered)


def _unsealed(setup: Setup, rows: list[tuple]) -> list[dict]:  # type: ignore[type-arg]
    import json

    out = []
    for row in rows:
        event = _event(row)
        assert event.sealed is not None
        out.append(json.loads(unseal(setup.escrow_private, event.sealed, event.aad())))
    return out


def _event(row: tuple) -> AuditEvent:  # type: ignore[type-arg]
    (_, seq, at, gateway, kind, zone, role, slot, category, action, rule, source, period, pseud,
     sealed, _leaf) = row
    return AuditEvent(seq=seq, at=at, gateway=gateway, kind=kind, zone=zone, role=role, slot=slot,
                      category=category, action=action, rule=rule, source=source, period=period,
                      pseudonym=pseud, sealed=bytes(sealed) if sealed is not None else None)


def _no_plaintext(setup: Setup) -> None:
    """No row, read as text in full (the sealed bytea included, as PostgreSQL prints it), holds a
    client address, a host or a path in the clear, nor their bytes in hex."""
    engine = create_engine(setup.direct_url)
    try:
        with engine.connect() as conn:
            whole = [r[0] for r in conn.execute(text("SELECT t::text FROM audit_events t"))]
            sealed_hex = [r[0] for r in conn.execute(text("SELECT encode(sealed, 'hex') FROM audit_events "
                                                          "WHERE sealed IS NOT NULL"))]   # markers seal nothing
    finally:
        engine.dispose()
    assert whole
    needles = ["127.0.0.", "example.com", "tiktok", "/t0/", "/t1/"]
    hexes = [n.encode().hex() for n in needles]
    for line in whole:
        for needle in needles + hexes:
            assert needle not in line, f"{needle!r} in an audit row"
    for blob in sealed_hex:
        for needle in hexes:
            assert needle not in blob


def _store_lines(gw: AuditGateway) -> list[str]:
    lines = [line for line in gw.stderr().splitlines() if "audit: database" in line]
    for line in lines:
        assert not re.search(r"127\.0\.0\.[2-9]", line), line
    return lines


# --- the tests --------------------------------------------------------------------------------

def test_every_answered_request_is_recorded_once_in_order_through_a_database_outage(setup: Setup) -> None:
    gw = setup.gateway.start()
    load = Load(gw).start()

    wait_until(lambda: load.count >= 300, 30, "the stream is under way")
    setup.forwarder.cut()                                   # the database goes away mid-stream
    wait_until(lambda: gw.metric("poortwachter_audit_events_total", result="spooled") >= 300, 30,
               "events spooled during the outage")
    wait_until(lambda: load.count >= 1200, 60, "the stream goes on while the database is away")
    assert gw.spool_files(), "the outage left events in the spool"
    setup.forwarder.restore()                               # ... and comes back
    load.join()
    assert load.failed == 0 and load.count == len(SOURCES) * PER_THREAD

    wait_until(lambda: setup.count() >= load.count and not gw.spool_files()
               and gw.metric("poortwachter_audit_spool_bytes") == 0, SETTLE, "the spool is replayed")
    rows = setup.rows()

    # exactly once: as many events as answered requests, each (client, path) once
    assert len(rows) == load.count
    seqs = [row[1] for row in rows]
    assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs)                # in order
    details = _unsealed(setup, rows)
    seen = {(d["subject"]["client"], d["details"]["path"]) for d in details if "path" in d["details"]}
    allowed_hosts = [d for d in details if "path" not in d["details"]]
    # blocks_and_hosts: a blocked request keeps its path (urls on), an allowed one its host only
    assert len(seen) + len(allowed_hosts) == len(rows)
    blocked = {key for key, status in load.answered.items() if status == 403}
    assert seen == blocked and len(blocked) == sum(row[9] == "block" for row in rows)
    assert {c for c, _ in blocked} == {CLASSROOM, PUBLIC}          # social media in the lesson, pupils
    assert {d["details"]["host"] for d in allowed_hosts} <= {"www.example.com", "www.tiktok.com"}
    assert {row[3] for row in rows} == {GATEWAY_NAME}

    # the outage really hit the stream, nothing was dropped, and the log names no client
    assert gw.metric("poortwachter_audit_events_total", result="spooled") >= 300
    assert gw.metric("poortwachter_audit_events_total", result="replayed") >= 300
    assert gw.metric("poortwachter_audit_events_total", result="dropped") == 0
    assert [("unreachable" in line) for line in _store_lines(gw)][:2] == [True, False]

    # sealed, pseudonymous: the period key in the store (sealed) gives each row's pseudonym
    engine = create_engine(setup.direct_url)
    try:
        with engine.connect() as conn:
            keys = {p: bytes(k) for p, k in conn.execute(
                text("SELECT period, sealed_key FROM audit_period_keys WHERE gateway = :g"), {"g": GATEWAY_NAME})}
    finally:
        engine.dispose()
    for row, d in list(zip(rows, details, strict=True))[::97]:
        key = open_period_key(setup.escrow_private, row[12], keys[row[12]])
        assert row[13] == pseudonym(key, d["subject"]["client"])
    _no_plaintext(setup)


def test_sigkill_while_spooling_loses_nothing_that_was_spooled(setup: Setup, tmp_path: Path) -> None:
    gw = setup.gateway.start()
    load = Load(gw, per_thread=400).start()
    wait_until(lambda: load.count >= 200, 30, "the stream is under way")
    setup.forwarder.cut()
    wait_until(lambda: gw.metric("poortwachter_audit_events_total", result="spooled") >= 200, 30,
               "events spooled")
    assert gw.proc is not None
    os.kill(gw.proc.pid, signal.SIGKILL)                  # mid-stream, mid-outage, no goodbye
    gw.proc.wait(timeout=10)
    load.stop.set()
    load.join()
    stored_before = {row[1] for row in setup.rows()}       # the database was away since the cut
    copy = tmp_path / "spool-at-kill"
    shutil.copytree(gw.spool_dir, copy)
    spooled = [e for e in (AuditEvent.from_canonical(r) for r in read_records(copy)) if e.kind != RESTART]
    assert spooled, "the gateway had spooled events when it was killed"
    spooled_seqs = {e.seq for e in spooled}

    setup.forwarder.restore()
    gw.start()                                            # same data dir: its spool, its seq file
    with httpx_client(gw, CLASSROOM) as client:
        for i in range(5):
            assert client.get(f"http://www.example.com/na-herstart/{i}", headers=CLOSE).status_code == 200

    def replayed() -> bool:
        seqs = {row[1] for row in setup.rows()}
        return not gw.spool_files() and spooled_seqs <= seqs and len(seqs) >= len(stored_before | spooled_seqs) + 5

    wait_until(replayed, SETTLE, "the spool from before the kill is replayed")

    rows = setup.rows()
    seqs = [row[1] for row in rows]
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)           # once each, in order
    assert spooled_seqs <= set(seqs)                                       # nothing spooled was lost
    stored = {row[1]: bytes(row[15]) for row in rows}
    assert all(stored[e.seq] == e.leaf_hash() for e in spooled)            # the very same events
    assert min(seqs[-5:]) > max(spooled_seqs)                              # no seq reused after the restart
    lost = load.count - (len(rows) - 5)
    print(f"\nanswered before the kill: {load.count}, stored: {len(rows) - 5}, spooled at the kill: "
          f"{len(spooled)}, lost from memory at SIGKILL: {max(lost, 0)}")
    assert lost <= 0            # durable recording: every answered request was on disk before its answer
    _no_plaintext(setup)
