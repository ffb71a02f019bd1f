"""The store's state on the running gateway: bans, grants, classroom openings and exams written
through the repository are enforced within seconds, end on time by the clock alone, and stay
enforced from the last snapshot while the database is unreachable.

The SQLite tests share one gateway on the default store (poortwachter.db in its data directory);
each test revokes what it added. Each PostgreSQL test starts its own gateway in its own schema,
reaching the shared server through a forwarder the test can cut or silence (the server itself is
never touched).
"""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from poortwachter.store import default_url, open_store

from .clients import curl, httpx_client
from .pki import TestCA
from .proxy import CLASSROOM, LESSON, MITMDUMP, PUBLIC, STAFF, TEST_POLICY, wait_until
from .state_helpers import (
    SYNC_DEADLINE,
    StateGateway,
    StoreChanges,
    TcpForwarder,
    at,
    pg_address,
    pg_schema,
    pg_unreachable,
    pg_url,
)
from .upstream import Upstream

pytestmark = pytest.mark.e2e

BANNED_TEXT = "Je bent tijdelijk uitgesloten van het schoolnetwerk."


def _gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA,
             db_url: str = "") -> StateGateway:
    """A gateway on the test policy at the lesson, not started yet."""
    if not MITMDUMP.exists() or shutil.which("curl") is None:
        pytest.skip("needs .venv/bin/mitmdump (make venv) and curl")
    return StateGateway(tmp_path_factory.mktemp("state-gateway"), upstream, test_ca,
                        TEST_POLICY.read_text(encoding="utf-8"), LESSON, db_url=db_url)


def _stop(gw: StateGateway) -> None:
    crashed = not gw.alive()
    gw.stop()
    if crashed:
        pytest.fail(f"mitmdump died during the tests:\n{gw.output()}")


def _rule(gw: StateGateway, url: str, source: str) -> str | None:
    """The rule that blocked the request, or None if it was let through to the upstream."""
    r = curl(gw, url, source)
    if r.status == 200:
        assert r.body.startswith("upstream "), r.body
        return None
    assert r.status == 403, (r.status, r.stderr)
    return r.headers["x-poortwachter-rule"]


def _allowed(gw: StateGateway, url: str, source: str) -> bool:
    return _rule(gw, url, source) is None


def _set_clock(gw: StateGateway, hhmm: str, url: str, source: str, rule: str | None) -> None:
    """Move the gateway's clock and wait until `url` from `source` gets `rule` (None: allowed)."""
    gw.set_clock(at(hhmm).isoformat())
    wait_until(lambda: _rule(gw, url, source) == rule, SYNC_DEADLINE, f"at {hhmm}: {url} -> {rule}")


# --- SQLite: the default store of one gateway ------------------------------------------------

@pytest.fixture(scope="module")
def sqlite_gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
              test_ca: TestCA) -> Iterator[StateGateway]:
    gw = _gateway(tmp_path_factory, upstream, test_ca).start()   # no poortwachter_db: the default store
    yield gw
    _stop(gw)


@pytest.fixture
def changes(sqlite_gw: StateGateway) -> Iterator[StoreChanges]:
    """The gateway's own SQLite store, at the lesson; afterwards everything added is revoked and
    the gateway has loaded that, so the next test starts from an empty state."""
    gw = sqlite_gw
    # The gateway creates its store where `poortwachter run` does: <data dir>/poortwachter.db.
    db_file = gw.data_dir / "poortwachter.db"
    wait_until(db_file.is_file, SYNC_DEADLINE, "the gateway created poortwachter.db in its data dir")
    store = open_store(default_url(gw.data_dir))
    gw.set_clock(LESSON)
    out = StoreChanges(store)
    try:
        yield out
    finally:
        gw.set_clock(LESSON)
        out.revoke_all()
        gw.wait_for_revision(out.revision())
        store.close()


