"""mitmproxy addons of Poortwachter: thin adapters from proxy events to the decision engine."""

from __future__ import annotations

from typing import Any


def build() -> list[Any]:
    from .audit import AuditRecorder
    from .engine import EngineAddon
    from .enforce import Enforce
    from .health import Health
    from .metrics_server import MetricsServer
    from .resolver import Lookup, SchoolResolver
    from .safesearch import SafeSearch
    from .state_sync import StateSync
    from poortwachter.bindings import NameBindings
    from poortwachter.ech import EchFronts

    engine = EngineAddon()
    bindings, fronts = NameBindings(), EchFronts()      # what the resolver told clients, for the enforcer
    resolver = SchoolResolver(engine, bindings, fronts)
    enforce = Enforce(engine, bindings, fronts, Lookup(engine))
    recorder = AuditRecorder(engine)
    enforce.audit = resolver.audit = recorder.accept     # the audit hand-off: one append per final verdict
    return [engine, StateSync(engine), MetricsServer(), recorder, resolver, enforce, SafeSearch(engine),
            Health(engine)]
