"""Server-side console sessions. The browser holds a random token; the database holds only its
SHA-256, so a copy of the database (a backup, a replica) cannot be used to log in.

Expiry slides: every use moves the end to `ttl` after the last use, but never past MAX_AGE after
login. The sliding write is made at most once per TOUCH_EVERY and only in a write unit of work
(Store.write()); in Store.read() the session is checked but not extended.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ..store import repo
from ..store.models import SessionRow, UserRow
from .accounts import get_user
from .common import User, aware
from .errors import Invalid, NotFound

TTL = dt.timedelta(hours=8)
MAX_AGE = dt.timedelta(hours=24)
TOUCH_EVERY = dt.timedelta(minutes=1)
MAX_TOKEN = 128


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(s: Session, *, user_id: int, now: dt.datetime,
                  ttl: dt.timedelta = TTL) -> tuple[str, str]:
    """A new session for an active user: (token for the cookie, CSRF token for the forms)."""
    now = aware(now, "Tijd", "Time")
    if not dt.timedelta(0) < ttl <= MAX_AGE:
        raise Invalid("Ongeldige sessieduur / Invalid session lifetime")
    user = s.get(UserRow, user_id)
    if user is None or not user.active:
        raise NotFound("Account niet gevonden / Account not found")
    _purge(s, now)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    s.add(SessionRow(token_hash=_digest(token), user_id=user_id, csrf_token=csrf, created_at=now,
                     last_seen_at=now, expires_at=now + ttl))
    s.flush()
    return token, csrf


def load_session(s: Session, token: str, *, now: dt.datetime) -> tuple[User, str] | None:
    """(user, csrf_token) for a live session of an active user, else None."""
    now = aware(now, "Tijd", "Time")
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN:
        return None
    row = s.get(SessionRow, _digest(token))
    if row is None:
        return None
    if row.expires_at <= now or now >= row.created_at + MAX_AGE:
        if repo.writing(s):
            s.delete(row)
            s.flush()
        return None
    user = get_user(s, row.user_id)
    if user is None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY and repo.writing(s):
        idle = row.expires_at - row.last_seen_at
        row.last_seen_at = now
        row.expires_at = min(now + idle, row.created_at + MAX_AGE)
        s.flush()
    return user, row.csrf_token


def end_session(s: Session, token: str) -> None:
    """Log out: the token stops working at once. Unknown tokens are ignored."""
    if token and isinstance(token, str) and len(token) <= MAX_TOKEN:
        s.execute(delete(SessionRow).where(SessionRow.token_hash == _digest(token)))


def _purge(s: Session, now: dt.datetime) -> None:
    ended = or_(SessionRow.expires_at <= now, SessionRow.created_at <= now - MAX_AGE)
    old = select(SessionRow.token_hash).where(ended).with_for_update(skip_locked=True)
    s.execute(delete(SessionRow).where(SessionRow.token_hash.in_(old.scalar_subquery())))
