"""mitmproxy addons of Poortwachter: thin adapters from proxy events to the decision engine."""

from __future__ import annotations

from typing import Any


def build() -> list[Any]:
    from poortwachter.bindings import BlockedBecause, NameBindings
    from poortwachter.ech import EchFronts

    from .audit import AuditRecorder
    from .enforce import Enforce
    from .engine import EngineAddon
    from .fairness import Fairness
    from .health import Health
    from .metrics_server import MetricsServer
    from .resolver import Lookup, SchoolResolver
    from .safesearch import SafeSearch
    from .state_sync import StateSync

    engine = EngineAddon()
    # what the resolver told each client, for the enforcer to check the names clients claim
    bindings, fronts, because = NameBindings(), EchFronts(), BlockedBecause()
    resolver = SchoolResolver(engine, bindings, fronts, because)
    enforce = Enforce(engine, bindings, fronts, Lookup(engine), because)
    recorder = AuditRecorder(engine)
    enforce.audit = resolver.audit = recorder.accept     # the audit hand-off: one append per final verdict
    return [engine, Fairness(engine), StateSync(engine), MetricsServer(), recorder, resolver, enforce,
            SafeSearch(engine), Health(engine)]
