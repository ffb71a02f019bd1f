"""The console as a Starlette application: the route table with the roles of every route.

Every route is made by `page(roles, handler)` (see web.py), so none can be added without saying
who may use it; tests/console/test_security.py checks every route in this table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..auditlog import cases as audit_cases
from ..auditlog import ledger as audit_ledger
from ..clock import Clock, system_clock
from ..store.db import open_store
from ..workflow.classroom import record_expiries
from ..workflow.useradmin import RESET_PATH
from . import accounts, cases, classroom, dashboard, exclusions, login, public, unblocks
from .mailer import MailSettings, send_due
from .policyview import PolicyView
from .security import SecurityHeaders
from .web import ANY_STAFF, PUBLIC, Console, Form, make_env, not_allowed, not_found, page

log = logging.getLogger("poortwachter.console")

STATIC = Path(__file__).with_name("static")
EXPIRY_EVERY_S = 30.0
MAIL_EVERY_S = 5.0

ICT = frozenset({"ict"})
MANAGERS = frozenset({"leidinggevende", "ict"})
TEACHERS = frozenset({"docent", "ict"})
EXAMS = frozenset({"examencoordinator", "ict"})
EXCLUDERS = frozenset({"directie", "ict"})
CASES = frozenset(audit_cases.CASE_ROLES)
CASE_OPENERS = frozenset(audit_cases.OPENERS)
CASE_APPROVERS = frozenset(audit_cases.APPROVERS)
LEDGER_READERS = frozenset(audit_ledger.LEDGER_READERS)


def routes() -> list[BaseRoute]:
    def get(path: str, roles: frozenset[str], handler: object) -> Route:
        return Route(path, page(roles, handler), methods=["GET"])  # type: ignore[arg-type]

    def post(path: str, roles: frozenset[str], handler: object, form: Form | None = None) -> Route:
        return Route(path, page(roles, handler, form), methods=["POST"])  # type: ignore[arg-type]

    # the pages whose forms come back with what was typed (on an error, and over a login)
    request_form = Form("/deblokkeren", public.request_form)
    request_page = Form("/aanvragen/{request_id}", unblocks.request_detail)
    grants_page = Form("/deblokkeringen", unblocks.grant_list)
    exclusions_page = Form("/uitsluitingen", exclusions.exclusions)
    classroom_page = Form("/klas", classroom.classroom)
    exams_page = Form("/examen", classroom.exams)

    return [
        get("/", ANY_STAFF, dashboard.dashboard),
        get("/inloggen", PUBLIC, login.login_form),
        post("/inloggen", PUBLIC, login.login),
        post("/uitloggen", ANY_STAFF, login.logout),
        # public: the block page links here; pupils have no account
        get("/deblokkeren", PUBLIC, public.request_form),
        post("/deblokkeren", PUBLIC, public.submit, request_form),
        get("/aanvraag/{request_id:int}", PUBLIC, public.status),
        # leidinggevende and ICT
        get("/aanvragen", MANAGERS, unblocks.request_list),
        get("/aanvragen/{request_id:int}", MANAGERS, unblocks.request_detail),
        post("/aanvragen/{request_id:int}/onderbouwen", MANAGERS, unblocks.endorse, request_page),
        post("/aanvragen/{request_id:int}/intrekken", MANAGERS, unblocks.withdraw, request_page),
        post("/aanvragen/{request_id:int}/goedkeuren", ICT, unblocks.approve, request_page),
        post("/aanvragen/{request_id:int}/afwijzen", ICT, unblocks.decline, request_page),
        get("/deblokkeringen", ICT, unblocks.grant_list),
        get("/deblokkeringen/historie", ICT, unblocks.grant_history),
        post("/deblokkeringen/{grant_id:int}/intrekken", ICT, unblocks.revoke, grants_page),
        post("/deblokkeringen/{grant_id:int}/verlengen", ICT, unblocks.extend, grants_page),
        # docent
        get("/klas", TEACHERS, classroom.classroom),
        post("/klas/openen", TEACHERS, classroom.open_room, classroom_page),
        post("/klas/{opening_id:int}/beeindigen", TEACHERS, classroom.end_room, classroom_page),
        # examencoördinator
        get("/examen", EXAMS, classroom.exams),
        post("/examen/starten", EXAMS, classroom.begin_exam, exams_page),
        post("/examen/{exam_id:int}/beeindigen", EXAMS, classroom.stop_exam, exams_page),
        # directie
        get("/uitsluitingen", EXCLUDERS, exclusions.exclusions),
        post("/uitsluitingen/toevoegen", EXCLUDERS, exclusions.add, exclusions_page),
        post("/uitsluitingen/{ban_id:int}/beeindigen", EXCLUDERS, exclusions.end, exclusions_page),
        post("/uitsluitingen/downloadlimieten/{limit_id:int}/opheffen", EXCLUDERS, exclusions.lift_limit,
             exclusions_page),
        # cases (004 art. 22): directie opens, ICT approves; the ledger is read-only
        get("/zaken", CASES, cases.cases),
        post("/zaken/openen", CASE_OPENERS, cases.open_),
        get("/zaken/{case_id:int}", CASES, cases.detail),
        post("/zaken/{case_id:int}/goedkeuren", CASE_APPROVERS, cases.approve),
        post("/zaken/{case_id:int}/inzien", CASES, cases.view),
        post("/zaken/{case_id:int}/exporteren", CASES, cases.export),
        post("/zaken/{case_id:int}/sluiten", CASES, cases.close),
        post("/zaken/{case_id:int}/informeren", CASES, cases.inform),
        get("/logboek", LEDGER_READERS, cases.ledger),
        # accounts: ICT only; the one-time link's page is public (the link is the key)
        get("/gebruikers", ICT, accounts.accounts),
        post("/gebruikers/toevoegen", ICT, accounts.add),
        get("/gebruikers/{user_id:int}", ICT, accounts.detail),
        post("/gebruikers/{user_id:int}/uitschakelen", ICT, accounts.disable),
        post("/gebruikers/{user_id:int}/inschakelen", ICT, accounts.enable),
        post("/gebruikers/{user_id:int}/herstellink", ICT, accounts.make_link),
        post("/gebruikers/{user_id:int}/wachtwoord", ICT, accounts.new_password),
        post("/gebruikers/{user_id:int}/rol", ICT, accounts.change_role),
        post("/gebruikers/{user_id:int}/zones", ICT, accounts.change_zones),
        post("/gebruikers/{user_id:int}/email", ICT, accounts.change_email),
        get(RESET_PATH, PUBLIC, accounts.reset_form),
        post(RESET_PATH, PUBLIC, accounts.reset),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(store_url: str, policy_file: Path | str, data_dir: Path | str,
               clock: Clock | None = None, *, expiry_every_s: float = EXPIRY_EVERY_S,
               mail: MailSettings | None = None, mail_every_s: float = MAIL_EVERY_S) -> Starlette:
    """The console for the store at `store_url` and the policy in `policy_file` (lists from
    `data_dir`). `clock` gives the time (tests pass a fixed one). With `mail`, the workflow
    queues e-mail notifications and the console sends them every `mail_every_s` seconds;
    without it, no notification is written at all."""
    store = open_store(store_url)
    console = Console(store=store, policy=PolicyView(Path(policy_file), Path(data_dir)),
                      clock=clock or system_clock, env=make_env(),
                      notices=mail.notices if mail is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_expire(console, expiry_every_s))]
        if mail is not None:
            tasks.append(asyncio.create_task(_send(console, mail, mail_every_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            store.close()

    app = Starlette(routes=routes(), middleware=[Middleware(SecurityHeaders)], lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_allowed})
    app.state.console = console
    return app


async def _expire(console: Console, every: float) -> None:
    """Write the change-log entries of grants, openings, exams and exclusions that ran out."""
    while True:
        try:
            await asyncio.to_thread(_record_expiries, console)
        except Exception as exc:  # the database may be away for a while; try again later
            log.warning("expiries not recorded (verlopen niet vastgelegd): %s", type(exc).__name__)
        await asyncio.sleep(every)


def _record_expiries(console: Console) -> int:
    with console.store.write() as s:
        return record_expiries(s, now=console.clock())


async def _send(console: Console, mail: MailSettings, every: float) -> None:
    """Hand the outbox's due mails to the mail server (mailer.py)."""
    while True:
        try:
            await asyncio.to_thread(send_due, console.store, mail, console.clock)
        except Exception as exc:  # the database may be away for a while; the mails wait in the outbox
            log.warning("outbox not sent (e-mail niet verstuurd): %s", type(exc).__name__)
        await asyncio.sleep(every)
