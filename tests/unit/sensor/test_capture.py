"""Frames built with scapy -> the observations the detectors get; the kernel filter's shape."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from poortwachter.sensor.capture import HEADERS, WHOLE, attach_filter, bpf_program, observations
from poortwachter.sensor.observations import OTHER, SYN, SYN_ACK, ArpClaim, DhcpReply, IpPacket

MAC, GW_MAC = "02:00:00:00:03:04", "02:00:5e:00:00:01"
ETH = Ether(src=MAC, dst=GW_MAC)


def seen(frame: object, when: float = 7.0, snap: int | None = None) -> tuple[object, ...]:
    data = bytes(frame)   # type: ignore[call-overload]
    return observations(data[:snap] if snap else data, when)


def test_tcp_syn_syn_ack_and_data() -> None:
    syn = ETH / IP(src="10.20.3.4", dst="10.40.0.10") / TCP(sport=40000, dport=22, flags="S")
    assert seen(syn) == (IpPacket(7.0, "10.20.3.4", "10.40.0.10", 40, SYN, 40000, 22),)
    answer = ETH / IP(src="10.40.0.10", dst="10.20.3.4") / TCP(sport=22, dport=40000, flags="SA")
    assert seen(answer) == (IpPacket(7.0, "10.40.0.10", "10.20.3.4", 40, SYN_ACK, 22, 40000),)
    data = ETH / IP(src="8.8.4.4", dst="10.20.3.4") / TCP(flags="PA") / Raw(b"x" * 1400)
    assert seen(data) == (IpPacket(7.0, "8.8.4.4", "10.20.3.4", 1440, OTHER),)
    rst = ETH / IP(src="10.40.0.10", dst="10.20.3.4") / TCP(flags="RA")
    assert seen(rst)[0].tcp == OTHER  # type: ignore[attr-defined]


def test_sizes_come_from_the_ip_header_of_a_truncated_copy() -> None:
    big = ETH / IP(src="8.8.4.4", dst="10.20.3.4", options=b"\x01" * 8) / TCP(flags="S") / Raw(b"x" * 1400)
    assert seen(big, snap=HEADERS) == (IpPacket(7.0, "8.8.4.4", "10.20.3.4", 1448, SYN, 20, 80),)
    v6 = ETH / IPv6(src="2001:db8::1", dst="fd00:20::5") / TCP(sport=443, dport=50000, flags="SA") / Raw(b"y" * 1000)
    assert seen(v6, snap=HEADERS) == (IpPacket(7.0, "2001:db8::1", "fd00:20::5", 1060, SYN_ACK, 443, 50000),)


def test_vlan_tagged_frames() -> None:
    frame = Ether(src=MAC, dst=GW_MAC) / Dot1Q(vlan=20) / IP(src="10.20.3.4", dst="10.40.0.10") / TCP(dport=445, flags="S")
    assert seen(frame) == (IpPacket(7.0, "10.20.3.4", "10.40.0.10", 40, SYN, 20, 445),)


def test_a_later_fragment_is_only_volume() -> None:
    frag = ETH / IP(src="8.8.4.4", dst="10.20.3.4", proto=6, frag=185) / Raw(b"\x00\x16\x9c\x40" + b"\x00" * 9 + b"\x02" + b"z" * 500)
    assert seen(frag) == (IpPacket(7.0, "8.8.4.4", "10.20.3.4", 534, OTHER),)


@pytest.mark.parametrize("op", [1, 2])
def test_arp_requests_and_replies_are_claims(op: int) -> None:
    frame = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=MAC.upper(), psrc="10.20.3.4", pdst="10.20.0.1")
    assert seen(frame) == (ArpClaim(7.0, "10.20.3.4", MAC),)


def test_gratuitous_arp_and_probes() -> None:
    gratuitous = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=MAC, psrc="10.20.0.1", pdst="10.20.0.1")
    assert seen(gratuitous) == (ArpClaim(7.0, "10.20.0.1", MAC),)
    probe = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC, psrc="0.0.0.0", pdst="10.20.3.4")
    assert seen(probe) == (ArpClaim(7.0, "0.0.0.0", MAC),)   # the detector skips it


@pytest.mark.parametrize(("message", "name"), [("offer", "offer"), ("ack", "ack")])
def test_dhcp_server_replies(message: str, name: str) -> None:
    reply = (Ether(src=GW_MAC.upper(), dst="ff:ff:ff:ff:ff:ff") / IP(src="10.20.0.1", dst="255.255.255.255")
             / UDP(sport=67, dport=68) / BOOTP(op=2, yiaddr="10.20.3.4") / DHCP(options=[("message-type", message), "end"]))
    packet, dhcp = seen(reply)
    assert dhcp == DhcpReply(7.0, "10.20.0.1", GW_MAC, name)
    assert packet == IpPacket(7.0, "10.20.0.1", "255.255.255.255", len(reply[IP]))


def test_client_messages_and_other_dhcp_types_are_not_replies() -> None:
    discover = (Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                / UDP(sport=68, dport=67) / BOOTP(op=1) / DHCP(options=[("message-type", "discover"), "end"]))
    nak = (Ether(src=GW_MAC) / IP(src="10.20.0.1", dst="255.255.255.255")
           / UDP(sport=67, dport=68) / BOOTP(op=2) / DHCP(options=[("message-type", "nak"), "end"]))
    assert [type(o) for o in seen(discover)] == [IpPacket]
    assert [type(o) for o in seen(nak)] == [IpPacket]


def test_other_frames_and_garbage_give_nothing() -> None:
    assert seen(Ether(type=0x88CC) / Raw(b"lldp" * 10)) == ()
    assert observations(b"\x00" * 10, 1.0) == ()
    assert observations(bytes(ETH)[:12] + b"\x08\x00" + b"\x45\x00", 1.0) == ()


def test_the_filter_program_is_well_formed() -> None:
    program = bpf_program()
    for i, (code, jt, jf, _k) in enumerate(program):
        if code & 0x07 == 0x05:   # BPF_JMP: forward, inside the program
            assert i + 1 + max(jt, jf) < len(program)
    returns = [k for code, _jt, _jf, k in program if code == 0x06]
    assert returns == [0, HEADERS, WHOLE]
    assert program[-1][0] == 0x06


def test_truncated_or_odd_arp_gives_nothing_and_raises_nothing() -> None:
    frame = bytes(Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=MAC, psrc="10.20.3.4", pdst="10.20.0.1"))
    for end in range(14, 14 + 28):   # an empty body would be this machine's own address in scapy
        assert observations(frame[:end], 1.0) == (), end
    tagged = bytes(Ether(src=MAC) / Dot1Q(vlan=20) / ARP(op=2, hwsrc=MAC, psrc="10.20.3.4"))
    assert observations(tagged[:18], 1.0) == ()
    long_hw = Ether(src=MAC) / ARP(op=2, hwlen=8, hwsrc=b"\x02" * 8, psrc="10.20.3.4")
    long_ip = Ether(src=MAC) / ARP(op=2, plen=16, hwsrc=MAC, psrc=b"\x0a" * 16, pdst=b"\x0a" * 16, ptype=0x0800)
    assert seen(long_hw) == () and seen(long_ip) == ()


def test_a_short_reply_from_port_67_is_volume_only() -> None:
    short = ETH / IP(src="10.20.66.66", dst="10.20.3.4") / UDP(sport=67, dport=68) / Raw(b"\x02" + b"\x00" * 20)
    assert seen(short) == (IpPacket(7.0, "10.20.66.66", "10.20.3.4", 49),)


def test_a_tagged_packet_longer_than_its_frame_is_forged() -> None:
    # Tagged frames come whole: the IP length must fit in them. A lie would count 64 kB a frame.
    v4 = ETH / Dot1Q(vlan=20) / IP(src="8.8.4.4", dst="10.20.3.4", len=65535) / TCP(flags="A")
    v6 = ETH / Dot1Q(vlan=20) / Dot1Q(vlan=7) / IPv6(src="2001:db8::1", dst="fd00:20::5", plen=65000) / TCP()
    assert seen(v4) == () and seen(v6) == ()
    padded = ETH / Dot1Q(vlan=20) / IP(src="8.8.4.4", dst="10.20.3.4") / TCP(flags="A") / Raw(b"\x00" * 6)
    padded[IP].len = 40   # Ethernet padding after a short packet is no lie
    assert seen(padded) == (IpPacket(7.0, "8.8.4.4", "10.20.3.4", 40, OTHER),)


def _through_the_filter(frame: object) -> bytes | None:
    """What the kernel's filter keeps of a frame (None: dropped): the real program on a socket."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with sender, receiver:
        attach_filter(receiver)
        sender.send(bytes(frame))   # type: ignore[call-overload]
        try:
            return receiver.recv(1 << 17, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None


def test_the_kernel_filter_cuts_drops_and_refuses_forged_lengths() -> None:
    data = ETH / IP(src="8.8.4.4", dst="10.20.3.4") / TCP(flags="A") / Raw(b"x" * 1400)
    assert _through_the_filter(data) == bytes(data)[:HEADERS]
    v6 = ETH / IPv6(src="2001:db8::1", dst="fd00:20::5") / TCP() / Raw(b"y" * 1000)
    assert _through_the_filter(v6) == bytes(v6)[:HEADERS]
    small = ETH / IP(src="10.20.3.4", dst="8.8.4.4") / TCP(flags="A") / Raw(b"\x00" * 6)
    small[IP].len = 40    # padded to the Ethernet minimum
    assert _through_the_filter(small) == bytes(small)
    arp = Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=MAC, psrc="10.20.3.4") / Raw(b"\x00" * 200)
    assert _through_the_filter(arp) == bytes(arp)
    offer = (ETH / IP(src="10.20.0.1", dst="255.255.255.255") / UDP(sport=67, dport=68) / BOOTP(op=2)
             / DHCP(options=[("message-type", "offer"), "end"]) / Raw(b"\x00" * 300))
    assert _through_the_filter(offer) == bytes(offer)
    assert _through_the_filter(Ether(type=0x88CC) / Raw(b"lldp" * 10)) is None
    # A header claiming more than the frame holds: a few of these would count as gigabytes.
    forged_v4 = ETH / IP(src="10.20.3.5", dst="10.20.3.4", len=65535) / TCP(flags="A") / Raw(b"z" * 100)
    forged_v6 = ETH / IPv6(src="fd00:20::6", dst="fd00:20::5", plen=65535) / TCP() / Raw(b"z" * 100)
    assert _through_the_filter(forged_v4) is None
    assert _through_the_filter(forged_v6) is None
