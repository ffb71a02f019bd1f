"""Durable audit recording through a real gateway that is killed and starved of disk, on SQLite
and on PostgreSQL: every request a client saw answered is counted against what the store holds
and what `poortwachter audit verify` finds.

- kill -9 loop: a steady stream (four client threads, one per zone, about 100 requests/s, each
  request its own path, blocked and allowed; `poortwachter_audit=all` with URLs, so every answer
  has an event that names it) while the gateway is killed with SIGKILL four times and started
  again on the same data directory. Afterwards every answered request has its event, once, in
  seq order, and `audit verify` passes, naming the four crash restarts. With
  `poortwachter_audit_commit=fast` the same loop is a crash that may lose events: verify says so
  and exits 1 (the test prints how many answered requests have no event).
- tiny spool: the spool directory on a 1 MiB tmpfs the test mounts (root), the store away (a cut
  PostgreSQL forwarder; for SQLite a write lock held by the test) until the spool is full and
  answers go out without waiting for the disk; then the store comes back. Everything answered is
  recorded once, in order, the spool drains, nothing is dropped, and verify passes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from poortwachter.audit import checkpoint
from poortwachter.audit.keystore import write_escrow_public
from poortwachter.audit.record import AuditEvent
from poortwachter.audit.seal import generate_keypair, unseal
from poortwachter.auditlog.keys import checkpoint_key_file
from poortwachter.store import default_url, open_store
from poortwachter.store.models import AuditEventRow

from .pki import TestCA
from .proxy import LESSON, MITMDUMP, POORTWACHTER, TEST_POLICY, wait_until
from .state_helpers import (
    StateGateway,
    TcpForwarder,
    pg_address,
    pg_schema,
    pg_unreachable,
    pg_url,
)
from .test_audit_load import Load
from .upstream import Upstream

pytestmark = pytest.mark.e2e

GATEWAY_NAME = "e2e-crash"
EVENTS = AuditEventRow.__table__
KILLS = 4
SETTLE = 60.0


class CrashGateway(StateGateway):
    def __init__(self, *args: object, options: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.options = options

    def argv(self) -> list[str]:
        extra = []
        for name, value in {"poortwachter_audit": "all", "poortwachter_audit_urls": "true",
                            "poortwachter_audit_gateway": GATEWAY_NAME, "poortwachter_audit_interval": "0.1",
                            "poortwachter_audit_timeout": "1.0", "poortwachter_checkpoint_interval": "1",
                            **self.options}.items():
            extra += ["--set", f"{name}={value}"]
        return super().argv() + extra

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "audit" / "spool"

    def spool_files(self) -> list[Path]:
        return sorted(self.spool_dir.glob("*.spool"))

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


@dataclass
class Backend:
    """Where the gateway's store is, how the test reads it, and how the test takes it away."""

    kind: str
    gateway_url: str            # what the gateway is given ("" for SQLite: its data directory)
    direct_url: str
    forwarder: TcpForwarder | None = None
    _lock: sqlite3.Connection | None = field(default=None, repr=False)

    def down(self) -> None:
        if self.forwarder is not None:
            self.forwarder.cut()
        else:       # a writer that holds the lock: the gateway's writes wait, then fail
            path = self.direct_url.removeprefix("sqlite:///")
            self._lock = sqlite3.connect(path, isolation_level=None, timeout=30)
            self._lock.execute("BEGIN IMMEDIATE")

    def up(self) -> None:
        if self.forwarder is not None:
            self.forwarder.restore()
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    def events(self) -> list[AuditEvent]:
        """The gateway's events in id order, rebuilt from their rows (through the store's types)."""
        try:
            store = open_store(self.direct_url, upgrade=False)
        except Exception:   # noqa: BLE001 - not reachable from here right now
            return []
        try:
            with store.read() as s:
                rows = s.execute(select(EVENTS).where(EVENTS.c.gateway == GATEWAY_NAME)
                                 .order_by(EVENTS.c.id)).mappings().all()
        except Exception:   # noqa: BLE001 - not created yet
            return []
        finally:
            store.close()
        fields = [f.name for f in dataclasses.fields(AuditEvent) if f.init]
        return [AuditEvent(**{name: (bytes(row[name]) if name == "sealed" and row[name] is not None else row[name])
                              for name in fields}) for row in rows]


