"""Option parsing shared by the addons."""

from __future__ import annotations

from mitmproxy import exceptions


def seconds(name: str, value: str, low: float = 0.05, high: float = 3600.0) -> float:
    """Interval options are declared as str: mitmproxy cannot parse a float given with --set."""
    try:
        parsed = float(value)
    except ValueError:
        parsed = float("nan")
    if not low <= parsed <= high:
        raise exceptions.OptionsError(f"{name}: not seconds in {low}..{high}: {value!r}")
    return parsed
