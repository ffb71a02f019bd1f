"""The Grafana dashboards and provisioning files have the structure Grafana needs, and every metric
any dashboard or rule reads is one a real gateway or a real sensor exports (or a recording rule)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ..e2e.proxy import Gateway
from .conftest import DASHBOARDS
from .prometheus import RULES
from .promql import metric_names

PROVISIONING = DASHBOARDS / "provisioning"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
PANEL_TYPES = {"timeseries", "stat", "bargauge", "gauge", "table", "text", "row"}
DS_VARIABLE = "${DS_PROMETHEUS}"
# Series Prometheus makes itself for every target it scrapes.
PROMETHEUS_SERIES = {"up"}


def _dashboards(grafana: ModuleType) -> list[tuple[Path, dict[str, Any]]]:
    return [(path, grafana.load(path)) for path in DASHBOARD_FILES]


def _datasource_uid() -> str:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    return str(provisioned["datasources"][0]["uid"])


def test_the_two_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARD_FILES} == {"network-health.json", "policy.json"}


def test_dashboard_structure(grafana: ModuleType) -> None:
    uids = set()
    for path, dash in _dashboards(grafana):
        where = path.name
        assert isinstance(dash.get("uid"), str) and 0 < len(dash["uid"]) <= 40, where
        assert dash["uid"] not in uids, f"{where}: uid used twice"
        uids.add(dash["uid"])
        assert dash.get("title"), where
        assert 36 <= dash.get("schemaVersion", 0) <= 41, where
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables["DS_PROMETHEUS"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus"), where
        assert ds["current"]["value"] == _datasource_uid(), f"{where}: defaults to the provisioned data source"
        ids = set()
        cells: set[tuple[int, int]] = set()
        all_panels = list(grafana.panels(dash))
        assert all_panels, where
        for panel in all_panels:
            title = f"{where}: panel {panel.get('title')!r}"
            assert panel["type"] in PANEL_TYPES, title
            assert isinstance(panel.get("id"), int) and panel["id"] not in ids, f"{title}: panel ids unique"
            ids.add(panel["id"])
            assert panel.get("title"), title
            pos = panel["gridPos"]
            assert all(isinstance(pos[k], int) for k in ("h", "w", "x", "y")), title
            assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, title
            for x in range(pos["x"], pos["x"] + pos["w"]):   # no two panels share a grid cell
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{title} overlaps another panel"
                    cells.add((x, y))
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": DS_VARIABLE}, title
            targets = panel.get("targets")
            assert targets, f"{title}: no queries"
            assert len({t["refId"] for t in targets}) == len(targets), f"{title}: refIds unique"
            for target in targets:
                assert target["datasource"] == {"type": "prometheus", "uid": DS_VARIABLE}, title
                assert target.get("expr"), title
                for name in re.findall(r"\$\{?(\w+)", target["expr"]):
                    assert name.startswith("__") or name in variables, f"{title}: ${name} is not defined"


def test_provisioning_files() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "poortwachter.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["name"] and provider["options"]["path"].startswith("/")
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert source["url"].startswith("http") and source["uid"] and source["name"]


# --- every metric name is real ---------------------------------------------------------------
def families(exposition: str) -> set[str]:
    """The series names a scrape can hold, from its `# TYPE` lines (labelled metrics without a
    child yet have no samples, but they have their TYPE line)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(maxsplit=3)
        names.add(name)
        if kind == "counter":
            names |= {name if name.endswith("_total") else f"{name}_total", f"{name.removesuffix('_total')}_created"}
        elif kind in ("histogram", "summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    return names


def recorded() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def test_families_understands_the_exposition_format() -> None:
    text = ("# HELP a_total x\n# TYPE a_total counter\na_total 1\n# TYPE b histogram\n"
            "# TYPE c gauge\nc 2\n# TYPE d_total counter\n")
    assert {"a_total", "a_created", "b_bucket", "b_count", "b_sum", "c", "d_total"} <= families(text)
    assert "c_total" not in families(text)


def _rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r.get("alert") or r["record"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def _dashboard_exprs(grafana: ModuleType) -> list[tuple[str, str]]:
    found = []
    for path, dash in _dashboards(grafana):
        for panel in grafana.panels(dash):
            found += [(f"{path.name}: {panel['title']}", q.expr) for q in grafana.queries(panel)]
        found += [(f"{path.name}: variable", q) for q in grafana.template_queries(dash)]
    return found


@pytest.mark.e2e
def test_every_metric_used_is_exported(grafana: ModuleType, gateway: Gateway, sensor_metrics: str) -> None:
    gateway_names = families(gateway.metrics())
    sensor_names = families(sensor_metrics)
    # the scrapes are real: a few families each must be there, or the comparison proves nothing
    assert {"poortwachter_requests_total", "poortwachter_response_seconds_bucket",
            "process_resident_memory_bytes"} <= gateway_names
    assert {"poortwachter_sensor_packets_total", "poortwachter_sensor_bytes_total"} <= sensor_names
    known = gateway_names | sensor_names | recorded() | PROMETHEUS_SERIES
    exprs = _dashboard_exprs(grafana) + _rule_exprs()
    assert len(exprs) > 40
    missing = {(where, name) for where, expr in exprs for name in metric_names(expr) if name not in known}
    assert missing == set(), "metrics that neither the gateway nor the sensor exports"


def test_every_recording_rule_is_used() -> None:
    # a recording rule nobody reads costs Prometheus work for nothing
    text = "\n".join(p.read_text() for p in DASHBOARD_FILES)
    assert {name for name in recorded() if name not in text} == set()
