"""mitmproxy addons of Poortwachter: thin adapters from proxy events to the decision engine."""

from __future__ import annotations

from typing import Any


def build() -> list[Any]:
    from .audit import AuditRecorder
    from .engine import EngineAddon
    from .enforce import Enforce
    from .health import Health
    from .metrics_server import MetricsServer
    from .safesearch import SafeSearch
    from .state_sync import StateSync

    engine = EngineAddon()
    enforce = Enforce(engine)
    recorder = AuditRecorder(engine)
    enforce.audit = recorder.accept     # the audit hand-off: one append per final verdict
    return [engine, StateSync(engine), MetricsServer(), recorder, enforce, SafeSearch(engine), Health(engine)]
