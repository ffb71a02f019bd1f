"""Address -> zone name, with the policy's own longest-prefix lookup (CompiledPolicy.zone_of).

Capture hands addresses over as text; parsing text into an address costs more than the lookup,
so both are cached per address (bounded: cleared when full, as the policy's own cache is)."""

from __future__ import annotations

import ipaddress

from ..policy.compiled import CompiledPolicy

NO_ZONE = "none"  # the zone label of traffic outside every zone
_CACHE_SIZE = 65536


class Zones:
    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy
        self.names = tuple(policy.zones)
        self._cache: dict[str, str | None] = {}
        self._public: dict[str, bool] = {}

    def of(self, address: str) -> str | None:
        """The zone an address is in, or None outside every zone (and for what is no address)."""
        try:
            return self._cache[address]
        except KeyError:
            pass
        try:
            zone = self.policy.zone_of(ipaddress.ip_address(address))
        except ValueError:
            zone = None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        name = self._cache[address] = zone.name if zone is not None else None
        return name

    def is_public(self, address: str) -> bool:
        """A globally routed address (the internet side), as opposed to a school or link address."""
        try:
            return self._public[address]
        except KeyError:
            pass
        try:
            public = ipaddress.ip_address(address).is_global
        except ValueError:
            public = False
        if len(self._public) >= _CACHE_SIZE:
            self._public.clear()
        self._public[address] = public
        return public
