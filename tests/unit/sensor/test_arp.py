"""ARP spoofing: an address changing MAC, a foreign MAC claiming the gateway; no finding on a refresh."""

from __future__ import annotations

from poortwachter.sensor.arp import ArpWatch
from poortwachter.sensor.observations import ArpClaim, Finding

from .helpers import settings, zone_of

GATEWAY, GATEWAY_MAC = "10.20.0.1", "02:00:5e:00:00:01"
LAPTOP, LAPTOP_MAC, ATTACKER_MAC = "10.20.3.4", "02:00:00:00:03:04", "02:00:00:00:66:66"


def watch(**kw: object) -> ArpWatch:
    return ArpWatch(settings(gateways=[{"address": GATEWAY, "mac": GATEWAY_MAC}]), zone_of, **kw)  # type: ignore[arg-type]


def test_a_normal_refresh_finds_nothing() -> None:
    arp = watch()
    assert [arp.observe(ArpClaim(t, LAPTOP, LAPTOP_MAC)) for t in (0.0, 30.0, 60.0)] == [None, None, None]
    assert arp.observe(ArpClaim(90.0, GATEWAY, GATEWAY_MAC)) is None


def test_an_address_that_changes_mac_counts_each_change() -> None:
    arp = watch()
    arp.observe(ArpClaim(0.0, LAPTOP, LAPTOP_MAC))
    assert arp.observe(ArpClaim(5.0, LAPTOP, ATTACKER_MAC)) == Finding("arp_spoofing", "mac_changed", "klas")
    assert arp.observe(ArpClaim(6.0, LAPTOP, ATTACKER_MAC)) is None          # same claim again: no change
    assert arp.observe(ArpClaim(7.0, LAPTOP, LAPTOP_MAC.upper())) == Finding("arp_spoofing", "mac_changed", "klas")


def test_the_gateway_claimed_by_another_mac_even_gratuitously() -> None:
    arp = watch()
    # the first claim ever seen for the gateway address: no history needed, the policy knows its MAC
    assert arp.observe(ArpClaim(0.0, GATEWAY, ATTACKER_MAC)) == Finding("arp_spoofing", "gateway_claimed", "klas")
    assert arp.observe(ArpClaim(1.0, GATEWAY, GATEWAY_MAC)) is None          # not also a mac_changed
    assert arp.observe(ArpClaim(2.0, GATEWAY, ATTACKER_MAC)) == Finding("arp_spoofing", "gateway_claimed", "klas")


def test_without_gateways_a_gateway_spoof_is_still_a_mac_change() -> None:
    arp = ArpWatch(settings(), zone_of)
    arp.observe(ArpClaim(0.0, GATEWAY, GATEWAY_MAC))
    assert arp.observe(ArpClaim(1.0, GATEWAY, ATTACKER_MAC)) == Finding("arp_spoofing", "mac_changed", "klas")


def test_an_address_reused_after_the_binding_expired_is_new() -> None:
    arp = watch(remember=600.0)
    arp.observe(ArpClaim(0.0, LAPTOP, LAPTOP_MAC))
    assert arp.observe(ArpClaim(601.0, LAPTOP, ATTACKER_MAC)) is None          # DHCP gave it to another device
    assert arp.observe(ArpClaim(700.0, LAPTOP, LAPTOP_MAC)) is not None       # ... and now it flips back


def test_probes_claim_nothing() -> None:
    arp = watch()
    arp.observe(ArpClaim(0.0, "0.0.0.0", LAPTOP_MAC))
    assert arp.observe(ArpClaim(1.0, "0.0.0.0", ATTACKER_MAC)) is None
    assert len(arp) == 0


def test_memory_is_bounded_and_pruned() -> None:
    arp = watch(max_bindings=100, remember=60.0)
    for i in range(1000):
        arp.observe(ArpClaim(float(i) / 100, f"10.20.{i // 256}.{i % 256}", LAPTOP_MAC))
    assert len(arp) == 100
    arp.prune(10.0 + 59.0)      # the newest was seen at 9.99: all still fresh
    assert len(arp) == 100
    arp.prune(9.5 + 60.0)
    assert 0 < len(arp) < 100
    arp.prune(1000.0)
    assert len(arp) == 0
