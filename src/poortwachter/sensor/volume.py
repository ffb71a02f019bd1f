"""Traffic per zone, and excessive downloading per client (004 art. 13: overmatig downloaden).

Direction is seen from the zone: bytes to an address in a zone are that zone's `down`, bytes from
it its `up` (traffic between two zones counts for both). Outside every zone the zone is "none":
a packet from a public address to a non-public one is `down`, anything else `up`.

Per client (an address in a zone) the bytes received are summed over a sliding window of
`BUCKETS` slots (window / 12 each), in memory only: the dict is bounded, least recently active
first, and clients silent for a whole window are pruned. A client whose sum reaches the policy's
`bytes` is found once; it can be found again after its sum has dropped below the threshold.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from ..policy.model import Sensor
from .observations import Finding, IpPacket
from .zones import NO_ZONE

BUCKETS = 12
MAX_CLIENTS = 65536


class Share(NamedTuple):
    """Whose bytes a packet's are: the zone that sent them (up) and the zone that got them (down)."""

    up: str | None
    down: str | None


class _Client:
    __slots__ = ("slots", "bucket", "total", "found")

    def __init__(self, bucket: int) -> None:
        self.slots = [0] * BUCKETS
        self.bucket = bucket
        self.total = 0
        self.found = False


class VolumeWatch:
    def __init__(self, settings: Sensor, zone_of: Callable[[str], str | None],
                 is_public: Callable[[str], bool], *, max_clients: int = MAX_CLIENTS) -> None:
        self.max_clients = max_clients
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self.configure(settings, zone_of, is_public)

    def configure(self, settings: Sensor, zone_of: Callable[[str], str | None],
                  is_public: Callable[[str], bool]) -> None:
        download = settings.excessive_download
        self.threshold = download.bytes
        width = download.window / BUCKETS
        if getattr(self, "width", width) != width:
            self._clients.clear()   # slots of another width cannot be carried over
        self.width = width
        self.zone_of = zone_of
        self.is_public = is_public

    def __len__(self) -> int:
        return len(self._clients)

    def share(self, packet: IpPacket) -> Share:
        up, down = self.zone_of(packet.src), self.zone_of(packet.dst)
        if up is None and down is None:
            if self.is_public(packet.src) and not self.is_public(packet.dst):
                return Share(None, NO_ZONE)
            return Share(NO_ZONE, None)
        return Share(up, down)

    def received(self, client: str, zone: str, size: int, now: float) -> Finding | None:
        """`client` in `zone` got `size` bytes at `now`: a finding when that makes too many."""
        bucket = int(now // self.width)
        clients = self._clients
        state = clients.get(client)
        if state is None:
            state = clients[client] = _Client(bucket)
            if len(clients) > self.max_clients:
                clients.popitem(last=False)
        else:
            clients.move_to_end(client)
            if bucket != state.bucket:
                self._advance(state, bucket)
        state.slots[bucket % BUCKETS] += size
        state.total += size
        if state.total >= self.threshold:
            if not state.found:
                state.found = True
                return Finding("excessive_download", "excessive", zone, client)
        else:
            state.found = False
        return None

    @staticmethod
    def _advance(state: _Client, bucket: int) -> None:
        """Empty the slots that fell out of the window between the client's last bucket and now."""
        slots = state.slots
        steps = bucket - state.bucket
        if steps >= BUCKETS or steps < 0:   # a whole window of silence (or the clock went back)
            slots[:] = [0] * BUCKETS
            state.total = 0
        else:
            for b in range(state.bucket + 1, bucket + 1):
                i = b % BUCKETS
                state.total -= slots[i]
                slots[i] = 0
        state.bucket = bucket

    def total(self, client: str, now: float) -> int:
        """Bytes the client received within the window ending now (0 when not tracked)."""
        state = self._clients.get(client)
        if state is None:
            return 0
        self._advance(state, int(now // self.width))
        return state.total

    def prune(self, now: float) -> None:
        """Forget clients that received nothing for a whole window (least recently active first)."""
        clients = self._clients
        oldest = int(now // self.width) - BUCKETS
        while clients:
            client, state = next(iter(clients.items()))
            if state.bucket > oldest:
                return
            del clients[client]
