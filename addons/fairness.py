"""Fair to every client: one device, broken or hostile, cannot take the gateway from the others.

Threat: a client that opens thousands of connections and sends nothing, or sends its request head
a byte at a time (slowloris), or a request line or header section of megabytes, holds descriptors,
memory and the proxy's time that every other client needs; once the descriptors run out no new
client gets in. mitmproxy 12 limits none of this: its HTTP/1 reader buffers a head without bound
("FIXME: protect against header size DoS" in layers/http/_http1.py) and passes it on, and its one
timeout, `tcp_timeout`, takes any byte for activity, so a byte every few seconds holds a
connection for ever.

What is enforced, per client connection (`settings.fairness` in the policy, read anew for every
connection, so a reload applies to new ones):
- at most `max_connections_per_client` connections per client address (`shared_addresses`: more
  behind a NAT); the one over the cap is refused in `client_connected` by setting `client.error`,
  mitmproxy's public way to refuse a connection before anything is read;
- the request head must be complete `header_seconds` after the connection or the tunnel opens, or
  after the first byte of the next request on a kept-alive connection (slowloris); the time the
  gateway itself takes to judge a TLS ClientHello does not count;
- a kept-alive connection that waits `idle_seconds` for its next request is closed;
- a request line over `max_request_line_bytes` gets 414, a header section over `max_header_bytes`
  gets 431 (Dutch first, English second), and neither goes upstream. A head that is complete is
  judged in `requestheaders`/`http_connect` (HTTP/1 and HTTP/2, plain or decrypted); one still
  arriving is stopped as soon as it passes the limits, so the proxy never buffers more: plain
  HTTP/1 gets the answer, an encrypted head is closed (there is no TLS to answer it on yet).
A connection that turns out to carry no HTTP (TLS passed through, a service stream, a WebSocket)
has no head to wait for: from then on only mitmproxy's `tcp_timeout` (600 s of silence in both
directions) applies to it, and the cap bounds how many one client holds.

Refusals are counted per zone and reason (metrics.FAIRNESS_REFUSALS), never with an address. Log
lines are written at most once a minute per cause with a count of the rest: this addon's own (per
reason and zone), and mitmproxy's terminal log (when descriptors run out, asyncio's accept loop on
Python 3.12 logs one traceback per pending connection, many times a second: over 200 MB within
minutes in a test here).

Where mitmproxy has no public hook: the head timeout, the idle timeout and stopping a head that is
still arriving need the client's bytes as they come in, and no hook hands an addon those. The
client's reader in the proxyserver's connection table (what mitmproxy's own `tcp_timeout` watchdog
works on) is wrapped in `client_connected`, before the proxy reads a byte; a connection is closed
the way that watchdog closes it, by cancelling its handler task. Should that table ever be
missing, these three are not enforced and the gateway says so once; the cap and the 414/431 on
complete heads use public hooks only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from mitmproxy import connection, ctx, http, tls
from mitmproxy.addons.termlog import TermLogHandler
from mitmproxy.net.http.http1 import assemble_response
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import TCPLayer, UDPLayer

from poortwachter import metrics
from poortwachter.decide import zone_for
from poortwachter.gateway import client_address
from poortwachter.policy.model import Fairness as FairnessSettings

from .engine import EngineAddon

log = logging.getLogger("poortwachter")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONNECTIONS, HEADER_TIMEOUT, REQUEST_LINE, HEADER_SIZE = metrics.FAIRNESS_REASONS
RULES = {REQUEST_LINE: "request_line_too_long", HEADER_SIZE: "header_fields_too_large"}

# An encrypted head is known only by its bytes: the TLS handshake and record overhead come on top.
ENCRYPTION_ALLOWANCE = 16 * 1024
# After a refused plain head the client's remaining bytes are read and dropped for a moment, so the
# answer is not lost to a reset (a socket closed with unread data sends RST, and the client's
# kernel may drop the answer with it).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024
LOG_WINDOW = 60.0
TLS_HANDSHAKE = b"\x16"
_BLANK_LINE = re.compile(rb"\n\r?\n")    # the end of a head, as mitmproxy's reader (h11) finds it

# A record that already went through a rate limit (a summary, or a line of this addon): passed on.
RATE_LIMITED = "poortwachter_rate_limited"


# --- the limits of the policy in force ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Limits:
    per_client: int
    shared: tuple[tuple[IPNetwork, int], ...]          # longest prefix first
    header_seconds: float
    idle_seconds: float
    max_line: int
    max_headers: int

    @classmethod
    def of(cls, settings: FairnessSettings) -> Limits:
        networks = ((ipaddress.ip_network(net, strict=False), cap) for net, cap in settings.shared_addresses.items())
        shared = sorted(networks, key=lambda item: -item[0].prefixlen)
        return cls(settings.max_connections_per_client, tuple(shared), float(settings.header_seconds),
                   float(settings.idle_seconds), settings.max_request_line_bytes, settings.max_header_bytes)

    def cap(self, address: IPAddress) -> int:
        """Connections this client address may have open at once."""
        for network, cap in self.shared:
            if address.version == network.version and address in network:
                return cap
        return self.per_client

    def meter(self) -> HeadMeter:
        return HeadMeter(self.max_line, self.max_headers)


DEFAULT_LIMITS = Limits.of(FairnessSettings())


# --- a request head as it arrives --------------------------------------------------------------
class HeadMeter:
    """Counts the bytes of one request head as they arrive, without keeping them, and says when the
    request line or the header section passes its limit. Plain HTTP/1 is measured exactly (the line
    up to its LF without CRLF, the header lines up to the blank line, empty lines before the request
    line skipped as mitmproxy's reader skips them); an encrypted head is known only by its bytes
    (`plain` False), allowed the limits plus ENCRYPTION_ALLOWANCE. Bytes after a complete head (a
    body, a pipelined request) are not counted."""

    __slots__ = ("_cr", "_tail", "budget", "done", "headers", "line", "line_done", "max_headers", "max_line", "plain",
                 "total")

    def __init__(self, max_line: int, max_headers: int, plain: bool | None = None) -> None:
        self.max_line = max_line
        self.max_headers = max_headers
        self.budget = max_line + max_headers + ENCRYPTION_ALLOWANCE
        self.plain = plain           # None: not known until the first byte
        self.total = 0
        self.line = 0
        self.headers = 0
        self.line_done = False
        self.done = False
        self._cr = False             # the line so far ends in CR
        self._tail = b""             # the last bytes before this chunk, for a blank line split over two

    def feed(self, data: bytes) -> str | None:
        """Count the next bytes: REQUEST_LINE or HEADER_SIZE when the head is over its limit, else None."""
        if self.done or not data:
            return None
        self.total += len(data)
        if self.total > self.budget:
            return HEADER_SIZE
        if not self.plain:
            return None
        if not self.line_done:
            if self.line == 0:
                data = data.lstrip(b"\r\n")
            end = data.find(b"\n")
            if end < 0:
                self.line += len(data)
                if data:
                    self._cr = data.endswith(b"\r")
                return REQUEST_LINE if self.line > self.max_line + 1 else None   # + 1: the CR of its CRLF
            line = self.line + end
            if data[end - 1:end] == b"\r" if end else self._cr:
                line -= 1
            if line > self.max_line:
                return REQUEST_LINE
            self.line, self.line_done = line, True
            data = data[end + 1:]
            self._tail = b"\n"
        joined = self._tail + data
        blank = _BLANK_LINE.search(joined)
        if blank is not None:
            self.done = True
            self.headers += blank.start() + 1 - len(self._tail)
            return HEADER_SIZE if self.headers > self.max_headers else None
        self.headers += len(data)
        self._tail = joined[-2:]
        return HEADER_SIZE if self.headers > self.max_headers + 1 else None   # + 1: the CR of the blank line


def line_bytes(request: http.Request) -> int:
    """The request line of a parsed request: method, target and version, as HTTP/1 sends it (for
    HTTP/2 the same from its pseudo-headers). The target is the path, or the authority of a CONNECT;
    an explicit proxy's absolute-form target is measured without its scheme and host (mitmproxy has
    made it origin-form by now), so this never finds a line longer than the client sent."""
    data = request.data
    return len(data.method) + len(data.authority) + len(data.path) + len(data.http_version) + 2


def header_bytes(request: http.Request) -> int:
    """The header section of a parsed request: every header line with its ": " and CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in request.headers.fields)


