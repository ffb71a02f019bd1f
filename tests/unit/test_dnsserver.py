"""The listening side of the school's resolver (poortwachter.dnsserver): one UDP socket and a TCP
listener on loopback, an `answer` function of the test's, real sockets as clients."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from poortwachter.dnsserver import DnsServer

HEADER = struct.Struct("!HHHHHH")


def question(ident: int, name: str) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


class Loop:
    """An event loop in a thread, serving a DnsServer whose answer echoes the question's name."""

    def __init__(self, delay: float = 0.0, max_pending: int = 4096) -> None:
        self.loop = asyncio.new_event_loop()
        self.asked: list[tuple[str, bool]] = []
        self.dropped = 0
        self.delay = delay
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()

        async def answer(data: bytes, peer: str, tcp: bool) -> bytes | None:
            self.asked.append((peer, tcp))
            if self.delay:
                await asyncio.sleep(self.delay)
            if data == b"silence":
                return None
            return b"answer:" + data

        def dropped() -> None:
            self.dropped += 1
        self.server = asyncio.run_coroutine_threadsafe(
            DnsServer("127.0.0.1", self.port, answer, dropped, max_pending).start(), self.loop).result(5)

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.close()


def _udp(port: int, payload: bytes, source_port: int = 0, timeout: float = 3.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", source_port))
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def test_udp_questions_get_their_answers_from_the_asking_address(served: Loop) -> None:
    q = question(7, "www.example.com")
    assert _udp(served.port, q) == b"answer:" + q
    assert served.asked == [("127.0.0.1", False)]


def test_a_reused_source_port_and_id_get_their_own_answers(served: Loop) -> None:
    """A forwarder with a port pool asks again from the same port with the same message id and
    another name: each question is handed on as it came (the gateway's end-to-end test checks the
    answers themselves: tests/e2e/test_resolver.py)."""
    port = _free_udp_port()
    first, second = question(4711, "a.example.com"), question(4711, "b.example.com")
    assert _udp(served.port, first, port) == b"answer:" + first
    assert _udp(served.port, second, port) == b"answer:" + second


def test_tcp_carries_several_length_prefixed_questions(served: Loop) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=3) as s:
        for ident in (1, 2, 3):
            q = question(ident, f"n{ident}.example.com")
            s.sendall(struct.pack("!H", len(q)) + q)
            size = struct.unpack("!H", _read(s, 2))[0]
            assert _read(s, size) == b"answer:" + q
    assert [tcp for _, tcp in served.asked] == [True, True, True]


def test_no_answer_sends_nothing_and_tcp_closes(served: Loop) -> None:
    assert _udp(served.port, b"silence", timeout=0.5) is None
    with socket.create_connection(("127.0.0.1", served.port), timeout=3) as s:
        s.sendall(struct.pack("!H", 7) + b"silence")
        assert s.recv(10) == b""


def test_a_flood_is_capped_and_counted_and_the_server_stays_useful() -> None:
    """A client that sends questions faster than they are answered cannot make the resolver hold
    more than max_pending of them: the rest are dropped, counted, and later questions answered."""
    slow = Loop(delay=0.5, max_pending=20)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(200):
                s.sendto(question(i, "flood.example.com"), ("127.0.0.1", slow.port))
        deadline = time.monotonic() + 5
        while slow.dropped < 180 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.dropped == 180 and len(slow.asked) == 20
        q = question(999, "after.example.com")       # once the flood is worked off, answered again
        deadline = time.monotonic() + 10
        while (answer := _udp(slow.port, q, timeout=1)) is None and time.monotonic() < deadline:
            pass
        assert answer == b"answer:" + q
    finally:
        slow.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data