def test_ban_blocks_every_host_for_that_client_only(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    assert _allowed(gw, "http://www.example.com/voor", CLASSROOM)

    ban = changes.ban(CLASSROOM, until=at("12:00"), source="004 art. 7 (sanctie)")
    wait_until(lambda: _rule(gw, "http://www.example.com/", CLASSROOM) == "uitsluiting", SYNC_DEADLINE,
               "the ban is enforced")

    # The block page, on a host that is otherwise allowed, and the request never left the gateway.
    r = curl(gw, "http://www.example.com/tijdens-de-ban", CLASSROOM)
    assert r.status == 403 and r.headers["x-poortwachter-rule"] == "uitsluiting"
    assert BANNED_TEXT in r.body and "004 art. 7 (sanctie)" in r.body
    assert not gw.upstream.saw("www.example.com", "/tijdens-de-ban")
    # every host: also over intercepted HTTPS, and ahead of the lesson rule for social media
    with httpx_client(gw, CLASSROOM) as client:
        https = client.get("https://www.wikipedia.org/tijdens-de-ban")
    assert https.status_code == 403 and https.headers["x-poortwachter-rule"] == "uitsluiting"
    assert _rule(gw, "http://www.tiktok.com/", CLASSROOM) == "uitsluiting"
    # the other clients are not excluded
    assert _allowed(gw, "http://www.example.com/andere-leerling", PUBLIC)
    assert _allowed(gw, "http://www.example.com/docent", STAFF)

    assert changes.revoke("ban", ban)
    wait_until(lambda: _allowed(gw, "http://www.example.com/na", CLASSROOM), SYNC_DEADLINE, "the ban is lifted")
    assert _rule(gw, "http://www.tiktok.com/", CLASSROOM) == "sociale-media-in-de-les"   # the normal rules again


def test_ban_of_a_network_refuses_passthrough_tls(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    changes.ban("127.0.0.0/30", until=at("12:00"))   # klas (.2) and kantine (.3), not personeel (.4)
    wait_until(lambda: _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting", SYNC_DEADLINE,
               "the network ban is enforced")
    assert _rule(gw, "http://www.example.com/", CLASSROOM) == "uitsluiting"
    # kantine is a passthrough zone: the CONNECT is refused before any TLS
    r = curl(gw, "https://www.example.com/", PUBLIC, cacert=gw.ca.pem)
    assert r.connect_status == 403 and r.status != 200
    assert _allowed(gw, "http://www.example.com/", STAFF)


def test_ban_ends_by_the_clock(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    changes.ban(PUBLIC, until=at("09:30"))
    wait_until(lambda: _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting", SYNC_DEADLINE,
               "the ban is enforced")
    gw.wait_for_revision(changes.revision())   # its load is in the log before it is counted below
    loads = gw.snapshot_loads()
    _set_clock(gw, "09:31", "http://www.example.com/", PUBLIC, None)
    assert gw.snapshot_loads() == loads      # no reload: the snapshot knew when the ban ends


def test_grant_opens_a_blocked_site_for_its_zone_until_it_ends(sqlite_gw: StateGateway,
                                                               changes: StoreChanges) -> None:
    gw = sqlite_gw
    tiktok = "http://www.tiktok.com/filmpje"
    assert _rule(gw, tiktok, CLASSROOM) == "sociale-media-in-de-les"

    changes.grant(sites=["TikTok.com."], zones=["klas"], start=at("08:30"), end=at("09:30"),
                  approved_by="ict:els")
    wait_until(lambda: _allowed(gw, tiktok, CLASSROOM), SYNC_DEADLINE, "the grant opens tiktok in klas")
    with httpx_client(gw, CLASSROOM) as client:
        assert client.get("https://www.tiktok.com/filmpje").status_code == 200
    # only for its zone: the pupils in the kantine are still in a lesson without social media
    assert _rule(gw, tiktok, PUBLIC) == "sociale-media-in-de-les"
    # and only for its sites
    assert _rule(gw, "http://www.instagram.com/", CLASSROOM) == "sociale-media-in-de-les"

    # It ends by itself when the clock passes its end: no store change, no reload.
    revision = changes.revision()
    gw.wait_for_revision(revision)             # the grant's load is in the log before it is counted
    loads = gw.snapshot_loads()
    _set_clock(gw, "09:29", tiktok, CLASSROOM, None)
    _set_clock(gw, "09:30", tiktok, CLASSROOM, "sociale-media-in-de-les")
    assert changes.revision() == revision and gw.snapshot_loads() == loads


def test_grant_that_is_not_approved_opens_nothing(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    changes.grant(sites=["instagram.com"], zones=["klas"], start=at("08:00"), end=at("12:00"), status="pending")
    changes.ban("127.0.0.9", until=at("12:00"))   # a later revision: once it is loaded, so is the grant
    gw.wait_for_revision(changes.revision())
    assert _rule(gw, "http://www.instagram.com/", CLASSROOM) == "sociale-media-in-de-les"


def test_classroom_opening_until_the_end_of_the_lesson(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    tiktok, instagram = "http://www.tiktok.com/les", "http://www.instagram.com/les"
    assert _rule(gw, tiktok, CLASSROOM) == "sociale-media-in-de-les"

    # The teacher opens social media (the category, so every site in it) for the rest of 1e-blok.
    changes.opening(zone="klas", mode="open", categories=["sociale-media"], until=at("10:00"))
    wait_until(lambda: _allowed(gw, tiktok, CLASSROOM), SYNC_DEADLINE, "the opening is in force")
    assert _allowed(gw, instagram, CLASSROOM)
    assert _rule(gw, tiktok, PUBLIC) == "sociale-media-in-de-les"         # another room
    assert _rule(gw, "http://www.pornhub.com/", CLASSROOM) == "verboden-categorieen"  # opens nothing else

    gw.wait_for_revision(changes.revision())   # the opening's load is in the log before it is counted
    loads = gw.snapshot_loads()
    _set_clock(gw, "09:59", tiktok, CLASSROOM, None)
    # 2e-blok: the opening ended at 10:00, the lesson rule is back
    _set_clock(gw, "10:45", tiktok, CLASSROOM, "sociale-media-in-de-les")
    assert _rule(gw, instagram, CLASSROOM) == "sociale-media-in-de-les"
    assert gw.snapshot_loads() == loads


def test_classroom_allowlist_restricts_the_room(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    changes.opening(zone="klas", mode="allowlist", sites=["kahoot.it"], until=at("10:00"))
    wait_until(lambda: _rule(gw, "http://www.example.com/", CLASSROOM) == "lokaal-allowlist", SYNC_DEADLINE,
               "the allowlist is in force")
    assert _allowed(gw, "http://play.kahoot.it/quiz", CLASSROOM)
    assert _allowed(gw, "http://www.example.com/", PUBLIC)


def test_exam_allows_only_its_allowlist(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    gw = sqlite_gw
    exam_site, other = "http://examen.school.test/opgave-1", "http://www.example.com/spieken"
    # an open grant for the room does not survive the exam (precedence 3 over 4)
    changes.grant(sites=["tiktok.com"], zones=["klas"], start=at("08:00"), end=at("12:00"))
    changes.exam(zone="klas", sites=["examen.school.test"], start=at("08:30"), until=at("09:30"),
                 source="examenreglement art. 5")
    wait_until(lambda: _rule(gw, other, CLASSROOM) == "examen", SYNC_DEADLINE, "the exam is in force")

    r = curl(gw, "http://www.example.com/spieken-2", CLASSROOM)
    assert "examenreglement art. 5" in r.body and not gw.upstream.saw("www.example.com", "/spieken-2")
    assert _allowed(gw, exam_site, CLASSROOM)
    with httpx_client(gw, CLASSROOM) as client:
        assert client.get("https://examen.school.test/opgave-2").status_code == 200
        assert client.get("https://www.wikipedia.org/").headers["x-poortwachter-rule"] == "examen"
    assert _rule(gw, "http://www.tiktok.com/", CLASSROOM) == "examen"
    # a forbidden site is blocked in the exam too, citing the rule that forbids it everywhere
    assert _rule(gw, "http://www.pornhub.com/", CLASSROOM) == "verboden-categorieen"
    # other zones carry on as usual
    assert _allowed(gw, other, PUBLIC) and _allowed(gw, other, STAFF)

    # After the exam the room is back to normal, and the grant is still in force.
    _set_clock(gw, "09:30", other, CLASSROOM, None)
    assert _allowed(gw, "http://www.tiktok.com/", CLASSROOM)


def test_a_restarted_gateway_enforces_a_ban_from_its_first_request(
        tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA) -> None:
    gw = _gateway(tmp_path_factory, upstream, test_ca)
    store = open_store(default_url(gw.data_dir))   # the store a previous run left behind
    try:
        StoreChanges(store).ban(PUBLIC, until=at("12:00"))
    finally:
        store.close()
    gw.start()
    try:
        # no waiting: the very first request after the proxy listens is decided with the ban
        assert _rule(gw, "http://www.example.com/eerste", PUBLIC) == "uitsluiting"
        assert not gw.upstream.saw("www.example.com", "/eerste")
    finally:
        _stop(gw)


# --- PostgreSQL: the snapshot outlives the database --------------------------------------------

STORE_DOWN = "store unreachable"
STORE_BACK = "store reachable again"


@dataclass
class PgSetup:
    forwarder: TcpForwarder     # the gateway's only way to the database
    changes: StoreChanges       # the test's own connection, straight to the server
    url: str                    # the gateway's store URL, through the forwarder
    make: Callable[[str], StateGateway]
    gateways: list[StateGateway] = field(default_factory=list)

    def start(self) -> StateGateway:
        gw = self.make(self.url).start()
        self.gateways.append(gw)
        return gw


@pytest.fixture
def pg(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, test_ca: TestCA) -> Iterator[PgSetup]:
    """A fresh schema on the shared PostgreSQL server, reached by the gateway through a forwarder."""
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    forwarder = TcpForwarder(pg_address())
    try:
        with pg_schema() as schema:
            store = open_store(pg_url(schema))   # creates the tables before any gateway starts
            setup = PgSetup(forwarder, StoreChanges(store), pg_url(schema, forwarder.address),
                            lambda url: _gateway(tmp_path_factory, upstream, test_ca, db_url=url))
            try:
                yield setup
            finally:
                forwarder.restore()
                for gw in setup.gateways:
                    _stop(gw)
                store.close()
    finally:
        forwarder.close()


def _store_lines(gw: StateGateway, forwarder: TcpForwarder) -> list[str]:
    """The gateway's lines about the store's health, checked to carry no client address (and no
    driver message: not even the database's port)."""
    lines = [line for line in gw.stderr().splitlines()
             if (STORE_DOWN in line or STORE_BACK in line) and "audit" not in line]   # the state sync's own
    for line in lines:
        assert not re.search(r"127\.0\.0\.[2-9]", line), line
        assert str(forwarder.port) not in line, line
    return lines


def _enforcing(gw: StateGateway) -> None:
    """The state of the outage tests: a ban on the kantine, a grant of tiktok for the klas."""
    assert _rule(gw, "http://www.example.com/tijdens-storing", PUBLIC) == "uitsluiting"
    assert _allowed(gw, "http://www.tiktok.com/tijdens-storing", CLASSROOM)
    assert _allowed(gw, "http://www.example.com/tijdens-storing", STAFF)
    assert _rule(gw, "http://www.tiktok.com/", PUBLIC) == "uitsluiting"


@pytest.mark.postgres
def test_postgres_cut_keeps_the_last_snapshot(pg: PgSetup) -> None:
    gw = pg.start()
    pid = gw.proc.pid if gw.proc else None
    pg.changes.ban(PUBLIC, until=at("12:00"))
    pg.changes.grant(sites=["tiktok.com"], zones=["klas"], start=at("08:00"), end=at("12:00"))
    wait_until(lambda: _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting", SYNC_DEADLINE,
               "the ban is enforced")
    gw.wait_for_revision(pg.changes.revision())   # the grant, written after the ban, is in force too
    _enforcing(gw)
    assert STORE_DOWN not in gw.stderr()

    # The database goes away (connections reset, new ones refused). The gateway notices, goes on
    # trying, and keeps deciding on its snapshot.
    pg.forwarder.cut()
    wait_until(lambda: STORE_DOWN in gw.stderr(), SYNC_DEADLINE, "the gateway logs the outage")
    tried = pg.forwarder.refused
    wait_until(lambda: pg.forwarder.refused >= tried + 3, SYNC_DEADLINE, "the gateway keeps trying")
    _enforcing(gw)
    assert gw.alive()

    # Back: the sync recovers and a new ban is enforced.
    pg.forwarder.restore()
    pg.changes.ban(STAFF, until=at("12:00"))
    wait_until(lambda: _rule(gw, "http://www.example.com/", STAFF) == "uitsluiting", SYNC_DEADLINE,
               "a ban added after the outage is enforced")
    wait_until(lambda: STORE_BACK in gw.stderr(), SYNC_DEADLINE, "the gateway logs the recovery")
    assert _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting"
    assert _allowed(gw, "http://www.tiktok.com/", CLASSROOM)
    assert gw.alive() and gw.proc is not None and gw.proc.pid == pid

    # said once each, in that order
    assert [STORE_DOWN in line for line in _store_lines(gw, pg.forwarder)] == [True, False]


@pytest.mark.postgres
def test_postgres_silent_network_keeps_the_last_snapshot(pg: PgSetup) -> None:
    gw = pg.start()
    pg.changes.ban(PUBLIC, until=at("12:00"))
    pg.changes.grant(sites=["tiktok.com"], zones=["klas"], start=at("08:00"), end=at("12:00"))
    wait_until(lambda: _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting", SYNC_DEADLINE,
               "the ban is enforced")
    gw.wait_for_revision(pg.changes.revision())   # the grant, written after the ban, is in force too

    # Nothing is refused, nothing answers: only a timeout tells the gateway the store is gone.
    pg.forwarder.stall()
    wait_until(lambda: STORE_DOWN in gw.stderr(), SYNC_DEADLINE, "the gateway logs the silent outage")
    _enforcing(gw)
    pg.changes.ban(STAFF, until=at("12:00"))       # written meanwhile, straight to the server

    pg.forwarder.restore()
    wait_until(lambda: _rule(gw, "http://www.example.com/", STAFF) == "uitsluiting", SYNC_DEADLINE,
               "the ban written during the outage is enforced once the store answers")
    wait_until(lambda: STORE_BACK in gw.stderr(), SYNC_DEADLINE, "the gateway logs the recovery")
    assert [STORE_DOWN in line for line in _store_lines(gw, pg.forwarder)] == [True, False]
    assert _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting"
    assert _allowed(gw, "http://www.tiktok.com/", CLASSROOM)

    # A gateway stopped while its database is silent still stops on SIGTERM (no SIGKILL needed).
    pg.forwarder.stall()
    wait_until(lambda: gw.stderr().count(STORE_DOWN) == 2, SYNC_DEADLINE, "the second silent outage is seen")
    assert gw.proc is not None
    pg.gateways.remove(gw)
    gw.stop()
    assert gw.proc.returncode != -signal.SIGKILL, gw.output()


@pytest.mark.postgres
def test_postgres_down_at_startup(pg: PgSetup) -> None:
    pg.changes.ban(PUBLIC, until=at("12:00"))
    pg.forwarder.cut()
    gw = pg.start()                       # starts, on the policy alone
    assert STORE_DOWN in gw.stderr()      # said before the proxy served anything
    assert _rule(gw, "http://www.tiktok.com/", CLASSROOM) == "sociale-media-in-de-les"
    assert _allowed(gw, "http://www.example.com/", STAFF)

    pg.forwarder.restore()
    wait_until(lambda: _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting", SYNC_DEADLINE,
               "the ban is enforced once the store answers")
    wait_until(lambda: STORE_BACK in gw.stderr(), SYNC_DEADLINE, "the gateway logs the recovery")
    assert [STORE_DOWN in line for line in _store_lines(gw, pg.forwarder)] == [True, False]


@pytest.mark.postgres
def test_postgres_down_at_restart_enforces_the_saved_snapshot(pg: PgSetup) -> None:
    gw = pg.start()
    pg.changes.ban(PUBLIC, until=at("12:00"))
    pg.changes.grant(sites=["tiktok.com"], zones=["klas"], start=at("08:00"), end=at("12:00"))
    wait_until(lambda: _rule(gw, "http://www.example.com/", PUBLIC) == "uitsluiting", SYNC_DEADLINE,
               "the ban is enforced")
    gw.wait_for_revision(pg.changes.revision())   # the grant, written after the ban, is in force too
    gw.stop()
    assert (gw.data_dir / "state-snapshot.json").exists()

    # Restarted while the database is away: the snapshot saved in the data directory holds.
    pg.forwarder.cut()
    gw.start()
    assert STORE_DOWN in gw.stderr() and "saved state snapshot" in gw.stderr()
    _enforcing(gw)
    pg.forwarder.restore()


def test_workflow_counts_are_metrics(sqlite_gw: StateGateway, changes: StoreChanges) -> None:
    import urllib.request

    def gauge(name: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{sqlite_gw.metrics_port}/metrics", timeout=5).read().decode()
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        assert match, name
        return float(match.group(1))

    before = gauge("poortwachter_active_exclusions")
    changes.ban("10.99.0.1", until=at("12:00"))
    changes.exam("examen", until=at("12:00"))
    # two changes in two transactions: the gateway may see one poll apart, so wait for both
    wait_until(lambda: gauge("poortwachter_active_exclusions") == before + 1
               and gauge("poortwachter_active_exams") >= 1, SYNC_DEADLINE, "the exclusion and the exam counted")
    assert gauge("poortwachter_pending_requests") == 0
