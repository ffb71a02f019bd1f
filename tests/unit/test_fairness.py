"""The fairness addon's decisions, in process (mitmproxy's taddons and tflow, no proxy started): the
cap per client address, 414/431 on complete heads, a head measured while it arrives, the phases of
a connection and its deadlines, the reader that closes a connection, and log lines once a minute
per cause. What only a real proxy shows is in tests/e2e/test_fairness.py."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import connection, http
from mitmproxy.test import taddons, tflow

from poortwachter import metrics
from poortwachter.gateway import Engine
from poortwachter.policy.load import PolicyError, load_policy, parse_policy
from poortwachter.policy.model import Fairness as FairnessSettings
from poortwachter_addons.engine import EngineAddon
from poortwachter_addons.fairness import (
    BUSY,
    CONNECTIONS,
    HEAD,
    HEADER_SIZE,
    HEADER_TIMEOUT,
    IDLE,
    RATE_LIMITED,
    REQUEST_LINE,
    STREAM,
    Fairness,
    FloodFilter,
    HeadMeter,
    Limits,
    RateLimit,
    Watch,
    answer,
    header_bytes,
    line_bytes,
)

REPO = Path(__file__).resolve().parents[2]
E2E_POLICY = REPO / "tests" / "e2e" / "data" / "policy.yaml"
KLAS, KANTINE, GUEST = "127.0.0.2", "127.0.0.3", "127.0.0.9"   # zones klas, kantine, and none (onbekend)
NAT = "127.0.0.50"


def _policy(tmp_path: Path, fairness: str) -> Path:
    text = E2E_POLICY.read_text(encoding="utf-8").replace("settings:\n", f"settings:\n  fairness: {fairness}\n", 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def fairness(tmp_path: Path) -> Iterator[Fairness]:
    engine = EngineAddon()
    engine.engine = Engine(_policy(tmp_path, '{max_connections_per_client: 16, shared_addresses: {"127.0.0.50": 40}, '
                                             'header_seconds: 5, idle_seconds: 30, max_request_line_bytes: 2048, '
                                             'max_header_bytes: 8192}'), None)
    addon = Fairness(engine)
    with taddons.context(addon):
        yield addon


def _client(address: str) -> connection.Client:
    client = tflow.tclient_conn()
    client.peername = (address, 40000)
    return client


def _refusals(zone: str, reason: str) -> float:
    return float(metrics.FAIRNESS_REFUSALS.labels(zone, reason)._value.get())


# --- the cap per client address ----------------------------------------------------------------
def test_the_connection_over_the_cap_is_refused_and_another_address_is_not(fairness: Fairness) -> None:
    before = _refusals("onbekend", CONNECTIONS)
    held = [_client(GUEST) for _ in range(16)]
    for client in held:
        fairness.client_connected(client)
        assert client.error is None
    extra = _client(GUEST)
    fairness.client_connected(extra)
    assert extra.error is not None and "too many connections" in extra.error
    assert _refusals("onbekend", CONNECTIONS) == before + 1
    other = _client(KLAS)
    fairness.client_connected(other)
    assert other.error is None
    # mitmproxy runs client_disconnected for the refused one too; then one held goes away
    fairness.client_disconnected(extra)
    fairness.client_disconnected(held.pop())
    again = _client(GUEST)
    fairness.client_connected(again)
    assert again.error is None


def test_a_shared_address_has_its_own_cap(fairness: Fairness) -> None:
    clients = [_client(NAT) for _ in range(41)]
    for client in clients:
        fairness.client_connected(client)
    assert [c.error is None for c in clients] == [True] * 40 + [False]


def test_counts_go_back_to_nothing(fairness: Fairness) -> None:
    clients = [_client(GUEST) for _ in range(20)]
    for client in clients:
        fairness.client_connected(client)
    for client in clients:
        fairness.client_disconnected(client)
    assert fairness.per_address == {} and fairness.open == {} and fairness.watches == {}


def test_the_metric_names_the_zone_never_the_address(fairness: Fairness) -> None:
    for _ in range(17):
        fairness.client_connected(_client(KANTINE))
    assert _refusals("kantine", CONNECTIONS) >= 1
    text = "\n".join(f"{s.labels}" for family in metrics.FAIRNESS_REFUSALS.collect() for s in family.samples)
    assert "127.0.0." not in text


# --- 414 and 431 on a complete head -------------------------------------------------------------
def _request(path: bytes = b"/", headers: list[tuple[bytes, bytes]] | None = None, version: bytes = b"HTTP/1.1",
             method: bytes = b"GET", authority: bytes = b"") -> http.Request:
    return tflow.treq(method=method, path=path, http_version=version, authority=authority,
                      headers=http.Headers(headers or [(b"Host", b"www.example.com")]), content=b"")


def _flow(request: http.Request, address: str = KLAS) -> http.HTTPFlow:
    return tflow.tflow(client_conn=_client(address), req=request)


def test_the_measures_of_a_parsed_request() -> None:
    request = _request(b"/abc", [(b"Host", b"a.nl"), (b"X", b"")])
    assert line_bytes(request) == len(b"GET /abc HTTP/1.1")
    assert header_bytes(request) == len(b"Host: a.nl\r\nX: \r\n")
    connect = _request(b"", method=b"CONNECT", authority=b"www.example.com:443")
    assert line_bytes(connect) == len(b"CONNECT www.example.com:443 HTTP/1.1")


def test_a_request_line_over_the_limit_gets_414_dutch_first(fairness: Fairness) -> None:
    before = _refusals("klas", REQUEST_LINE)
    over = b"/" + b"a" * (2048 - len(b"GET / HTTP/1.1") + 1)
    at = over[:-1]
    flow = _flow(_request(at))
    fairness.requestheaders(flow)
    assert flow.response is None
    flow = _flow(_request(over))
    fairness.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 414
    body = flow.response.text or ""
    assert body.index("Verzoek geweigerd") < body.index("Request refused") and "2048" in body
    assert flow.response.headers["Connection"] == "close"
    assert flow.response.headers["X-Poortwachter-Rule"] == "request_line_too_long"
    assert _refusals("klas", REQUEST_LINE) == before + 1


def test_headers_over_the_limit_get_431(fairness: Fairness) -> None:
    fill = 8192 - len(b"Host: www.example.com\r\n") - len(b"X-Fill: \r\n")
    at = [(b"Host", b"www.example.com"), (b"X-Fill", b"f" * fill)]
    flow = _flow(_request(headers=at))
    fairness.requestheaders(flow)
    assert flow.response is None
    over = [(b"Host", b"www.example.com"), (b"X-Fill", b"f" * (fill + 1))]
    flow = _flow(_request(headers=over))
    fairness.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 431
    body = flow.response.text or ""
    assert body.index("kopregels") < body.index("header fields")


def test_http2_gets_the_answer_without_a_connection_header(fairness: Fairness) -> None:
    flow = _flow(_request(b"/" + b"a" * 4000, version=b"HTTP/2.0"))
    fairness.requestheaders(flow)
    assert flow.response is not None and flow.response.status_code == 414
    assert "Connection" not in flow.response.headers


def test_a_connect_with_oversized_headers_gets_431(fairness: Fairness) -> None:
    flow = _flow(_request(b"", [(b"Host", b"x"), (b"X-Fill", b"f" * 9000)], method=b"CONNECT",
                          authority=b"www.example.com:443"))
    fairness.http_connect(flow)
    assert flow.response is not None and flow.response.status_code == 431


def test_a_response_already_given_is_left_alone(fairness: Fairness) -> None:
    flow = _flow(_request(b"/" + b"a" * 4000))
    flow.response = http.Response.make(403)
    fairness.requestheaders(flow)
    assert flow.response.status_code == 403


# --- a head measured while it arrives -----------------------------------------------------------
HEADS = [
    b"GET http://www.example.com/ HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",                      # bare LF, as h11 accepts
    b"GET / HTTP/1.1\r\n\r\n",                           # no headers
    b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",        # empty lines before the request line
]


def _feed(meter: HeadMeter, *chunks: bytes) -> str | None:
    verdicts = [meter.feed(chunk) for chunk in chunks]
    return next((v for v in verdicts if v is not None), None)


@pytest.mark.parametrize("head", HEADS)
def test_a_head_measures_the_same_however_it_is_split(head: bytes) -> None:
    whole = HeadMeter(1024, 4096, plain=True)
    assert _feed(whole, head) is None and whole.done
    line = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    assert whole.line == len(line)
    rng = random.Random(1)
    for cut in range(len(head) + 1):
        one = HeadMeter(1024, 4096, plain=True)
        assert _feed(one, head[:cut], head[cut:]) is None
        assert (one.done, one.line, one.headers) == (whole.done, whole.line, whole.headers), cut
        cuts = sorted(rng.sample(range(len(head) + 1), 3))
        three = HeadMeter(1024, 4096, plain=True)
        assert _feed(three, head[:cuts[0]], head[cuts[0]:cuts[1]], head[cuts[1]:cuts[2]], head[cuts[2]:]) is None
        assert (three.line, three.headers) == (whole.line, whole.headers), cuts


def test_the_header_section_is_its_lines_with_their_crlf() -> None:
    meter = HeadMeter(1024, 4096, plain=True)
    meter.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: yz\r\n\r\nbody bytes not counted")
    assert meter.headers == len(b"Host: a\r\nX: yz\r\n") and meter.line == len(b"GET / HTTP/1.1")


def test_a_request_line_at_and_over_its_limit() -> None:
    at = b"GET /" + b"a" * (100 - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"
    assert len(at) == 100
    assert HeadMeter(100, 4096, plain=True).feed(at + b"\r\nHost: a\r\n\r\n") is None
    assert HeadMeter(100, 4096, plain=True).feed(at.replace(b"/", b"/b", 1) + b"\r\n\r\n") == REQUEST_LINE
    # split right between the line and its CR
    meter = HeadMeter(100, 4096, plain=True)
    assert _feed(meter, at, b"\r", b"\n\r\n") is None and meter.line == 100


def test_an_endless_request_line_is_stopped_as_soon_as_it_passes() -> None:
    meter = HeadMeter(16384, 65536, plain=True)
    chunks = [b"GET /"] + [b"a" * 1024] * 1000
    for n, chunk in enumerate(chunks):
        if meter.feed(chunk) is not None:
            break
    assert n == 16          # "GET /" and 16 * 1024 bytes: 16389, past 16384 and a CR that might follow
    assert HeadMeter(16384, 65536, plain=True).feed(b"GET /" + b"a" * 20000) == REQUEST_LINE


def test_headers_at_and_over_their_limit() -> None:
    fill = 200 - len(b"X: \r\n")
    at = b"GET / HTTP/1.1\r\nX: " + b"f" * fill + b"\r\n\r\n"
    assert HeadMeter(1024, 200, plain=True).feed(at) is None
    over = b"GET / HTTP/1.1\r\nX: " + b"f" * (fill + 1) + b"\r\n\r\n"
    assert HeadMeter(1024, 200, plain=True).feed(over) == HEADER_SIZE
    endless = HeadMeter(1024, 200, plain=True)
    assert _feed(endless, b"GET / HTTP/1.1\r\n", *[b"X-A: b\r\n"] * 100) == HEADER_SIZE


def test_an_encrypted_head_is_known_by_its_bytes() -> None:
    meter = HeadMeter(1024, 4096, plain=False)
    budget = meter.budget
    assert budget == 1024 + 4096 + 16 * 1024
    assert meter.feed(b"\x16" + b"x" * (budget - 1)) is None
    assert meter.feed(b"y") == HEADER_SIZE


def test_endless_empty_lines_are_bounded_too() -> None:
    meter = HeadMeter(1024, 4096, plain=True)
    assert _feed(meter, *[b"\r\n" * 512] * 100) == HEADER_SIZE


# --- the phases of a connection -----------------------------------------------------------------
LIMITS = Limits(per_client=16, shared=(), header_seconds=5.0, idle_seconds=30.0, max_line=2048, max_headers=8192)


def _watch(owner: Any = None, reader: Any = None, writer: Any = None, tls: bool = False) -> Watch:
    client = _client(KLAS)
    client.tls = tls
    return Watch(owner or _Owner(), client, "klas", LIMITS, 1000.0, reader, writer)


class _Owner:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def refused(self, zone: str, reason: str, figure: int) -> None:
        self.seen.append((zone, reason))

    def idle_closed(self, zone: str) -> None:
        self.seen.append((zone, "idle"))


def test_a_new_connection_waits_for_a_head_then_a_request_then_keeps_alive() -> None:
    watch = _watch()
    assert (watch.phase, watch.deadline) == (HEAD, 1005.0)
    watch.started("f1", multiplexed=False)
    assert (watch.phase, watch.deadline, watch.meter) == (BUSY, None, None)
    watch.ended("f1", now=1100.0)
    assert (watch.phase, watch.deadline) == (IDLE, 1130.0)
    # the first byte of the next request: a new head, header_seconds from now
    assert watch.admit(b"G", now=1120.0) is None
    assert (watch.phase, watch.deadline) == (HEAD, 1125.0)


def test_http2_has_no_next_head_only_idle() -> None:
    watch = _watch(tls=True)
    watch.started("a", multiplexed=True)
    watch.started("b", multiplexed=True)
    watch.ended("a", now=1010.0)
    assert watch.phase == BUSY             # b is still in flight
    watch.ended("b", now=1011.0)
    assert (watch.phase, watch.deadline) == (IDLE, 1041.0)
    watch.admit(b"\x17\x03\x03 a ping", now=1012.0)
    assert (watch.phase, watch.deadline) == (IDLE, 1041.0)


def test_a_passed_through_tls_connection_becomes_a_stream() -> None:
    watch = _watch()
    watch.judging_tls(now=1002.0)
    assert (watch.phase, watch.deadline) == (STREAM, None)
    # decrypted (or refused in the handshake): the clock goes on where it stopped
    watch.tls_started(now=1050.0)
    assert (watch.phase, watch.deadline) == (HEAD, 1053.0)


def test_upgrades_and_tunnels(fairness: Fairness) -> None:
    client = _client(KLAS)
    fairness.client_connected(client)
    watch = fairness.watches[client.id]
    connect = tflow.tflow(client_conn=client, req=_request(b"", method=b"CONNECT", authority=b"a.nl:443"))
    fairness.http_connect(connect)
    assert watch.phase == BUSY
    fairness.http_connected(connect)
    assert watch.phase == HEAD and not watch.flows      # what comes through the tunnel is a new head
    ws = tflow.tflow(client_conn=client, resp=True, ws=True)
    fairness.requestheaders(ws)
    fairness.response(ws)
    assert (watch.phase, watch.deadline) == (STREAM, None)


def test_an_error_ends_the_request(fairness: Fairness) -> None:
    client = _client(KLAS)
    fairness.client_connected(client)
    flow = tflow.tflow(client_conn=client, req=_request())
    fairness.requestheaders(flow)
    fairness.error(flow)
    assert fairness.watches[client.id].phase == IDLE


# --- the reader: bytes pass, a late or oversized head closes ------------------------------------
class _Writer:
    def __init__(self) -> None:
        self.data = b""
        self.eof = False

    def write(self, data: bytes) -> None:
        self.data += data

    def write_eof(self) -> None:
        self.eof = True

    def is_closing(self) -> bool:
        return False


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _reader_with(*chunks: bytes, eof: bool = False) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


def _short(**changes: float) -> Limits:
    """LIMITS with deadlines short enough to wait for in a test."""
    return dataclasses.replace(LIMITS, **{"header_seconds": 0.2, "idle_seconds": 0.2, **changes})


def _live_watch(reader: asyncio.StreamReader, limits: Limits, owner: _Owner, writer: _Writer | None = None,
                tls: bool = False) -> Watch:
    client = _client(KLAS)
    client.tls = tls
    return Watch(owner, client, "klas", limits, time.monotonic(), reader,   # type: ignore[arg-type]
                 writer or _Writer())


def test_bytes_within_the_limits_pass_unchanged() -> None:
    head = b"GET http://www.example.com/ HTTP/1.1\r\nHost: www.example.com\r\n\r\n"

    async def go() -> bytes:
        watch = _live_watch(_reader_with(head[:10], head[10:]), _short(), _Owner())
        return await watch.read(65535)
    assert _run(go()) == head


def test_a_head_not_complete_in_time_is_closed() -> None:
    owner = _Owner()

    async def go() -> None:
        reader = _reader_with(b"GET http://www.example.com/ HTTP/1.1\r\n")
        watch = _live_watch(reader, _short(header_seconds=0.2), owner)
        await watch.read(65535)
        await watch.read(65535)        # nothing more comes: the deadline passes
    with pytest.raises(asyncio.CancelledError):
        _run(go())
    assert owner.seen == [("klas", HEADER_TIMEOUT)]


def test_a_request_in_flight_has_no_deadline_and_idle_closes_later() -> None:
    owner = _Owner()

    async def go() -> str:
        reader = _reader_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        watch = _live_watch(reader, _short(header_seconds=0.2, idle_seconds=0.3), owner)
        await watch.read(65535)
        pending = asyncio.ensure_future(watch.read(65535))
        await asyncio.sleep(0)
        watch.started("f", multiplexed=False)          # requestheaders, while the read waits
        await asyncio.sleep(0.5)                       # far past the head deadline: still waiting
        assert not pending.done() and owner.seen == []
        watch.ended("f", time.monotonic())             # the response went out: idle from now
        try:
            await pending
        except asyncio.CancelledError:
            return "closed"
        return "open"
    assert _run(go()) == "closed"
    assert owner.seen == [("klas", "idle")]


def test_a_plain_request_line_over_the_limit_gets_414_and_is_closed() -> None:
    owner, writer = _Owner(), _Writer()

    async def go() -> None:
        reader = _reader_with(b"GET /" + b"a" * 3000, b" HTTP/1.1\r\n\r\n", eof=True)
        watch = _live_watch(reader, _short(header_seconds=5), owner, writer)
        await watch.read(65535)
    with pytest.raises(asyncio.CancelledError):
        _run(go())
    assert owner.seen == [("klas", REQUEST_LINE)]
    assert writer.data.startswith(b"HTTP/1.1 414 ") and writer.eof
    assert b"Verzoek geweigerd" in writer.data and b"Connection: close" in writer.data


def test_a_plain_header_section_over_the_limit_gets_431() -> None:
    owner, writer = _Owner(), _Writer()

    async def go() -> None:
        reader = _reader_with(b"GET / HTTP/1.1\r\n", b"X-Fill: " + b"f" * 9000 + b"\r\n", eof=True)
        watch = _live_watch(reader, _short(header_seconds=5), owner, writer)
        await watch.read(65535)
    with pytest.raises(asyncio.CancelledError):
        _run(go())
    assert owner.seen == [("klas", HEADER_SIZE)]
    assert writer.data.startswith(b"HTTP/1.1 431 ")


def test_an_encrypted_head_over_its_bytes_is_closed_without_an_answer() -> None:
    owner, writer = _Owner(), _Writer()

    async def go() -> None:
        reader = _reader_with(b"\x17" * 40000, eof=True)
        watch = _live_watch(reader, _short(header_seconds=5), owner, writer, tls=True)
        await watch.read(65535)
    with pytest.raises(asyncio.CancelledError):
        _run(go())
    assert owner.seen == [("klas", HEADER_SIZE)] and writer.data == b""


def test_the_answers_say_the_limit() -> None:
    line = answer(REQUEST_LINE, LIMITS)
    headers = answer(HEADER_SIZE, LIMITS, close=False)
    assert (line.status_code, headers.status_code) == (414, 431)
    assert "2048" in (line.text or "") and "8192" in (headers.text or "")
    assert "Connection" not in headers.headers


# --- log lines: once a minute per cause ---------------------------------------------------------
def test_a_cause_passes_once_a_window_and_the_rest_is_counted() -> None:
    limit = RateLimit(window=60)
    assert limit.admit("a", 0.0, "first") == (True, None)
    for t in range(1, 100):
        assert limit.admit("a", float(t) / 10, "more") == (False, None)
    assert limit.admit("b", 1.0, "other") == (True, None)
    assert limit.due(30.0) == []
    assert limit.due(61.0) == [("first", 99)]        # b had nothing left out: no summary
    assert limit.admit("a", 62.0, "again") == (True, None)
    limit.admit("a", 63.0, "left out")
    assert limit.admit("a", 130.0, "next window") == (True, ("again", 1))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_mitmproxys_own_flood_is_one_line_and_a_count() -> None:
    handler = _Capture()
    flood = FloodFilter(handler, window=60)
    handler.addFilter(flood)
    logger = logging.getLogger("test.fairness.flood")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        before = metrics.LOG_LINES_SUPPRESSED._value.get()
        for port in range(1000):   # formatted by the caller, as mitmproxy does: every line differs
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                logger.exception(f"127.0.0.1:{port}: error establishing server connection: [Errno 24]")
        logger.error("something else entirely")
        assert handler.lines == ["127.0.0.1:0: error establishing server connection: [Errno 24]",
                                 "something else entirely"]
        assert metrics.LOG_LINES_SUPPRESSED._value.get() == before + 999
        flood.flush(time.monotonic() + 61)
        assert len(handler.lines) == 3 and handler.lines[2].startswith("999 more like this in the last 60 s")
        assert "Too many open files" in handler.lines[2]
    finally:
        logger.removeHandler(handler)


def test_the_addons_own_lines_are_once_a_minute_per_reason_and_zone(fairness: Fairness,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="poortwachter"):
        for _ in range(50):
            fairness.refused("klas", HEADER_TIMEOUT, 5)
        fairness.refused("kantine", HEADER_TIMEOUT, 5)
        fairness.flush(time.monotonic() + 61)
    lines = [r.getMessage() for r in caplog.records if "fairness" in r.getMessage()]
    assert len(lines) == 3, lines
    assert "zone klas" in lines[0] and "zone kantine" in lines[1]
    assert lines[2].startswith("49 more like this") and "zone klas" in lines[2]
    assert all(getattr(r, RATE_LIMITED, False) for r in caplog.records if "fairness" in r.getMessage())


# --- the settings ---------------------------------------------------------------------------------
def test_defaults_a_school_would_want() -> None:
    default = FairnessSettings()
    assert default.max_connections_per_client == 256 and default.shared_addresses == {}
    assert (default.header_seconds, default.idle_seconds) == (15, 60)
    assert (default.max_request_line_bytes, default.max_header_bytes) == (16384, 65536)
    assert load_policy(REPO / "policy" / "default.yaml").settings.fairness == default


@pytest.mark.parametrize(("setting", "message"), [
    ("max_connections_per_client: 4", "greater than or equal to 16"),
    ("header_seconds: yes", "valid integer"),
    ("idle_seconds: 0", "greater than or equal to 1"),
    ("max_header_bytes: 100", "greater than or equal to 4096"),
    ("max_request_line_bytes: 10MB", "valid integer"),
    ('shared_addresses: {"gastennet": 4000}', "not a network"),
    ("max_conections_per_client: 300", "Extra inputs are not permitted"),
])
def test_a_bad_setting_is_an_error_with_file_and_line(setting: str, message: str) -> None:
    other = "header_seconds: 15" if setting.startswith("idle") else "idle_seconds: 60"
    text = E2E_POLICY.read_text(encoding="utf-8").replace(
        "settings:\n", f"settings:\n  fairness:\n    {other}\n    {setting}\n", 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    [problem] = info.value.problems
    line = next(i for i, text_line in enumerate(text.splitlines(), 1) if text_line.strip() == setting)
    assert str(problem).startswith(f"p.yaml:{line}: settings.fairness."), str(problem)
    assert message in problem.message


def test_a_shared_address_below_the_default_cap_is_refused() -> None:
    text = E2E_POLICY.read_text(encoding="utf-8").replace(
        "settings:\n", 'settings:\n  fairness:\n    shared_addresses: {"10.99.0.1": 100}\n', 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    [problem] = info.value.problems
    assert str(problem).startswith("p.yaml:9: settings.fairness: ")
    assert "below max_connections_per_client" in str(problem)


def test_the_cap_of_a_shared_network_is_the_longest_prefix() -> None:
    settings = FairnessSettings(shared_addresses={"10.99.0.0/16": 1000, "10.99.1.1": 4000})
    limits = Limits.of(settings)
    assert limits.cap(ipaddress.ip_address("10.99.1.1")) == 4000
    assert limits.cap(ipaddress.ip_address("10.99.2.2")) == 1000
    assert limits.cap(ipaddress.ip_address("10.98.0.1")) == 256
    assert limits.cap(ipaddress.ip_address("fd00::1")) == 256
