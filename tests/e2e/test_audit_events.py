"""What a real gateway records, per kind of decision, into its embedded store (SQLite in the data
directory): a request decided on its URL, a CONNECT refused in a passthrough zone, a TLS connection
passed through or refused on its SNI; which verdicts `poortwachter_audit` asks for; and, without an
escrow key, nothing personal at all."""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from poortwachter.audit.keystore import write_escrow_public
from poortwachter.audit.record import AuditEvent
from poortwachter.audit.seal import generate_keypair, unseal
from poortwachter.store import default_url

from .clients import connect_tunnel, curl, tls_in_tunnel
from .pki import TestCA
from .proxy import CLASSROOM, LESSON, MITMDUMP, PUBLIC, STAFF, TEST_POLICY, Gateway, wait_until
from .upstream import Upstream

pytestmark = pytest.mark.e2e

COLUMNS = "seq, at, gateway, kind, zone, role, slot, category, action, rule, source, period, pseudonym, sealed"


class RecordingGateway(Gateway):
    def __init__(self, *args: object, options: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.options = options

    def argv(self) -> list[str]:
        extra = ["--set", "poortwachter_audit_gateway=e2e"]
        if "poortwachter_audit_interval" not in self.options:
            extra += ["--set", "poortwachter_audit_interval=0.05"]
        for name, value in self.options.items():
            extra += ["--set", f"{name}={value}"]
        return super().argv() + extra

    def events(self) -> list[AuditEvent]:
        """The events recorded, without the restart marker that opens each run."""
        engine = create_engine(default_url(self.data_dir))
        try:
            with engine.connect() as conn:
                rows = list(conn.execute(text(f"SELECT {COLUMNS} FROM audit_events WHERE kind != 'restart' "
                                              "ORDER BY id")))
        except Exception:   # noqa: BLE001 - not created yet
            return []
        finally:
            engine.dispose()
        return [_event(row) for row in rows]

    def wait_for(self, n: int) -> list[AuditEvent]:
        wait_until(lambda: len(self.events()) >= n, 10, f"{n} audit events stored")
        return self.events()


def _event(row: tuple) -> AuditEvent:  # type: ignore[type-arg]
    import datetime as dt

    seq, at, gateway, kind, zone, role, slot, category, action, rule, source, period, pseud, sealed = row
    when = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC) if isinstance(at, str) else at
    return AuditEvent(seq=seq, at=when, gateway=gateway, kind=kind, zone=zone, role=role, slot=slot,
                      category=category, action=action, rule=rule, source=source, period=period,
                      pseudonym=pseud, sealed=bytes(sealed) if sealed is not None else None)


@pytest.fixture
def start(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
          test_ca: TestCA) -> Iterator[object]:
    if not MITMDUMP.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump (make venv) and curl")
    started: list[RecordingGateway] = []

    def make(escrow_public: bytes | None, **options: str) -> RecordingGateway:
        gw = RecordingGateway(tmp_path_factory.mktemp("audit-events"), upstream, test_ca,
                              TEST_POLICY.read_text(encoding="utf-8"), LESSON, options=options)
        if escrow_public is not None:
            write_escrow_public(gw.data_dir / "audit", escrow_public)
        started.append(gw.start())
        return gw

    yield make
    for gw in started:
        crashed = gw.proc is not None and gw.proc.poll() not in (None, 0)   # 0: stopped by its test
        gw.stop()
        if crashed:
            pytest.fail(f"mitmdump died during the test:\n{gw.output()}")


def _opened(private: bytes, event: AuditEvent) -> dict:  # type: ignore[type-arg]
    assert event.sealed is not None
    return json.loads(unseal(private, event.sealed, event.aad()))


