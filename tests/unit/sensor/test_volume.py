"""Traffic per zone and direction; excessive downloading per client over a sliding window."""

from __future__ import annotations

from poortwachter.sensor.observations import Finding, IpPacket
from poortwachter.sensor.volume import BUCKETS, Share, VolumeWatch

from .helpers import settings, zone_of

CLIENT, OTHER_CLIENT, SITE = "10.20.3.4", "10.20.3.5", "8.8.4.4"


def is_public(address: str) -> bool:
    return not address.startswith(("10.", "192.168."))


def watch(window: int = 3600, limit: int = 1000, **kw: int) -> VolumeWatch:
    return VolumeWatch(settings(excessive_download={"window": window, "bytes": limit}), zone_of, is_public, **kw)


def test_share_is_seen_from_the_zone() -> None:
    volume = watch()
    assert volume.share(IpPacket(0, SITE, CLIENT, 1500)) == Share(None, "klas")
    assert volume.share(IpPacket(0, CLIENT, SITE, 60)) == Share("klas", None)
    assert volume.share(IpPacket(0, "10.40.0.9", CLIENT, 60)) == Share("personeel", "klas")
    assert volume.share(IpPacket(0, SITE, "192.168.1.9", 60)) == Share(None, "none")
    assert volume.share(IpPacket(0, "192.168.1.9", SITE, 60)) == Share("none", None)


def test_crossing_the_threshold_is_found_once() -> None:
    volume = watch(limit=10_000)
    found = [volume.received(CLIENT, "klas", 1500, 1.0 + i) for i in range(20)]
    assert found[:6] == [None] * 6
    assert found[6] == Finding("excessive_download", "excessive", "klas", CLIENT)   # 7 x 1500 >= 10,000
    assert found[7:] == [None] * 13
    assert volume.received(OTHER_CLIENT, "klas", 1500, 21.0) is None           # per client


def test_bytes_older_than_the_window_drop_out() -> None:
    volume = watch(window=3600, limit=10_000)
    for minute in range(120):      # 100 bytes a minute for two hours: never 10,000 in an hour
        assert volume.received(CLIENT, "klas", 100, minute * 60.0) is None
    assert 5_000 <= volume.total(CLIENT, 120 * 60.0) <= 6_100
    assert volume.total(CLIENT, 120 * 60.0 + 3600) == 0


def test_found_again_only_after_dropping_below() -> None:
    volume = watch(window=600, limit=1000)
    assert volume.received(CLIENT, "klas", 1000, 0.0) is not None
    assert volume.received(CLIENT, "klas", 1000, 100.0) is None              # still above: no second finding
    assert volume.received(CLIENT, "klas", 10, 1300.0) is None               # the window emptied
    assert volume.received(CLIENT, "klas", 1000, 1301.0) is not None


def test_memory_is_bounded_and_pruned() -> None:
    volume = watch(window=120, max_clients=1000)
    for i in range(20_000):
        volume.received(f"10.20.{i // 250}.{i % 250}", "klas", 100, i / 1000)
    assert len(volume) == 1000
    volume.prune(20.0)
    assert len(volume) == 1000
    volume.prune(20.0 + 120 + 120 / BUCKETS)
    assert len(volume) == 0


def test_a_new_window_length_starts_afresh() -> None:
    volume = watch(window=3600, limit=1000)
    volume.received(CLIENT, "klas", 900, 0.0)
    volume.configure(settings(excessive_download={"window": 600, "bytes": 1000}), zone_of, is_public)
    assert volume.received(CLIENT, "klas", 900, 1.0) is None
    assert volume.received(CLIENT, "klas", 100, 2.0) is not None
