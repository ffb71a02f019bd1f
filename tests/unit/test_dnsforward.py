"""Asking the upstream resolvers (poortwachter.dnsforward), against real DNS servers on loopback.

Each test starts its own small server (UDP and TCP on one random port of 127.0.0.1, or ::1) whose
answers the test scripts: the real answer, forged datagrams, a truncated answer, silence. Every
wait has a deadline; a resolver that must time out gets a short per-resolver timeout, and no test
asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from poortwachter.dnsforward import (
    Resolver,
    UpstreamError,
    build_query,
    exchange,
    matches,
    parse_resolver,
    question_end,
    system_resolvers,
    truncated,
)
from poortwachter.policy.model import Dns

DEADLINE = 5.0       # the most any one wait in these tests may take before the test fails
SHORT = 0.3          # per-resolver timeout where a resolver is meant to time out
A, HTTPS = 1, 65


# ---- messages ---------------------------------------------------------------------------------

def reply(query: bytes, address: str = "192.0.2.1", *, ident: bytes | None = None, response: bool = True,
          tc: bool = False, question: bytes | None = None) -> bytes:
    """An answer to `query` with one A record; each field can be made wrong on purpose."""
    flags = (0x8000 if response else 0) | 0x0100 | 0x0080 | (0x0200 if tc else 0)
    header = (ident if ident is not None else query[:2]) + struct.pack("!HHHHH", flags, 1, 0 if tc else 1, 0, 0)
    record = b"" if tc else (b"\xc0\x0c" + struct.pack("!HHIH", A, 1, 60, 4) + socket.inet_aton(address))
    return header + (question if question is not None else query[12:question_end(query)]) + record


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def other_id(query: bytes) -> bytes:
    return bytes([query[0] ^ 0xFF, query[1]])


# ---- a scripted upstream ----------------------------------------------------------------------

UdpScript = Callable[[bytes, tuple[str, int]], list[bytes]]
TcpScript = Callable[[bytes], bytes]


class Upstream:
    """A DNS server on loopback: UDP and TCP on the same port, as a resolver is."""

    def __init__(self, udp: UdpScript | None = None, tcp: TcpScript | None = None) -> None:
        self.udp_script, self.tcp_script = udp, tcp
        self.udp_queries: list[bytes] = []
        self.udp_peers: list[tuple[str, int]] = []
        self.tcp_queries: list[bytes] = []
        self.got_udp, self.got_tcp = asyncio.Event(), asyncio.Event()
        self.resolver = Resolver("", 0)

    async def start(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(50):     # a TCP port whose UDP twin is free too
            self._tcp = await asyncio.start_server(self._talk, host, 0)
            port = self._tcp.sockets[0].getsockname()[1]
            try:
                self._udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), local_addr=(host, port))
            except OSError:
                self._tcp.close()
                await self._tcp.wait_closed()
                continue
            self.resolver = Resolver(host, port)
            return
        raise RuntimeError("no free port pair on loopback")

    async def close(self) -> None:
        self._udp.close()
        self._tcp.close()
        await self._tcp.wait_closed()

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            query = await reader.readexactly(size)
            self.tcp_queries.append(query)
            self.got_tcp.set()
            if self.tcp_script is not None:
                writer.write(self.tcp_script(query))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.upstream.udp_queries.append(data)
        self.upstream.udp_peers.append(addr)
        self.upstream.got_udp.set()
        if self.upstream.udp_script is not None:
            for datagram in self.upstream.udp_script(data, addr):
                self.transport.sendto(datagram, addr)     # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def upstream(udp: UdpScript | None = None, tcp: TcpScript | None = None,
                   host: str = "127.0.0.1") -> AsyncIterator[Upstream]:
    server = Upstream(udp, tcp)
    await server.start(host)
    try:
        yield server
    finally:
        await server.close()


def answering(address: str = "192.0.2.1") -> UdpScript:
    return lambda query, _peer: [reply(query, address)]


def silent(_query: bytes, _peer: tuple[str, int]) -> list[bytes]:
    return []


def truncating(query: bytes, _peer: tuple[str, int]) -> list[bytes]:
    return [reply(query, tc=True)]


def closed_port() -> Resolver:
    """A loopback UDP port nobody listens on (the kernel answers with port unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return Resolver("127.0.0.1", s.getsockname()[1])


def ask(query: bytes, resolvers: list[Resolver], timeout: float = SHORT) -> bytes:
    return asyncio.run(_within_deadline(exchange(query, resolvers, timeout)))


async def _within_deadline(awaitable):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(awaitable, DEADLINE)


# ---- exchange over UDP ------------------------------------------------------------------------

def test_the_resolvers_answer_comes_back_unchanged() -> None:
    query = build_query("www.example.com", A)

    async def main() -> None:
        async with upstream(answering("192.0.2.7")) as server:
            answer = await _within_deadline(exchange(query, [server.resolver], SHORT))
            assert answer == reply(query, "192.0.2.7")
            assert server.udp_queries == [query]            # forwarded as it was, once
    asyncio.run(main())


def test_forged_and_stray_datagrams_before_the_answer_are_ignored() -> None:
    """Only a datagram with the question's id, the response bit and the same question is the
    answer; the others (a spoofer guessing, a late answer to an earlier question) are dropped."""
    query = build_query("www.example.com", A)
    wrong_question = build_query("evil.example", A)

    def script(q: bytes, _peer: tuple[str, int]) -> list[bytes]:
        return [
            reply(q, "6.6.6.1", ident=other_id(q)),                                     # wrong id
            reply(q, "6.6.6.2", question=wrong_question[12:question_end(wrong_question)]),  # other question
            reply(q, "6.6.6.3", response=False),                                        # not a response
            q[:2] + b"\x81\x80",                                                        # a header cut short
            b"",
            reply(q, "192.0.2.1"),
        ]

    async def main() -> None:
        async with upstream(script) as server:
            answer = await _within_deadline(exchange(query, [server.resolver], DEADLINE))
            assert answer == reply(query, "192.0.2.1")
    asyncio.run(main())


def test_only_forged_datagrams_is_no_answer() -> None:
    query = build_query("www.example.com", A)

    def script(q: bytes, _peer: tuple[str, int]) -> list[bytes]:
        return [reply(q, ident=other_id(q)), reply(q, response=False)]

    async def main() -> None:
        async with upstream(script) as server:
            with pytest.raises(UpstreamError) as info:
                await _within_deadline(exchange(query, [server.resolver], SHORT))
            assert str(server.resolver) in str(info.value) and "TimeoutError" in str(info.value)
    asyncio.run(main())


def test_an_answer_from_another_port_is_not_the_resolvers() -> None:
    """Right id, right question, but sent from a port the question did not go to: an off-path
    spoofer who learnt the id. The answer must come from the resolver asked."""
    query = build_query("www.example.com", A)
    spoofer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoofer.bind(("127.0.0.1", 0))

    def script(q: bytes, peer: tuple[str, int]) -> list[bytes]:
        spoofer.sendto(reply(q, "6.6.6.6"), peer)
        return []

    async def main() -> None:
        async with upstream(script) as server:
            with pytest.raises(UpstreamError):
                await _within_deadline(exchange(query, [server.resolver], SHORT))
            assert server.udp_queries == [query]
    try:
        asyncio.run(main())
    finally:
        spoofer.close()


def test_the_question_may_come_back_in_other_case() -> None:
    """Resolvers may randomise the case of the name (DNS 0x20); the name is the same."""
    query = build_query("www.example.com", A)

    def script(q: bytes, _peer: tuple[str, int]) -> list[bytes]:
        return [reply(q, question=q[12:question_end(q) - 4].upper() + q[question_end(q) - 4:question_end(q)])]

    async def main() -> None:
        async with upstream(script) as server:
            answer = await _within_deadline(exchange(query, [server.resolver], DEADLINE))
            assert b"WWW" in answer
    asyncio.run(main())


def test_every_question_goes_out_from_a_fresh_source_port() -> None:
    """A spoofer must guess the port as well as the id (Kaminsky): no socket is reused."""

    async def main() -> None:
        async with upstream(answering()) as server:
            for _ in range(5):
                await _within_deadline(exchange(build_query("www.example.com", A), [server.resolver], DEADLINE))
            assert len({port for _, port in server.udp_peers}) > 1
    asyncio.run(main())


# ---- truncation and TCP -----------------------------------------------------------------------

def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    query = build_query("big.example", HTTPS)

    async def main() -> None:
        async with upstream(truncating, lambda q: framed(reply(q, "192.0.2.99"))) as server:
            answer = await _within_deadline(exchange(query, [server.resolver], DEADLINE))
            assert answer == reply(query, "192.0.2.99") and not truncated(answer)
            assert server.tcp_queries == [query]
    asyncio.run(main())


def test_a_complete_udp_answer_does_not_go_to_tcp() -> None:
    query = build_query("small.example", A)

    async def main() -> None:
        async with upstream(answering(), lambda q: framed(reply(q))) as server:
            await _within_deadline(exchange(query, [server.resolver], DEADLINE))
            assert server.tcp_queries == []
    asyncio.run(main())


def test_a_forged_tcp_answer_counts_as_a_failure_and_the_next_resolver_answers() -> None:
    query = build_query("big.example", A)

    async def main() -> None:
        def forged(q: bytes) -> bytes:
            return framed(reply(q, "6.6.6.6", ident=other_id(q)))

        async with upstream(truncating, forged) as first, upstream(answering("192.0.2.2")) as second:
            answer = await _within_deadline(exchange(query, [first.resolver, second.resolver], SHORT))
            assert answer == reply(query, "192.0.2.2")
            assert first.tcp_queries == [query]
    asyncio.run(main())


def test_a_tcp_answer_cut_short_fails_over() -> None:
    query = build_query("big.example", A)

    async def main() -> None:
        def cut(q: bytes) -> bytes:
            return struct.pack("!H", 300) + reply(q)[:20]        # 300 bytes promised, 20 sent

        async with upstream(truncating, cut) as first, upstream(answering("192.0.2.3")) as second:
            answer = await _within_deadline(exchange(query, [first.resolver, second.resolver], SHORT))
            assert answer == reply(query, "192.0.2.3")
    asyncio.run(main())


def test_truncated_udp_and_no_tcp_is_an_error_not_the_truncated_answer() -> None:
    """A truncated answer is never handed on as if it were whole."""
    query = build_query("big.example", A)

    async def main() -> None:
        async with upstream(truncating, None) as server:   # TCP closes without a word
            with pytest.raises(UpstreamError):
                await _within_deadline(exchange(query, [server.resolver], SHORT))
    asyncio.run(main())


# ---- failing over -----------------------------------------------------------------------------

def test_a_silent_first_resolver_fails_over_to_the_second() -> None:
    query = build_query("www.example.com", A)

    async def main() -> None:
        async with upstream(silent) as dead, upstream(answering("192.0.2.4")) as alive:
            answer = await _within_deadline(exchange(query, [dead.resolver, alive.resolver], SHORT))
            assert answer == reply(query, "192.0.2.4")
            await asyncio.wait_for(dead.got_udp.wait(), DEADLINE)    # it was asked first, in vain
    asyncio.run(main())


def test_a_refusing_first_resolver_fails_over_to_the_second() -> None:
    query = build_query("www.example.com", A)

    async def main() -> None:
        async with upstream(answering("192.0.2.5")) as alive:
            answer = await _within_deadline(exchange(query, [closed_port(), alive.resolver], DEADLINE))
            assert answer == reply(query, "192.0.2.5")
    asyncio.run(main())


def test_resolvers_are_asked_in_order_and_the_first_answer_wins() -> None:
    query = build_query("www.example.com", A)

    async def main() -> None:
        async with upstream(answering("192.0.2.6")) as first, upstream(answering("192.0.2.7")) as second:
            answer = await _within_deadline(exchange(query, [first.resolver, second.resolver], DEADLINE))
            assert answer == reply(query, "192.0.2.6")
            assert second.udp_queries == []
    asyncio.run(main())


def test_no_resolver_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="no resolver"):
        ask(build_query("www.example.com", A), [])


