"""Download limits (004 art. 13, policy `excessive_download.action: limit`) through the store.

The capture thread hands over a verdict and goes on at once; a worker thread writes it with
`poortwachter.workflow.limits.impose_download_limit`, which the gateway enforces. When the store
cannot be reached, the verdict stays in memory, one per client, the newest winning,
and is retried every `retry` seconds until it is written or its day has ended; a verdict the
workflow refuses as invalid is dropped with a log line. Nothing here raises into the sensor: a
store outage delays limits, never stops the sensor.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("poortwachter.sensor")

MAX_PENDING = 4096
Impose = Callable[..., int | None]


@dataclass(frozen=True)
class LimitVerdict:
    address: str   # the verdict's subject: it goes into the store row, never into a log line
    zone: str
    max_bytes: int
    until: dt.datetime
    reason: str


def end_of_day(now: dt.datetime, timezone: str = "Europe/Amsterdam") -> dt.datetime:
    """Midnight at the end of `now`'s day in the school's time zone (summer time included)."""
    tz = ZoneInfo(timezone)
    tomorrow = now.astimezone(tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0), tzinfo=tz)


def _real_impose(store: Any, **kwargs: Any) -> int | None:
    from ..workflow.limits import impose_download_limit   # written next to the gateway's enforcement

    return impose_download_limit(store, **kwargs)


class DownloadLimits:
    def __init__(self, open_store: Callable[[], Any], *, clock: Callable[[], dt.datetime],
                 on_imposed: Callable[[LimitVerdict], None], impose: Impose = _real_impose,
                 retry: float = 5.0) -> None:
        self._open_store = open_store
        self._impose = impose
        self.clock = clock
        self.on_imposed = on_imposed
        self.retry = retry
        self._store: Any = None
        self._pending: dict[str, LimitVerdict] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, verdict: LimitVerdict) -> None:
        """From the capture thread: never blocks on the store."""
        with self._lock:
            self._pending.pop(verdict.address, None)
            self._pending[verdict.address] = verdict
            if len(self._pending) > MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
                log.warning("too many download limits waiting for the store; the oldest is dropped "
                            "(te veel downloadlimieten in de wachtrij)")
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="download-limits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.flush()

    def flush(self) -> None:
        """Write every waiting verdict the store takes now; keep the others for the next try."""
        with self._lock:
            waiting = list(self._pending.values())
        for verdict in waiting:
            now = self.clock()
            if verdict.until <= now:
                self._forget(verdict)   # the day it was for is over
                continue
            try:
                if self._store is None:
                    self._store = self._open_store()
                try:
                    limit_id = self._impose(self._store, address=verdict.address, zone=verdict.zone,
                                            max_bytes=verdict.max_bytes, until=verdict.until,
                                            reason=verdict.reason, now=now)
                except ValueError as exc:   # the workflow's Invalid: this verdict can never be written
                    log.error("download limit refused in zone %s (downloadlimiet geweigerd): %s", verdict.zone, exc)
                    self._forget(verdict)
                    continue
            except Exception as exc:
                self._unreachable(len(waiting), exc)
                return
            if self._failing:
                log.info("store reachable again, waiting download limits written (opslag weer bereikbaar)")
                self._failing = False
            self._forget(verdict)
            if limit_id is not None:
                self.on_imposed(verdict)

    def _unreachable(self, waiting: int, exc: Exception) -> None:
        if not self._failing:
            log.error("store unreachable, %d download limit(s) kept and retried every %.0f s "
                      "(opslag niet bereikbaar, limieten worden bewaard): %s", waiting, self.retry, type(exc).__name__)
            self._failing = True
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:
                pass

    def _forget(self, verdict: LimitVerdict) -> None:
        with self._lock:
            if self._pending.get(verdict.address) is verdict:
                del self._pending[verdict.address]