def answer(reason: str, limits: Limits, close: bool = True) -> http.Response:
    """414 or 431, Dutch first, English second. `close`: HTTP/1 (HTTP/2 has no Connection header)."""
    if reason == REQUEST_LINE:
        status, body = 414, (f"Verzoek geweigerd: de verzoekregel is langer dan {limits.max_line} bytes.\n"
                             f"Request refused: the request line is longer than {limits.max_line} bytes.\n")
    else:
        status, body = 431, (f"Verzoek geweigerd: de kopregels zijn samen groter dan {limits.max_headers} bytes.\n"
                             f"Request refused: the request header fields are larger than {limits.max_headers} "
                             f"bytes.\n")
    headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store",
               "X-Poortwachter-Rule": RULES[reason]}
    if close:
        headers["Connection"] = "close"
    return http.Response.make(status, body, headers)


# --- log lines: once a minute per cause ---------------------------------------------------------
@dataclass(slots=True)
class _Window:
    until: float
    sample: Any
    suppressed: int = 0


class RateLimit:
    """At most one line per cause per `window` seconds: the first passes, the rest are counted, and
    the count is reported when the window is over (`due`) or with the next line after it. Thread
    safe: log records come from the proxy's loop and from worker threads."""

    def __init__(self, window: float = LOG_WINDOW, causes: int = 512) -> None:
        self.window = window
        self.causes = causes
        self._windows: dict[Any, _Window] = {}
        self._lock = threading.Lock()

    def admit(self, cause: Any, now: float, sample: Any = None) -> tuple[bool, tuple[Any, int] | None]:
        """Pass this line? And the (sample, count) of an earlier window still to report, if any."""
        with self._lock:
            current = self._windows.get(cause)
            if current is not None and now < current.until:
                current.suppressed += 1
                return False, None
            report = (current.sample, current.suppressed) if current is not None and current.suppressed else None
            if current is None and len(self._windows) >= self.causes:
                self._windows = {k: w for k, w in self._windows.items() if now < w.until or w.suppressed}
                if len(self._windows) >= self.causes:
                    return True, None      # too many distinct causes to track: let it through
            self._windows[cause] = _Window(now + self.window, sample)
            return True, report

    def due(self, now: float) -> list[tuple[Any, int]]:
        """(sample, count) of every window that is over with lines left out; those windows end."""
        with self._lock:
            over = [(cause, w) for cause, w in self._windows.items() if now >= w.until]
            for cause, _ in over:
                del self._windows[cause]
        return [(w.sample, w.suppressed) for _, w in over if w.suppressed]


