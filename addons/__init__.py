"""mitmproxy addons of Poortwachter: thin adapters from proxy events to the decision engine."""

from __future__ import annotations

from typing import Any


def build() -> list[Any]:
    from .engine import EngineAddon
    from .enforce import Enforce
    from .metrics_server import MetricsServer
    from .safesearch import SafeSearch
    from .state_sync import StateSync

    engine = EngineAddon()
    return [engine, StateSync(engine), MetricsServer(), Enforce(engine), SafeSearch(engine)]
