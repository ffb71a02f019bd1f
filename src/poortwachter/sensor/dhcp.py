"""Rogue DHCP (004 art. 12): an OFFER or ACK from a server the school did not list.

`sensor.dhcp_servers` lists addresses and/or MACs. A reply is the school's when its IP source is
listed (if any addresses are listed) and its Ethernet source is listed (if any MACs are): listing
both pins the server down. With a relay the replies come from the relay, usually the router, so
that is the address to list. An empty list means no DHCP belongs on these networks at all.

Without a list the sensor cannot know the school's server, so it decides only what it can: the
first server it sees is taken as the school's and every other one counts (a VLAN has one DHCP
server or relay). Configure the list to be sure; the log says which choice is in force.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from ..policy.model import MAC, Sensor
from .observations import DhcpReply, Finding
from .zones import NO_ZONE


class DhcpWatch:
    def __init__(self, settings: Sensor, zone_of: Callable[[str], str | None]) -> None:
        self._first: tuple[str, str] | None = None
        self.configure(settings, zone_of)

    def configure(self, settings: Sensor, zone_of: Callable[[str], str | None]) -> None:
        self.zone_of = zone_of
        self.listed = settings.dhcp_servers is not None
        entries = settings.dhcp_servers or []
        self.macs = frozenset(e for e in entries if MAC.match(e))
        self.addresses = frozenset(str(ipaddress.ip_address(e)) for e in entries if not MAC.match(e))

    def observe(self, reply: DhcpReply) -> Finding | None:
        mac = reply.mac.lower()
        if self.listed:
            known = ((not self.addresses or reply.server in self.addresses)
                     and (not self.macs or mac in self.macs)
                     and bool(self.addresses or self.macs))
        else:
            if self._first is None:
                self._first = (reply.server, mac)
            known = (reply.server, mac) == self._first
        if known:
            return None
        return Finding("rogue_dhcp", "rogue", self.zone_of(reply.server) or NO_ZONE)
