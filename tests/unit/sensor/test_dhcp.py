"""Rogue DHCP: replies from unlisted servers; the listed server, by address and/or MAC, is quiet."""

from __future__ import annotations

from poortwachter.sensor.dhcp import DhcpWatch
from poortwachter.sensor.observations import DhcpReply, Finding

from .helpers import settings, zone_of

SERVER, SERVER_MAC = "10.0.0.2", "02:00:00:00:00:02"
RELAY, RELAY_MAC = "10.20.0.1", "02:00:5e:00:00:01"
ROGUE = Finding("rogue_dhcp", "rogue", "klas")


def test_the_listed_server_and_relay_are_quiet_others_are_rogue() -> None:
    dhcp = DhcpWatch(settings(dhcp_servers=[SERVER, RELAY]), zone_of)
    assert dhcp.observe(DhcpReply(0.0, SERVER, SERVER_MAC, "offer")) is None
    assert dhcp.observe(DhcpReply(0.0, RELAY, RELAY_MAC, "ack")) is None
    assert dhcp.observe(DhcpReply(1.0, "10.20.3.4", "02:00:00:00:03:04", "offer")) == ROGUE
    assert dhcp.observe(DhcpReply(1.0, "10.20.3.4", "02:00:00:00:03:04", "ack")) == ROGUE


def test_listing_the_mac_too_catches_a_spoofed_source_address() -> None:
    dhcp = DhcpWatch(settings(dhcp_servers=[RELAY, RELAY_MAC.upper()]), zone_of)
    assert dhcp.observe(DhcpReply(0.0, RELAY, RELAY_MAC, "offer")) is None
    assert dhcp.observe(DhcpReply(0.0, RELAY, "02:00:00:00:66:66", "offer")) == ROGUE


def test_a_mac_only_list() -> None:
    dhcp = DhcpWatch(settings(dhcp_servers=[RELAY_MAC]), zone_of)
    assert dhcp.observe(DhcpReply(0.0, "10.20.0.9", RELAY_MAC, "offer")) is None
    assert dhcp.observe(DhcpReply(0.0, RELAY, "02:00:00:00:66:66", "offer")) == ROGUE


def test_an_empty_list_means_no_dhcp_belongs_here() -> None:
    dhcp = DhcpWatch(settings(dhcp_servers=[]), zone_of)
    assert dhcp.observe(DhcpReply(0.0, RELAY, RELAY_MAC, "offer")) == ROGUE


def test_without_a_list_the_first_server_is_the_schools() -> None:
    dhcp = DhcpWatch(settings(), zone_of)
    assert dhcp.observe(DhcpReply(0.0, RELAY, RELAY_MAC, "offer")) is None
    assert dhcp.observe(DhcpReply(9.0, RELAY, RELAY_MAC, "ack")) is None
    assert dhcp.observe(DhcpReply(10.0, "10.20.3.4", "02:00:00:00:03:04", "offer")) == ROGUE
    assert dhcp.observe(DhcpReply(11.0, "192.168.1.1", "02:00:00:00:03:05", "offer")) == Finding("rogue_dhcp", "rogue", "none")
