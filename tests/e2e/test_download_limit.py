"""Download limits (004 art. 13) on the running gateway: a limit the sensor's service call writes into
the gateway's store is enforced within seconds on responses for that client only. A response that
announces a Content-Length above the limit is replaced by the download-limit page and the upstream
transfer is stopped; a chunked one is cut off at the limit; a small one passes; after `until` (the
clock file) everything passes again. The refusal is one audit event (a block, rule
"download_limit", sealed to the limited client) and the metrics count limits and open cases.

The local "internet" here is a bulk server of this module (bodies of any size, with a
Content-Length or chunked, over HTTP and HTTPS), recording whether each body was sent to its end.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from poortwachter.audit.keystore import write_escrow_public
from poortwachter.audit.record import AuditEvent
from poortwachter.audit.seal import generate_keypair, unseal
from poortwachter.auditlog.cases import open_case
from poortwachter.store import Store, default_url, open_store, state_revision
from poortwachter.workflow import Conflict, User
from poortwachter.workflow.limits import impose_download_limit, revoke_download_limit

from .clients import CurlResult, curl, raw_connect, read_response
from .pki import TestCA
from .proxy import CLASSROOM, LESSON, MITMDUMP, STAFF, TEST_POLICY, wait_until
from .state_helpers import SYNC_DEADLINE, StateGateway, at
from .upstream import _Handler, _Server, _tls_context

pytestmark = pytest.mark.e2e

MAX_BYTES = 100_000
HUGE = 64_000_000            # far more than any socket buffer: the upstream cannot finish before the cut
PIECE = 64 * 1024
COLUMNS = "seq, at, gateway, kind, zone, role, slot, category, action, rule, source, period, pseudonym, sealed"
LIMIT_TEXT = "Deze download is te groot"
ARTICLE = "004 art. 13: overmatig downloaden (e2e)"
# The test policy with a sensor section: the page and the audit event name its article.
SENSOR = f"""
sensor:
  excessive_download:
    action: limit
    max_download: {MAX_BYTES}
    source: "{ARTICLE}"
"""
DIRECTIE = User(id=0, username="piet", display_name="Piet", role="directie", zones=())


# --- the bulk upstream ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Sent:
    host: str
    path: str
    complete: bool            # the whole body went out (False: the connection was cut under it)


class _Bulk(_Handler):
    """/groot?bytes=N: N bytes with a Content-Length; /stroom?bytes=N: N bytes chunked;
    /liegt?bytes=N&claim=M: N bytes under a Content-Length of M; anything else a one-line answer
    naming the host and path."""

    server: _BulkServer

    def setup(self) -> None:
        super().setup()
        # A body the proxy stops reading (it framed the response by a smaller Content-Length) must
        # end this transfer rather than block the writer forever.
        self.request.settimeout(3)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        host = self.headers.get("Host", "").split(":")[0]
        size = int(parse_qs(url.query).get("bytes", ["0"])[0])
        complete = False
        try:
            if url.path in ("/groot", "/liegt"):
                claim = int(parse_qs(url.query).get("claim", [str(size)])[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(claim))
                self.end_headers()
                for start in range(0, size, PIECE):
                    self.wfile.write(b"x" * min(PIECE, size - start))
            elif url.path == "/stroom":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, size, PIECE):
                    n = min(PIECE, size - start)
                    self.wfile.write(b"%x\r\n%s\r\n" % (n, b"x" * n))
                self.wfile.write(b"0\r\n\r\n")
            else:
                body = f"upstream host={host} path={self.path}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            self.wfile.flush()
            complete = True
        except OSError:            # the gateway cut the connection
            self.close_connection = True
        self.server.record(Sent(host, url.path, complete))


class _BulkServer(_Server):
    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__("https" if context else "http", context, _Bulk)

    def sent_to(self, host: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.seen if s.host == host]


class BulkUpstream:
    """Where the harness's redirect addon sends every connection (http_port, https_port)."""

    def __init__(self, ca: TestCA) -> None:
        self.http = _BulkServer(None)
        self.https = _BulkServer(_tls_context(ca))
        for s in (self.http, self.https):
            threading.Thread(target=s.serve_forever, daemon=True, name="bulk-upstream").start()

    @property
    def http_port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def https_port(self) -> int:
        return int(self.https.server_address[1])

    def sent_to(self, host: str) -> list[Sent]:
        return self.http.sent_to(host) + self.https.sent_to(host)

    def close(self) -> None:
        for s in (self.http, self.https):
            s.shutdown()
            s.server_close()


