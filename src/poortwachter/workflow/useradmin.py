"""What ICT does with console accounts: add, disable and enable, reset the password (a new one, or
a one-time link with which the user chooses one), change role, zones and e-mail address.

Every step here is ICT's alone (require_role), takes the writer's lock first, and writes a
`changes` row (who, when, why) in the same transaction. The one public step is
`redeem_reset_link`: whoever holds a valid link sets that account's password, once.

Choices
- The last active ICT account cannot be disabled or given another role (Conflict), and nobody
  disables or demotes their own account (Forbidden): ICT can always get back in.
- Disabling ends the account's sessions at once and voids its open reset links; a disabled
  account cannot log in (accounts.authenticate) and a link cannot bring it back.
- A new password, set by ICT or through a link, ends every session of that account (whoever
  stole one is out) and clears the username's login throttle.
- A reset link is valid for RESET_VALID (one hour) and once; making a new link voids the older
  ones. Only the token's SHA-256 is stored. An unknown, used or expired token is refused with
  the same NotFound, so a link cannot be probed.
- Zones are checked against the zone names the caller passes (the policy's); the change log
  records old and new role and zones, never an e-mail address (only that it changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..roles import ROLES
from ..store import repo
from ..store.models import PasswordResetRow, SessionRow, UserRow
from .accounts import check_zones, clear_throttle, create_user, hash_password, login_name, user_of
from .common import User, actor_of, aware, change, email_address, names, require_role, text
from .errors import Conflict, Forbidden, Invalid, NotFound

RESET_VALID = dt.timedelta(hours=1)
RESET_PATH = "/wachtwoord-instellen"   # the console's page for a reset link (console/app.py)
MAX_TOKEN = 128
ADMIN = "ict"


@dataclass(frozen=True)
class AccountView:
    """An account as ICT sees it, disabled ones included."""

    id: int
    username: str
    display_name: str
    role: str
    zones: tuple[str, ...]
    email: str | None
    active: bool
    created_at: dt.datetime
    created_by: str


def reset_link(base_url: str, token: str) -> str:
    """The link a user opens to choose a new password, on the console at `base_url`."""
    return f"{base_url.rstrip('/')}{RESET_PATH}?t={token}"


def _view(row: UserRow) -> AccountView:
    return AccountView(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                       zones=tuple(row.zones), email=row.email, active=row.active,
                       created_at=row.created_at, created_by=row.created_by)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def list_accounts(s: Session, *, user: User, include_disabled: bool = True) -> list[AccountView]:
    """Every account (or only the active ones), by username."""
    require_role(user, ADMIN)
    query = select(UserRow).order_by(UserRow.username)
    if not include_disabled:
        query = query.where(UserRow.active)
    return [_view(r) for r in s.scalars(query)]


def get_account(s: Session, user_id: int, *, user: User) -> AccountView:
    require_role(user, ADMIN)
    return _view(_row(s, user_id))


def find_account(s: Session, username: str, *, user: User) -> AccountView:
    """The account with this username (any case), or NotFound."""
    require_role(user, ADMIN)
    row = s.scalar(select(UserRow).where(UserRow.username == login_name(username)))
    if row is None:
        raise NotFound("Account niet gevonden / Account not found")
    return _view(row)


def add_user(s: Session, *, user: User, username: str, display_name: str, role: str, zones: Iterable[str],
             zone_names: Collection[str], email: str | None, now: dt.datetime,
             password: str | None = None) -> int:
    """A new account, made by ICT. Without `password` the account gets an unusable random one:
    follow with create_reset_link so the user chooses their own."""
    require_role(user, ADMIN)
    return create_user(s, username=username, display_name=display_name, role=role,
                       password=password if password is not None else secrets.token_urlsafe(32),
                       zones=zones, zone_names=zone_names, email=email, actor=actor_of(user), now=now)


def disable_user(s: Session, user_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    """The account can no longer log in; its sessions and reset links end now."""
    now, why = _begin(user, reason, now)
    row = _locked(s, user_id)
    if not row.active:
        raise Conflict("Account is al uitgeschakeld / Account is already disabled")
    _not_self(user, row, "uitschakelen", "disable")
    _not_last_ict(s, row)
    row.active = False
    _end_sessions_and_links(s, row.id)
    change(s, actor=actor_of(user), kind="disable", obj="user", object_id=row.id, at=now,
           reason=f"account uitgeschakeld / account disabled: {why}")


def enable_user(s: Session, user_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    now, why = _begin(user, reason, now)
    row = _locked(s, user_id)
    if row.active:
        raise Conflict("Account is al ingeschakeld / Account is already enabled")
    row.active = True
    change(s, actor=actor_of(user), kind="enable", obj="user", object_id=row.id, at=now,
           reason=f"account ingeschakeld / account enabled: {why}")


def set_role(s: Session, user_id: int, role: str, *, user: User, reason: str, now: dt.datetime) -> None:
    if role not in ROLES:
        raise Invalid("Onbekende rol / Unknown role")
    now, why = _begin(user, reason, now)
    row = _locked(s, user_id)
    old = row.role
    if role == old:
        raise Invalid("Dit is al de rol van het account / This already is the account's role")
    if old == ADMIN:
        _not_self(user, row, "een andere rol geven", "give another role")
        _not_last_ict(s, row)
    row.role = role
    change(s, actor=actor_of(user), kind="role", obj="user", object_id=row.id, at=now,
           reason=f"rol {old} -> {role} / role {old} -> {role}: {why}")


def set_zones(s: Session, user_id: int, zones: Iterable[str], *, zone_names: Collection[str], user: User,
              reason: str, now: dt.datetime) -> None:
    """The zones (classrooms) the account controls; each must be one of `zone_names`."""
    new = names(zones, "Zones", "Zones")
    check_zones(new, zone_names)
    now, why = _begin(user, reason, now)
    row = _locked(s, user_id)
    old = tuple(row.zones)
    if new == old:
        raise Invalid("Dit zijn al de zones van het account / These already are the account's zones")
    row.zones = list(new)
    change(s, actor=actor_of(user), kind="zones", obj="user", object_id=row.id, at=now,
           reason=f"zones {','.join(old) or '-'} -> {','.join(new) or '-'}: {why}")


def set_email(s: Session, user_id: int, email: str | None, *, user: User, now: dt.datetime) -> None:
    """Set or (empty) remove the account's e-mail address. The change log says only that it changed."""
    require_role(user, ADMIN)
    now, address = aware(now, "Tijd", "Time"), email_address(email)
    row = _locked(s, user_id)
    if address == row.email:
        raise Invalid("Dit is al het e-mailadres van het account / This already is the account's e-mail address")
    row.email = address
    change(s, actor=actor_of(user), kind="email", obj="user", object_id=row.id, at=now,
           reason="e-mailadres gewijzigd / e-mail address changed" if address else
           "e-mailadres verwijderd / e-mail address removed")


