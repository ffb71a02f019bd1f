"""The listening side of the school's resolver: DNS over UDP and TCP on one address, asyncio only.

Every question (raw bytes) and the address of the client who asked go to `answer`, whose bytes go
back; `answer` returning None sends nothing. One UDP socket serves every client, so a client that
reuses a source port is simply asked again (no per-client connection state to go stale), and a
flood costs at most `max_pending` questions in flight before new ones are dropped (counted by
the `dropped` callback). TCP connections carry length-prefixed messages (RFC 1035 4.2.2) and are
closed after `idle` seconds without a question.

Why not mitmproxy's DNS mode: it keeps a connection per client address and port; after 20 s of
quiet it closes its side, but its UDP layer goes on delivering that address and port's datagrams
to the closed connection for up to a minute, so a client that reuses a port in that window gets no
answer at all (mitmproxy_rs 0.12.15, tests/unit/test_dnsserver.py shows the reuse answered here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

log = logging.getLogger("poortwachter")

Answer = Callable[[bytes, str, bool], Awaitable[bytes | None]]   # (question, client address, over TCP)
MAX_PENDING = 4096          # questions in flight over UDP before new ones are dropped
IDLE = 10.0                 # seconds a TCP connection may wait for its next question
MAX_TCP_MESSAGES = 100      # questions one TCP connection may ask


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answer: Answer, max_pending: int, dropped: Callable[[], None]) -> None:
        self.answer = answer
        self.max_pending = max_pending
        self.dropped = dropped
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(self.pending) >= self.max_pending:
            self.dropped()
            return
        task = asyncio.get_running_loop().create_task(self._reply(data, addr))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _reply(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = await self.answer(data, str(addr[0]), False)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:   # an ICMP error for an earlier reply: nothing to do
        pass


async def _tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: Answer) -> None:
    peer = writer.get_extra_info("peername")
    try:
        for _ in range(MAX_TCP_MESSAGES):
            head = await asyncio.wait_for(reader.readexactly(2), IDLE)
            data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), IDLE)
            reply = await answer(data, str(peer[0]), True)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _udp_socket(host: str, port: int) -> socket.socket:
    """One UDP socket: on `host`, or ("") on every address of both families (IPv4 clients then
    appear as ::ffff:a.b.c.d, which poortwachter.gateway.client_address reads as IPv4)."""
    if host == "":
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        host = "::"
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class DnsServer:
    """UDP and TCP listeners on `host`:`port`; host "" means every address of both families."""

    def __init__(self, host: str, port: int, answer: Answer, dropped: Callable[[], None] = lambda: None,
                 max_pending: int = MAX_PENDING) -> None:
        self.host, self.port = host, port
        self.answer = answer
        self.dropped = dropped
        self.max_pending = max_pending
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.Server] = []

    async def start(self) -> DnsServer:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.answer, self.max_pending, self.dropped), sock=_udp_socket(self.host, self.port))
        self._udp.append(transport)   # type: ignore[arg-type]
        # host None: asyncio opens one socket per family
        self._tcp.append(await asyncio.start_server(lambda r, w: _tcp(r, w, self.answer), self.host or None,
                                                    self.port, reuse_address=True))
        return self

    def close(self) -> None:
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
        self._udp.clear()
        self._tcp.clear()
