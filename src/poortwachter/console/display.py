"""How the console shows what machines keep: host names in Unicode with their punycode beside them,
people by name and role, states and change-log steps in words. One function per kind of value,
registered in the templates by web.make_env (`| site`, `| host`, `person`, `role_title`, `who`),
so every page shows a value the same way.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from ..hosts import BadHost, normalize_host, parse_url, readable
from ..roles import ROLE_TITLES_IN_TEXT
from ..store.db import Store
from ..workflow.records import PUBLIC_ROLE, SYSTEM_ROLE, Person
from ..workflow.records import person as lookup_person
from .policyview import GATEWAY_ROLES

# Who a grant is for (the gateway's roles), as the scope form names them.
GATEWAY_ROLE_TITLES = dict(GATEWAY_ROLES)

ACTOR_TITLES = {
    PUBLIC_ROLE: "aanvrager / requester",
    SYSTEM_ROLE: "systeem / system",
}

# The state of a request, grant or exclusion (workflow.records.STATES), as a short label.
STATE_TITLES = {
    "submitted": ("Ingediend", "Submitted"),
    "endorsed": ("Onderbouwd, wacht op ICT", "Endorsed, waiting for ICT"),
    "declined": ("Afgewezen", "Declined"),
    "withdrawn": ("Ingetrokken", "Withdrawn"),
    "scheduled": ("Goedgekeurd, begint nog", "Approved, still to start"),
    "active": ("Goedgekeurd, loopt", "Approved, running"),
    "expired": ("Verlopen", "Expired"),
    "revoked": ("Ingetrokken door ICT", "Revoked by ICT"),
}

# The state of an exclusion: the same states, without the approval.
EXCLUSION_STATE_TITLES = {
    "scheduled": ("Begint nog", "Still to start"),
    "active": ("Loopt", "Running"),
    "expired": ("Verlopen", "Expired"),
    "revoked": ("Eerder beëindigd", "Ended early"),
}

# A step in the change log (ChangeRow.kind) of a request, grant or exclusion.
STEP_TITLES = {
    "submit": ("Ingediend", "Submitted"),
    "endorse": ("Onderbouwd", "Endorsed"),
    "approve": ("Goedgekeurd", "Approved"),
    "decline": ("Afgewezen", "Declined"),
    "withdraw": ("Ingetrokken", "Withdrawn"),
    "add": ("Ingesteld", "Put in place"),
    "extend": ("Verlengd", "Extended"),
    "revoke": ("Eerder beëindigd", "Ended early"),
    "expire": ("Verlopen", "Expired"),
}


# A site or URL as people read it: the pages and the e-mail notifications show one form.
site = readable


def host(value: str) -> str:
    """The host of a URL or site, normalised; "" if it has none that is valid."""
    try:
        return parse_url(value).host if "://" in value else normalize_host(value.partition("/")[0])
    except BadHost:
        return ""


def moment(when: dt.datetime | None, tz: ZoneInfo) -> str:
    """A moment in the school's time zone, as every page shows one ("10-03-2025 10:40")."""
    return when.astimezone(tz).strftime("%d-%m-%Y %H:%M") if when else "–"


def role_title(role: str) -> str:
    """The role a step was taken in: "leidinggevende / manager", "aanvrager / requester", ..."""
    return ROLE_TITLES_IN_TEXT.get(role) or ACTOR_TITLES.get(role) or "–"


def person(who: Person | None) -> str:
    """A person as staff see them: "Jan de Vries (ICT)"; the requester and the system by role."""
    if who is None:
        return "–"
    if who.role == PUBLIC_ROLE:
        return ACTOR_TITLES[PUBLIC_ROLE]
    if who.role == SYSTEM_ROLE:
        return ACTOR_TITLES[SYSTEM_ROLE] if who.name == who.actor else f"{who.name} ({ACTOR_TITLES[SYSTEM_ROLE]})"
    if not who.role:
        return who.name
    return f"{who.name} ({role_title(who.role)})"


class Names:
    """`who(actor)` in a template: "ict:jan" -> "Jan de Vries (ICT)", looked up once per page."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seen: dict[str, str] = {}

    def __call__(self, actor: str | None) -> str:
        if not actor:
            return "–"
        if actor not in self._seen:
            with self._store.read() as s:
                self._seen[actor] = person(lookup_person(s, actor))
        return self._seen[actor]
