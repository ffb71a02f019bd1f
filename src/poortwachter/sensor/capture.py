"""Frames off the wire -> observations, with scapy's Linux capture socket and sniffer.

The socket carries a small classic BPF program, so the kernel drops what no detector needs
(anything but ARP, IPv4 and IPv6) and copies only the first 128 bytes of ordinary IP packets:
their sizes come from the IP header, not from the copy. A header that claims more bytes than its
frame holds is forged (the kernel's own IP stack drops such packets): believed, a few small frames
would count as gigabytes and put a download limit on a client that fetched nothing. The filter
drops those; tagged frames, which it passes whole, are checked here. ARP frames and DHCP server
replies (UDP source port 67) are copied whole.

scapy owns the socket and the sniffer thread, and dissects ARP and DHCP, where its parsers earn
their keep. Every other frame is read at a few fixed offsets: dissecting an Ethernet/IP/TCP frame
with scapy costs about 200 µs on the gateway's class of machine, which would cap the sensor at some
5,000 frames a second (docs/sensor.md has the figures).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from scapy.arch.linux import L2ListenSocket
from scapy.data import MTU, SO_ATTACH_FILTER
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.l2 import ARP
from scapy.libs.structures import bpf_insn, sock_fprog
from scapy.sendrecv import AsyncSniffer
from scapy.sessions import DefaultSession

from .observations import OTHER, SYN, SYN_ACK, ArpClaim, DhcpReply, IpPacket

Observation = IpPacket | ArpClaim | DhcpReply

HEADERS = 128               # bytes copied of an ordinary IP frame: Ethernet, VLAN, IP with options, TCP flags
WHOLE = 0x40000             # the whole frame
BATCH = 256                 # frames read per wake-up of the sniffer, at most
RECEIVE_BUFFER = 16 << 20   # about 100 ms of a full 1 Gbit/s link while the sensor is busy
SO_RCVBUFFORCE, SOL_PACKET, PACKET_STATISTICS = 33, 263, 6   # asm-generic/socket.h, linux/if_packet.h

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
ARP_BODY = 28               # an Ethernet/IPv4 ARP body: 8 bytes, then 6 + 4 + 6 + 4 bytes of addresses
BOOTP_FIXED = 240           # BOOTP's fixed fields and the DHCP magic cookie
_UNCHECKED = 1 << 17        # more than any IP packet's length: the kernel filter checked it
DHCP_MESSAGES = {2: "offer", 5: "ack"}

# --- the kernel filter ---------------------------------------------------------------------------
# Classic BPF opcodes (linux/filter.h) and the program, as `tcpdump -d` would print it for
# "arp or vlan or (ip and udp src port 67) -> whole; ip or ip6 -> 128 bytes; else drop", where
# an IP packet longer than its frame (14 + IPv4 total length, 54 + IPv6 payload length) is dropped.
_LDH_ABS, _LDB_ABS, _LDH_IND, _LDXB_MSH, _LD_LEN = 0x28, 0x30, 0x48, 0xB1, 0x80
_ADD_K, _TAX = 0x04, 0x07
_JEQ, _JSET, _JGE_X, _RET = 0x15, 0x45, 0x3D, 0x06

_PROGRAM: list[tuple[str | None, int, int, str | None, str | None]] = [
    # label    opcode     k        jump if true / false (None: next instruction)
    (None,     _LDH_ABS,  12,      None, None),       # EtherType
    (None,     _JEQ,      ETH_ARP, "whole", None),
    (None,     _JEQ,      ETH_VLAN, "whole", None),   # tags left in the frame (mirror of a trunk)
    (None,     _JEQ,      ETH_QINQ, "whole", None),
    (None,     _JEQ,      ETH_IPV6, "ipv6", None),
    (None,     _JEQ,      ETH_IPV4, None, "drop"),
    (None,     _LDH_ABS,  16,      None, None),       # IPv4 total length
    (None,     _ADD_K,    14,      None, None),
    (None,     _TAX,      0,       None, None),
    (None,     _LD_LEN,   0,       None, None),       # the frame's length
    (None,     _JGE_X,    0,       None, "drop"),     # holds the packet, or it is forged
    (None,     _LDB_ABS,  23,      None, None),       # IPv4 protocol
    (None,     _JEQ,      17,      None, "headers"),  # UDP
    (None,     _LDH_ABS,  20,      None, None),       # flags and fragment offset
    (None,     _JSET,     0x1FFF,  "headers", None),  # a later fragment has no UDP header
    (None,     _LDXB_MSH, 14,      None, None),       # X = IPv4 header length
    (None,     _LDH_IND,  14,      None, None),       # UDP source port
    (None,     _JEQ,      67,      "whole", "headers"),
    ("ipv6",   _LDH_ABS,  18,      None, None),       # IPv6 payload length
    (None,     _ADD_K,    54,      None, None),
    (None,     _TAX,      0,       None, None),
    (None,     _LD_LEN,   0,       None, None),
    (None,     _JGE_X,    0,       "headers", "drop"),
    ("drop",   _RET,      0,       None, None),
    ("headers", _RET,     HEADERS, None, None),
    ("whole",  _RET,      WHOLE,   None, None),
]


def bpf_program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions, jumps resolved to relative offsets."""
    labels = {label: i for i, (label, *_rest) in enumerate(_PROGRAM) if label}
    out = []
    for i, (_label, code, k, yes, no) in enumerate(_PROGRAM):
        jt = labels[yes] - i - 1 if yes else 0
        jf = labels[no] - i - 1 if no else 0
        out.append((code, jt, jf, k))
    return out


