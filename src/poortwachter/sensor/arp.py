"""ARP spoofing (004 art. 12: het netwerk niet verstoren): a device that claims someone else's address.

- mac_changed: an address answered for by one MAC is claimed by another while the first binding
  is still fresh (seen within `remember` seconds). Every change counts, so an attacker and the
  real owner taking turns count every turn.
- gateway_claimed: a MAC other than the configured one claims a router address from the policy
  (`sensor.gateways`). Only this kind is counted for those addresses, and the wrong MAC never
  becomes their binding.

Gratuitous ARP (a device announcing its own address) is a claim like any other; ARP probes
(sender 0.0.0.0, RFC 5227) claim nothing and are skipped. Bindings live in a bounded dict, least
recently seen first, and are forgotten after `remember` seconds of silence: an address a DHCP
server hands to another device after that is a new binding, not a change.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from ..policy.model import Sensor
from .observations import ArpClaim, Finding
from .zones import NO_ZONE

REMEMBER_SECONDS = 900.0   # longer than any ARP cache entry lives without being refreshed
MAX_BINDINGS = 65536       # a /16 of clients


class ArpWatch:
    def __init__(self, settings: Sensor, zone_of: Callable[[str], str | None], *,
                 remember: float = REMEMBER_SECONDS, max_bindings: int = MAX_BINDINGS) -> None:
        self.remember = remember
        self.max_bindings = max_bindings
        self._bindings: OrderedDict[str, tuple[str, float]] = OrderedDict()  # address -> (mac, last seen)
        self.configure(settings, zone_of)

    def configure(self, settings: Sensor, zone_of: Callable[[str], str | None]) -> None:
        self.gateways = {g.address: g.mac for g in settings.gateways}
        self.zone_of = zone_of

    def __len__(self) -> int:
        return len(self._bindings)

    def observe(self, claim: ArpClaim) -> Finding | None:
        address, mac, now = claim.address, claim.mac.lower(), claim.time
        if address == "0.0.0.0":
            return None
        expected = self.gateways.get(address)
        if expected is not None:
            if mac != expected:
                return Finding("arp_spoofing", "gateway_claimed", self.zone_of(address) or NO_ZONE)
            return None
        bindings = self._bindings
        previous = bindings.pop(address, None)
        bindings[address] = (mac, now)
        if previous is None:
            if len(bindings) > self.max_bindings:
                bindings.popitem(last=False)
            return None
        old_mac, seen = previous
        if old_mac != mac and now - seen <= self.remember:
            return Finding("arp_spoofing", "mac_changed", self.zone_of(address) or NO_ZONE)
        return None

    def prune(self, now: float) -> None:
        """Forget bindings not seen for `remember` seconds (the oldest are first)."""
        bindings = self._bindings
        cutoff = now - self.remember
        while bindings:
            address, (_, seen) = next(iter(bindings.items()))
            if seen >= cutoff:
                return
            del bindings[address]
