"""What a workflow step can refuse. Messages are Dutch first, English second, and never repeat
personal data (names, addresses, URLs) a caller passed in: they may end up on a screen or in a log."""

from __future__ import annotations


class Forbidden(Exception):
    """This role may not do this (a docent approving, a leidinggevende excluding, ...)."""


class Invalid(ValueError):
    """Bad input: a missing reason, a window that ends before it starts, a wider scope, ..."""


class NotFound(Invalid):
    """No such request, grant, opening, exam or exclusion (a kind of bad input)."""


class Conflict(Exception):
    """The object is no longer in a state that allows this step, usually because someone else
    decided first (two ICT members approving the same request at once)."""


class Throttled(Exception):
    """Too many failed logins from this address or for this username (workflow/throttle.py); the
    next attempt is judged after `retry_after` seconds. The message never says which of the two,
    nor whether the username exists."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        nl, en = wait_text(self.retry_after)
        super().__init__(f"Te veel mislukte pogingen; probeer het over {nl} opnieuw / "
                         f"Too many failed attempts; try again in {en}")


def wait_text(seconds: int) -> tuple[str, str]:
    """A wait in words, Dutch and English: seconds under a minute, else whole minutes (rounded up)."""
    if seconds < 60:
        return (f"{seconds} seconde{'n' if seconds != 1 else ''}", f"{seconds} second{'s' if seconds != 1 else ''}")
    minutes = -(-seconds // 60)
    return (f"{minutes} minu{'ten' if minutes != 1 else 'ut'}", f"{minutes} minute{'s' if minutes != 1 else ''}")
