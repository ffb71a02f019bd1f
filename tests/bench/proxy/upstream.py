"""A lean HTTP/1.1 keep-alive upstream for the proxy benchmark: one HTTP and one HTTPS port.

Runs as its own process (`python upstream.py CERT KEY`), so it never shares an interpreter lock
with anything measured. It answers every GET with the same 200 and a fixed body, parsing no more
than the end of the request head: it must cost far less per request than the proxy in front of it
(bench_proxy.py measures that directly). Prints "HTTP_PORT HTTPS_PORT" on stdout when listening.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys

BODY = b"x" * 1024  # a small page: the proxy's per-request cost dominates, as intended
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Cache-Control: no-store\r\n\r\n" % len(BODY)) + BODY


class KeepAlive(asyncio.Protocol):
    """Answers each complete request head; bodies are not expected (the client sends only GETs)."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        answers = buf.count(b"\r\n\r\n")
        if answers:
            assert self.transport is not None
            self.transport.write(RESPONSE * answers)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        self.buf = buf


async def serve(cert: str, key: str) -> None:
    loop = asyncio.get_running_loop()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    plain = await loop.create_server(KeepAlive, "127.0.0.1", 0, backlog=1024)
    tls = await loop.create_server(KeepAlive, "127.0.0.1", 0, ssl=context, backlog=1024)
    ports = [s.sockets[0].getsockname()[1] for s in (plain, tls)]
    print(*ports, flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
