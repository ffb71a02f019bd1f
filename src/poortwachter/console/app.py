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

from ..audit import cases as audit_cases
from ..clock import Clock, system_clock
from ..store.db import open_store
from ..workflow.classroom import record_expiries
from . import cases, classroom, dashboard, exclusions, login, public, unblocks
from .policyview import PolicyView
from .security import SecurityHeaders
from .web import ANY_STAFF, PUBLIC, Console, make_env, not_allowed, not_found, page

log = logging.getLogger("poortwachter.console")

STATIC = Path(__file__).with_name("static")
EXPIRY_EVERY_S = 30.0

ICT = frozenset({"ict"})
MANAGERS = frozenset({"leidinggevende", "ict"})
TEACHERS = frozenset({"docent", "ict"})
EXAMS = frozenset({"examencoordinator", "ict"})
EXCLUDERS = frozenset({"directie", "ict"})
CASES = frozenset(audit_cases.CASE_ROLES)
CASE_OPENERS = frozenset(audit_cases.OPENERS)
CASE_APPROVERS = frozenset(audit_cases.APPROVERS)
LEDGER_READERS = frozenset(audit_cases.LEDGER_READERS)


def routes() -> list[BaseRoute]:
    def get(path: str, roles: frozenset[str], handler: object) -> Route:
        return Route(path, page(roles, handler), methods=["GET"])  # type: ignore[arg-type]

    def post(path: str, roles: frozenset[str], handler: object) -> Route:
        return Route(path, page(roles, handler), methods=["POST"])  # type: ignore[arg-type]

    return [
        get("/", ANY_STAFF, dashboard.dashboard),
        get("/inloggen", PUBLIC, login.login_form),
        post("/inloggen", PUBLIC, login.login),
        post("/uitloggen", ANY_STAFF, login.logout),
        # public: the block page links here; pupils have no account
        get("/deblokkeren", PUBLIC, public.request_form),
        post("/deblokkeren", PUBLIC, public.submit),
        get("/aanvraag/{request_id:int}", PUBLIC, public.status),
        # leidinggevende and ICT
        get("/aanvragen", MANAGERS, unblocks.request_list),
        get("/aanvragen/{request_id:int}", MANAGERS, unblocks.request_detail),
        post("/aanvragen/{request_id:int}/onderbouwen", MANAGERS, unblocks.endorse),
        post("/aanvragen/{request_id:int}/intrekken", MANAGERS, unblocks.withdraw),
        post("/aanvragen/{request_id:int}/goedkeuren", ICT, unblocks.approve),
        post("/aanvragen/{request_id:int}/afwijzen", ICT, unblocks.decline),
        get("/deblokkeringen", ICT, unblocks.grant_list),
        post("/deblokkeringen/{grant_id:int}/intrekken", ICT, unblocks.revoke),
        # docent
        get("/klas", TEACHERS, classroom.classroom),
        post("/klas/openen", TEACHERS, classroom.open_room),
        post("/klas/{opening_id:int}/beeindigen", TEACHERS, classroom.end_room),
        # examencoördinator
        get("/examen", EXAMS, classroom.exams),
        post("/examen/starten", EXAMS, classroom.begin_exam),
        post("/examen/{exam_id:int}/beeindigen", EXAMS, classroom.stop_exam),
        # directie
        get("/uitsluitingen", EXCLUDERS, exclusions.exclusions),
        post("/uitsluitingen/toevoegen", EXCLUDERS, exclusions.add),
        post("/uitsluitingen/{ban_id:int}/beeindigen", EXCLUDERS, exclusions.end),
        post("/uitsluitingen/downloadlimieten/{limit_id:int}/opheffen", EXCLUDERS, exclusions.lift_limit),
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
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(store_url: str, policy_file: Path | str, data_dir: Path | str,
               clock: Clock | None = None, *, expiry_every_s: float = EXPIRY_EVERY_S) -> Starlette:
    """The console for the store at `store_url` and the policy in `policy_file` (lists from
    `data_dir`). `clock` gives the time (tests pass a fixed one)."""
    store = open_store(store_url)
    console = Console(store=store, policy=PolicyView(Path(policy_file), Path(data_dir)),
                      clock=clock or system_clock, env=make_env())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_expire(console, expiry_every_s))
        try:
            yield
        finally:
            task.cancel()
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
