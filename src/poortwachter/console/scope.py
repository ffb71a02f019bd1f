"""The scope of an unblock (which sites, zones, roles, from when to when) as a form reads it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.datastructures import FormData

from ..hosts import BadHost, parse_url
from ..state import Sites
from ..workflow import Invalid
from . import forms
from .drafts import Draft
from .policyview import GATEWAY_ROLES, PolicyView

GROUNDS = {
    "lesstof": ("Lesstof: aantoonbaar onderdeel van de les", "Lesson material: demonstrably part of the lesson"),
    "professioneel": ("Nodig in een professionele context", "Needed in a professional context"),
}
DEFAULT_LENGTH = dt.timedelta(days=1)


@dataclass(frozen=True)
class Scope:
    sites: tuple[str, ...]
    zones: tuple[str, ...]
    roles: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime


def zone_choices(policy: PolicyView) -> list[tuple[str, str]]:
    """Zone names and zone kinds, as a grant may name either."""
    out = [(z.name, f"{z.name} ({z.kind})") for z in policy.zones()]
    out += [(kind, f"alle zones van soort / every zone of kind: {kind}") for kind in policy.zone_kinds()]
    return out


def role_choices() -> list[tuple[str, str]]:
    return list(GATEWAY_ROLES)


def read_scope(form: FormData, policy: PolicyView) -> Scope:
    tz = policy.tz
    sites = forms.sites(form, "sites")
    if not sites:
        raise Invalid("Noem minstens één site / Name at least one site")
    zones = forms.choices(form, "zones", [value for value, _ in zone_choices(policy)])
    roles = forms.choices(form, "roles", [value for value, _ in GATEWAY_ROLES])
    start = forms.local_datetime(form, "start", tz, "Vanaf", "From")
    end = forms.local_datetime(form, "end", tz, "Tot", "Until")
    assert start is not None and end is not None
    if end <= start:
        raise Invalid("'Tot' moet na 'Vanaf' liggen / 'Until' must be after 'From'")
    return Scope(sites, zones, roles, start, end)


def read_ground(form: FormData) -> str:
    return forms.choice(form, "ground", GROUNDS, "grond", "ground")


def site_of_url(url: str) -> str:
    """The site a blocked URL asks for: its host (a grant opens the whole site by default)."""
    try:
        return parse_url(url.strip()).host
    except BadHost:
        return ""


def sites_text(sites: Sites, policy: PolicyView) -> list[str]:
    out = sorted(sites.domains) + sorted(f"{d}{p}" for d, p in sites.paths)
    out += [f"{policy.title(c)} (categorie / category)" for c in sorted(sites.categories)]
    return out


def scope_values(policy: PolicyView, *, sites: tuple[str, ...] | list[str], zones: tuple[str, ...] | list[str],
                 roles: tuple[str, ...] | list[str], start: dt.datetime | None, end: dt.datetime | None,
                 now: dt.datetime) -> dict[str, object]:
    """What the scope fields of a form show: the given scope, or a day from now."""
    tz = policy.tz
    start = start or now
    end = end or start + DEFAULT_LENGTH
    return {
        "sites": "\n".join(sites),
        "zones": set(zones),
        "roles": set(roles),
        "start": forms.input_value(start, tz),
        "end": forms.input_value(end, tz),
        "zone_choices": zone_choices(policy),
        "role_choices": role_choices(),
    }


def typed_scope(values: dict[str, object], draft: Draft) -> dict[str, object]:
    """The scope fields as `values` has them, or as they were typed in a form that came back."""
    if not draft.action:
        return values
    return {**values, "sites": draft.get("sites"), "zones": set(draft.getlist("zones")),
            "roles": set(draft.getlist("roles")), "start": draft.get("start"), "end": draft.get("end")}