def test_all_resolvers_failing_names_each_but_not_the_question() -> None:
    """The error goes to the log: it names the resolvers and what went wrong, never the name a
    client asked for (004 art. 22: no log reveals who looked up what)."""
    query = build_query("geheime-naam.example", A)

    async def main() -> None:
        async with upstream(silent) as dead:
            refusing = closed_port()
            with pytest.raises(UpstreamError) as info:
                await _within_deadline(exchange(query, [dead.resolver, refusing], SHORT))
            message = str(info.value)
            assert str(dead.resolver) in message and str(refusing) in message
            assert "geheime" not in message
    asyncio.run(main())


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_an_ipv6_resolver_over_udp_and_tcp() -> None:
    query = build_query("v6.example", A)

    async def main() -> None:
        async with upstream(truncating, lambda q: framed(reply(q, "192.0.2.66")),
                            host="::1") as server:
            answer = await _within_deadline(exchange(query, [server.resolver], DEADLINE))
            assert answer == reply(query, "192.0.2.66")
            assert str(server.resolver).startswith("[::1]:")
    asyncio.run(main())


# ---- the pure parts ---------------------------------------------------------------------------

def test_build_query_is_one_recursive_question() -> None:
    query = build_query("www.Example.com.", HTTPS)
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", query[:12])
    assert (flags, qd, an, ns, ar) == (0x0100, 1, 0, 0, 0)        # a query, recursion desired
    assert query[12:] == b"\x03www\x07Example\x03com\x00" + struct.pack("!HH", HTTPS, 1)
    assert question_end(query) == len(query)


