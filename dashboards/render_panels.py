"""Draws each Grafana dashboard in this directory as one PNG, from a live Prometheus.

Grafana itself is not needed (nor available where the docs are made): every panel's queries run
against Prometheus' /api/v1/query_range with Grafana's variables filled in as Grafana would, and
matplotlib draws the panels on the dashboard's own grid with the titles from the JSON.

    .venv/bin/python dashboards/render_panels.py --prometheus http://127.0.0.1:9090 --since 30m
    .venv/bin/python dashboards/render_panels.py --prometheus URL --start 2026-11-21T10:00 --end 2026-11-21T10:30
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grafana  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"

# Grafana's dark theme, so the pictures look like what ICT will see.
BACKGROUND, PANEL, TEXT, MUTED, GRID = "#111217", "#181b1f", "#ccccdc", "#8e8e9e", "#2c3036"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a",
           "#96d98d", "#ff9830", "#ca95e5", "#c0d8ff"]
CELL_W, CELL_H = 0.75, 0.36   # inches per grid column (24) and per grid row unit
MAX_LEGEND = 10

CAPTION = ("Dezelfde queries als het Grafana-dashboard, uitgevoerd op een live Prometheus en getekend met "
           "matplotlib (geen Grafana) / The dashboard's own queries run against a live Prometheus, drawn "
           "with matplotlib (not Grafana)")


@dataclass
class Series:
    name: str
    times: list[datetime]
    values: list[float]


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=30, trust_env=False)

    def query_range(self, expr: str, start: datetime, end: datetime, step: float) -> list[dict]:
        resp = self.client.get("/api/v1/query_range", params={
            "query": expr, "start": start.timestamp(), "end": end.timestamp(), "step": step})
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {expr!r}: {body.get('error', resp.text)}")
        return list(body["data"]["result"])


# --- values as Grafana shows them -------------------------------------------------------------
def _si(value: float, suffix: str = "", base: float = 1000.0, prefixes: str = " kMGTP") -> str:
    i = 0
    while abs(value) >= base and i < len(prefixes) - 1:
        value /= base
        i += 1
    prefix = prefixes[i].strip()
    digits = 0 if abs(value) >= 100 or float(value).is_integer() else (1 if abs(value) >= 10 else 2)
    return f"{value:.{digits}f} {prefix}{suffix}".strip()


def fmt(value: float, unit: str | None, decimals: int | None = None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    if decimals is not None and unit in (None, "none", "short") and abs(value) < 1000:
        return f"{value:.{decimals}f}"
    if unit == "s":
        for factor, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
            if abs(value) >= factor or factor == 1e-9:
                return f"{value / factor:.3g} {suffix}" if value else "0 s"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "bytes":
        return _si(value, "B", 1024.0, " KMGTP").replace("K", "Ki").replace("M", "Mi").replace("G", "Gi")
    if unit == "bps":
        return _si(value, "b/s")
    if unit == "reqps":
        return _si(value, "req/s")
    if unit == "pps":
        return _si(value, "p/s")
    return _si(value)


# --- drawing ------------------------------------------------------------------------------------
def _style(ax: Axes, title: str) -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=7)
    ax.set_title(title, color=TEXT, fontsize=9, loc="left", pad=4, fontweight="bold")


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "Geen gegevens / No data", color=MUTED, ha="center", va="center",
            transform=ax.transAxes, fontsize=9)


def draw_timeseries(ax: Axes, panel: dict, series: list[Series], unit: str | None, step: float,
                    span: tuple[datetime, datetime]) -> None:
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    bars = custom.get("drawStyle") == "bars"
    stacked = custom.get("stacking", {}).get("mode", "none") != "none"
    ax.grid(True, color=GRID, linewidth=0.5)
    ax.set_xlim(*span)   # every panel on the dashboard's time range, also when a series starts late
    locator = mdates.AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    if not series:
        _no_data(ax)
        return
    series = sorted(series, key=lambda s: -_peak([s]))
    bottom: dict[datetime, float] = {}
    width = step / 86400 * 0.8   # matplotlib dates count in days
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        label = s.name if i < MAX_LEGEND else None
        base = [bottom.get(t, 0.0) if stacked else 0.0 for t in s.times]
        values = [0.0 if math.isnan(v) else v for v in s.values]
        if bars:
            ax.bar(s.times, values, width=width, bottom=base, color=colour, label=label, alpha=0.8)
        elif stacked:
            top = [b + v for b, v in zip(base, values)]
            ax.fill_between(s.times, base, top, color=colour, alpha=0.4, linewidth=0)
            ax.plot(s.times, top, color=colour, linewidth=1, label=label)
        else:
            ax.plot(s.times, s.values, color=colour, linewidth=1.2, label=label)
        if stacked or bars:
            for t, v in zip(s.times, values):
                bottom[t] = bottom.get(t, 0.0) + v
    ax.set_ylim(bottom=0, top=None if _peak(series) > 0 else 1)   # all zero: 0..1, not 0..0.05
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: fmt(v, unit)))
    wide = max(len(s.name) for s in series[:MAX_LEGEND]) > 28
    legend = ax.legend(loc="upper left", fontsize=6, frameon=False, ncol=1 if wide else 2, labelcolor=TEXT,
                       handlelength=1.2, borderaxespad=0.2)
    if len(series) > MAX_LEGEND:
        legend.set_title(f"+{len(series) - MAX_LEGEND} meer / more", prop={"size": 6})
        legend.get_title().set_color(MUTED)


def _peak(series: list[Series]) -> float:
    return max((v for s in series for v in s.values if not math.isnan(v)), default=0.0)


def _last(s: Series) -> float:
    for v in reversed(s.values):
        if not math.isnan(v):
            return v
    return math.nan


def _colour(panel: dict, value: float) -> str:
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    colour = "green"
    for step in steps:
        if step.get("value") is None or (not math.isnan(value) and value >= step["value"]):
            colour = step.get("color", colour)
    return {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2"}.get(colour, colour)


def draw_stat(ax: Axes, panel: dict, series: list[Series], unit: str | None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if not series:
        _no_data(ax)
        return
    decimals = panel.get("fieldConfig", {}).get("defaults", {}).get("decimals")
    n = len(series)
    for i, s in enumerate(series):
        value = _last(s)
        x = (i + 0.5) / n
        size = 20 if n <= 2 else (15 if n <= 4 else 12)
        ax.text(x, 0.45, fmt(value, unit, decimals), color=_colour(panel, value), ha="center", va="center",
                fontsize=size, fontweight="bold", transform=ax.transAxes)
        if n > 1 or s.name:
            ax.text(x, 0.12, s.name, color=MUTED, ha="center", va="center", fontsize=6.5, transform=ax.transAxes,
                    wrap=True)


def draw_bargauge(ax: Axes, panel: dict, series: list[Series], unit: str | None) -> None:
    decimals = panel.get("fieldConfig", {}).get("defaults", {}).get("decimals")
    values = sorted(((s.name, _last(s)) for s in series), key=lambda nv: (math.isnan(nv[1]), -nv[1]))[:15]
    if not values:
        ax.set_xticks([])
        ax.set_yticks([])
        _no_data(ax)
        return
    names = [n for n, _ in values][::-1]
    nums = [0.0 if math.isnan(v) else v for _, v in values][::-1]
    ax.barh(names, nums, color="#5794f2", height=0.6)
    top = max(nums) or 1.0
    for y, v in enumerate(nums):
        ax.text(v + top * 0.01, y, fmt(v, unit, decimals), color=TEXT, va="center", fontsize=7)
    ax.set_xlim(0, top * 1.25)
    ax.set_xticks([])
    ax.tick_params(axis="y", labelsize=7, colors=TEXT)


def fetch(prom: Prometheus, panel: dict, start: datetime, end: datetime, step: float,
          scrape_interval: float) -> list[Series]:
    found: list[Series] = []
    for query in grafana.queries(panel):
        expr = grafana.expand(query.expr, step=step, range_seconds=(end - start).total_seconds(),
                              scrape_interval=scrape_interval)
        for result in prom.query_range(expr, start, end, step):
            times = [datetime.fromtimestamp(float(t), UTC) for t, _ in result["values"]]
            values = [float(v) for _, v in result["values"]]
            found.append(Series(grafana.legend(query.legend, result["metric"]), times, values))
    return found


def render(path: Path, prom: Prometheus, start: datetime, end: datetime, step: float,
           scrape_interval: float, out: Path) -> Path:
    dashboard = grafana.load(path)
    laid_out = list(grafana.panels(dashboard))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in laid_out)
    header = 0.9
    width, height = 24 * CELL_W, rows * CELL_H + header
    fig: Figure = plt.figure(figsize=(width, height), facecolor=BACKGROUND)
    fig.text(0.01, 1 - 0.32 / height, dashboard["title"], color=TEXT, fontsize=15, fontweight="bold", va="center")
    span = f"{start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC, stap / step {step:g} s"
    fig.text(0.01, 1 - 0.68 / height, f"{CAPTION}. {span}.", color=MUTED, fontsize=8.5, va="center")
    pad = 0.08
    for panel in laid_out:
        g = panel["gridPos"]
        left = (g["x"] * CELL_W + pad) / width
        bottom = 1 - (header + (g["y"] + g["h"]) * CELL_H - pad) / height
        w = (g["w"] * CELL_W - 2 * pad) / width
        h = (g["h"] * CELL_H - 2 * pad) / height
        if panel["type"] == "row":
            fig.text(left, bottom + h / 2, panel["title"], color=TEXT, fontsize=11, fontweight="bold", va="center")
            continue
        # room inside the panel for the title, and for the axes' tick labels where there are any
        inset_left = {"timeseries": 0.6, "bargauge": 1.6}.get(panel["type"], 0.0)
        inset_bottom = 0.25 if panel["type"] == "timeseries" else 0.0
        ax = fig.add_axes((left + inset_left / width, bottom + inset_bottom / height,
                           w - inset_left / width, h - (0.3 + inset_bottom) / height))
        _style(ax, panel["title"])
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        series = fetch(prom, panel, start, end, step, scrape_interval)
        if panel["type"] == "timeseries":
            draw_timeseries(ax, panel, series, unit, step, (start, end))
        elif panel["type"] == "stat":
            draw_stat(ax, panel, series, unit)
        elif panel["type"] == "bargauge":
            draw_bargauge(ax, panel, series, unit)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, f"({panel['type']})", color=MUTED, ha="center", transform=ax.transAxes)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"dashboard-{path.stem}.png"
    fig.savefig(target, dpi=110, facecolor=BACKGROUND)
    plt.close(fig)
    return target


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.astimezone()


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Draw the Grafana dashboards as PNG from a live Prometheus.")
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--since", default="1h", help="time range ending now (30m, 2h); ignored with --start")
    parser.add_argument("--start", type=_when, help="ISO time the range starts")
    parser.add_argument("--end", type=_when, help="ISO time the range ends (default: now)")
    parser.add_argument("--step", type=_seconds, help="seconds between points (default: range / 240)")
    parser.add_argument("--scrape-interval", type=_seconds, default=15.0,
                        help="Prometheus' scrape interval, for $__rate_interval (default 15s)")
    parser.add_argument("--out", type=Path, default=OUT, help="directory for dashboard-NAME.png (docs/img)")
    parser.add_argument("dashboards", nargs="*", type=Path, help="dashboard JSON files (default: all)")
    args = parser.parse_args(argv)
    end = args.end or datetime.now(UTC)
    start = args.start or end - timedelta(seconds=_seconds(args.since))
    step = args.step or max(1.0, round((end - start).total_seconds() / 240))
    prom = Prometheus(args.prometheus)
    for path in args.dashboards or grafana.dashboard_files():
        print(render(path, prom, start.astimezone(UTC), end.astimezone(UTC), step, args.scrape_interval, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
