"""A real Prometheus scrapes a real gateway: the counts it reads are the requests sent, the rules
evaluate without error on real series, and every dashboard query parses and evaluates."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ..e2e.clients import curl
from ..e2e.proxy import CLASSROOM, STAFF, Gateway, wait_until
from .prometheus import PrometheusServer

pytestmark = pytest.mark.e2e

SCRAPE_SECONDS = 1.0
DEADLINE = 60.0
BLOCKED, ALLOWED = 3, 2


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"),
                              {"poortwachter-gateway": [f"127.0.0.1:{gateway.metrics_port}"]},
                              interval=f"{SCRAPE_SECONDS:g}s").start()
    try:
        yield server
    finally:
        server.stop()


def _values(prometheus: PrometheusServer, expr: str, by: str) -> dict[str, float]:
    return {r["metric"].get(by, ""): float(r["value"][1]) for r in prometheus.query(expr)}


@pytest.fixture(scope="module")
def traffic(gateway: Gateway, prometheus: PrometheusServer) -> dict[str, int]:
    """The only requests this module's gateway ever sees: one of each first, and the rest once
    Prometheus has scraped those (a labelled counter appears at its first request, so only what
    comes after a first scrape shows in a rate)."""
    def send(blocked: int, allowed: int) -> None:
        for _ in range(blocked):
            assert curl(gateway, "http://www.tiktok.com/", CLASSROOM).status == 403
        for _ in range(allowed):
            assert curl(gateway, "http://www.example.com/", STAFF).status == 200

    send(1, 1)
    wait_until(lambda: _values(prometheus, "count(poortwachter_requests_total)", "") == {"": 2},
               DEADLINE, "Prometheus scraped the first requests")
    send(BLOCKED - 1, ALLOWED - 1)
    return {"block": BLOCKED, "allow": ALLOWED}


def test_prometheus_counts_the_requests_sent(prometheus: PrometheusServer, traffic: dict[str, int]) -> None:
    total = sum(traffic.values())
    wait_until(lambda: _values(prometheus, "sum(poortwachter_requests_total)", "") == {"": total},
               DEADLINE, f"sum(poortwachter_requests_total) == {total} in Prometheus")
    assert _values(prometheus, "sum by (action) (poortwachter_requests_total)", "action") == traffic
    assert _values(prometheus, 'up{job="poortwachter-gateway"}', "job") == {"poortwachter-gateway": 1.0}


def test_recording_rules_see_the_traffic(prometheus: PrometheusServer, traffic: dict[str, int]) -> None:
    def recorded() -> dict[str, float]:
        return _values(prometheus, "sum by (action) (zone_role_category_action:poortwachter_requests:rate5m)",
                       "action")

    wait_until(lambda: recorded().get("block", 0) > 0 and recorded().get("allow", 0) > 0, DEADLINE,
               "the recording rule's rate of blocked and allowed requests above 0")


def test_every_rule_evaluates_on_real_series(prometheus: PrometheusServer, traffic: dict[str, int]) -> None:
    def rules() -> list[dict]:
        answer = prometheus.api("rules")
        assert answer["status"] == "success"
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    never = "0001-01-01"   # Prometheus' lastEvaluation of a rule not evaluated yet
    wait_until(lambda: bool(rules()) and all(not r.get("lastEvaluation", never).startswith(never) for r in rules()),
               DEADLINE, "every rule evaluated at least once")
    broken = {r["name"]: r.get("lastError") for r in rules() if r["health"] != "ok"}
    assert broken == {}
    names = {r["name"] for r in rules()}
    assert {"GatewayDown", "AuditEventsDropped", "SensorBlind", "le:poortwachter_response_seconds_bucket:rate5m"} <= names
    # the gateway is up and nothing is wrong: no alert fires or waits
    assert [r["name"] for r in rules() if r.get("type") == "alerting" and r.get("state") != "inactive"] == []


def test_every_dashboard_query_evaluates(prometheus: PrometheusServer, grafana: ModuleType,
                                         traffic: dict[str, int]) -> None:
    checked = 0
    for path in grafana.dashboard_files():
        dash = grafana.load(path)
        exprs = [q.expr for panel in grafana.panels(dash) for q in grafana.queries(panel)]
        for expr in exprs + grafana.template_queries(dash):
            query = grafana.expand(expr, step=15, range_seconds=3600, scrape_interval=SCRAPE_SECONDS)
            answer = prometheus.api("query", query=query)
            assert answer["status"] == "success", f"{path.name}: {query}: {answer.get('error')}"
            checked += 1
    assert checked > 40


def test_render_panels_draws_every_dashboard(prometheus: PrometheusServer, grafana: ModuleType,
                                             traffic: dict[str, int], tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(grafana.HERE / "render_panels.py"), "--prometheus", prometheus.url,
                           "--since", "2m", "--scrape-interval", "1s", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for path in grafana.dashboard_files():
        png = tmp_path / f"dashboard-{path.stem}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
