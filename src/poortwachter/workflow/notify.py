"""Who is told what about an unblock request, by e-mail: a pure function of the step that
happened, the accounts that may act next and the console's address. No database and no SMTP here:
workflow/outbox.py writes what this module decides into the outbox, in the step's own transaction,
and the console sends it (console/mailer.py).

Who:
- submitted -> every leidinggevende: the console shows every request to every leidinggevende and
  lets any of them endorse it (the route table's MANAGERS, endorse_request's role check). A
  request from the block page carries no zone, so the console narrows none by zone, and neither
  does this module.
- endorsed -> every ICT member: ICT decides.
- approved, declined, withdrawn (the steps that end a request) -> the requester, if they left an
  address; the caller then erases that address.
Disabled accounts, accounts without an address and the person who took the step get nothing.
One mail per recipient: never one To: with many addresses, so nobody learns who else was told.

What: only what the receiver may see in the console. Staff get the request number, the site's
host (in Unicode with its punycode beside it, as the console shows it), the status and a link
to the request in the console; never the requester's name, reason or address. The requester gets
the decision, the reason only where their status page shows it too (a decline or a withdrawal),
and their own status link. Dutch first, English second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ..hosts import BadHost, normalize_host, parse_url, readable

# The accounts that act next on a request in this status (see the module docstring).
READERS: dict[str, tuple[str, ...]] = {"submitted": ("leidinggevende",), "endorsed": ("ict",)}
# The statuses that end a request: the requester is told, then their address is erased.
FINAL = ("approved", "declined", "withdrawn")
SUBJECT_HOST = 80      # a host longer than this is cut short in the subject (the body has it whole)
SIGNATURE = ("Dit bericht is automatisch verstuurd door Poortwachter; antwoorden worden niet gelezen.\n"
             "This message was sent automatically by Poortwachter; replies are not read.")


@dataclass(frozen=True)
class Notices:
    """E-mail notifications are on; their links point into the console at `console_url`
    (scheme, host and optional path, without a trailing slash: see console_url())."""

    console_url: str


@dataclass(frozen=True)
class Staff:
    """An account as far as notifications need it."""

    id: int
    role: str
    email: str | None
    active: bool


@dataclass(frozen=True)
class Step:
    """What just happened to a request, as read under the step's lock."""

    status: str                   # the status the request entered
    request_id: int
    token: str                    # the requester's status-link key
    url: str                      # the blocked URL the request is about
    sites: tuple[str, ...]
    requester_email: str | None
    reason: str                   # the reason the requester's status page shows ("" when none)
    actor_id: int | None          # the account that took the step; None: the public form


@dataclass(frozen=True)
class Mail:
    kind: str                     # the status the request entered
    recipient: str                # exactly one address
    subject: str
    body: str


def readers(status: str) -> tuple[str, ...]:
    """The roles told when a request enters `status` (empty: no staff)."""
    return READERS.get(status, ())


def mails(step: Step, staff: Iterable[Staff], notices: Notices) -> list[Mail]:
    """The mails `step` causes, one per recipient."""
    host = _host(step)
    roles = readers(step.status)
    out: list[Mail] = []
    told: set[str] = set()
    for person in staff:
        if person.role not in roles or not person.active or not person.email or person.id == step.actor_id:
            continue
        if person.email.lower() in told:   # two accounts sharing an address get one mail
            continue
        told.add(person.email.lower())
        out.append(_staff_mail(step, host, person.email, notices))
    if step.status in FINAL and step.requester_email:
        out.append(_requester_mail(step, host, step.requester_email, notices))
    return out


def status_path(request_id: int, token: str) -> str:
    """The requester's status page; the token is the key (request numbers are sequential)."""
    return f"/aanvraag/{request_id}?t={quote(token, safe='')}"


def request_path(request_id: int) -> str:
    """A request's page for the leidinggevende and ICT."""
    return f"/aanvragen/{request_id}"


def console_url(text: str) -> str:
    """The console's address as people's browsers reach it, in one form: http(s), a host, an
    optional path, no query, fragment or user; without a trailing slash. ValueError otherwise
    (the message does not repeat the value)."""
    text = (text or "").strip()
    try:
        parts = urlsplit(text)
        host = normalize_host(parts.hostname or "")
        port = parts.port   # ValueError for a port out of range
    except (BadHost, ValueError):
        parts, host, port = urlsplit(""), "", None
    if parts.scheme.lower() not in ("http", "https") or not host or port == 0 or parts.query or parts.fragment \
            or parts.username is not None or any(ch.isspace() for ch in text):
        raise ValueError("--console-url: http(s)://HOST[:PORT][/PAD] verwacht / http(s)://HOST[:PORT][/PATH] expected")
    authority = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    return f"{parts.scheme.lower()}://{authority}{parts.path}".rstrip("/")