@dataclass
class World:
    backend: Backend
    escrow_private: bytes
    make: Callable[..., CrashGateway]    # (**options) -> a gateway on a prepared data directory


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
          test_ca: TestCA) -> Iterator[World]:
    if not MITMDUMP.exists() or not POORTWACHTER.exists():
        pytest.skip("needs .venv/bin/mitmdump and .venv/bin/poortwachter (make venv)")
    workdir = tmp_path_factory.mktemp("audit-crash")
    started: list[CrashGateway] = []
    with _backend(request.param, workdir / "data") as backend:
        private, public = generate_keypair()
        signing, _ = checkpoint.generate_signing_key()

        def make(**options: str) -> CrashGateway:
            gw = CrashGateway(workdir, upstream, test_ca, TEST_POLICY.read_text(encoding="utf-8"), LESSON,
                              db_url=backend.gateway_url, options=options)
            audit = gw.data_dir / "audit"
            write_escrow_public(audit, public)
            key_file = checkpoint_key_file(gw.data_dir)
            key_file.write_text(signing.hex() + "\n", encoding="ascii")
            key_file.chmod(0o600)
            open_store(backend.direct_url).close()       # the tables exist before the gateway starts
            started.append(gw)
            return gw

        try:
            yield World(backend, private, make)
        finally:
            backend.up()
            for gw in started:
                gw.stop()


@contextmanager
def _backend(kind: str, data_dir: Path) -> Iterator[Backend]:
    if kind == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield Backend("sqlite", "", default_url(data_dir))
        return
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    forwarder = TcpForwarder(pg_address())
    try:
        with pg_schema() as schema:
            yield Backend("postgres", pg_url(schema, forwarder.address), pg_url(schema), forwarder)
    finally:
        forwarder.close()


# --- counting ------------------------------------------------------------------------------------------

def recorded(world: World) -> tuple[dict[tuple[str, str], int], int, list[int]]:
    """From the store: (client, path) -> number of events, the restart markers, all seqs in id order."""
    found: dict[tuple[str, str], int] = {}
    markers = 0
    seqs = []
    for event in world.backend.events():
        seqs.append(event.seq)
        if event.kind == "restart":
            markers += 1
            continue
        assert event.sealed is not None
        opened = json.loads(unseal(world.escrow_private, event.sealed, event.aad()))
        key = (opened["subject"]["client"], opened["details"]["path"])
        found[key] = found.get(key, 0) + 1
    return found, markers, seqs


def verify(world: World, gw: CrashGateway) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = subprocess.run([str(POORTWACHTER), "--data-dir", str(gw.data_dir), "audit", "verify", "--json",
                           "--checkpoints", str(gw.data_dir / "audit" / "checkpoints"),
                           "--db", world.backend.direct_url], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def findings(report: dict, code: str) -> list[dict]:  # type: ignore[type-arg]
    return [f for f in report["findings"] if f["code"] == code]


def kill_loop(gw: CrashGateway, load: Load, between: int = 200) -> None:
    """Kill the gateway KILLS times in the middle of the stream, each time after `between` more
    answers, and start it again on the same data directory; end the stream `between` answers
    after the last restart."""
    for k in range(1, KILLS + 2):
        target = load.count + between
        wait_until(lambda: load.count >= target, 60, f"{between} more answers ({k})")  # noqa: B023 - waited for here
        if k <= KILLS:
            gw.kill()
            gw.start()
    load.stop.set()
    load.join()


# --- the tests --------------------------------------------------------------------------------------------

def test_kill_9_loop_loses_no_answered_event_and_verify_names_the_crashes(world: World) -> None:
    gw = world.make()
    gw.start()
    load = Load(gw, per_thread=3000, duration=120.0).start()    # 100 requests/s until the loop ends it
    kill_loop(gw, load)
    gw.stop()                                                    # clean: flushed, checkpointed
    assert gw.proc is not None and gw.proc.returncode == 0, gw.output()

    found, markers, seqs = recorded(world)
    answered = load.answered
    missing = [key for key in answered if key not in found]
    print(f"\n{world.backend.kind}: answered {len(answered)}, failed {load.failed} (while the gateway was "
          f"down), events {sum(found.values())}, markers {markers}, answered without an event {len(missing)}")
    assert len(answered) >= (KILLS + 1) * 200 and load.failed > 0    # the kills hit the stream
    assert missing == []                                          # durable: nothing answered is lost
    assert all(n == 1 for n in found.values())                    # once each
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)   # in order
    assert markers == KILLS + 1
    assert not gw.spool_files()

    status, report = verify(world, gw)
    assert status == 0, report
    (crash,) = findings(report, "crash")
    assert crash["en"].startswith(f"poortwachter/events/{GATEWAY_NAME}: {KILLS} restart(s) after a crash")
    assert "nothing that was answered is missing" in crash["en"]
    (log,) = [entry for entry in report["logs"] if entry["log"].endswith(GATEWAY_NAME)]
    assert log["size"] == len(seqs) and log["ok"]                 # verify counted every stored event


