"""Ask the upstream resolvers: one raw DNS message out, the matching answer back.

The school's resolver (addons/resolver.py) decides every name first and only then forwards the
question, unchanged, to the resolvers the policy names (`dns.upstream`), in order: UDP from a fresh
socket (a new random source port per question), TCP when the answer comes back truncated. An answer
counts only when its id and question match the question sent, so a forged or stray datagram is
ignored. Asyncio only: no proxy, no framework.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import struct
from pathlib import Path
from typing import NamedTuple

TIMEOUT = 2.0          # seconds per resolver before the next one is asked
MAX_TCP_ANSWER = 65535


class Resolver(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class UpstreamError(Exception):
    """No resolver gave a usable answer (the message names no client and no name)."""


def parse_resolver(value: str) -> Resolver:
    """ "9.9.9.9", "9.9.9.9:53", "2620:fe::fe" or "[2620:fe::fe]:5353" (as policy/model.py checks)."""
    host, port = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError("not a resolver address")
        port = rest[1:] if rest else "53"
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    return Resolver(str(ipaddress.ip_address(host)), int(port))


def system_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Resolver]:
    """The gateway's own resolvers, for a policy that names none."""
    found: list[Resolver] = []
    try:
        lines = resolv_conf.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                found.append(Resolver(str(ipaddress.ip_address(fields[1].split("%", 1)[0])), 53))
            except ValueError:
                continue
    return found


def question_end(message: bytes) -> int:
    """Offset just past the first question of a message (raises ValueError if it has none)."""
    if len(message) < 12 or struct.unpack_from("!H", message, 4)[0] < 1:
        raise ValueError("no question")
    at = 12
    while True:
        if at >= len(message):
            raise ValueError("question cut short")
        size = message[at]
        if size == 0:
            return at + 5           # the root label, then type and class
        if size & 0xC0:
            raise ValueError("compressed question")
        at += 1 + size


def matches(query: bytes, answer: bytes) -> bool:
    """Is `answer` a response to `query`: same id, the response bit, the same question?"""
    try:
        end = question_end(query)
    except ValueError:
        return False
    return (len(answer) >= end and answer[:2] == query[:2] and bool(answer[2] & 0x80)
            and answer[12:end - 4].lower() == query[12:end - 4].lower() and answer[end - 4:end] == query[end - 4:end])


def truncated(answer: bytes) -> bool:
    return len(answer) > 2 and bool(answer[2] & 0x02)


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, query: bytes) -> None:
        self.query = query
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.done.done() and matches(self.query, data):
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


async def _udp(query: bytes, resolver: Resolver, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(lambda: _Answer(query),
                                                              remote_addr=(resolver.host, resolver.port))
    try:
        transport.sendto(query)
        return await asyncio.wait_for(protocol.done, timeout)
    finally:
        transport.close()


async def _tcp(query: bytes, resolver: Resolver, timeout: float) -> bytes:
    async def talk() -> bytes:
        reader, writer = await asyncio.open_connection(resolver.host, resolver.port)
        try:
            writer.write(struct.pack("!H", len(query)) + query)
            await writer.drain()
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            return await reader.readexactly(min(size, MAX_TCP_ANSWER))
        finally:
            writer.close()
    answer = await asyncio.wait_for(talk(), timeout)
    if not matches(query, answer):
        raise UpstreamError("answer does not match the question")
    return answer


async def exchange(query: bytes, resolvers: list[Resolver], timeout: float = TIMEOUT) -> bytes:
    """The first matching answer of the resolvers, asked in order; raises UpstreamError."""
    if not resolvers:
        raise UpstreamError("no resolver configured")
    failures: list[str] = []
    for resolver in resolvers:
        try:
            answer = await _udp(query, resolver, timeout)
            if truncated(answer):
                answer = await _tcp(query, resolver, timeout)
            return answer
        except (OSError, TimeoutError, asyncio.IncompleteReadError, UpstreamError) as exc:
            failures.append(f"{resolver}: {type(exc).__name__}")
    raise UpstreamError("; ".join(failures))


def build_query(name: str, qtype: int) -> bytes:
    """A recursive question for `name` (normalised, ASCII) of type `qtype`, with a random id."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split(".") if label)
    header = struct.pack("!HHHHHH", secrets.randbelow(65536), 0x0100, 1, 0, 0, 0)
    return header + labels + b"\x00" + struct.pack("!HH", qtype, 1)
