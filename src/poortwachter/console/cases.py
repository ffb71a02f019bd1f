"""Cases (zaken, 004 art. 22) for directie and ICT, and the read-only access ledger.

- /zaken: the cases; directie opens one (reference, article, violation, why, subject, window).
- /zaken/{id}: the case; ICT approves it (never the opener), either role closes it and records
  that the subject was informed; with an approved case, the share holders enter their shares
  and passphrases to view or export the subject's events.
- Shares are PASTED into the form (the content of the holder's share file), with the passphrase
  in a password field: the console accepts no uploads at all, and a share file left on the
  server to be "read from the data dir" would defeat the point of handing it out. Nothing typed
  is echoed back, stored or logged; the report is rendered once and never cached (no-store).
- /logboek: the access ledger, read-only: who looked at or decided what, when, how many events.

Every step goes through auditlog/cases.py and auditlog/ledger.py, which check the role again and
write the ledger.
"""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from ..auditlog.cases import (
    APPROVERS,
    CASE_ROLES,
    MAX_SHARES,
    OPENERS,
    approve_case,
    close_case,
    escrow_holders,
    expire_cases,
    get_case,
    inform_case,
    list_cases,
    open_case,
    report_csv,
    report_json,
    unseal_case,
)
from ..auditlog.ledger import list_ledger
from . import forms
from .web import Ctx, flash

DONE = {
    "geopend": ("De zaak is geopend en wacht op goedkeuring door ICT.",
                "The case is open and awaits approval by ICT."),
    "goedgekeurd": ("De zaak is goedgekeurd: de houders van de deelsleutels kunnen nu inzien.",
                    "The case is approved: the share holders can now look."),
    "gesloten": ("De zaak is gesloten. Informeer nu de betrokkene.", "The case is closed. Now inform the subject."),
    "geinformeerd": ("Vastgelegd: de betrokkene is geïnformeerd.", "Recorded: the subject has been informed."),
}
STATUS = {
    "open": ("Open, wacht op goedkeuring", "Open, awaiting approval"),
    "approved": ("Goedgekeurd", "Approved"),
    "closed": ("Gesloten", "Closed"),
    "expired": ("Verlopen", "Expired"),
}
ACTIONS = {
    "keys": ("Sleutelceremonie", "Key ceremony"),
    "open": ("Geopend", "Opened"),
    "approve": ("Goedgekeurd", "Approved"),
    "close": ("Gesloten", "Closed"),
    "inform": ("Betrokkene geïnformeerd", "Subject informed"),
    "expire": ("Verlopen", "Expired"),
    "view": ("Ingezien", "Viewed"),
    "export": ("Geëxporteerd", "Exported"),
    "refused": ("Inzien geweigerd", "Look refused"),
}
LEDGER_PAGE = 500
DEFAULT_SLOTS = 3


