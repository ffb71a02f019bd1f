"""Reading form fields: text, lists of sites, choices and school-local times.

Times in forms are wall-clock times in the school's time zone (the policy timetable's), turned
into aware datetimes here; the service layer only ever sees aware datetimes. Errors are the
service's `Invalid`, Dutch first, English second, without repeating what was typed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData

from ..workflow import Invalid

MAX_TEXT = 2000
_SPLIT = re.compile(r"[\s,;]+")


def text(form: FormData, name: str, *, limit: int = MAX_TEXT) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if len(value) > limit:
        raise Invalid(f"Tekst te lang (max. {limit} tekens) / Text too long (max. {limit} characters)")
    return value


def required(form: FormData, name: str, nl: str, en: str, *, limit: int = MAX_TEXT) -> str:
    value = text(form, name, limit=limit)
    if not value:
        raise Invalid(f"{nl} is verplicht / {en} is required")
    return value


def sites(form: FormData, name: str) -> tuple[str, ...]:
    """Sites typed one per line (or separated by spaces/commas); a pasted URL keeps host and path."""
    out: list[str] = []
    for item in _SPLIT.split(text(form, name)):
        if not item:
            continue
        item = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", item).split("?", 1)[0].split("#", 1)[0]
        item = item.rstrip("/")
        if item:
            out.append(item)
    if len(out) > 100:
        raise Invalid("Te veel sites (max. 100) / Too many sites (max. 100)")
    return tuple(dict.fromkeys(out))


def choices(form: FormData, name: str, allowed: Iterable[str]) -> tuple[str, ...]:
    """Checked boxes; a value that was never offered is refused, not silently dropped."""
    allowed = set(allowed)
    values = [v for v in form.getlist(name) if isinstance(v, str) and v]
    for value in values:
        if value not in allowed:
            raise Invalid("Ongeldige keuze / Invalid choice")
    return tuple(dict.fromkeys(values))


def choice(form: FormData, name: str, allowed: Iterable[str], nl: str, en: str) -> str:
    value = text(form, name, limit=200)
    if value not in set(allowed):
        raise Invalid(f"Kies een {nl} / Choose a {en}")
    return value


def local_datetime(form: FormData, name: str, tz: ZoneInfo, nl: str, en: str,
                   *, optional: bool = False) -> dt.datetime | None:
    """<input type="datetime-local"> ("2025-03-10T10:30") in the school's time zone."""
    value = text(form, name, limit=40)
    if not value:
        if optional:
            return None
        raise Invalid(f"{nl} is verplicht / {en} is required")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{nl}: geen geldige datum en tijd / {en}: not a valid date and time") from None
    if when.tzinfo is not None:
        raise Invalid(f"{nl}: geen geldige datum en tijd / {en}: not a valid date and time")
    return when.replace(tzinfo=tz)


def local_date(form: FormData, name: str, tz: ZoneInfo, nl: str, en: str) -> dt.date:
    """<input type="date"> ("2026-12-07")."""
    value = text(form, name, limit=20)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{nl}: geen geldige datum / {en}: not a valid date") from None


def local_time_today(form: FormData, name: str, tz: ZoneInfo, now: dt.datetime, nl: str, en: str) -> dt.datetime:
    """<input type="time"> ("11:20") today in the school's time zone; must lie ahead."""
    value = text(form, name, limit=10)
    try:
        hhmm = dt.time.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{nl}: geen geldige tijd / {en}: not a valid time") from None
    today = now.astimezone(tz).date()
    when = dt.datetime.combine(today, hhmm.replace(tzinfo=None)).replace(tzinfo=tz)
    if when <= now:
        raise Invalid(f"{nl} ligt in het verleden / {en} is in the past")
    return when


def input_value(when: dt.datetime | None, tz: ZoneInfo) -> str:
    """A datetime as the value of a datetime-local input."""
    return when.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if when else ""


def time_value(when: dt.datetime | None, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%H:%M") if when else ""
