"""The one door every route goes through: session, authorisation, CSRF, errors, rendering.

A route is declared with the roles that may use it (`PUBLIC`, `ANY_STAFF` or a set of roles);
`page()` wraps its handler so that, in this order and on the server side:
1. the session cookie is looked up in the store (sliding expiry);
2. a route that needs a login sends an anonymous visitor to /inloggen (GET) or answers 401 (POST);
3. a logged-in person whose role is not allowed gets 403;
4. every POST must carry the CSRF token (the session's, or the anonymous double-submit cookie);
5. the handler runs in a worker thread (the store and the templates are synchronous);
6. the service's Forbidden, Invalid, Conflict and Throttled become 403, 400, 409 and 429 pages.

A POST route may also name its `form` (the page the form is on, and that page's handler): then a
refusal (Invalid) shows that page again with the error on the form and what was typed in it, and a
post without a live session keeps what was typed for after the login (drafts.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..clock import Clock
from ..roles import ROLE_TITLES, ROLES
from ..store.db import Store
from ..workflow import Conflict, Forbidden, Invalid, Throttled, User
from ..workflow.errors import NotFound
from ..workflow.notify import Notices, status_path
from ..workflow.sessions import load_session
from ..workflow.throttle import SourceThrottle
from . import display, security
from .drafts import NO_DRAFT, Draft, Drafts, from_this_site
from .nav import tiles_for
from .policyview import PolicyView
from .security import CSRF_FIELD

log = logging.getLogger("poortwachter.console")

TEMPLATES = Path(__file__).with_name("templates")
PUBLIC: frozenset[str] = frozenset()           # no login needed
ANY_STAFF: frozenset[str] = frozenset(ROLES)  # any logged-in role
MAX_BODY = 64 * 1024


@dataclass
class Console:
    """Everything a handler needs, made once by create_app."""

    store: Store
    policy: PolicyView
    clock: Clock
    env: Environment
    drafts: Drafts = field(default_factory=Drafts)   # forms kept over a login (drafts.py)
    sources: SourceThrottle = field(default_factory=SourceThrottle)   # the login brake per client address
    notices: Notices | None = None   # e-mail notifications: None when the console sends no mail


@dataclass
class Ctx:
    request: Request
    console: Console
    now: dt.datetime
    user: User | None
    csrf: str                        # the token this visitor's forms must carry
    session_token: str | None        # the cookie's token, valid or not
    form: FormData | None = None
    after: list[Callable[[Response], None]] = field(default_factory=list)  # cookie changes
    draft: Draft | None = None       # what was typed in a form that came back (drafts.py)

    @property
    def store(self) -> Store:
        return self.console.store

    @property
    def policy(self) -> PolicyView:
        return self.console.policy

    @property
    def notices(self) -> Notices | None:
        return self.console.notices

    def render(self, template: str, code: int = 200, /, **values: Any) -> HTMLResponse:
        return render(self, template, code, **values)

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)

    def draft_at(self, action: str) -> Draft:
        """What was typed in the form that posts to `action`, if that form came back; else empty."""
        return (self.draft or NO_DRAFT).at(action)


Handler = Callable[[Ctx], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


class Form(NamedTuple):
    """Where a POST route's form is: the page's path ("/aanvragen/{request_id}", filled from the
    POST's path parameters) and the handler that shows it."""

    page: str
    handler: Handler


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["ROLE_TITLES"] = ROLE_TITLES
    env.globals["nav_for"] = tiles_for
    env.filters.update(site=display.site, host=display.host)
    env.globals.update(person=display.person, role_title=display.role_title, STATE_TITLES=display.STATE_TITLES,
                       STEP_TITLES=display.STEP_TITLES, GATEWAY_ROLE_TITLES=display.GATEWAY_ROLE_TITLES,
                       EXCLUSION_STATE_TITLES=display.EXCLUSION_STATE_TITLES)
    return env


def render(ctx: Ctx, template: str, code: int = 200, /, **values: Any) -> HTMLResponse:
    values.setdefault("draft", ctx.draft or NO_DRAFT)
    return render_page(ctx.console, ctx.request, template, code, user=ctx.user, csrf=ctx.csrf, **values)


def render_page(console: Console, request: Request, template: str, code: int = 200, /, *,
                user: User | None, csrf: str, **values: Any) -> HTMLResponse:
    tz = console.policy.tz

    def when(value: dt.datetime | None, fmt: str = "%d-%m-%Y %H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value else "–"

    page = console.env.get_template(template).render(
        user=user, csrf=csrf, csrf_field=CSRF_FIELD, path=request.url.path,
        school=console.policy.school, when=when, who=display.Names(console.store), **values)
    return HTMLResponse(page, status_code=code)


def error_page(ctx: Ctx, status: int, nl: str, en: str, **extra: Any) -> HTMLResponse:
    return ctx.render("error.html", status, status_code=status, message_nl=nl, message_en=en, **extra)


def split_message(message: str) -> tuple[str, str]:
    """The service's "Nederlands / English" messages, as two parts."""
    nl, sep, en = str(message).partition(" / ")
    return (nl, en) if sep else (message, "")


def safe_next(target: str | None) -> str:
    """Only a path on this console: no scheme, no //host, no backslash tricks (open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 0x20 for ch in target):
        return "/"
    return target


def page(roles: frozenset[str], handler: Handler, form: Form | None = None) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            return await guarded(request)
        except Exception as exc:  # noqa: BLE001 - the last line of defence, see below
            return await run_in_threadpool(failure_page, request, exc)

    async def guarded(request: Request) -> Response:
        console: Console = request.app.state.console
        ctx = await run_in_threadpool(_visitor, request, console)
        if roles is not PUBLIC and ctx.user is None:
            response = await _keep_typed(ctx, form) or _login_needed(ctx)
        elif roles is not PUBLIC and ctx.user is not None and ctx.user.role not in roles:
            response = await run_in_threadpool(
                error_page, ctx, 403, "Dit mag je met jouw rol niet doen.",
                "Your role does not allow this.")
        else:
            if request.method == "POST":
                if _too_large(request):
                    response = await run_in_threadpool(error_page, ctx, 413, "Het formulier is te groot.",
                                                       "The form is too large.")
                    return _finish(ctx, response)
                ctx.form = await request.form(max_files=0, max_fields=300)
                if not security.same(_field(ctx.form, CSRF_FIELD), ctx.csrf):
                    # the form of a session that has ended since (expired, or another login)
                    kept = await _keep_typed(ctx, form) if ctx.user or ctx.session_token else None
                    response = kept or await run_in_threadpool(
                        error_page, ctx, 403,
                        "Het formulier is verlopen of niet van deze site. Laad de pagina opnieuw.",
                        "The form has expired or did not come from this site. Reload the page.")
                    return _finish(ctx, response)
            elif request.method == "GET":
                _take_typed(ctx)
            response = await run_in_threadpool(_run, handler, ctx, form)
        return _finish(ctx, response)

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    endpoint.roles = roles  # type: ignore[attr-defined]  # read by the route-coverage test
    return endpoint


def failure_page(request: Request, exc: BaseException) -> Response:
    """An unexpected error: a bilingual page, and a log line with only the exception's type (a
    database error's message can carry the submitted values, i.e. personal data)."""
    unavailable = isinstance(exc, SQLAlchemyError)
    log.error("console request failed (verzoek mislukt): %s", type(exc).__name__)
    code = 503 if unavailable else 500
    nl, en = (("De database is even niet bereikbaar. Probeer het over een minuut opnieuw.",
               "The database cannot be reached right now. Try again in a minute.") if unavailable else
              ("Er ging iets mis. Probeer het opnieuw of meld het bij ICT.",
               "Something went wrong. Try again or tell ICT."))
    return plain_error(request, code, nl, en)


def plain_error(request: Request, code: int, nl: str, en: str) -> Response:
    """An error page without a session lookup (unknown routes, failures)."""
    console: Console = request.app.state.console
    try:
        return render_page(console, request, "error.html", code, user=None, csrf="", status_code=code,
                           message_nl=nl, message_en=en)
    except Exception:  # noqa: BLE001 - e.g. the policy view failing too: plain text will do
        return PlainTextResponse(f"{nl} / {en}", status_code=code)


async def not_found(request: Request, _exc: Exception) -> Response:
    return await run_in_threadpool(plain_error, request, 404, "Deze pagina bestaat niet.", "This page does not exist.")


async def not_allowed(request: Request, _exc: Exception) -> Response:
    return await run_in_threadpool(plain_error, request, 405, "Dat kan op deze pagina niet.",
                                   "That is not possible on this page.")


def _too_large(request: Request) -> bool:
    """Forms here are a few kilobytes; refuse big bodies before reading them (no uploads at all)."""
    length = request.headers.get("content-length")
    if length is None:
        return request.headers.get("transfer-encoding", "").lower() == "chunked"
    return not length.isdigit() or int(length) > MAX_BODY


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _visitor(request: Request, console: Console) -> Ctx:
    now = console.clock()
    token = request.cookies.get(security.session_cookie_name(request))
    user: User | None = None
    csrf = ""
    ctx = Ctx(request, console, now, None, "", token)
    if token:
        with console.store.write() as s:  # sliding expiry writes
            loaded = load_session(s, token, now=now)
        if loaded is None:   # expired or ended: tell the browser to drop it
            stale = security.session_cookie_name(request)
            ctx.after.append(lambda r: security.delete_cookie(r, request, stale))
        else:
            user, csrf = loaded
    if user is None:
        # anonymous: double-submit cookie, made on first sight
        cookie = security.csrf_cookie_name(request)
        csrf = request.cookies.get(cookie) or ""
        if len(csrf) < 32:
            csrf = fresh = security.new_token()
            ctx.after.append(lambda r: security.set_cookie(r, request, cookie, fresh))
    ctx.user, ctx.csrf = user, csrf
    return ctx


def _login_needed(ctx: Ctx) -> Response:
    if ctx.request.method == "GET":
        target = ctx.request.url.path
        if ctx.request.url.query:
            target += "?" + ctx.request.url.query
        return ctx.redirect("/inloggen?volgende=" + quote(target, safe=""))
    return error_page(ctx, 401, "Log eerst in.", "Please log in first.", login_link=True)


async def _keep_typed(ctx: Ctx, form: Form | None) -> Response | None:
    """A form posted from this console without a live session: keep what was typed and send the
    person to log in (or, logged in again since, back to the form). None: not such a post."""
    request = ctx.request
    if form is None or request.method != "POST" or not from_this_site(request) or _too_large(request):
        return None
    if ctx.form is None:
        ctx.form = await request.form(max_files=0, max_fields=300)
    back = form.page.format(**request.path_params)
    token = ctx.console.drafts.keep(back, Draft.of(request.url.path, ctx.form, resumed=True))
    if ctx.user is None:
        response = ctx.redirect("/inloggen?verlopen=1&volgende=" + quote(back, safe=""))
    else:
        response = ctx.redirect(back)
    security.set_cookie(response, request, security.draft_cookie_name(request), token)
    return response


def _take_typed(ctx: Ctx) -> None:
    """The kept form for this page, if the browser holds one (once; see drafts.py)."""
    name = security.draft_cookie_name(ctx.request)
    token = ctx.request.cookies.get(name)
    if not token or ctx.user is None:
        return
    ctx.draft = ctx.console.drafts.take(token, ctx.request.url.path)
    if ctx.draft is not None or not ctx.console.drafts.knows(token):
        ctx.after.append(lambda r: security.delete_cookie(r, ctx.request, name))


def _run(handler: Handler, ctx: Ctx, form: Form | None = None) -> Response:
    try:
        return handler(ctx)
    except Forbidden as exc:
        return error_page(ctx, 403, *split_message(str(exc)))
    except NotFound as exc:
        return error_page(ctx, 404, *split_message(str(exc)), back=True)
    except Invalid as exc:
        if form is not None and ctx.form is not None:
            # the form again, with the error on it and what was typed in it
            ctx.draft = Draft.of(ctx.request.url.path, ctx.form, error=split_message(str(exc)))
            response = _run(form.handler, ctx)
            if response.status_code == 200:
                response.status_code = 400
            return response
        return error_page(ctx, 400, *split_message(str(exc)), back=True)
    except Conflict as exc:
        nl, en = split_message(str(exc)) if str(exc) else (
            "Iemand anders heeft dit net al afgehandeld.", "Someone else has just dealt with this.")
        return error_page(ctx, 409, nl, en, back=True)
    except Throttled as exc:
        response = error_page(ctx, 429, *split_message(str(exc)))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response


def _finish(ctx: Ctx, response: Response) -> Response:
    for change in ctx.after:
        change(response)
    return response


def status_link(request_id: int, token: str) -> str:
    return status_path(request_id, token)


def flash(ctx: Ctx, messages: Mapping[str, tuple[str, str]]) -> tuple[str, str] | None:
    """A short confirmation after a redirect (?ok=code); only known codes, never free text."""
    return messages.get(ctx.request.query_params.get("ok", ""))
