"""Console accounts: argon2id password hashes and login throttling.

Throttling is per username: after 5 failed attempts within 15 minutes that username is locked for
the rest of that window (a success in between starts the count again). Attempts made while locked
are refused without checking the password and are not recorded, so an attacker cannot keep an
account locked for longer than one window by hammering it, nor use it to time the hash.
Attempt rows are purged once they are older than the window: they are not an audit log.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, text as sql
from sqlalchemy.orm import Session

from ..store import repo
from ..store.models import NAME, LoginAttemptRow, UserRow
from .common import ROLES, User, aware, change, names, text
from .errors import Conflict, Invalid, Throttled

MAX_FAILURES = 5
WINDOW = dt.timedelta(minutes=15)
MIN_PASSWORD = 8
MAX_PASSWORD = 1024          # argon2 takes any length; a megabyte "password" is a denial of service
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
# pg_advisory_xact_lock(namespace, hashtext(username)): one login at a time per username, so 50
# parallel guesses cannot all see "4 failures so far".
LOGIN_LOCK_NAMESPACE = 0x706F7274  # "port"

HASHER = PasswordHasher()    # argon2id with argon2-cffi's current recommended parameters


@functools.cache
def _dummy_hash() -> str:
    # Verified against for unknown usernames, so "no such user" takes as long as "wrong password".
    return HASHER.hash("poortwachter-dummy-password")


def _username(username: str) -> str:
    name = (username or "").strip().lower()
    if not USERNAME.fullmatch(name):
        raise Invalid("Gebruikersnaam ongeldig (a-z, 0-9, . _ @ -; max. 64) / "
                      "Username not valid (a-z, 0-9, . _ @ -; max. 64)")
    return name


def _password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(f"Wachtwoord te kort (min. {MIN_PASSWORD} tekens) / "
                      f"Password too short (min. {MIN_PASSWORD} characters)")
    if len(password) > MAX_PASSWORD:
        raise Invalid("Wachtwoord te lang / Password too long")
    return password


def _user(row: UserRow) -> User:
    return User(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                zones=tuple(row.zones))


def create_user(s: Session, *, username: str, display_name: str, role: str, password: str,
                zones: Iterable[str] = (), actor: str, now: dt.datetime) -> int:
    """A new console account; the password is stored only as an argon2id hash. Who may create
    accounts is the caller's business (the CLI for the first ICT account, the console for ICT)."""
    now = aware(now, "Tijd", "Time")
    name = _username(username)
    shown = text(display_name, "Naam", "Name", limit=NAME)
    if role not in ROLES:
        raise Invalid("Onbekende rol / Unknown role")
    zone_names = names(zones, "Zones", "Zones")
    who = text(actor, "Wie", "Actor", limit=NAME)
    hashed = HASHER.hash(_password(password))   # before the lock: hashing takes a while
    repo.lock_revision(s)
    if s.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise Conflict("Gebruikersnaam bestaat al / Username already exists")
    row = UserRow(username=name, display_name=shown, role=role, password_hash=hashed,
                  zones=list(zone_names), active=True, created_at=now, created_by=who)
    s.add(row)
    s.flush()
    change(s, actor=who, kind="add", obj="user", object_id=row.id, at=now,
           reason=f"account aangemaakt, rol {role} / account created, role {role}")
    return row.id


def authenticate(s: Session, *, username: str, password: str, source: str,
                 now: dt.datetime) -> User | None:
    """The user if the password is right, else None; every answer is recorded for throttling.
    Raises Throttled while the username is locked. `source` ("console", "cli") is accepted for
    the caller's own bookkeeping but not stored: throttling is per username, and a client
    address has no place in this table."""
    del source
    now = aware(now, "Tijd", "Time")
    name = (username or "").strip().lower()[:NAME]
    if s.get_bind().dialect.name == "postgresql":
        s.execute(sql("SELECT pg_advisory_xact_lock(:ns, hashtext(:name))"),
                  {"ns": LOGIN_LOCK_NAMESPACE, "name": name})
    _purge(s, now)
    recent = LoginAttemptRow.username == name, LoginAttemptRow.at > now - WINDOW
    last_success = s.scalar(select(func.max(LoginAttemptRow.at)).where(*recent, LoginAttemptRow.success))
    failures = select(LoginAttemptRow.at).where(*recent, LoginAttemptRow.success.is_(False))
    if last_success is not None:
        failures = failures.where(LoginAttemptRow.at > last_success)
    times = list(s.scalars(failures.order_by(LoginAttemptRow.at.desc()).limit(MAX_FAILURES)))
    if len(times) >= MAX_FAILURES:
        raise Throttled(int((times[-1] + WINDOW - now).total_seconds() + 0.999))

    row = s.scalar(select(UserRow).where(UserRow.username == name)) if name else None
    ok = False
    if isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD:
        try:
            ok = HASHER.verify(row.password_hash if row is not None else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    ok = ok and row is not None and row.active
    s.add(LoginAttemptRow(username=name, at=now, success=ok))
    if not ok or row is None:
        s.flush()
        return None
    if HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = HASHER.hash(password)   # parameters moved on since this hash was made
    s.flush()
    return _user(row)


def _purge(s: Session, now: dt.datetime) -> None:
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): two logins purging the same old
    # rows must not wait for, let alone deadlock on, each other. A row skipped now goes next time.
    old = (select(LoginAttemptRow.id).where(LoginAttemptRow.at <= now - WINDOW)
           .with_for_update(skip_locked=True))
    s.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id.in_(old.scalar_subquery())))


def get_user(s: Session, user_id: int) -> User | None:
    """An active account, or None."""
    row = s.get(UserRow, user_id)
    return _user(row) if row is not None and row.active else None


def list_users(s: Session) -> list[User]:
    """Active accounts, by username."""
    rows = s.scalars(select(UserRow).where(UserRow.active).order_by(UserRow.username))
    return [_user(r) for r in rows]