def test_kill_9_while_recording_fast_is_reported_as_possible_loss(world: World) -> None:
    if world.backend.kind != "sqlite":
        pytest.skip("the fast option's loss is shown once, on SQLite")
    gw = world.make(poortwachter_audit_commit="fast")
    gw.start()
    load = Load(gw, per_thread=3000, duration=120.0).start()
    kill_loop(gw, load)
    gw.stop()

    found, _, _ = recorded(world)
    missing = [key for key in load.answered if key not in found]
    print(f"\nfast: answered {len(load.answered)}, answered without an event after {KILLS} kills: {len(missing)}")
    status, report = verify(world, gw)
    assert status == 1                                            # verify cannot vouch for the log
    assert len(findings(report, "crash-fast")) == KILLS
    assert not findings(report, "crash")
    assert all(f["code"] in ("crash-fast",) for f in report["findings"] if f["tamper"])


@pytest.fixture
def tiny_spool(world: World) -> Iterator[tuple[World, CrashGateway]]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    gw = world.make(poortwachter_audit_wait="0.3")
    gw.spool_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(gw.spool_dir)], check=True)
    try:
        yield world, gw
    finally:
        world.backend.up()
        gw.stop()
        subprocess.run(["umount", "-l", str(gw.spool_dir)], check=False)


def test_a_full_spool_with_the_store_away_drains_and_nothing_answered_is_lost(
        tiny_spool: tuple[World, CrashGateway]) -> None:
    world, gw = tiny_spool
    gw.start()
    load = Load(gw, per_thread=10_000, duration=200.0).start()   # 200 requests/s until the test ends it
    wait_until(lambda: load.count >= 300, 30, "the stream is under way")
    world.backend.down()                                         # the store goes away ...
    wait_until(lambda: "audit spool not writable" in gw.stderr(), 60, "the 1 MiB spool is full")
    full_at = load.count
    wait_until(lambda: load.count >= full_at + 600, 60, "answers go on while neither store nor spool takes events")
    assert gw.metric("poortwachter_audit_events_total", result="unconfirmed") > 0
    world.backend.up()                                           # ... and comes back
    back_at = load.count
    wait_until(lambda: load.count >= back_at + 400, 60, "answers after the store is back")
    load.stop.set()
    load.join()
    wait_until(lambda: sum(recorded(world)[0].values()) >= len(load.answered) and not gw.spool_files()
               and gw.metric("poortwachter_audit_queue_depth") == 0, SETTLE, "the spool drains")

    found, _, seqs = recorded(world)
    missing = [key for key in load.answered if key not in found]
    print(f"\n{world.backend.kind}: answered {len(load.answered)} ({len(load.answered) - full_at} after the spool "
          f"filled), events {sum(found.values())}, unconfirmed "
          f"{gw.metric('poortwachter_audit_events_total', result='unconfirmed'):.0f}, spooled "
          f"{gw.metric('poortwachter_audit_events_total', result='spooled'):.0f}, replayed "
          f"{gw.metric('poortwachter_audit_events_total', result='replayed'):.0f}")
    assert load.failed == 0 and missing == []
    assert all(n == 1 for n in found.values()) and seqs == sorted(seqs)
    assert gw.metric("poortwachter_audit_events_total", result="dropped") == 0
    # published by the writer's own rounds, and logged at its first write to the emptied spool:
    # each waited for by itself, not read once after the files are gone
    wait_until(lambda: gw.metric("poortwachter_audit_spool_bytes") == 0, SETTLE, "the spool gauge at 0")
    wait_until(lambda: "audit spool writable again" in gw.stderr(), SETTLE, "the spool said writable again")

    gw.stop()
    status, report = verify(world, gw)
    assert status == 0, report