# --- the gateway, its store and its audit log -------------------------------------------------------

class LimitGateway(StateGateway):
    """Records audit events quickly, under a fixed gateway name."""

    def argv(self) -> list[str]:
        return super().argv() + ["--set", "poortwachter_audit_gateway=e2e",
                                 "--set", "poortwachter_audit_interval=0.05"]

    def events(self) -> list[AuditEvent]:
        engine = create_engine(default_url(self.data_dir))
        try:
            with engine.connect() as conn:
                rows = list(conn.execute(text(f"SELECT {COLUMNS} FROM audit_events ORDER BY id")))
        finally:
            engine.dispose()
        out = []
        for seq, when, gateway, kind, zone, role, slot, category, action, rule, source, period, pseud, sealed in rows:
            out.append(AuditEvent(seq=seq, at=_utc(when), gateway=gateway, kind=kind, zone=zone, role=role,
                                  slot=slot, category=category, action=action, rule=rule, source=source,
                                  period=period, pseudonym=pseud, sealed=bytes(sealed) if sealed else None))
        return out

    def metric(self, name: str) -> float:
        for family in text_string_to_metric_families(self.metrics()):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        raise AssertionError(f"{name} not exported")


def _utc(value: Any) -> Any:
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC) if isinstance(value, str) else value


@dataclass
class World:
    gw: LimitGateway
    bulk: BulkUpstream
    store: Store
    escrow_private: bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[World]:
    if not MITMDUMP.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump (make venv) and curl")
    bulk = BulkUpstream(test_ca)
    gw = LimitGateway(tmp_path_factory.mktemp("limit-gateway"), bulk, test_ca,  # type: ignore[arg-type]
                      TEST_POLICY.read_text(encoding="utf-8") + SENSOR, LESSON)
    private, public = generate_keypair()
    write_escrow_public(gw.data_dir / "audit", public)
    gw.start()
    wait_until((gw.data_dir / "poortwachter.db").is_file, SYNC_DEADLINE, "the gateway created its store")
    store = open_store(default_url(gw.data_dir))
    try:
        yield World(gw, bulk, store, private)
    finally:
        store.close()
        crashed = not gw.alive()
        gw.stop()
        bulk.close()
        if crashed:
            pytest.fail(f"mitmdump died during the tests:\n{gw.output()}")


@pytest.fixture
def limited(world: World) -> Iterator[int]:
    """A download limit on the classroom client, as the sensor imposes it, enforced by the gateway;
    lifted afterwards."""
    world.gw.set_clock(LESSON)
    limit_id = impose_download_limit(world.store, address=CLASSROOM, zone="klas", max_bytes=MAX_BYTES,
                                     until=at("12:00"), reason="overmatig downloaden: 2,1 GB in 1 uur",
                                     now=at("08:00"))
    assert limit_id is not None
    # The previous test's limit (revoked in its teardown, a revision earlier) may still be in force
    # and give the 403 below: wait until the gateway has loaded the revision with this one.
    world.gw.wait_for_revision(state_revision(world.store))
    wait_until(lambda: _get(world, "http://www.example.com/groot?bytes=200000", CLASSROOM).status == 403,
               SYNC_DEADLINE, "the download limit is enforced")
    try:
        yield limit_id
    finally:
        world.gw.set_clock(LESSON)
        with world.store.write() as s:
            try:
                revoke_download_limit(s, limit_id, user=DIRECTIE, reason="e2e: opgeruimd", now=at("08:30"))
            except Conflict:    # the test lifted it itself
                pass


def _get(world: World, url: str, source: str, *args: str) -> CurlResult:
    return curl(world.gw, url, source, *args)