_VARYING = re.compile(r"b?'[^']*'|b?\"[^\"]*\"|\[[^\]]*\]|\d+")


def cause(record: logging.LogRecord) -> tuple[Any, ...]:
    """What makes two log lines the same: logger, level, the message without what varies (numbers,
    addresses, quoted values: mitmproxy formats its messages before logging them), the exception."""
    text = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    if not record.args:
        text = _VARYING.sub("#", text[:200])
    exc = record.exc_info[1] if record.exc_info else None
    return (record.name, record.levelno, text, type(exc).__name__ if exc else None, getattr(exc, "errno", None))


def summary(sample: logging.LogRecord, count: int, window: float) -> logging.LogRecord:
    """The line that reports the lines left out: the first of them, without its traceback."""
    message = sample.getMessage().split("\n", 1)[0]
    exc = sample.exc_info[1] if sample.exc_info else None
    if exc is not None:
        message = f"{message} ({type(exc).__name__}: {exc})"
    return logging.makeLogRecord({
        "name": sample.name, "levelno": sample.levelno, "levelname": sample.levelname,
        "msg": f"{count} more like this in the last {window:.0f} s, not written (nog {count} keer): {message}",
        "args": None, "exc_info": None, "created": time.time(), RATE_LIMITED: True})


class FloodFilter(logging.Filter):
    """On one log handler: a line whose cause was written less than a minute ago is left out and
    counted; the count is written once the minute is over."""

    def __init__(self, handler: logging.Handler, window: float = LOG_WINDOW) -> None:
        super().__init__()
        self.handler = handler
        self.limit = RateLimit(window)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, RATE_LIMITED, False):
            return True
        passed, report = self.limit.admit(cause(record), time.monotonic(), record)
        if not passed:
            metrics.LOG_LINES_SUPPRESSED.inc()
        elif report is not None:
            self.handler.handle(summary(report[0], report[1], self.limit.window))
        return passed

    def flush(self, now: float) -> None:
        for sample, count in self.limit.due(now):
            self.handler.handle(summary(sample, count, self.limit.window))


