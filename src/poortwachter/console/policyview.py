"""What the console needs from the policy: zones, categories, the timetable and the locks.

The console asks the same Engine the gateway uses whether a site falls in a category that can
never be opened (`overridable: false`), so the form, the approval and the gateway agree.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from ..gateway import Engine
from ..hosts import BadHost, normalize_host, parse_url
from ..policy.compiled import CompiledPolicy
from ..policy.timetable import Lesson, Moment

# Zone kinds a teacher can open or restrict, and where an exam can run.
CLASSROOM_KINDS = frozenset({"classroom"})
EXAM_KINDS = frozenset({"classroom", "exam_room"})
GATEWAY_ROLES = (("pupil", "Leerlingen / Pupils"), ("staff", "Medewerkers / Staff"), ("guest", "Gasten / Guests"))
RELOAD_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class ZoneInfoView:
    name: str
    kind: str
    description: str


@dataclass(frozen=True, slots=True)
class CategoryView:
    name: str
    title: str
    overridable: bool


def site_host(site: str) -> str | None:
    """The normalised host of a site ("Example.com/a", "https://x.nl/b"), or None if not valid."""
    text = site.strip()
    try:
        if "://" in text:
            return parse_url(text).host
        return normalize_host(text.partition("/")[0])
    except BadHost:
        return None


class PolicyView:
    """A thread-safe, self-refreshing view of the policy and installed lists for the console."""

    def __init__(self, policy_file: Path, data_dir: Path | None) -> None:
        self._engine = Engine(policy_file, data_dir)
        self._lock = threading.Lock()
        self._checked = time.monotonic()

    def _fresh(self) -> Engine:
        # A changed policy file or newly installed lists show up within seconds, as in the gateway.
        with self._lock:
            if time.monotonic() - self._checked >= RELOAD_EVERY_S:
                self._checked = time.monotonic()
                if self._engine.reload_due(time.monotonic()):
                    self._engine.reload_policy()  # a bad file keeps the policy in force
                self._engine.reload_lists()
            return self._engine

    @property
    def policy(self) -> CompiledPolicy:
        return self._fresh().policy

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.policy.policy.timetable.timezone)

    @property
    def school(self) -> str:
        return self.policy.policy.school

    def zones(self) -> list[ZoneInfoView]:
        return [ZoneInfoView(name, z.kind.value, z.description) for name, z in self.policy.policy.zones.items()]

    def zone_kinds(self) -> list[str]:
        return sorted({z.kind for z in self.zones()})

    def classroom_zones(self, role: str, own: tuple[str, ...]) -> list[ZoneInfoView]:
        """The zones this person may open or restrict: a docent only their own classrooms."""
        zones = [z for z in self.zones() if z.kind in CLASSROOM_KINDS]
        return zones if role == "ict" else [z for z in zones if z.name in own]

    def exam_zones(self) -> list[ZoneInfoView]:
        return [z for z in self.zones() if z.kind in EXAM_KINDS]

    def categories(self) -> list[CategoryView]:
        return [CategoryView(n, c.title, c.overridable) for n, c in self.policy.policy.categories.items()]

    def openable_categories(self, opener: str = "ict") -> list[CategoryView]:
        """The categories `opener` may open: docent (a classroom), examencoordinator (an exam's
        allowlist), ict (a grant); the policy's opened_by."""
        openable = self.policy.openable(opener)
        return [c for c in self.categories() if c.name in openable]

    def openable_names(self, opener: str) -> frozenset[str]:
        return self.policy.openable(opener)

    def title(self, category: str) -> str:
        return self.policy.titles.get(category, category)

    def exclusion_article(self) -> str:
        """The article behind exclusions when an exclusion names none (the policy's articles)."""
        return self.policy.articles.exclusion

    def locked(self, site: str) -> str | None:
        """A category the site falls in that nobody may open (`overridable: false`, or
        `opened_by: []`), or None. An unparsable site is not locked here: the service refuses it
        as invalid."""
        host = site_host(site)
        if host is None:
            return None
        engine = self._fresh()
        hit = engine.ctx.categorizer.host(host) & engine.policy.never
        return min(hit) if hit else None

    def closed_to(self, site: str, opener: str) -> str | None:
        """A category the site falls in that `opener` may not open, or None."""
        host = site_host(site)
        if host is None:
            return None
        engine = self._fresh()
        hit = engine.ctx.categorizer.host(host) & engine.policy.closed_to[opener]
        return min(hit) if hit else None

    def closed_to_ict(self, site: str) -> str | None:
        """A category of the site that ICT's grant may not open (what approval and extension refuse)."""
        return self.closed_to(site, "ict")

    def locked_category(self, category: str) -> bool:
        return category in self.policy.never

    def moment(self, now: dt.datetime) -> Moment:
        return self.policy.clock.moment(now)

    def this_lesson(self, now: dt.datetime) -> Lesson | None:
        """"This lesson": the one in progress or, in a break, the next one (None after the last)."""
        return self.policy.clock.this_lesson(now)

    def lessons(self, day: dt.date) -> list[Lesson]:
        return self.policy.clock.lessons(day)