def set_password(s: Session, user_id: int, password: str, *, user: User, reason: str, now: dt.datetime) -> None:
    """ICT sets a new password (to hand over in person); the account's sessions end."""
    now, why = _begin(user, reason, now)
    hashed = hash_password(password)   # before the lock: hashing takes a while
    row = _locked(s, user_id)
    _new_password(s, row, hashed)
    change(s, actor=actor_of(user), kind="password", obj="user", object_id=row.id, at=now,
           reason=f"wachtwoord ingesteld door ICT / password set by ICT: {why}")


def create_reset_link(s: Session, user_id: int, *, user: User, reason: str, now: dt.datetime,
                      valid: dt.timedelta = RESET_VALID) -> str:
    """A one-time token for RESET_PATH (see reset_link); older links of the account stop working.
    The token is returned once and stored only as its SHA-256."""
    if not dt.timedelta(0) < valid <= dt.timedelta(days=7):
        raise Invalid("Ongeldige geldigheidsduur / Invalid validity")
    now, why = _begin(user, reason, now)
    row = _locked(s, user_id)
    if not row.active:
        raise Conflict("Account is uitgeschakeld; schakel het eerst in / Account is disabled; enable it first")
    s.execute(delete(PasswordResetRow).where(
        (PasswordResetRow.user_id == row.id) | (PasswordResetRow.expires_at <= now)))
    token = secrets.token_urlsafe(32)
    s.add(PasswordResetRow(token_hash=_digest(token), user_id=row.id, created_at=now, expires_at=now + valid,
                           used=False))
    change(s, actor=actor_of(user), kind="reset-link", obj="user", object_id=row.id, at=now,
           reason=f"eenmalige link gemaakt / one-time link made: {why}")
    return token