# --- one client connection -----------------------------------------------------------------------
HEAD = "head"        # waiting for a request head: header_seconds, its bytes counted
BUSY = "busy"        # a request in flight: no limit of this addon (the body may take long)
IDLE = "idle"        # kept alive between requests: idle_seconds
STREAM = "stream"    # no HTTP on it (passed-through TLS, a service, a WebSocket): tcp_timeout only


class Watch:
    """One client connection: what it waits for, until when (event-loop time), and the bytes of the
    head that is arriving. Stands in for the connection's reader in mitmproxy's connection table, so
    it sees every byte the client sends before the proxy does; the hooks move it between phases."""

    __slots__ = ("_paused_left", "_timer", "client", "deadline", "flows", "limits", "meter", "multiplexed", "next_layer",
                 "owner", "phase", "reader", "writer", "zone")

    def __init__(self, owner: Fairness, client: connection.Client, zone: str, limits: Limits, now: float,
                 reader: Any = None, writer: Any = None) -> None:
        self.owner = owner
        self.client = client
        self.zone = zone
        self.limits = limits
        self.reader = reader
        self.writer = writer
        self.phase = HEAD
        self.deadline: float | None = now + limits.header_seconds
        self.flows: set[str] = set()
        self.multiplexed = False        # HTTP/2: requests overlap, there is no "next head"
        self.meter: HeadMeter | None = limits.meter()
        self.next_layer: layer.NextLayer | None = None
        self._timer: asyncio.Timeout | None = None
        self._paused_left: float | None = None

    # --- phases (called by the hooks, on the proxy's event loop) --------------------------------
    def _set(self, phase: str, deadline: float | None) -> None:
        self.phase = phase
        self.deadline = deadline
        if self._timer is not None:
            try:
                self._timer.reschedule(deadline)
            except RuntimeError:   # it is firing right now: the read loop looks at the phase again
                pass

    def expect_head(self, now: float) -> None:
        """A new head is due: the connection or the tunnel opened, or the next request began."""
        self.meter = self.limits.meter()
        self._set(HEAD, now + self.limits.header_seconds)

    def started(self, flow_id: str, multiplexed: bool) -> None:
        self.flows.add(flow_id)
        self.multiplexed = self.multiplexed or multiplexed
        if self.phase != STREAM:
            self.meter = None
            self._set(BUSY, None)

    def ended(self, flow_id: str, now: float) -> None:
        self.flows.discard(flow_id)
        if not self.flows and self.phase == BUSY:
            self._set(IDLE, now + self.limits.idle_seconds)

    def stream(self) -> None:
        self.meter = None
        self._set(STREAM, None)

    def judging_tls(self, now: float) -> None:
        """The ClientHello is in and being judged: the clock stops. A connection passed through stays
        a stream; one decrypted (or refused in the handshake) goes on in `tls_started`."""
        if self.phase == HEAD and self.deadline is not None:
            self._paused_left = max(self.deadline - now, 0.0)
            self._set(STREAM, None)

    def tls_started(self, now: float) -> None:
        if self._paused_left is not None:
            left, self._paused_left = self._paused_left, None
            self._set(HEAD, now + left)

    def _carries_no_http(self) -> bool:
        # mitmproxy's own next_layer may have made it a raw stream without a hook of its own
        # (ignore_hosts, tcp_hosts): `layer` is only known after every addon's next_layer ran.
        chosen = self.next_layer.layer if self.next_layer is not None else None
        return isinstance(chosen, (TCPLayer, UDPLayer))

    # --- the reader mitmproxy reads the client from ----------------------------------------------
    async def read(self, n: int = -1) -> bytes:
        assert self.reader is not None
        while True:
            timer = asyncio.timeout_at(self.deadline)
            self._timer = timer
            try:
                async with timer:
                    data: bytes = await self.reader.read(n)
            except TimeoutError:
                if not timer.expired():
                    raise
                await self._deadline_passed()
                continue
            finally:
                self._timer = None
            if data:
                refused = self.admit(data, time.monotonic())
                if refused is not None:
                    await self._refuse_head(refused)
            return data

    def admit(self, data: bytes, now: float) -> str | None:
        """Count bytes from the client: the reason to refuse the head they belong to, or None."""
        if self.phase == IDLE and not self.multiplexed:
            self.expect_head(now)
        meter = self.meter
        if self.phase != HEAD or meter is None:
            return None
        if meter.plain is None:
            meter.plain = not self.client.tls and not data.startswith(TLS_HANDSHAKE)
        return meter.feed(data)

    async def _deadline_passed(self) -> None:
        if self.deadline is None or time.monotonic() < self.deadline:
            return                                   # moved by a hook meanwhile
        if self._carries_no_http():
            self.stream()
            return
        if self.phase == IDLE:
            self.owner.idle_closed(self.zone)
        else:
            self.owner.refused(self.zone, HEADER_TIMEOUT, int(self.limits.header_seconds))
        await self._close("fairness: " + self.phase)

    async def _refuse_head(self, reason: str) -> None:
        meter = self.meter
        limit = self.limits.max_line if reason == REQUEST_LINE else self.limits.max_headers
        self.owner.refused(self.zone, reason, limit)
        writer = self.writer
        if meter is not None and meter.plain and writer is not None and not writer.is_closing():
            writer.write(assemble_response(answer(reason, self.limits)))
            try:
                writer.write_eof()
            except (OSError, RuntimeError, AttributeError):
                pass
            await self._linger()
        await self._close("fairness: " + reason)

    async def _linger(self) -> None:
        assert self.reader is not None
        left = LINGER_BYTES
        try:
            async with asyncio.timeout(LINGER_SECONDS):
                while left > 0:
                    data = await self.reader.read(65536)
                    if not data:
                        return
                    left -= len(data)
        except (TimeoutError, OSError):
            pass

    async def _close(self, why: str) -> None:
        """Close the connection as mitmproxy's own tcp_timeout watchdog does: cancel the task that
        reads it (this one). mitmproxy then closes the socket, tells the layers, and runs
        client_disconnected."""
        task = asyncio.current_task()
        assert task is not None
        task.cancel(why)
        await asyncio.sleep(0)