def _events_for(world: World, host: str, n: int) -> list[dict[str, Any]]:
    """The audit events whose sealed host is `host`, opened with the escrow key (waits for `n`)."""
    def opened() -> list[dict[str, Any]]:
        out = []
        for event in world.gw.events():
            if event.sealed is None:
                continue
            plain = json.loads(unseal(world.escrow_private, event.sealed, event.aad()))
            if plain["details"]["host"] == host:
                out.append({"action": event.action, "rule": event.rule, "zone": event.zone,
                            "client": plain["subject"]["client"]})
                if event.rule == "download_limit":
                    assert event.source == ARTICLE
        return out

    wait_until(lambda: len(opened()) >= n, 10, f"{n} audit events for {host}")
    return opened()


# --- the tests ----------------------------------------------------------------------------------------

def test_a_large_announced_download_gets_the_page_and_the_upstream_is_stopped(world: World, limited: int) -> None:
    host = "groot.example.com"
    r = _get(world, f"http://{host}/groot?bytes={HUGE}", CLASSROOM)
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == "download_limit"
    assert LIMIT_TEXT in r.body and "This download is too large." in r.body
    assert "100 kB" in r.body and "24-11-2026 12:00" in r.body          # the maximum, and until when
    assert f'<dd id="source">{ARTICLE}</dd>' in r.body                   # from the policy's sensor section

    # A client that keeps its connection open after the page (as a browser does): the gateway
    # itself stops the upstream, long before 64 MB went out.
    with raw_connect(world.gw, CLASSROOM) as sock:
        sock.sendall(f"GET http://{host}/groot?bytes={HUGE}&open=1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, headers, body = read_response(sock)
        assert status == 403 and LIMIT_TEXT in body.decode()
        wait_until(lambda: len(world.bulk.sent_to(host)) == 2, 10, "the upstream's transfer ended")
    assert world.bulk.sent_to(host) == [Sent(host, "/groot", False)] * 2
    # one audit event per request: the block, about the limited client
    assert _events_for(world, host, 2) == [{"action": "block", "rule": "download_limit", "zone": "klas",
                                            "client": CLASSROOM}] * 2


def test_a_small_download_passes_and_is_recorded_once_as_allowed(world: World, limited: int) -> None:
    host = "klein.example.com"
    r = _get(world, f"http://{host}/groot?bytes={MAX_BYTES}", CLASSROOM)     # exactly the maximum
    assert r.status == 200 and r.body == "x" * MAX_BYTES
    small = _get(world, f"http://{host}/stroom?bytes=1000", CLASSROOM)       # chunked, under the limit
    assert small.returncode == 0 and small.status == 200 and small.body == "x" * 1000
    assert _events_for(world, host, 2) == [{"action": "allow", "rule": "standaard", "zone": "klas",
                                            "client": CLASSROOM}] * 2


def test_a_large_chunked_download_is_cut_off_at_the_limit(world: World, limited: int) -> None:
    host = "stroom.example.com"
    r = _get(world, f"http://{host}/stroom?bytes={HUGE}", CLASSROOM)
    assert r.status == 200                                   # the headers had gone out already
    assert r.returncode == 18, r.stderr                      # curl: transfer closed, partial file
    assert len(r.body) == MAX_BYTES                          # exactly the limit, not a byte more
    wait_until(lambda: bool(world.bulk.sent_to(host)), 10, "the upstream saw the request")
    assert world.bulk.sent_to(host) == [Sent(host, "/stroom", False)]
    assert _events_for(world, host, 1) == [{"action": "block", "rule": "download_limit", "zone": "klas",
                                            "client": CLASSROOM}]


def test_a_content_length_smaller_than_the_body_lets_no_more_through(world: World, limited: int) -> None:
    # mitmproxy frames a response by its Content-Length: what the server sends beyond it is neither
    # passed on nor read as the next response; the connection to that server is closed.
    host = "liegt.example.com"
    r = _get(world, f"http://{host}/liegt?bytes={HUGE}&claim=1000", CLASSROOM)
    assert r.returncode == 0 and r.status == 200 and r.body == "x" * 1000
    with raw_connect(world.gw, CLASSROOM) as sock:
        sock.sendall(f"GET http://{host}/liegt?bytes={HUGE}&claim=1000&open=1 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert read_response(sock)[::2] == (200, b"x" * 1000)
        sock.sendall(f"GET http://{host}/daarna HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, _headers, body = read_response(sock)
        assert (status, body.decode()) == (200, f"upstream host={host} path=/daarna\n")
    wait_until(lambda: len(world.bulk.sent_to(host)) == 3, 10, "the upstream's transfers ended")
    assert sorted(world.bulk.sent_to(host), key=lambda s: s.path) == [
        Sent(host, "/daarna", True), Sent(host, "/liegt", False), Sent(host, "/liegt", False)]


def test_over_intercepted_https_too(world: World, limited: int) -> None:
    for http_version in ("--http1.1", "--http2"):
        r = _get(world, "https://veilig.example.com/groot?bytes=2000000", CLASSROOM, http_version)
        assert r.status == 403 and r.headers["x-poortwachter-rule"] == "download_limit", (http_version, r.stderr)
        assert LIMIT_TEXT in r.body
        cut = _get(world, "https://veilig.example.com/stroom?bytes=2000000", CLASSROOM, http_version)
        assert cut.returncode != 0 and len(cut.body) <= MAX_BYTES, (http_version, cut.returncode)
        ok = _get(world, "https://veilig.example.com/groot?bytes=1000", CLASSROOM, http_version)
        assert ok.returncode == 0 and ok.status == 200 and ok.body == "x" * 1000


def test_another_client_is_unaffected(world: World, limited: int) -> None:
    r = _get(world, "http://ander.example.com/groot?bytes=2000000", STAFF)
    assert r.returncode == 0 and r.status == 200 and len(r.body) == 2_000_000
    chunked = _get(world, "http://ander.example.com/stroom?bytes=2000000", STAFF)
    assert chunked.returncode == 0 and len(chunked.body) == 2_000_000


def test_after_until_everything_passes_again(world: World, limited: int) -> None:
    url = "http://later.example.com/groot?bytes=2000000"
    assert _get(world, url, CLASSROOM).status == 403
    world.gw.set_clock(at("12:00").isoformat())            # the limit ends by the clock alone
    wait_until(lambda: _get(world, url, CLASSROOM).status == 200, SYNC_DEADLINE, "the limit has ended")
    r = _get(world, "http://later.example.com/stroom?bytes=2000000", CLASSROOM)
    assert r.returncode == 0 and len(r.body) == 2_000_000


def test_revoking_lifts_the_limit_within_seconds(world: World, limited: int) -> None:
    url = "http://opgeheven.example.com/groot?bytes=2000000"
    assert _get(world, url, CLASSROOM).status == 403
    with world.store.write() as s:
        revoke_download_limit(s, limited, user=DIRECTIE, reason="leerling sprak ICT aan", now=at("08:30"))
    wait_until(lambda: _get(world, url, CLASSROOM).status == 200, SYNC_DEADLINE, "the lifted limit is gone")


def test_metrics_count_download_limits_and_open_cases(world: World) -> None:
    gw = world.gw
    wait_until(lambda: gw.metric("poortwachter_active_download_limits") == 0, SYNC_DEADLINE, "no limits yet")
    cases_before = gw.metric("poortwachter_open_cases")
    limit_id = impose_download_limit(world.store, address="127.0.0.7", zone="klas", max_bytes=MAX_BYTES,
                                     until=at("12:00"), reason="overmatig downloaden", now=at("08:00"))
    assert limit_id is not None
    with world.store.write() as s:
        open_case(s, user=DIRECTIE, reference="INC-13", article="004 art. 13", description="overmatig downloaden",
                  reason="omvang vaststellen", subject="127.0.0.7", window_start=at("08:00") - dt.timedelta(days=2),
                  window_end=at("08:00") - dt.timedelta(days=1), now=at("08:00"))   # the gateway's clock
    try:
        wait_until(lambda: gw.metric("poortwachter_active_download_limits") == 1, SYNC_DEADLINE, "limit counted")
        wait_until(lambda: gw.metric("poortwachter_open_cases") == cases_before + 1, SYNC_DEADLINE, "case counted")
        text_ = gw.metrics()
        assert "127.0.0.7" not in text_ and CLASSROOM not in text_      # counts only, never an address
    finally:
        with world.store.write() as s:
            revoke_download_limit(s, limit_id, user=DIRECTIE, reason="e2e: opgeruimd", now=at("08:30"))
    wait_until(lambda: gw.metric("poortwachter_active_download_limits") == 0, SYNC_DEADLINE, "limit lifted")
