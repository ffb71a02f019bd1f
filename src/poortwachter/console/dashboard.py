"""The start page: what this role can do, with the counts that matter to it (no personal data)."""

from __future__ import annotations

from starlette.responses import Response

from ..workflow.classroom import counts
from .nav import tiles_for
from .web import Ctx


def dashboard(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.store.read() as s:
        numbers = counts(s, now=ctx.now)
    return ctx.render("dashboard.html", tiles=tiles_for(ctx.user.role), counts=numbers)
