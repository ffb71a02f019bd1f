"""Benchmark of audit recording: sustained sealed events per second into SQLite and PostgreSQL.

Run as a script (not collected by pytest):  .venv/bin/python tests/bench/bench_audit.py

What the gateway's recorder does, without the proxy: events (Seen tuples, as the enforcing addon
hands them over, a mix of zones, clients and blocked/allowed verdicts) are put on its queue and the
real background writer (auditlog/writer.py) seals each one to an escrow key (X25519 + HKDF +
ChaCha20-Poly1305), computes its pseudonym, numbers it and writes it in batches, with its period
key, to a fresh store. Measured per backend:
- sustained: N events queued at once, time until the last one is committed (the writer's own
  pace, sealing and writing overlapped in its two threads) -> events/s; once in fast mode (the
  store only) and once durable (every round also appended to the spool and fsync'd first);
- outage: the same N events written while the store is down (all go to the fsync'd spool), then
  the time until the spool is replayed into the store after it comes back -> spool and replay /s.
Parts, on their own: seal+build per event, store insert per event, spool append (fsync per batch)
per event, and the hot path's cost (AuditRecorder.accept: one filtered deque append; durable: and
a ticket, i.e. the shared future of the current round) per call.
Goal: >= 5,000 sealed events/s sustained into each backend.
Results: tests/bench/results/audit.json. PostgreSQL: POORTWACHTER_TEST_PG_URL or
postgresql+psycopg://postgres@127.0.0.1:5432/test (a throw-away schema; skipped if unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results" / "audit.json"
PG_URL = os.environ.get("POORTWACHTER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GOAL = 5000.0

from sqlalchemy import create_engine, make_url, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from poortwachter import metrics  # noqa: E402
from poortwachter.audit.keystore import KeyStore, write_escrow_public  # noqa: E402
from poortwachter.audit.record import Seen, build_event, subject_of  # noqa: E402
from poortwachter.audit.seal import generate_keypair  # noqa: E402
from poortwachter.audit.sequence import SequenceFile  # noqa: E402
from poortwachter.audit.spool import Spool  # noqa: E402
from poortwachter.auditlog.writer import Writer  # noqa: E402
from poortwachter.decide import Verdict  # noqa: E402
from poortwachter.store import Store, default_url, open_store  # noqa: E402
from poortwachter.store.audit_repo import count_events, insert_events  # noqa: E402

VERDICTS = [
    Verdict("block", "verboden-categorieen", "004 art. 11a", "porno", "klas", "pupil", "1e-blok"),
    Verdict("block", "sociale-media-in-de-les", "004 art. 9", "sociale-media", "lokaal-2.14", "pupil", "3e-uur"),
    Verdict("allow", "standaard", "004 art. 9", None, "kantine", "pupil", "pauze"),
    Verdict("allow", "standaard", "", None, "personeel", "staff", None),
]
HOSTS = ["www.example.com", "nl.wikipedia.org", "www.tiktok.com", "cdn.jsdelivr.net", "www.pornhub.com"]


def workload(n: int) -> list[Seen]:
    now = time.time()
    return [Seen(now + i * 1e-4, "http" if i % 3 else "tls", VERDICTS[i % len(VERDICTS)],
                 ipaddress.ip_address(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"),
                 [HOSTS[i % len(HOSTS)]], f"/pagina/{i}" if i % 3 else None) for i in range(n)]


class Switch:
    """The store, or a refused connection while `down` is set (as the writer sees an outage)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.down = threading.Event()
        self._store: Store | None = None

    def open(self, _url: str) -> Any:
        if self.down.is_set():
            raise OperationalError("connect", {}, ConnectionRefusedError())
        if self._store is None:
            self._store = open_store(self.url)
        return self

    @contextmanager
    def write(self) -> Iterator[Any]:
        if self.down.is_set():
            raise OperationalError("INSERT", {}, ConnectionResetError())
        assert self._store is not None
        with self._store.write() as session:
            yield session

    def close(self) -> None:
        pass

    def dispose(self) -> None:
        if self._store is not None:
            self._store.close()


def count(store: Store) -> int:
    with store.read() as session:
        return count_events(session)


