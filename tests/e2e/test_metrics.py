"""The gateway's Prometheus metrics: decisions by zone/role/category/action, and no personal data."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .clients import curl
from .proxy import CLASSROOM, GUEST, PUBLIC, STAFF, Gateway

pytestmark = pytest.mark.e2e

REQUESTS = "poortwachter_requests_total"


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(s.labels), float(s.value)) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


def _count(text: str, **labels: str) -> float:
    return sum(v for lab, v in _samples(text, REQUESTS) if all(lab.get(k) == x for k, x in labels.items()))


def test_requests_counted_by_zone_role_category_action(gateway: Gateway) -> None:
    before = gateway.metrics()
    assert curl(gateway, "http://www.tiktok.com/", CLASSROOM).status == 403
    assert curl(gateway, "https://www.example.org/verboden/x", CLASSROOM).status == 403
    assert curl(gateway, "http://www.example.com/", STAFF).status == 200
    assert curl(gateway, "https://www.pornhub.com/", PUBLIC, cacert=gateway.ca.pem).connect_status == 403
    assert curl(gateway, "http://www.tiktok.com/", GUEST).status == 200
    after = gateway.metrics()

    def moved(**labels: str) -> float:
        return _count(after, **labels) - _count(before, **labels)

    assert moved(zone="klas", role="pupil", category="sociale-media", action="block") == 1
    assert moved(zone="klas", role="pupil", category="verboden-pad", action="block") == 1
    assert moved(zone="personeel", role="staff", category="none", action="allow") == 1
    assert moved(zone="kantine", role="pupil", category="porno", action="block") == 1
    assert moved(zone="onbekend", role="guest", category="sociale-media", action="allow") == 1
    for labels, _ in _samples(after, REQUESTS):
        assert set(labels) == {"zone", "role", "category", "action"}


def test_metrics_hold_no_addresses_hosts_or_urls(gateway: Gateway) -> None:
    for source in (CLASSROOM, PUBLIC, STAFF, GUEST):
        curl(gateway, "http://www.tiktok.com/verboden", source)
        curl(gateway, "https://www.example.org/verboden/geheim", source, cacert=gateway.ca.pem)
        curl(gateway, "http://www.pornhub.com/", source)
    text = gateway.metrics()
    assert _count(text) > 0
    for needle in ("127.0.0.", "tiktok", "pornhub", "example.org", "/verboden", "geheim"):
        assert needle not in text, f"{needle!r} in the metrics"


def test_policy_metrics_present(gateway: Gateway) -> None:
    text = gateway.metrics()
    assert _samples(text, "poortwachter_policy_generation")[0][1] >= 1
    loads = {lab["result"]: v for lab, v in _samples(text, "poortwachter_policy_reloads_total")}
    assert loads.get("success", 0) >= 1
    assert _samples(text, "poortwachter_decision_seconds_count")[0][1] > 0
