"""The tokenizer that finds metric names in PromQL (what test_dashboards.py checks names with)."""

from __future__ import annotations

import pytest

from .promql import PromQLSyntaxError, metric_names


@pytest.mark.parametrize(("expr", "names"), [
    ("up", {"up"}),
    ('sum by (zone, side) (rate(a_total{zone=~"$zone", side!="x"}[$__rate_interval]))', {"a_total"}),
    ("a / on (zone) group_left sum by (zone) (rec:b:rate5m) > 0.1 and c offset 5m", {"a", "rec:b:rate5m", "c"}),
    ("histogram_quantile(0.99, le:d_bucket:rate5m)", {"le:d_bucket:rate5m"}),
    ('time() - (e > 0 or f{job="s"}) > 600', {"e", "f"}),
    ('topk(10, sum by (category) (increase(g_total{action="block"}[1h30m])))', {"g_total"}),
    ("sum(h) without (instance) * 1e3 + count(i) by (le) - max_over_time(j[5m:1m])", {"h", "i", "j"}),
    ('{__name__="k", a="sum by"} unless ignoring (x) l @ end()', {"k", "l"}),
    ('label_replace(m, "dst", "$1", "src", "(.*)") + Inf * NaN', {"m"}),
    ("n == bool 0 or on () vector(1)", {"n"}),
    ("${DS_PROMETHEUS_and_more} + o", {"o"}),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ["sum(rate(a[5m])", 'a{b="c"', "a ? b"])
def test_unbalanced_or_unknown_is_an_error(expr: str) -> None:
    with pytest.raises(PromQLSyntaxError):
        metric_names(expr)
