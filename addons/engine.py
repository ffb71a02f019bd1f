"""Loads the policy, the lists and the live state into an Engine, and keeps them fresh.

The policy file and the installed lists are watched. A changed policy file is read once it has
stayed the same for the settle time (poortwachter_policy_settle, 2 s: a file caught while an
editor writes it is never enforced), then read and compiled in a thread (a large policy must not
stall the proxy) while the policy in force keeps serving; a valid one takes over without dropping
connections, an invalid one (or one that would stop blocking a category nobody may open) is
refused with its error logged, and the policy in force stays.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from pathlib import Path

from mitmproxy import ctx, exceptions

from poortwachter import metrics
from poortwachter.cli import clock_option_refused
from poortwachter.clock import make_clock
from poortwachter.gateway import Engine
from poortwachter.paths import resolve_data_dir
from poortwachter.policy.load import PolicyError

from .options import seconds

log = logging.getLogger("poortwachter")


class EngineAddon:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self._watch: asyncio.Task[None] | None = None
        self._interval = 1.0
        self._settle = 2.0

    def current(self) -> Engine:
        """The engine in force; `configure` makes one before the proxy serves anything. (A
        method, not a property: mitmproxy reads every attribute of an addon when it loads it.)"""
        engine = self.engine
        if engine is None:
            raise RuntimeError("no policy loaded")
        return engine

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("poortwachter_policy", str, "policy/default.yaml", "The school's policy (YAML).")
        loader.add_option("poortwachter_data_dir", str, "",
                          "Data directory (lists, store); empty: POORTWACHTER_DATA_DIR or the default.")
        loader.add_option("poortwachter_clock_file", str, "",
                          "Read the time from this file (ISO-8601) instead of the system clock: for tests only, "
                          "refused unless POORTWACHTER_TEST_CLOCK=1.")
        # str, not float: mitmproxy cannot parse a float option given with --set
        loader.add_option("poortwachter_reload_interval", str, "1.0", "Seconds between checks for a changed policy or lists.")
        loader.add_option("poortwachter_policy_settle", str, "2.0",
                          "Seconds a changed policy file must stay unchanged before it is read.")

    def configure(self, updated: set[str]) -> None:
        if "poortwachter_reload_interval" in updated:
            self._interval = seconds("poortwachter_reload_interval", ctx.options.poortwachter_reload_interval)
        if "poortwachter_policy_settle" in updated:
            self._settle = seconds("poortwachter_policy_settle", ctx.options.poortwachter_policy_settle, low=0.0, high=60)
        if not updated & {"poortwachter_policy", "poortwachter_data_dir", "poortwachter_clock_file"}:
            return
        refusal = clock_option_refused("poortwachter_clock_file") if ctx.options.poortwachter_clock_file else None
        if refusal:
            raise exceptions.OptionsError(refusal)
        data_dir = resolve_data_dir(ctx.options.poortwachter_data_dir or None)
        try:
            engine = Engine(Path(ctx.options.poortwachter_policy), data_dir,
                            make_clock(ctx.options.poortwachter_clock_file or None))
        except PolicyError as exc:
            metrics.RELOADS.labels("failure").inc()
            if self.engine is None:
                raise exceptions.OptionsError(f"Beleid ongeldig / Policy invalid:\n{exc}") from None
            log.error("policy refused, the previous one stays in force (beleid geweigerd):\n%s", exc)
            return
        self.engine = engine
        metrics.RELOADS.labels("success").inc()
        self._publish()
        log.info("policy loaded (beleid geladen): generation %d, %d rules", engine.generation, len(engine.policy.rules))

    def _publish(self) -> None:
        assert self.engine is not None
        metrics.GENERATION.set(self.engine.generation)
        metrics.MISSING_LISTS.set(len(self.engine.missing_lists()))
        metrics.LIST_ENTRIES.clear()
        for name, size in self.engine.index.sizes().items():
            metrics.LIST_ENTRIES.labels(name).set(size)
        zones = [*self.engine.policy.zones, self.engine.policy.guest.name]
        for zone in zones:   # at zero from the start, see metrics.py
            for side in ("client", "upstream"):
                metrics.TLS_FAILURES.labels(zone, side)

    def running(self) -> None:
        # Everything loaded at startup (SQLAlchemy, Alembic, the policy, pydantic) lives as long as
        # the process: keep it out of every later full garbage collection (shorter pauses, lower p99).
        gc.collect()
        gc.freeze()
        self._watch = asyncio.get_running_loop().create_task(self._watch_files())

    def done(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:  # the watcher must outlive any single bad reload
                log.exception("reload check failed")

    async def check(self) -> None:
        engine = self.engine
        if engine is None:
            return
        if engine.reload_due(time.monotonic(), self._settle):
            log.info("policy file changed, reading it (beleidsbestand gewijzigd, wordt gelezen)")
            result = engine.install(await asyncio.to_thread(engine.prepare))
            if result.ok:
                metrics.RELOADS.labels("success").inc()
                log.info("policy reloaded (beleid herladen): generation %d", result.generation)
            else:
                metrics.RELOADS.labels("failure").inc()
                log.error("policy refused, the previous one stays in force (beleid geweigerd, vorige blijft):\n%s",
                          result.error)
            self._publish()
        if engine.reload_lists():
            log.info("category lists reloaded (lijsten herladen): %d lists", len(engine.index.sizes()))
            self._publish()