def attach_filter(sock: socket.socket) -> None:
    program = bpf_program()
    insns = (bpf_insn * len(program))(*(bpf_insn(code, jt, jf, k) for code, jt, jf, k in program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, sock_fprog(len(program), insns))


# --- the socket ----------------------------------------------------------------------------------
class Frame:
    """A captured frame as sniff() hands it on: the bytes and the kernel's capture time."""

    __slots__ = ("data", "time", "sniffed_on")

    def __init__(self, data: bytes, when: float) -> None:
        self.data = data
        self.time = when
        self.sniffed_on: Any = None


class FrameSocket(L2ListenSocket):
    """scapy's Linux capture socket (promiscuous, both directions) with the filter above and a
    large buffer, handing sniff() raw frames instead of dissected packets."""

    def __init__(self, interface: str) -> None:
        super().__init__(iface=interface, promisc=True, nofilter=1)
        attach_filter(self.ins)
        try:   # beyond net.core.rmem_max (root or CAP_NET_ADMIN); scapy's 64 KiB holds ~60 frames
            self.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            self.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._buffer = bytearray(MTU)

    def dropped(self) -> int:
        """Frames the kernel dropped since the last call because the sensor fell behind."""
        stats = self.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)   # struct tpacket_stats, reset on read
        return int.from_bytes(stats[4:8], sys.byteorder)

    def recv(self, x: int = MTU, **kwargs: Any) -> Frame | None:  # type: ignore[override]
        return next(self.drain(1), None)

    def drain(self, limit: int = BATCH) -> Iterator[Frame]:
        """The frames waiting in the socket, up to `limit`, without blocking. Each is stamped
        with the time it is read: the windows are seconds long, a batch lasts milliseconds."""
        recv_into, buffer = self.ins.recv_into, self._buffer
        for _ in range(limit):
            try:
                size = recv_into(buffer, MTU, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            yield Frame(bytes(buffer[:size]), time.time())


class Batches(DefaultSession):
    """One wake-up of sniff() reads every waiting frame, not one: a select() and scapy's
    per-packet bookkeeping cost more than the sensor's own work on a frame."""

    def recv(self, sock: FrameSocket) -> Iterator[Frame]:  # type: ignore[override]
        return sock.drain()


def sniffer(sock: FrameSocket, on_frame: Callable[[Frame], None]) -> AsyncSniffer:
    """A started background sniffer calling on_frame for every frame; stop() ends it."""
    sniff = AsyncSniffer(opened_socket=sock, prn=on_frame, store=False, session=Batches)
    sniff.start()
    return sniff


# --- frames -> observations ------------------------------------------------------------------------
_ntoa = socket.inet_ntoa


def _ntop6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


def observations(data: bytes, when: float) -> tuple[Observation, ...]:
    """What the detectors need to know about one Ethernet frame (nothing for other frames)."""
    if len(data) < 14:
        return ()
    off = 12
    ethertype = (data[12] << 8) | data[13]
    while ethertype in (ETH_VLAN, ETH_QINQ) and len(data) >= off + 8:
        off += 4
        ethertype = (data[off] << 8) | data[off + 1]
    off += 2
    # A tagged frame passed the kernel filter whole and unchecked: here is what it really holds.
    room = len(data) - off if off > 14 else _UNCHECKED
    if ethertype == ETH_IPV4:
        return _ipv4(data, off, when, room)
    if ethertype == ETH_IPV6:
        return _ipv6(data, off, when, room)
    if ethertype == ETH_ARP:
        return _arp(data, off, when)
    return ()


def _ipv4(data: bytes, off: int, when: float, room: int) -> tuple[Observation, ...]:
    if len(data) < off + 20:
        return ()
    header = (data[off] & 0x0F) * 4
    size = (data[off + 2] << 8) | data[off + 3] or len(data) - off
    if size > room:   # forged
        return ()
    proto = data[off + 9]
    src, dst = _ntoa(data[off + 12:off + 16]), _ntoa(data[off + 16:off + 20])
    first_fragment = not (((data[off + 6] & 0x1F) << 8) | data[off + 7])
    t = off + header
    if proto == 6 and first_fragment:
        return (_tcp(data, t, when, src, dst, size),)
    if proto == 17 and first_fragment and len(data) >= t + 8 and data[t] == 0 and data[t + 1] == 67:
        packet = IpPacket(when, src, dst, size)
        reply = _dhcp(data, t + 8, when, src)
        return (packet, reply) if reply is not None else (packet,)
    return (IpPacket(when, src, dst, size),)


def _ipv6(data: bytes, off: int, when: float, room: int) -> tuple[Observation, ...]:
    if len(data) < off + 40:
        return ()
    size = ((data[off + 4] << 8) | data[off + 5]) + 40
    if size > room:   # forged
        return ()
    src, dst = _ntop6(data[off + 8:off + 24]), _ntop6(data[off + 24:off + 40])
    if data[off + 6] == 6:   # TCP right after the fixed header (no extension headers)
        return (_tcp(data, off + 40, when, src, dst, size),)
    return (IpPacket(when, src, dst, size),)


def _tcp(data: bytes, t: int, when: float, src: str, dst: str, size: int) -> IpPacket:
    if len(data) < t + 14:
        return IpPacket(when, src, dst, size)
    flags = data[t + 13] & 0x12   # SYN and ACK
    kind = SYN if flags == 0x02 else SYN_ACK if flags == 0x12 else OTHER
    if kind == OTHER:
        return IpPacket(when, src, dst, size)
    return IpPacket(when, src, dst, size, kind, (data[t] << 8) | data[t + 1], (data[t + 2] << 8) | data[t + 3])


def _dhcp(data: bytes, off: int, when: float, server: str) -> DhcpReply | None:
    if len(data) < off + BOOTP_FIXED:   # scapy raises on a short one: the packet would go uncounted
        return None
    bootp = BOOTP(data[off:])
    if bootp.op != 2 or DHCP not in bootp:
        return None
    for option in bootp[DHCP].options:
        if isinstance(option, tuple) and option[0] == "message-type":
            message = DHCP_MESSAGES.get(option[1])
            if message is None:
                return None
            return DhcpReply(when, server, _mac(data[6:12]), message)
    return None


def _arp(data: bytes, off: int, when: float) -> tuple[Observation, ...]:
    # Only a whole Ethernet/IPv4 body: scapy raises on a short one, fills an empty one with this
    # machine's own addresses, and gives other address lengths as bytes.
    if len(data) < off + ARP_BODY or data[off + 4] != 6 or data[off + 5] != 4:
        return ()
    arp = ARP(data[off:])
    if arp.hwtype != 1 or arp.ptype != ETH_IPV4 or arp.op not in (1, 2):
        return ()
    return (ArpClaim(when, arp.psrc, arp.hwsrc.lower()),)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
