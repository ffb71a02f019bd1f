"""Forms that survive: what a person typed comes back on the form.

- A step that refuses the input (the service's Invalid) shows the form again, with the error on
  it and the typed values in it, instead of a page with only the error.
- A staff form posted after the session expired (or with the token of a session that has since
  ended) is kept, and the person goes to the login page; after logging in they land back on the
  form with what they typed, and send it again themselves, with the new session's CSRF token.

Kept forms live in this process's memory (the console runs as one process) for TTL, at most
MAX_KEPT at a time, under an unguessable token that only the browser's cookie holds (HttpOnly,
SameSite=Strict; never in a URL). They are taken once, and only by the page the form is on.
Only a post that the browser marks as coming from this console is kept (Sec-Fetch-Site, or
Origin): a form on another site cannot plant values in someone's form. Passwords, passphrases,
shares and the CSRF token are never kept. Nothing of a kept form is logged.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from starlette.datastructures import FormData
from starlette.requests import Request

TTL_S = 15 * 60
MAX_KEPT = 200
NEVER_KEPT = ("csrf", "wachtwoord", "password", "passphrase", "share")   # field names starting so


@dataclass(frozen=True)
class Draft:
    """A form as it was posted: the path it posts to, its fields, and why it came back."""

    action: str
    fields: tuple[tuple[str, str], ...]
    error: tuple[str, str] | None = None     # the refusal (Dutch, English)
    resumed: bool = False                    # kept over a login

    @classmethod
    def of(cls, action: str, form: FormData | None, **kw: object) -> Draft:
        items = form.multi_items() if form is not None else []
        return cls(action, tuple(_typed(items)), **kw)  # type: ignore[arg-type]

    def at(self, action: str) -> Draft:
        """This draft if it is of the form that posts to `action`, else an empty one."""
        return self if self.action == action else NO_DRAFT

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.fields if k == name), default)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.fields if k == name]


NO_DRAFT = Draft("", ())


class Kept(NamedTuple):
    page: str        # the path of the page with the form
    draft: Draft
    until: float     # time.monotonic() deadline


class Drafts:
    """Kept forms, by token."""

    def __init__(self, ttl_s: float = TTL_S, limit: int = MAX_KEPT) -> None:
        self._ttl = ttl_s
        self._limit = limit
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, page: str, draft: Draft) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._drop_old()
            self._kept[token] = Kept(page, draft, time.monotonic() + self._ttl)
            while len(self._kept) > self._limit:
                self._kept.popitem(last=False)
        return token

    def take(self, token: str, page: str) -> Draft | None:
        """The draft kept under `token` for `page`, once; None if there is none (any more)."""
        with self._lock:
            self._drop_old()
            kept = self._kept.get(token)
            if kept is None or kept.page != page:
                return None
            del self._kept[token]
            return kept.draft

    def knows(self, token: str) -> bool:
        with self._lock:
            self._drop_old()
            return token in self._kept

    def _drop_old(self) -> None:
        now = time.monotonic()
        while self._kept:
            token, kept = next(iter(self._kept.items()))
            if kept.until > now:
                break
            del self._kept[token]


def from_this_site(request: Request) -> bool:
    """Does the browser say this post comes from a page of this console? Fetch metadata
    (Sec-Fetch-Site, which no page can set) when the browser sends it, else the Origin header
    (which is "null" under our Referrer-Policy: no-referrer in some browsers); neither, as from an
    old browser or a script: no."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    return request.headers.get("origin") == f"{request.url.scheme}://{request.url.netloc}"


def _typed(items: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in items if isinstance(v, str) and not k.lower().startswith(NEVER_KEPT)]