def check_reset_link(s: Session, token: str, *, now: dt.datetime) -> str:
    """The username a valid link is for (the page shows it), or NotFound."""
    return _link(s, token, aware(now, "Tijd", "Time"))[1].username


def redeem_reset_link(s: Session, token: str, password: str, *, now: dt.datetime) -> int:
    """Set the password of the link's account; the link is used up, the account's sessions end.
    Returns the account id."""
    now = aware(now, "Tijd", "Time")
    hashed = hash_password(password)
    repo.lock_revision(s)    # two tabs sending the same link at once: the second finds it used
    link, row = _link(s, token, now)
    link.used = True
    _new_password(s, row, hashed)
    change(s, actor=actor_of(user_of(row)), kind="password", obj="user", object_id=row.id, at=now,
           reason="wachtwoord gekozen met eenmalige link / password chosen with one-time link")
    return row.id


# --- plumbing --------------------------------------------------------------------------------

def _row(s: Session, user_id: int) -> UserRow:
    row = s.get(UserRow, user_id) if isinstance(user_id, int) else None
    if row is None:
        raise NotFound("Account niet gevonden / Account not found")
    return row


def _begin(user: User, reason: str, now: dt.datetime) -> tuple[dt.datetime, str]:
    """The checks every step starts with: ICT only, an aware time, a reason."""
    require_role(user, ADMIN)
    return aware(now, "Tijd", "Time"), text(reason, "Reden", "Reason")


def _locked(s: Session, user_id: int) -> UserRow:
    """The writer's lock first (every change takes it in the same order), then the account."""
    repo.lock_revision(s)
    return _row(s, user_id)


def _not_self(user: User, row: UserRow, nl: str, en: str) -> None:
    if user.id == row.id:
        raise Forbidden(f"Je kunt je eigen account niet {nl}; vraag een andere ICT-collega / "
                        f"You cannot {en} your own account; ask another ICT colleague")


def _not_last_ict(s: Session, row: UserRow) -> None:
    """Refuse when `row` is the only active ICT account (the caller holds the writer's lock, so
    two ICT members demoting each other at once cannot both pass)."""
    if row.role != ADMIN or not row.active:
        return
    others = s.scalar(select(func.count()).select_from(UserRow).where(
        UserRow.role == ADMIN, UserRow.active, UserRow.id != row.id)) or 0
    if others == 0:
        raise Conflict("Dit is het laatste actieve ICT-account / This is the last active ICT account")


def _end_sessions_and_links(s: Session, user_id: int) -> None:
    s.execute(delete(SessionRow).where(SessionRow.user_id == user_id))
    s.execute(update(PasswordResetRow).where(PasswordResetRow.user_id == user_id).values(used=True))


def _new_password(s: Session, row: UserRow, hashed: str) -> None:
    row.password_hash = hashed
    _end_sessions_and_links(s, row.id)
    clear_throttle(s, row.username)


def _link(s: Session, token: str, now: dt.datetime) -> tuple[PasswordResetRow, UserRow]:
    link = None
    if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN:
        link = s.scalar(select(PasswordResetRow).where(PasswordResetRow.token_hash == _digest(token)))
    row = s.get(UserRow, link.user_id) if link is not None else None
    if link is None or row is None or link.used or link.expires_at <= now or not row.active:
        raise NotFound("Deze link is ongeldig, al gebruikt of verlopen / "
                       "This link is not valid, already used or expired")
    return link, row