def test_build_query_ids_are_not_predictable() -> None:
    ids = {build_query("www.example.com", A)[:2] for _ in range(32)}
    assert len(ids) > 1


def test_question_end_rejects_what_has_no_readable_question() -> None:
    query = build_query("www.example.com", A)
    no_question = query[:4] + b"\x00\x00" + query[6:]
    compressed = query[:12] + b"\xc0\x0c" + query[-4:]
    for message in (b"", query[:11], query[:12], no_question, query[:16], compressed):
        with pytest.raises(ValueError):
            question_end(message)


def test_matches_requires_id_response_bit_and_question() -> None:
    query = build_query("www.example.com", A)
    assert matches(query, reply(query))
    assert not matches(query, reply(query, ident=other_id(query)))
    assert not matches(query, reply(query, response=False))
    assert not matches(query, reply(query)[:question_end(query) - 1])
    assert not matches(query, reply(query, question=build_query("www.example.org", A)[12:]))
    assert not matches(query, reply(query, question=build_query("www.example.com", 28)[12:]))    # AAAA, not A


def test_matches_never_raises_on_a_malformed_query() -> None:
    assert not matches(b"\x00" * 5, b"\x00" * 40)
    assert not matches(b"", b"")


def test_matches_compares_the_question_type_exactly() -> None:
    """Only the name is case-insensitive. An answer to another type (0x0061) is not the answer to
    an HTTPS question (0x0041), whatever an ASCII lower-casing of the bytes says."""
    query = build_query("www.example.com", HTTPS)
    forged_type = query[12:question_end(query) - 4] + struct.pack("!HH", 0x0061, 1)
    assert not matches(query, reply(query, question=forged_type))


