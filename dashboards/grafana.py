"""Reads the Grafana dashboards in this directory the way Grafana runs them against Prometheus:
the panels (rows flattened), their queries, and Grafana's variables ($__rate_interval, $__range,
$zone, ...) replaced by what Grafana would send. Used by render_panels.py and tests/ops/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Query:
    ref_id: str
    expr: str
    legend: str


def dashboard_files(directory: Path = HERE) -> list[Path]:
    return sorted(directory.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: Mapping) -> Iterator[dict]:
    """Every panel in layout order, rows included; the panels inside a collapsed row follow it."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(panel: Mapping) -> list[Query]:
    return [Query(t.get("refId", ""), t["expr"], t.get("legendFormat", ""))
            for t in panel.get("targets", []) if t.get("expr")]


def template_queries(dashboard: Mapping) -> list[str]:
    """The PromQL inside the dashboard's query variables (`label_values(METRIC, label)` -> METRIC)."""
    found = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        text = query.get("query", "") if isinstance(query, Mapping) else str(query or "")
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
        found.append(match.group(1) if match else text)
    return found


def duration(seconds: float) -> str:
    """A PromQL duration in whole seconds (Grafana rounds the same way)."""
    return f"{max(1, round(seconds))}s"


def expand(expr: str, *, step: float, range_seconds: float, scrape_interval: float,
           variables: Mapping[str, str] | None = None) -> str:
    """Grafana's built-in variables as Grafana computes them for a Prometheus data source, and the
    dashboard's own variables (default: every one set to All, `.*`)."""
    builtin = {
        "__interval": duration(step),
        "__rate_interval": duration(max(step + scrape_interval, 4 * scrape_interval)),
        "__range": duration(range_seconds),
        "__range_s": str(round(range_seconds)),
    }
    values = {**builtin, **(variables or {})}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """A series' name from the legend format (`{{zone}} ({{side}})`), else its labels."""
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or labels.get("__name__", "")
