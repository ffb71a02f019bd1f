"""Benchmark of the audit logs' tamper evidence: checkpoints, `audit verify` and retention.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_audit_verify.py

A fresh store gets N sealed events (real seals, pseudonyms and leaf hashes, written through
store/audit_repo.py in batches of 5,000), half of them older than their retention period. Then:
- checkpoint, cold: a new Checkpointer reads the whole log, signs and exports (a gateway restart);
- checkpoint, round: one more batch of 5,000 events, then one round (read the new leaves, sign,
  store the checkpoint, write its file): what the gateway pays per batch;
- verify: `audit verify` over the whole log (every leaf recomputed from its row, every exported
  checkpoint compared) -> events/s;
- retention: erase the due half (tombstones, signed erasure records) -> events/s; verify again;
- pure: Frontier appends/s, and log.check over N leaves against 1,000 checkpoints.
Per backend: SQLite (file in a temp dir) and PostgreSQL (POORTWACHTER_TEST_PG_URL or
postgresql+psycopg://postgres@127.0.0.1:5432/test, a throw-away schema; skipped if unreachable).
Results: tests/bench/results/audit_verify.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results" / "audit_verify.json"
PG_URL = os.environ.get("POORTWACHTER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BATCH = 5_000
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)

from poortwachter.audit import checkpoint, merkle  # noqa: E402
from poortwachter.audit.log import Frontier, check  # noqa: E402
from poortwachter.audit.pseudonym import period_of, pseudonym  # noqa: E402
from poortwachter.audit.record import AuditEvent, Seen, build_event  # noqa: E402
from poortwachter.audit.seal import generate_keypair  # noqa: E402
from poortwachter.auditlog.checkpointer import Checkpointer  # noqa: E402
from poortwachter.auditlog.exporters import DirectoryExporter  # noqa: E402
from poortwachter.auditlog.retention import apply_retention  # noqa: E402
from poortwachter.auditlog.verify import verify  # noqa: E402
from poortwachter.decide import Verdict  # noqa: E402
from poortwachter.store import Store, default_url, open_store  # noqa: E402
from poortwachter.store.audit_repo import insert_events  # noqa: E402

VERDICTS = [Verdict("block", "verboden-categorieen", "004 art. 11a", "porno", "klaslokaal", "leerling", "1e-blok"),
            Verdict("allow", "standaard", "", None, "kantine", "leerling", "pauze")]


def make_events(n: int, first_seq: int, escrow: bytes, old_half: bool) -> list[AuditEvent]:
    keys: dict[str, bytes] = {}
    out = []
    for i in range(n):
        age = dt.timedelta(days=200) if old_half and i % 2 == 0 else dt.timedelta(minutes=5)
        at = NOW - age + dt.timedelta(milliseconds=i)
        client = ipaddress.ip_address(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        seen = Seen(at.timestamp(), "tls", VERDICTS[i % 2], client, [f"site{i % 977}.example.nl"], None)
        period = period_of(at)
        key = keys.setdefault(period, os.urandom(32))
        out.append(build_event(seen, seq=first_seq + i, gateway="gw1", at=at, period=period,
                               pseudonym=pseudonym(key, str(client)), escrow_public=escrow, urls=False))
    return out


def store_events(store: Store, events: list[AuditEvent]) -> None:
    for i in range(0, len(events), BATCH):
        with store.write() as s:
            insert_events(s, events[i:i + BATCH])


@contextmanager
def postgres() -> Iterator[str | None]:
    try:
        from sqlalchemy import create_engine, make_url, text

        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        schema = f"pw_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - any reason means: no PostgreSQL run
        print(f"PostgreSQL skipped: {type(exc).__name__}")
        yield None
        return
    try:
        yield make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_backend(url: str, n: int, events: list[AuditEvent], more: list[AuditEvent], key: bytes,
                work: Path) -> dict[str, Any]:
    store = open_store(url)
    out = work / f"exported-{uuid.uuid4().hex[:6]}"
    try:
        store_events(store, events)
        cold, _ = timed(lambda: Checkpointer(store, key, gateways=["gw1"], ledger=False,
                                             exporters=[DirectoryExporter(out)], now=lambda: NOW).run_once())
        cp = Checkpointer(store, key, gateways=["gw1"], ledger=False, exporters=[DirectoryExporter(out)],
                          now=lambda: NOW + dt.timedelta(seconds=1))
        cp.run_once()                                 # loads the log (as after a restart)
        store_events(store, more)
        cp.now = lambda: NOW + dt.timedelta(seconds=2)
        round_s, result = timed(cp.run_once)
        assert result.signed and result.signed[0].size == n + len(more)
        verify_s, report = timed(lambda: verify(store, out))
        assert report.ok, report.findings
        retention_s, kept = timed(lambda: apply_retention(store, now=NOW, signing_key=key, holds=[],
                                                          exporters=[DirectoryExporter(out)]))
        after_s, report = timed(lambda: verify(store, out))
        assert report.ok, report.findings
        total = n + len(more)
        return {
            "events": total,
            "checkpoint_cold_s": round(cold, 3),
            "checkpoint_round_after_5000_ms": round(round_s * 1000, 1),
            "verify_s": round(verify_s, 3),
            "verify_events_per_s": int(total / verify_s),
            "retention_erased": kept.total,
            "retention_s": round(retention_s, 3),
            "retention_events_per_s": int(kept.total / retention_s) if retention_s else None,
            "verify_after_retention_s": round(after_s, 3),
        }
    finally:
        store.close()


def pure(n: int) -> dict[str, Any]:
    leaves = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(n)]
    frontier = Frontier()
    append_s, _ = timed(lambda: [frontier.append(leaf) for leaf in leaves])
    key, _ = checkpoint.generate_signing_key()
    sizes = sorted({max(1, n * i // 1000) for i in range(1, 1001)})
    f = Frontier()
    cps = []
    j = 0
    for size in sizes:
        while f.size < size:
            f.append(leaves[j])
            j += 1
        cps.append(checkpoint.sign(key, "bench", size, f.root(), NOW + dt.timedelta(seconds=size)))
    check_s, result = timed(lambda: check("bench", leaves, cps))
    assert result.ok
    verify_sigs_s, _ = timed(lambda: [checkpoint.verify(checkpoint.public_key_of(key), cp) for cp in cps])
    return {"leaves": n, "frontier_appends_per_s": int(n / append_s), "check_against_1000_checkpoints_s":
            round(check_s, 3), "signature_checks_per_s": int(len(cps) / verify_sigs_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    n = args.events
    _, escrow = generate_keypair()
    key, _ = checkpoint.generate_signing_key()
    t, events = timed(lambda: make_events(n, 1, escrow, old_half=True))
    more = make_events(BATCH, n + 1, escrow, old_half=False)
    print(f"built {n + BATCH} sealed events in {t:.1f} s")
    results: dict[str, Any] = {"pure": pure(n)}
    print("pure:", results["pure"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["sqlite"] = run_backend(default_url(work / "data"), n, events, more, key, work)
        print("sqlite:", results["sqlite"])
        with postgres() as pg:
            if pg is not None:
                results["postgresql"] = run_backend(pg, n, events, more, key, work)
                print("postgresql:", results["postgresql"])
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "load_avg": list(os.getloadavg())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
