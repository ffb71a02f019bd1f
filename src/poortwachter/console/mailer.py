"""Sending the outbox over SMTP: the console's side of the e-mail notifications.

The workflow writes mails into the outbox in the transaction of the step that causes them
(workflow/outbox.py); here the console's background task (app.py) hands them to the school's
mail server every few seconds, one SMTP session per batch and one recipient per message, and
records each outcome in its own small transaction, so a crash between two mails loses nothing.

Nothing here may stop the console: every failure becomes the mail's `last_error` and a retry
later (growing delays, outbox.retry_delay). Log lines and stored errors hold the exception's type
and the SMTP code only: a server's reply text can repeat the recipient's address.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ..clock import Clock
from ..store.db import Store
from ..workflow.notify import Notices
from ..workflow.outbox import Outgoing, claim, mark_failed, mark_sent

log = logging.getLogger("poortwachter.console.mail")

DEFAULT_PORT = 25
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class MailSettings:
    """How the console sends its notifications (`poortwachter console --smtp ...`)."""

    host: str
    port: int
    sender: str                      # the From: address (--mail-from)
    console_url: str                 # the base of every link in a mail (--console-url)
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)   # from POORTWACHTER_SMTP_PASSWORD
    timeout: float = TIMEOUT_S

    @property
    def notices(self) -> Notices:
        return Notices(console_url=self.console_url)


def parse_smtp(text: str) -> tuple[str, int]:
    """--smtp HOST[:PORT], an IPv6 address in brackets ("[::1]:25"); the port defaults to 25.
    ValueError otherwise (the message does not repeat the value)."""
    text = (text or "").strip()
    host, port, bad = text, "", text.endswith(":")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        bad = bad or not bracket or bool(rest and not rest.startswith(":"))
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    # else: no ":" at all, or a bare IPv6 address (several), which cannot carry a port
    if bad or not host or any(ch.isspace() for ch in host) or (port and not _port_ok(port)):
        raise ValueError("--smtp: HOST[:PORT] verwacht / HOST[:PORT] expected")
    return host, int(port) if port else DEFAULT_PORT


def send_due(store: Store, settings: MailSettings, clock: Clock) -> int:
    """Send the mails that are due; returns how many the server took."""
    with store.write() as s:
        batch = claim(s, now=clock())
    if not batch:
        return 0
    try:
        server = _connect(settings)
    except (OSError, smtplib.SMTPException) as exc:   # the server is away: every mail waits
        _failed_all(store, batch, exc, clock)
        return 0
    sent = 0
    try:
        for n, mail in enumerate(batch):
            try:
                server.send_message(_message(mail, settings, clock()))
            except smtplib.SMTPServerDisconnected as exc:   # the session is gone: the rest waits too
                _failed_all(store, batch[n:], exc, clock)
                break
            except Exception as exc:   # this mail only (a refusal, a header it cannot carry): recorded, retried
                _failed(store, mail, exc, clock)
            else:
                with store.write() as s:
                    mark_sent(s, mail.id, now=clock())
                sent += 1
    finally:
        _quit(server)
    return sent


def error_text(exc: BaseException) -> str:
    """What is kept of a failure: the exception's type and the SMTP code, never the server's
    words (a refusal often repeats the address)."""
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code = next(iter(exc.recipients.values()))[0]
    return type(exc).__name__ + (f" {code}" if isinstance(code, int) else "")


def permanent(exc: BaseException) -> bool:
    """A refusal of this recipient for good (5xx): trying again will not help. Anything else
    (a server away, a full mailbox, a 5xx about the sender, i.e. the console's own settings) is
    tried again, so a misconfiguration fixed within GIVE_UP loses nothing."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPNotSupportedError)   # e.g. an address the server cannot carry


# --- helpers ---------------------------------------------------------------------------------

def _port_ok(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def _connect(settings: MailSettings) -> smtplib.SMTP:
    server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        server.ehlo()
        if settings.starttls:
            server.starttls(context=ssl.create_default_context())
            server.ehlo()
        if settings.user:
            server.login(settings.user, settings.password or "")
    except BaseException:
        _quit(server)
        raise
    return server


def _message(mail: Outgoing, settings: MailSettings, now: dt.datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = mail.recipient              # one recipient per message, always
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"   # RFC 3834: no out-of-office replies to this
    message["Content-Language"] = "nl, en"
    message.set_content(mail.body)
    return message


def _failed(store: Store, mail: Outgoing, exc: BaseException, clock: Clock) -> None:
    with store.write() as s:
        status = mark_failed(s, mail.id, error=error_text(exc), permanent=permanent(exc), now=clock())
    log.warning("mail %d not sent (e-mail niet verstuurd, %s): %s", mail.id,
                "opgegeven / given up" if status == "failed" else "later opnieuw / retried later", error_text(exc))


def _failed_all(store: Store, batch: list[Outgoing], exc: BaseException, clock: Clock) -> None:
    with store.write() as s:
        for mail in batch:
            mark_failed(s, mail.id, error=error_text(exc), permanent=False, now=clock())
    log.warning("%d mail(s) not sent (e-mail niet verstuurd, later opnieuw / retried later): %s",
                len(batch), error_text(exc))


def _quit(server: smtplib.SMTP) -> None:
    try:
        server.quit()
    except (OSError, smtplib.SMTPException):
        server.close()
