"""What the capture hands to the detectors, and what the detectors find.

Plain tuples without scapy, so the detectors can be tested and timed with hand-made values.
Times are seconds since the epoch (the kernel's capture time of the frame).
"""

from __future__ import annotations

from typing import NamedTuple

# IpPacket.tcp
OTHER, SYN, SYN_ACK = 0, 1, 2


class IpPacket(NamedTuple):
    """An IPv4 or IPv6 packet: its addresses, its size in IP bytes, and whether it opens or
    accepts a TCP connection (SYN without ACK, SYN with ACK)."""

    time: float
    src: str
    dst: str
    size: int
    tcp: int = OTHER
    sport: int = 0
    dport: int = 0


class ArpClaim(NamedTuple):
    """The sender binding of an ARP request or reply (gratuitous ones included): `mac` says it
    has `address`."""

    time: float
    address: str
    mac: str


class DhcpReply(NamedTuple):
    """A DHCP OFFER or ACK, and where it came from (IP source, Ethernet source)."""

    time: float
    server: str
    mac: str
    message: str  # "offer" | "ack"


class Finding(NamedTuple):
    """Something a detector found. `subject` is the client a verdict is about (excessive
    downloads only, for the download limit in the store); it never goes into a metric or a log."""

    detector: str  # arp_spoofing | rogue_dhcp | port_scan | excessive_download
    kind: str      # mac_changed | gateway_claimed | rogue | scan | sweep | excessive
    zone: str      # the zone name, or "none"
    subject: str | None = None
