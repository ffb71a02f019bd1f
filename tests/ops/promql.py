"""The metric names a PromQL expression reads: a small tokenizer that knows what is *not* a metric
name (functions, aggregations, keywords, label names in {..} and in by/without/on/ignoring (..),
strings, numbers and durations, Grafana variables)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+)
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*(?:\d+(?:ms|[smhdwy]))*)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<punct>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],:@])
""", re.VERBOSE)

AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile", "limitk", "limit_ratio"})
# keywords followed by a parenthesised list of label names
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = LABEL_LISTS | {"and", "or", "unless", "offset", "bool", "atan2", "inf", "nan"}


class PromQLSyntaxError(ValueError):
    pass


def tokens(expr: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise PromQLSyntaxError(f"unexpected {expr[pos:pos + 10]!r} at {pos} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append((kind, match.group()))
        pos = match.end()
    return found


def metric_names(expr: str) -> set[str]:
    toks = tokens(expr)
    names: set[str] = set()
    braces = 0          # inside a label matcher {..}: names there are label names
    brackets = 0        # inside a range or subquery [5m:1m]: durations only
    parens = 0
    label_list = 0      # paren depth of a by/without/on/ignoring/group_x (..) list, 0 when outside
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        after = toks[i + 1][1] if i + 1 < len(toks) else ""
        if text in ("(", ")"):
            parens += 1 if text == "(" else -1
        if text in ("[", "]"):
            brackets += 1 if text == "[" else -1
        elif text == "{":
            braces += 1
        elif text == "}":
            braces -= 1
        elif brackets:
            pass
        elif label_list:
            if text == "(":
                label_list += 1
            elif text == ")":
                label_list -= 1
        elif kind == "name":
            lower = text.lower()
            if braces:
                # {__name__="metric"} selects by name
                if text == "__name__" and after == "=" and i + 2 < len(toks) and toks[i + 2][0] == "string":
                    names.add(toks[i + 2][1][1:-1])
            elif lower in LABEL_LISTS and after == "(":
                label_list = 1
                parens += 1
                i += 1          # the "(" opening the list
            elif after == "(" or lower in KEYWORDS or (lower in AGGREGATIONS and after.lower() in ("by", "without")):
                pass            # a function, an aggregation or a keyword
            else:
                names.add(text)
        i += 1
    if braces or brackets or parens or label_list:
        raise PromQLSyntaxError(f"unbalanced brackets in {expr!r}")
    return names
