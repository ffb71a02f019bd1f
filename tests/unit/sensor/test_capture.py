"""Frames built with scapy -> the observations the detectors get; the kernel filter's shape."""

from __future__ import annotations

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from poortwachter.sensor.capture import HEADERS, WHOLE, bpf_program, observations
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