def cases(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.store.write() as s:
        expire_cases(s, now=ctx.now)
    with ctx.store.read() as s:
        every = list_cases(s, user=ctx.user)
    until = ctx.now.replace(second=0, microsecond=0)
    return ctx.render("cases.html", cases=every, status=STATUS, now=ctx.now, done=flash(ctx, DONE),
                      may_open=ctx.user.role in OPENERS,
                      default_start=forms.input_value(until - dt.timedelta(days=7), ctx.policy.tz),
                      default_end=forms.input_value(until, ctx.policy.tz))


def open_(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    tz = ctx.policy.tz
    f = ctx.form
    start = forms.local_datetime(f, "start", tz, "Begin van het tijdvak", "Start of the window")
    end = forms.local_datetime(f, "end", tz, "Einde van het tijdvak", "End of the window")
    assert start is not None and end is not None
    with ctx.store.write() as s:
        case_id = open_case(s, user=ctx.user, reference=forms.text(f, "reference"), article=forms.text(f, "article"),
                            description=forms.text(f, "description"), reason=forms.text(f, "reason"),
                            subject=forms.text(f, "subject", limit=64), window_start=start, window_end=end,
                            now=ctx.now)
    return ctx.redirect(f"/zaken/{case_id}?ok=geopend")


def detail(ctx: Ctx) -> Response:
    assert ctx.user is not None
    case_id = int(ctx.request.path_params["case_id"])
    with ctx.store.read() as s:
        case = get_case(s, case_id, user=ctx.user)
        entries = list_ledger(s, user=ctx.user, case_id=case_id)
        holders = escrow_holders(s)
    slots = [(h.holder, h.name) for h in holders] or [("", "")] * DEFAULT_SLOTS
    state = case.state(ctx.now)
    opener_role, _, opener_name = case.opened_by.partition(":")
    may_approve = (state == "open" and ctx.user.role in APPROVERS and ctx.user.role != opener_role
                   and ctx.user.username != opener_name)
    return ctx.render("cases_detail.html", case=case, state=state, status=STATUS, actions=ACTIONS,
                      entries=entries, slots=slots, threshold=holders[0].threshold if holders else None,
                      may_approve=may_approve, may_act=ctx.user.role in CASE_ROLES, done=flash(ctx, DONE))


def approve(ctx: Ctx) -> Response:
    assert ctx.user is not None
    case_id = int(ctx.request.path_params["case_id"])
    with ctx.store.write() as s:
        approve_case(s, case_id, user=ctx.user, now=ctx.now)
    return ctx.redirect(f"/zaken/{case_id}?ok=goedgekeurd")


def close(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    case_id = int(ctx.request.path_params["case_id"])
    with ctx.store.write() as s:
        close_case(s, case_id, user=ctx.user, outcome=forms.text(ctx.form, "outcome"), now=ctx.now)
    return ctx.redirect(f"/zaken/{case_id}?ok=gesloten")


def inform(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    case_id = int(ctx.request.path_params["case_id"])
    with ctx.store.write() as s:
        inform_case(s, case_id, user=ctx.user, note=forms.text(ctx.form, "note"), now=ctx.now)
    return ctx.redirect(f"/zaken/{case_id}?ok=geinformeerd")


def view(ctx: Ctx) -> Response:
    assert ctx.user is not None
    case_id = int(ctx.request.path_params["case_id"])
    report = unseal_case(ctx.store, case_id, user=ctx.user, shares=_shares(ctx), now=ctx.now, purpose="view")
    return ctx.render("cases_report.html", report=report, case=report.case)


def export(ctx: Ctx) -> Response:
    assert ctx.form is not None and ctx.user is not None
    case_id = int(ctx.request.path_params["case_id"])
    fmt = forms.choice(ctx.form, "format", ("csv", "json"), "indeling", "format")
    report = unseal_case(ctx.store, case_id, user=ctx.user, shares=_shares(ctx), now=ctx.now,
                         purpose="export", note=fmt)
    if fmt == "csv":
        body, media = report_csv(report), "text/csv; charset=utf-8"
    else:
        body, media = report_json(report), "application/json; charset=utf-8"
    return Response(body, media_type=media, headers={
        "content-disposition": f'attachment; filename="zaak-{case_id}.{fmt}"'})


def ledger(ctx: Ctx) -> Response:
    assert ctx.user is not None
    with ctx.store.read() as s:
        entries = list_ledger(s, user=ctx.user, limit=LEDGER_PAGE)
    return ctx.render("ledger.html", entries=entries, actions=ACTIONS, limit=LEDGER_PAGE)


def _shares(ctx: Ctx) -> list[tuple[str, str]]:
    """The (share text, passphrase) pairs of the filled-in slots."""
    assert ctx.form is not None
    pairs = []
    for i in range(1, MAX_SHARES + 1):
        share = ctx.form.get(f"share_{i}")
        passphrase = ctx.form.get(f"passphrase_{i}")
        if isinstance(share, str) and share.strip():
            pairs.append((share.strip(), passphrase if isinstance(passphrase, str) else ""))
    return pairs