def test_each_kind_of_decision_is_recorded_sealed(start) -> None:  # type: ignore[no-untyped-def]
    private, public = generate_keypair()
    gw = start(public, poortwachter_audit_urls="true")

    # 1. intercepted HTTPS in the classroom: decided (and blocked) on the URL
    assert curl(gw, "https://www.pornhub.com/categorie?q=x", CLASSROOM).status == 403
    # 2. a CONNECT refused in the passthrough kantine
    assert connect_tunnel(gw, PUBLIC, "www.pornhub.com:443").status == 403
    # 3. passthrough TLS, allowed on its SNI (never decrypted)
    tunnel = connect_tunnel(gw, PUBLIC, "www.example.com:443")
    with tls_in_tunnel(tunnel, "www.example.com", gw.ca.pem):
        pass
    # 4. passthrough TLS refused on its SNI behind an allowed CONNECT target
    tunnel = connect_tunnel(gw, PUBLIC, "www.example.com:443")
    with pytest.raises((ssl.SSLError, OSError)):
        tls_in_tunnel(tunnel, "www.pornhub.com", gw.both_cas)

    events = gw.wait_for(4)
    assert [(e.kind, e.zone, e.action) for e in events] == [
        ("http", "klas", "block"), ("connect", "kantine", "block"), ("tls", "kantine", "allow"),
        ("tls", "kantine", "block")]
    assert {events[i].rule for i in (0, 1, 3)} == {"verboden-categorieen"}
    assert all(e.gateway == "e2e" and e.pseudonym and e.source is not None for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    opened = [_opened(private, e) for e in events]
    assert opened[0] == {"subject": {"client": CLASSROOM},
                         "details": {"host": "www.pornhub.com", "path": "/categorie?q=x"}}
    assert opened[1] == {"subject": {"client": PUBLIC}, "details": {"host": "www.pornhub.com"}}
    assert opened[2]["details"] == {"host": "www.example.com"}
    # the SNI and the CONNECT target differed: both names are kept, the SNI first
    assert opened[3]["details"] == {"host": "www.pornhub.com", "names": ["www.pornhub.com", "www.example.com"]}
    # one subject, one pseudonym in the period; another subject, another one
    assert events[1].pseudonym == events[2].pseudonym == events[3].pseudonym != events[0].pseudonym


def test_blocks_mode_records_blocks_only_and_off_records_nothing(start) -> None:  # type: ignore[no-untyped-def]
    _, public = generate_keypair()
    blocks = start(public, poortwachter_audit="blocks")
    off = start(public, poortwachter_audit="off")
    for gw in (blocks, off):
        assert curl(gw, "http://www.example.com/toegestaan", STAFF).status == 200
        assert curl(gw, "http://www.tiktok.com/", CLASSROOM).status == 403
        assert curl(gw, "http://www.example.com/ook-toegestaan", CLASSROOM).status == 200
    events = blocks.wait_for(1)
    assert [(e.action, e.rule) for e in events] == [("block", "sociale-media-in-de-les")]
    assert curl(blocks, "http://www.tiktok.com/nog-eens", CLASSROOM).status == 403
    blocks.wait_for(2)                      # by now the "off" gateway had time to write anything too
    assert off.events() == []


def test_without_escrow_key_the_gateway_records_nothing_personal(start) -> None:  # type: ignore[no-untyped-def]
    gw = start(None)
    assert "no escrow key" in gw.stderr()
    assert curl(gw, "http://www.tiktok.com/geheim", CLASSROOM).status == 403
    assert curl(gw, "http://www.example.com/ook-geheim", STAFF).status == 200
    events = gw.wait_for(2)
    assert [(e.zone, e.action) for e in events] == [("klas", "block"), ("personeel", "allow")]
    assert all(e.sealed is None and e.pseudonym is None for e in events)
    raw = b"".join(p.read_bytes() for p in Path(gw.data_dir).glob("poortwachter.db*"))   # WAL too
    for needle in (CLASSROOM, STAFF, "tiktok", "example.com", "geheim"):
        assert needle.encode() not in raw, needle
    assert gw.stderr().count("no escrow key") == 1


def test_a_stopping_gateway_writes_what_it_accepted(start) -> None:  # type: ignore[no-untyped-def]
    _, public = generate_keypair()
    gw = start(public, poortwachter_audit_interval="60")      # no batch would be due for a minute
    for i in range(3):
        assert curl(gw, f"http://www.tiktok.com/{i}", CLASSROOM).status == 403
    assert gw.events() == []
    gw.stop()                                                  # SIGTERM: the recorder's `done`
    assert gw.proc is not None and gw.proc.returncode == 0, gw.output()
    assert [e.action for e in gw.events()] == ["block"] * 3
    assert not list((gw.data_dir / "audit" / "spool").glob("*.spool"))
