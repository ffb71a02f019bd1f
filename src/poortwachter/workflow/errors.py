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
    """Too many failed logins for this username; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        minutes = -(-self.retry_after // 60)
        super().__init__(f"Te veel mislukte pogingen; probeer het over {minutes} min opnieuw / "
                         f"Too many failed attempts; try again in {minutes} min")