# --- the texts -------------------------------------------------------------------------------

# Staff: (subject nl, subject en, what happened nl, en, status nl, en). {n}: number, {host}: the site.
STAFF_TEXTS = {
    "submitted": ("Deblokkeringsaanvraag {n} ingediend", "Unblock request {n} submitted",
                  "Er is een deblokkeringsaanvraag ingediend voor {host}.",
                  "An unblock request has been submitted for {host}.",
                  "ingediend, wacht op onderbouwing door een leidinggevende",
                  "submitted, waiting for a manager to endorse it"),
    "endorsed": ("Deblokkeringsaanvraag {n} onderbouwd", "Unblock request {n} endorsed",
                 "Een leidinggevende heeft de deblokkeringsaanvraag voor {host} onderbouwd.",
                 "A manager has endorsed the unblock request for {host}.",
                 "onderbouwd, wacht op de beslissing van ICT",
                 "endorsed, waiting for ICT to decide"),
}
# The requester: (subject nl, subject en, decision nl, en).
REQUESTER_TEXTS = {
    "approved": ("Je aanvraag {n} is goedgekeurd", "Your request {n} has been approved",
                 "Je deblokkeringsaanvraag {n} voor {host} is goedgekeurd. Op je statuspagina staat "
                 "vanaf wanneer en tot wanneer de site open is.",
                 "Your unblock request {n} for {host} has been approved. Your status page shows from "
                 "when until when the site is open."),
    "declined": ("Je aanvraag {n} is afgewezen", "Your request {n} has been declined",
                 "Je deblokkeringsaanvraag {n} voor {host} is afgewezen.",
                 "Your unblock request {n} for {host} has been declined."),
    "withdrawn": ("Je aanvraag {n} is ingetrokken", "Your request {n} has been withdrawn",
                  "Je deblokkeringsaanvraag {n} voor {host} is ingetrokken.",
                  "Your unblock request {n} for {host} has been withdrawn."),
}


def _staff_mail(step: Step, host: str, recipient: str, notices: Notices) -> Mail:
    subject_nl, subject_en, what_nl, what_en, status_nl, status_en = STAFF_TEXTS[step.status]
    link = notices.console_url + request_path(step.request_id)
    values = {"n": step.request_id, "host": host}
    body = "\n".join([
        what_nl.format(**values), f"Status: {status_nl}.", "Bekijk de aanvraag in de console:", link, "",
        what_en.format(**values), f"Status: {status_en}.", "See the request in the console:", link, "",
        "-- ", SIGNATURE, ""])
    return Mail(step.status, recipient, _subject(subject_nl, subject_en, step.request_id, host), body)


def _requester_mail(step: Step, host: str, recipient: str, notices: Notices) -> Mail:
    subject_nl, subject_en, what_nl, what_en = REQUESTER_TEXTS[step.status]
    link = notices.console_url + status_path(step.request_id, step.token)
    values = {"n": step.request_id, "host": host}
    reason_nl = [f"Reden: {step.reason}"] if step.reason else []
    reason_en = [f"Reason: {step.reason}"] if step.reason else []
    body = "\n".join([
        what_nl.format(**values), *reason_nl, "Je statuspagina:", link, "",
        what_en.format(**values), *reason_en, "Your status page:", link, "",
        "Je e-mailadres is nu gewist: over deze aanvraag krijg je geen mail meer.",
        "Your e-mail address has now been deleted: you will get no more mail about this request.", "",
        "-- ", SIGNATURE, ""])
    return Mail(step.status, recipient, _subject(subject_nl, subject_en, step.request_id, host), body)


def _subject(nl: str, en: str, request_id: int, host: str) -> str:
    short = host if len(host) <= SUBJECT_HOST else host[:SUBJECT_HOST - 1] + "…"
    return f"{nl.format(n=request_id)} / {en.format(n=request_id)}: {short}"


def _host(step: Step) -> str:
    """The host of the blocked URL as the console shows it; else that of the first site."""
    try:
        return readable(parse_url(step.url).host)
    except (BadHost, ValueError):
        pass
    for site in step.sites:
        try:
            return readable(normalize_host(site.partition("/")[0]))
        except BadHost:
            continue
    return "–"
