"""Console accounts: argon2id password hashes, creation, and the login with its throttle.

Throttling is by growing delays, never a lockout (see throttle.py). Here is the per-username
brake: failures since the last success are counted in `login_throttle` (one row per username,
unknown ones too); while its wait runs an attempt is refused without checking the password and
is not counted, so an attacker can neither lengthen the wait nor use it to time the hash. The
per-address brake is the caller's (the console keeps it in memory). What ICT does to existing
accounts (disable, reset, role, zones, e-mail) is in useradmin.py.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Collection, Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from ..roles import ROLES
from ..store import repo
from ..store.models import NAME, LoginThrottleRow, UserRow
from .common import User, aware, change, email_address, names, text
from .errors import Conflict, Invalid, Throttled
from .throttle import ACCOUNT, FORGET

MIN_PASSWORD = 8
MAX_PASSWORD = 1024          # argon2 takes any length; a megabyte "password" is a denial of service
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
# pg_advisory_xact_lock(namespace, hashtext(username)): one login at a time per username, so 50
# parallel guesses cannot all see "9 failures so far".
LOGIN_LOCK_NAMESPACE = 0x706F7274  # "port"

HASHER = PasswordHasher()    # argon2id with argon2-cffi's current recommended parameters


@functools.cache
def _dummy_hash() -> str:
    # Verified against for unknown usernames, so "no such user" takes as long as "wrong password".
    return HASHER.hash("poortwachter-dummy-password")


def login_name(username: str | None) -> str:
    """A typed username as the login looks it up and throttles it: trimmed, lower case, bounded."""
    return (username or "").strip().lower()[:NAME]


def _username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME.fullmatch(name):
        raise Invalid("Gebruikersnaam ongeldig (a-z, 0-9, . _ @ -; max. 64) / "
                      "Username not valid (a-z, 0-9, . _ @ -; max. 64)")
    return name


def hash_password(password: str) -> str:
    """The argon2id hash of an acceptable password (Invalid otherwise). Takes a while: call it
    before taking the writer's lock."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(f"Wachtwoord te kort (min. {MIN_PASSWORD} tekens) / "
                      f"Password too short (min. {MIN_PASSWORD} characters)")
    if len(password) > MAX_PASSWORD:
        raise Invalid("Wachtwoord te lang / Password too long")
    return HASHER.hash(password)


def user_of(row: UserRow) -> User:
    return User(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                zones=tuple(row.zones))


def create_user(s: Session, *, username: str, display_name: str, role: str, password: str,
                zones: Iterable[str] = (), actor: str, now: dt.datetime, email: str | None = None,
                zone_names: Collection[str] | None = None) -> int:
    """A new console account; the password is stored only as an argon2id hash. Who may create
    accounts is the caller's business (the CLI for the first ICT account; useradmin.add_user
    checks for ICT). With `zone_names` (the policy's zones) every zone must be one of them."""
    now = aware(now, "Tijd", "Time")
    name = _username(username)
    shown = text(display_name, "Naam", "Name", limit=NAME)
    if role not in ROLES:
        raise Invalid("Onbekende rol / Unknown role")
    zone_list = names(zones, "Zones", "Zones")
    if zone_names is not None:
        check_zones(zone_list, zone_names)
    address = email_address(email)
    who = text(actor, "Wie", "Actor", limit=NAME)
    hashed = hash_password(password)   # before the lock: hashing takes a while
    repo.lock_revision(s)
    if s.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise Conflict("Gebruikersnaam bestaat al / Username already exists")
    row = UserRow(username=name, display_name=shown, role=role, password_hash=hashed,
                  zones=list(zone_list), active=True, created_at=now, created_by=who, email=address)
    s.add(row)
    s.flush()
    change(s, actor=who, kind="add", obj="user", object_id=row.id, at=now,
           reason=f"account aangemaakt, rol {role} / account created, role {role}")
    return row.id


def check_zones(zones: Iterable[str], zone_names: Collection[str]) -> None:
    """Every zone must be one the policy names. The refusal lists the policy's zones, never the
    refused values (they are the caller's input)."""
    if any(z not in zone_names for z in zones):
        allowed = ", ".join(sorted(zone_names)) or "-"
        raise Invalid(f"Onbekende zone; het beleid kent: {allowed} / Unknown zone; the policy has: {allowed}")


def authenticate(s: Session, *, username: str, password: str, source: str, now: dt.datetime,
                 known_source: bool = False) -> User | None:
    """The user if the password is right and the account active, else None; a failure counts
    for the username's brake, a success clears it. Raises Throttled while that brake holds,
    unless `known_source`: the caller remembers that this client logged in as this username
    before (throttle.SourceThrottle). `source` ("console", "cli") names the door for the
    caller's own bookkeeping; it is not stored, and no client address is."""
    del source
    now = aware(now, "Tijd", "Time")
    name = login_name(username)
    if s.get_bind().dialect.name == "postgresql":
        s.execute(sql("SELECT pg_advisory_xact_lock(:ns, hashtext(:name))"),
                  {"ns": LOGIN_LOCK_NAMESPACE, "name": name})
    _purge(s, now)
    brake = s.get(LoginThrottleRow, name)
    if brake is not None and not known_source:
        wait = ACCOUNT.retry_after(brake.failures, brake.last_failure_at, now)
        if wait:
            raise Throttled(wait)

    row = s.scalar(select(UserRow).where(UserRow.username == name)) if name else None
    ok = False
    if isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD:
        try:
            ok = HASHER.verify(row.password_hash if row is not None else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    if not ok or row is None or not row.active:
        if brake is None:
            s.add(LoginThrottleRow(username=name, failures=1, last_failure_at=now))
        else:
            brake.failures, brake.last_failure_at = brake.failures + 1, now
        s.flush()
        return None
    if brake is not None:
        s.delete(brake)
    if HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = HASHER.hash(password)   # parameters moved on since this hash was made
    s.flush()
    return user_of(row)


def clear_throttle(s: Session, username: str) -> None:
    """Forget a username's failures (a new password was set: the real user starts afresh)."""
    s.execute(delete(LoginThrottleRow).where(LoginThrottleRow.username == username))


def _purge(s: Session, now: dt.datetime) -> None:
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): two logins purging the same old
    # rows must not wait for, let alone deadlock on, each other. A row skipped now goes next time.
    old = (select(LoginThrottleRow.username).where(LoginThrottleRow.last_failure_at <= now - FORGET)
           .with_for_update(skip_locked=True))
    s.execute(delete(LoginThrottleRow).where(LoginThrottleRow.username.in_(old.scalar_subquery())))


def get_user(s: Session, user_id: int) -> User | None:
    """An active account, or None."""
    row = s.get(UserRow, user_id)
    return user_of(row) if row is not None and row.active else None


def list_users(s: Session) -> list[User]:
    """Active accounts, by username."""
    rows = s.scalars(select(UserRow).where(UserRow.active).order_by(UserRow.username))
    return [user_of(r) for r in rows]
