"""Shared by the workflow modules: the User a step acts as, role checks, input checks, the change log."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..roles import ROLE_TITLES_IN_TEXT
from ..store import repo
from ..store.models import EMAIL, NAME
from .errors import Forbidden, Invalid

__all__ = ["SYSTEM", "User", "actor_of", "aware", "change", "email_address", "names", "repo_input", "require_role",
           "text"]

SYSTEM = "systeem"     # the actor of what nobody did by hand (expiry)
MAX_TEXT = 2000        # a reason or motivation: a few sentences, not an essay


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    zones: tuple[str, ...]


def actor_of(user: User) -> str:
    """How a user appears in the change log: role and username ("ict:jan"), so the log shows in
    which capacity someone acted even after their role changed."""
    return f"{user.role}:{user.username}"


def require_role(user: User | None, *roles: str) -> User:
    if user is None or user.role not in roles:
        allowed = ", ".join(ROLE_TITLES_IN_TEXT.get(r, r) for r in roles)
        raise Forbidden(f"Niet toegestaan voor deze rol (alleen: {allowed}) / "
                        f"Not allowed for this role (only: {allowed})")
    return user


def aware(when: dt.datetime | None, nl: str, en: str) -> dt.datetime:
    if when is None:
        raise Invalid(f"{nl} ontbreekt / {en} missing")
    if not isinstance(when, dt.datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise Invalid(f"{nl} zonder tijdzone / {en} without time zone")
    return when.astimezone(dt.UTC)


def text(value: str | None, nl: str, en: str, *, limit: int = MAX_TEXT, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise Invalid(f"{nl} ontbreekt / {en} missing")
    if len(value) > limit:
        raise Invalid(f"{nl} is te lang (max. {limit} tekens) / {en} is too long (max. {limit} characters)")
    return value


def names(values: Iterable[str] | str, nl: str, en: str) -> tuple[str, ...]:
    """Zone, role or category names: stripped, duplicates dropped, order kept."""
    if isinstance(values, str):
        # a bare string would be iterated letter by letter: "klas" -> ("k", "l", "a", "s")
        raise Invalid(f"{nl}: lijst verwacht / {en}: list expected")
    out = tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))
    if any(len(v) > NAME for v in out):
        raise Invalid(f"{nl}: naam te lang / {en}: name too long")
    return out


_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+")


def email_address(value: str | None) -> str | None:
    """An e-mail address in its one canonical form (trimmed, domain in lower case), or None for
    empty input. Only its shape is checked: whether it is delivered is the mail server's business."""
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > EMAIL or not _EMAIL.fullmatch(value):
        raise Invalid("E-mailadres ongeldig / E-mail address not valid")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def change(s: Session, *, actor: str, kind: str, obj: str, object_id: int, reason: str,
           at: dt.datetime) -> int:
    """Bump the state revision and log who/when/why, in the caller's transaction. The caller
    has taken the writer's lock (repo.lock_revision) first."""
    revision = repo.bump_revision(s)
    repo.record_change(s, revision=revision, actor=actor, kind=kind, obj=obj, object_id=object_id,
                       reason=reason, at=at)
    return revision


@contextmanager
def repo_input() -> Iterator[None]:
    """The repository refuses bad input with plain ValueError (already Dutch / English and free
    of the refused value); the workflow's callers expect Invalid."""
    try:
        yield
    except Invalid:
        raise
    except ValueError as exc:
        raise Invalid(str(exc)) from None
