"""A running gateway signs and exports checkpoints of its events log and of the access ledger by
itself (addons/audit.py), and `poortwachter audit verify` checks the database against them: in
order while nobody touched it, tampering (one changed audit event) once somebody did."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from poortwachter.audit import checkpoint as cpmod
from poortwachter.audit.keystore import audit_dir
from poortwachter.audit.log import LEDGER_LOG, events_log
from poortwachter.auditlog import keys
from poortwachter.store import default_url, open_store

from .clients import curl
from .pki import TestCA
from .proxy import CLASSROOM, LESSON, MITMDUMP, REPO, STAFF, TEST_POLICY, wait_until
from .test_audit_events import RecordingGateway
from .upstream import Upstream

pytestmark = pytest.mark.e2e

POORTWACHTER = REPO / ".venv" / "bin" / "poortwachter"
PHRASES = {"directie": "directie-wachtzin-1", "ict": "ict-wachtzin-12345"}
EVENTS_LOG = events_log("e2e")


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
            test_ca: TestCA) -> Iterator[tuple[RecordingGateway, bytes]]:
    """A recording gateway after the key ceremony (escrow key and checkpoint signing key)."""
    if not MITMDUMP.exists() or not POORTWACHTER.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump and .venv/bin/poortwachter (make venv) and curl")
    gw = RecordingGateway(tmp_path_factory.mktemp("audit-checkpoints"), upstream, test_ca,
                          TEST_POLICY.read_text(encoding="utf-8"), LESSON,
                          options={"poortwachter_checkpoint_interval": "1"})
    store = open_store(default_url(gw.data_dir))
    try:
        ceremony = keys.init_keys(store, gw.data_dir, holders=keys.parse_holders("directie:Anna,ict:Jan"),
                                  threshold=2, passphrases=PHRASES, actor="cli:e2e", now=dt.datetime.now(dt.UTC))
    finally:
        store.close()
    gw.start()
    yield gw, ceremony.checkpoint_public
    crashed = gw.proc is not None and gw.proc.poll() not in (None, 0)
    gw.stop()
    if crashed:
        pytest.fail(f"mitmdump died during the test:\n{gw.output()}")


def _exported(directory: Path) -> dict[str, cpmod.Checkpoint]:
    """The largest checkpoint of each log in the directory."""
    newest: dict[str, cpmod.Checkpoint] = {}
    for path in directory.glob("*/*.checkpoint"):
        cp = cpmod.from_text(path.read_text(encoding="utf-8"))
        if cp.log not in newest or cp.size > newest[cp.log].size:
            newest[cp.log] = cp
    return newest


def _verify(data_dir: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(POORTWACHTER), "--data-dir", str(data_dir), "audit", "verify",
                           "--checkpoints", str(directory)], capture_output=True, text=True, timeout=60)


def test_gateway_exports_checkpoints_that_verify_and_expose_a_changed_event(gateway) -> None:  # type: ignore[no-untyped-def]
    gw, public = gateway
    directory = audit_dir(gw.data_dir) / "checkpoints"      # the default of poortwachter_checkpoint_dir

    assert curl(gw, "http://www.tiktok.com/", CLASSROOM).status == 403
    assert curl(gw, "http://www.example.com/toegestaan", STAFF).status == 200
    assert curl(gw, "http://www.pornhub.com/", CLASSROOM).status == 403
    gw.wait_for(3)

    # Nobody ran `audit checkpoint`: the gateway signed and exported both logs after storing.
    wait_until(lambda: _exported(directory).get(EVENTS_LOG, None) is not None
               and _exported(directory)[EVENTS_LOG].size >= 3 and LEDGER_LOG in _exported(directory),
               30, "checkpoints of the events log (3 events) and the ledger exported")
    newest = _exported(directory)
    assert all(cpmod.verify(public, cp) for cp in newest.values())
    assert newest[LEDGER_LOG].size >= 1                       # the ceremony's ledger entry
    assert list(directory.glob("checkpoint-*.pub"))           # the key is published next to the notes

    gw.stop()             # `done`: the writer flushes, the checkpointer's last round signs it
    ok = _verify(gw.data_dir, directory)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Result: OK" in ok.stdout

    # Somebody with database access turns a block into an allow.
    with sqlite3.connect(gw.data_dir / "poortwachter.db") as db:
        seq, action = db.execute("SELECT seq, action FROM audit_events WHERE gateway = 'e2e' "
                                 "AND action = 'block' ORDER BY seq LIMIT 1").fetchone()
        db.execute("UPDATE audit_events SET action = 'allow' WHERE gateway = 'e2e' AND seq = ?", (seq,))
    assert action == "block"
    bad = _verify(gw.data_dir, directory)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"{EVENTS_LOG}: entry {seq} " in bad.stdout and "content changed" in bad.stdout
    assert "TAMPERING OR DAMAGE FOUND" in bad.stdout