# --- the addon ------------------------------------------------------------------------------------
_MESSAGES = {
    CONNECTIONS: "fairness: connection refused, its address had %d open already (verbinding geweigerd: te veel "
                 "verbindingen van één adres); zone %s",
    HEADER_TIMEOUT: "fairness: connection closed, no whole request head after %d s (verbinding gesloten: verzoek "
                    "niet op tijd compleet); zone %s",
    REQUEST_LINE: "fairness: 414 for a request line over %d bytes (verzoekregel te lang); zone %s",
    HEADER_SIZE: "fairness: 431 (an encrypted one: closed) for request headers over %d bytes (kopregels te groot); "
                 "zone %s",
}
NOT_ENFORCED = ("fairness: header and idle timeouts are not enforced, mitmproxy's connection table is not there "
                "(tijdslimieten niet actief)")


class Fairness:
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine
        self.watches: dict[str, Watch] = {}               # client connection id -> its watch
        self.open: dict[str, IPAddress] = {}              # client connection id -> its address
        self.per_address: dict[IPAddress, int] = {}
        self._settings: FairnessSettings | None = None
        self._limits = DEFAULT_LIMITS
        self._policy: Any = None
        self._lines = RateLimit()
        self._filters: list[FloodFilter] = []
        self._flusher: asyncio.Task[None] | None = None
        self._said_not_enforced = False

    # --- what is in force ----------------------------------------------------------------------
    def limits(self) -> Limits:
        engine = self.engine.engine
        if engine is None:
            return self._limits
        policy = engine.policy
        if policy is not self._policy:
            self._policy = policy
            for zone in (*policy.zones, policy.guest.name):   # at zero from the start, see metrics.py
                for reason in metrics.FAIRNESS_REASONS:
                    metrics.FAIRNESS_REFUSALS.labels(zone, reason)
                metrics.IDLE_CLOSED.labels(zone)
                metrics.CLIENT_CONNECTIONS.labels(zone)
        settings = policy.settings.fairness
        if settings is not self._settings:
            self._settings, self._limits = settings, Limits.of(settings)
        return self._limits

    def _zone(self, address: IPAddress) -> str:
        engine = self.engine.engine
        return zone_for(engine.policy, address).name if engine is not None else "none"

    def refused(self, zone: str, reason: str, figure: int) -> None:
        metrics.FAIRNESS_REFUSALS.labels(zone, reason).inc()
        self._say((reason, zone), _MESSAGES[reason], figure, zone)

    def idle_closed(self, zone: str) -> None:
        metrics.IDLE_CLOSED.labels(zone).inc()     # routine (browsers keep connections): not logged

    def _say(self, key: tuple[str, str], message: str, *args: Any) -> None:
        passed, report = self._lines.admit(key, time.monotonic(), (message, args))
        if report is not None:
            self._summarise(*report)
        if passed:
            log.warning(message, *args, extra={RATE_LIMITED: True})

    def _summarise(self, sample: tuple[str, tuple[Any, ...]], count: int) -> None:
        message, args = sample
        log.warning("%d more like this in the last %.0f s, not written (nog %d keer): " + message,
                    count, self._lines.window, count, *args, extra={RATE_LIMITED: True})

    # --- connections ---------------------------------------------------------------------------
    def client_connected(self, client: connection.Client) -> None:
        if client.transport_protocol != "tcp" or client.error:
            return
        try:
            address = client_address(str(client.peername[0]))
        except (ValueError, TypeError, IndexError):
            return     # not an IP peer: nothing to count it against
        limits = self.limits()
        count = self.per_address.get(address, 0) + 1
        self.per_address[address] = count
        self.open[client.id] = address
        zone = self._zone(address)
        if count > limits.cap(address):
            client.error = "Poortwachter: te veel verbindingen / too many connections"
            self.refused(zone, CONNECTIONS, count - 1)
            return
        metrics.CLIENT_CONNECTIONS.labels(zone).inc()
        io = _client_io(client)
        watch = Watch(self, client, zone, limits, time.monotonic(), io.reader if io else None,
                      io.writer if io else None)
        self.watches[client.id] = watch
        if io is not None:
            io.reader = watch
        elif not self._said_not_enforced:
            self._said_not_enforced = True
            log.error(NOT_ENFORCED)

    def client_disconnected(self, client: connection.Client) -> None:
        address = self.open.pop(client.id, None)
        if address is not None:
            left = self.per_address.get(address, 1) - 1
            if left > 0:
                self.per_address[address] = left
            else:
                self.per_address.pop(address, None)
        watch = self.watches.pop(client.id, None)
        if watch is not None:
            metrics.CLIENT_CONNECTIONS.labels(watch.zone).dec()

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        watch = self.watches.get(nextlayer.context.client.id)
        if watch is not None:
            watch.next_layer = nextlayer

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        watch = self.watches.get(data.context.client.id)
        if watch is not None:
            watch.judging_tls(time.monotonic())

    def tls_start_client(self, data: tls.TlsData) -> None:
        watch = self.watches.get(data.context.client.id)
        if watch is not None:
            watch.tls_started(time.monotonic())

    # --- requests --------------------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        watch = self.watches.get(flow.client_conn.id)
        multiplexed = flow.request.is_http2 or flow.request.is_http3
        if watch is not None:
            watch.started(flow.id, multiplexed)
        self._judge(flow, watch, close=not multiplexed)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        watch = self.watches.get(flow.client_conn.id)
        if watch is not None:
            watch.started(flow.id, False)
        self._judge(flow, watch, close=True)

    def _judge(self, flow: http.HTTPFlow, watch: Watch | None, close: bool) -> None:
        if flow.response is not None:
            return
        limits = watch.limits if watch is not None else self.limits()
        request = flow.request
        if line_bytes(request) > limits.max_line:
            reason, figure = REQUEST_LINE, limits.max_line
        elif header_bytes(request) > limits.max_headers:
            reason, figure = HEADER_SIZE, limits.max_headers
        else:
            return
        flow.response = answer(reason, limits, close)
        zone = watch.zone if watch is not None else self._zone_of(flow.client_conn)
        self.refused(zone, reason, figure)

    def _zone_of(self, client: connection.Client) -> str:
        try:
            return self._zone(client_address(str(client.peername[0])))
        except (ValueError, TypeError, IndexError):
            return "none"

    def http_connected(self, flow: http.HTTPFlow) -> None:
        watch = self.watches.get(flow.client_conn.id)
        if watch is not None:
            watch.flows.discard(flow.id)
            watch.expect_head(time.monotonic())    # what comes through the tunnel

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._ended(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        watch = self.watches.get(flow.client_conn.id)
        if watch is None:
            return
        if flow.websocket is not None or (flow.response is not None and flow.response.status_code == 101):
            watch.stream()     # upgraded: no more heads on this connection
        else:
            watch.ended(flow.id, time.monotonic())

    def error(self, flow: http.HTTPFlow) -> None:
        self._ended(flow)

    def _ended(self, flow: http.HTTPFlow) -> None:
        watch = self.watches.get(flow.client_conn.id)
        if watch is not None:
            watch.ended(flow.id, time.monotonic())

    def tcp_start(self, flow: Any) -> None:
        watch = self.watches.get(flow.client_conn.id)
        if watch is not None:
            watch.stream()

    websocket_start = tcp_start

    # --- log lines -------------------------------------------------------------------------------
    def running(self) -> None:
        # mitmproxy's terminal log: not its in-memory handlers (legacy log events, the startup error
        # check), and not Poortwachter's own stderr, whose every line is an event someone reads (a
        # reload, a store revision); this addon limits its own lines itself
        for handler in logging.getLogger().handlers:
            if isinstance(handler, TermLogHandler) and not any(isinstance(f, FloodFilter) for f in handler.filters):
                flood = FloodFilter(handler)
                handler.addFilter(flood)
                self._filters.append(flood)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_every(5.0))

    def done(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self.flush(float("inf"))
        for flood in self._filters:
            flood.handler.removeFilter(flood)
        self._filters.clear()

    def flush(self, now: float) -> None:
        """Write the counts of lines left out in windows that are over."""
        for flood in self._filters:
            flood.flush(now)
        for sample, count in self._lines.due(now):
            self._summarise(sample, count)

    async def _flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                self.flush(time.monotonic())
            except Exception:   # a summary line must never stop the flushing
                log.exception("fairness: writing the counts of left-out log lines failed")


def _client_io(client: connection.Client) -> Any:
    """The client's entry (reader, writer, handler task) in mitmproxy's connection table: the
    proxyserver addon's `connections`, by client id, and that handler's `transports`."""
    master = getattr(ctx, "master", None)
    proxyserver = master.addons.get("proxyserver") if master is not None else None
    handler = getattr(proxyserver, "connections", {}).get(client.id)
    io = getattr(handler, "transports", {}).get(client)
    return io if io is not None and getattr(io, "reader", None) is not None else None