def test_truncated_reads_the_tc_bit() -> None:
    query = build_query("www.example.com", A)
    assert truncated(reply(query, tc=True))
    assert not truncated(reply(query))
    assert not truncated(b"") and not truncated(b"\x00\x00")


@pytest.mark.parametrize(("value", "resolver"), [
    ("9.9.9.9", Resolver("9.9.9.9", 53)),
    ("9.9.9.9:5353", Resolver("9.9.9.9", 5353)),
    ("2620:fe::fe", Resolver("2620:fe::fe", 53)),
    ("[2620:fe::fe]:5353", Resolver("2620:fe::fe", 5353)),
    ("[2620:00fe:0::00fe]", Resolver("2620:fe::fe", 53)),
])
def test_parse_resolver(value: str, resolver: Resolver) -> None:
    assert parse_resolver(value) == resolver


@pytest.mark.parametrize("value", ["dns.quad9.net", "9.9.9.9:", "9.9.9.9:dns", "[9.9.9]:53", ""])
def test_parse_resolver_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_resolver(value)


@pytest.mark.parametrize("value", ["9.9.9.9", "9.9.9.9:53", "2620:fe::fe", "[2620:fe::fe]:5353", "[::1]"])
def test_the_policys_spelling_parses_to_the_same_resolver(value: str) -> None:
    """The policy model normalises `dns.upstream` ("[2620:fe::fe]:53"); what it stores must parse to
    the resolver the admin wrote."""
    [stored] = Dns(upstream=[value]).upstream
    assert parse_resolver(stored) == parse_resolver(value)


def test_resolver_prints_as_host_and_port() -> None:
    assert str(Resolver("9.9.9.9", 53)) == "9.9.9.9:53"
    assert str(Resolver("2620:fe::fe", 53)) == "[2620:fe::fe]:53"


def test_system_resolvers_reads_nameserver_lines(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_bytes(b"# nameserver 1.1.1.1\n"
                     b"search school.example\n"
                     b"nameserver 9.9.9.9\n"
                     b"nameserver fe80::1%eth0\n"
                     b"nameserver not-an-address\n"
                     b"nameserver\n"
                     b"  nameserver   149.112.112.112   # second\n"
                     b"nameserver \xff\xfe\n"
                     b"options edns0\n")
    assert system_resolvers(conf) == [Resolver("9.9.9.9", 53), Resolver("fe80::1", 53),
                                      Resolver("149.112.112.112", 53)]


def test_system_resolvers_without_a_file_is_empty(tmp_path: Path) -> None:
    assert system_resolvers(tmp_path / "missing") == []
    assert system_resolvers(tmp_path) == []          # a directory: unreadable, not a crash