def wait(check: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark stalled")
        time.sleep(0.02)


def written() -> float:
    """Events the writer has committed (its own counters: polling the database would compete)."""
    return sum(metrics.AUDIT_EVENTS.labels(r)._value.get() for r in ("recorded", "replayed"))


def run_backend(name: str, url: str, n: int, durable: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit"
        _, public = generate_keypair()
        write_escrow_public(audit, public)
        check = open_store(url)
        switch = Switch(url)
        queue: deque[Seen] = deque()
        writer = Writer(queue=queue, keystore=KeyStore(audit), spool=Spool(audit / "spool"),
                        sequence=SequenceFile(audit / "seq", mode="durable" if durable else "fast"), url=url,
                        gateway="bench", urls=lambda s: True, durable=durable,
                        interval=0.05, timeout=5.0, retry=0.05, opener=switch.open).start()
        try:
            # warm-up: the store is opened (and migrated) before the clock runs
            queue.extend(workload(1000))
            wait(lambda: count(check) == 1001)          # and the restart marker that opens the run

            events = workload(n)
            base = written()
            started = time.perf_counter()
            queue.extend(events)
            writer.wake.set()
            wait(lambda: written() - base >= n)
            sustained = n / (time.perf_counter() - started)
            assert count(check) == 1001 + n

            switch.down.set()
            started = time.perf_counter()
            queue.extend(events)
            writer.wake.set()
            wait(lambda: not queue and writer.spool.size_bytes > 0 and not writer._unwritten)
            spooled = n / (time.perf_counter() - started)
            spool_bytes = writer.spool.size_bytes
            base = written()
            switch.down.clear()
            started = time.perf_counter()
            wait(lambda: written() - base >= n and writer.spool.empty)
            replayed = n / (time.perf_counter() - started)
            assert count(check) == 1001 + 2 * n
        finally:
            writer.stop(timeout=60)
            switch.dispose()
            check.close()
    result = {"events": n, "sustained_per_s": round(sustained), "spooled_per_s": round(spooled),
              "replayed_per_s": round(replayed), "spool_bytes_per_event": round(spool_bytes / n),
              "goal_per_s": GOAL, "goal_met": sustained >= GOAL}
    print(f"{name:10s} {'durable' if durable else 'fast':7s} sustained {sustained:8.0f} events/s   "
          f"outage: spooled {spooled:8.0f}/s, "
          f"replayed {replayed:8.0f}/s   ({spool_bytes / n:.0f} spool bytes/event)  "
          f"goal {GOAL:.0f}/s: {'met' if sustained >= GOAL else 'MISSED'}")
    return result


def parts(n: int) -> dict[str, float]:
    """The pieces one at a time, on one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        audit = Path(tmp) / "audit"
        _, public = generate_keypair()
        write_escrow_public(audit, public)
        keys = KeyStore(audit)
        seq = SequenceFile(audit / "seq")
        seen = workload(n)
        t0 = time.perf_counter()
        events = []
        for s in seen:
            at = dt.datetime.fromtimestamp(s.at, dt.UTC)
            period, pseud = keys.pseudonym(subject_of(s), at)
            events.append(build_event(s, seq=seq.next(), gateway="bench", at=at, period=period,
                                      pseudonym=pseud, escrow_public=public, urls=True))
        seal_rate = n / (time.perf_counter() - t0)

        store = open_store(default_url(Path(tmp)))
        t0 = time.perf_counter()
        for i in range(0, n, 5000):
            with store.write() as session:
                insert_events(session, events[i:i + 5000])
        insert_rate = n / (time.perf_counter() - t0)
        store.close()

        spool = Spool(Path(tmp) / "spool")
        t0 = time.perf_counter()
        for i in range(0, n, 500):
            spool.append([e.canonical() for e in events[i:i + 500]])
        spool_rate = n / (time.perf_counter() - t0)
        spool.close()

    from poortwachter_addons.audit import AuditRecorder, Waiters
    from poortwachter_addons.engine import EngineAddon

    def accept_ns(durable: bool) -> float:
        async def run() -> float:
            recorder = AuditRecorder(EngineAddon())
            if durable:      # rounds of 16 requests, as under load: one future each, reported as a whole
                recorder.waiters = Waiters(60.0)
            accept = recorder.accept
            calls = 200_000
            item = seen[0]
            t0 = time.perf_counter()
            for i in range(calls):
                accept(item)
                if durable and i % 16 == 15:
                    recorder.waiters._release(16)     # type: ignore[union-attr]
                if len(recorder.queue) > 50_000:
                    recorder.queue.clear()
            return (time.perf_counter() - t0) / calls * 1e9
        return asyncio.run(run())

    fast_ns, durable_ns = accept_ns(False), accept_ns(True)
    out = {"seal_build_per_s": round(seal_rate), "sqlite_insert_per_s": round(insert_rate),
           "spool_append_per_s": round(spool_rate), "accept_ns_per_call": round(fast_ns),
           "accept_durable_ns_per_call": round(durable_ns)}
    print(f"parts      seal+build {seal_rate:8.0f}/s   SQLite insert {insert_rate:8.0f}/s   "
          f"spool append (fsync per 500) {spool_rate:8.0f}/s   hot-path accept {fast_ns:.0f} ns/call "
          f"(durable, with its ticket: {durable_ns:.0f} ns/call)")
    return out


@contextmanager
def pg_schema() -> Iterator[str | None]:
    try:
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:   # noqa: BLE001 - any reason: skip PostgreSQL, say why
        print(f"PostgreSQL skipped: {type(exc).__name__}")
        yield None
        return
    schema = f"pw_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    print(f"{args.events} events per run; {os.cpu_count()} CPUs; Python {platform.python_version()}")
    results: dict[str, Any] = {"parts": parts(20_000)}
    for durable in (False, True):
        mode = "durable" if durable else "fast"
        with tempfile.TemporaryDirectory() as tmp:
            results[f"sqlite_{mode}"] = run_backend("SQLite", default_url(Path(tmp)), args.events, durable)
        with pg_schema() as url:
            if url is not None:
                results[f"postgresql_{mode}"] = run_backend("PostgreSQL", url, args.events, durable)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform(), "load_avg": os.getloadavg()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
