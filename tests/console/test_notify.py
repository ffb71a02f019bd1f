"""E-mail notifications through the real console and a real SMTP server (aiosmtpd on 127.0.0.1):
the public form's optional address, the mails of submit -> endorse -> approve and of a decline,
who gets them (and who does not), what they say (and never say), the requester's address erased
once the decision mail is queued, and an SMTP outage that delays the mails but loses none.

Every wait on the console's sender polls its own condition with a deadline."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from poortwachter.console.mailer import MailSettings
from poortwachter.store.models import OutboxRow, UnblockRequestRow, UserRow
from poortwachter.workflow import create_user

from ..dbfixtures import BACKENDS, backend_url
from .conftest import NOW, PASSWORD, USERS, Console, csrf_of

CONSOLE_URL = "https://console.school.example"
SENDER = "poortwachter@school.example"
# The staff who should hear of a request, and those who never should.
MANAGER = "leiding@school.example"              # the fixture's leidinggevende1
# a leidinggevende whose account names zones: the console shows them every request all the same
MANAGER_ELSEWHERE = "leiding.b@school.example"
ICT = "ict@school.example"                      # the fixture's ict1
ICT_SECOND = "ict.b@school.example"
DISABLED_MANAGER = "oud@school.example"
TEACHER = "docent@school.example"
STAFF = (MANAGER, MANAGER_ELSEWHERE, ICT, ICT_SECOND, DISABLED_MANAGER, TEACHER)
# What the pupil typed: none of it may reach a member of staff by mail.
PUPIL = "Sam de Leerling, 3B"
PUPIL_MAIL = "sam.leerling@thuis.example"
REASON = "voor mijn werkstuk over vulkanen"
URL = "https://www.youtube.com/watch?v=geheimfilmpje"
DEADLINE_S = 15.0


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def text(self) -> str:
        return str(self.message.get_content()).replace("\r\n", "\n")   # lines as sent, without SMTP's CRLF


class Inbox:
    """aiosmtpd's handler: every message the server accepted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[Received] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self._messages.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 OK"

    @property
    def messages(self) -> list[Received]:
        with self._lock:
            return list(self._messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {deadline_s} s for: {what}")
        time.sleep(0.02)



@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    """A running SMTP server on 127.0.0.1:smtp_port."""
    handler = Inbox()
    server = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    server.start()
    try:
        yield handler
    finally:
        server.stop()


def settings(port: int) -> MailSettings:
    return MailSettings(host="127.0.0.1", port=port, sender=SENDER, console_url=CONSOLE_URL, timeout=5.0)


def with_staff_addresses(console: Console) -> None:
    """Addresses on the fixture's accounts, and the accounts that test who is (not) told."""
    with console.store.write() as s:
        for role, address in (("leidinggevende", MANAGER), ("ict", ICT), ("docent", TEACHER)):
            s.execute(update(UserRow).where(UserRow.username == USERS[role]).values(email=address))
        create_user(s, username="leiding2", display_name="Lotte Leiding", role="leidinggevende", password=PASSWORD,
                    zones=("lokaal-101",), actor="test", now=NOW, email=MANAGER_ELSEWHERE)
        create_user(s, username="ict2", display_name="Ivo ICT", role="ict", password=PASSWORD,
                    actor="test", now=NOW, email=ICT_SECOND)
        create_user(s, username="oud", display_name="Olga Oud", role="leidinggevende", password=PASSWORD,
                    actor="test", now=NOW, email=DISABLED_MANAGER)
        s.execute(update(UserRow).where(UserRow.username == "oud").values(active=False))


@pytest.fixture
def mail_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The console's store: SQLite, or the backend a test names (indirect parametrisation)."""
    with backend_url(getattr(request, "param", "sqlite"), tmp_path, schema_prefix="pw_notify") as url:
        yield url


@pytest.fixture
def mail_console(mail_db: str, inbox: Inbox, make_console: Callable[..., Console], smtp_port: int) -> Console:
    """A console that sends its mail to `inbox` (already listening), its sender polling every 50 ms.
    (Set up after the store and the server, so it stops before either goes away.)"""
    console = make_console(mail_db, mail=settings(smtp_port), mail_every_s=0.05)
    with_staff_addresses(console)
    return console


def submit(console: Console, *, email_address: str = PUPIL_MAIL) -> tuple[int, str]:
    """The pupil's request from the block page; returns its number and status link."""
    pupil = console.client()
    page = pupil.get("/deblokkeren", params={"url": URL, "category": "video"})
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": URL, "category": "video",
                                               "requester": PUPIL, "reason": REASON, "email": email_address})
    assert response.status_code == 303, response.text
    link = response.headers["location"].removesuffix("&nieuw=1")
    match = re.match(r"/aanvraag/(\d+)\?t=", link)
    assert match
    return int(match.group(1)), link


def endorse(console: Console, request_id: int) -> None:
    manager = console.login("leidinggevende")
    detail = manager.get(f"/aanvragen/{request_id}").text
    response = manager.post(f"/aanvragen/{request_id}/onderbouwen", data={
        "csrf": csrf_of(detail), "ground": "lesstof", "sites": "www.youtube.com", "zones": ["lokaal-101"],
        "start": "2025-03-10T10:40", "end": "2025-03-10T16:00", "motivation": "aardrijkskunde, les 4"})
    assert response.status_code == 303, response.text


def approve(console: Console, request_id: int) -> None:
    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    response = ict.post(f"/aanvragen/{request_id}/goedkeuren", data={
        "csrf": csrf_of(detail), "sites": "www.youtube.com", "zones": ["lokaal-101"],
        "start": "2025-03-10T11:00", "end": "2025-03-10T12:00", "reason": "interne notitie van ICT"})
    assert response.status_code == 303, response.text


def decline(console: Console, request_id: int, reason: str) -> None:
    ict = console.login("ict")
    detail = ict.get(f"/aanvragen/{request_id}").text
    response = ict.post(f"/aanvragen/{request_id}/afwijzen", data={"csrf": csrf_of(detail), "reason": reason})
    assert response.status_code == 303, response.text


def requester_email(console: Console, request_id: int) -> str | None:
    with console.store.read() as s:
        return s.scalar(select(UnblockRequestRow.requester_email).where(UnblockRequestRow.id == request_id))


def outbox(console: Console) -> list[OutboxRow]:
    with console.store.read() as s:
        rows = list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))
        s.expunge_all()   # plain objects, not expired by the read's rollback
    return rows


def assert_one_recipient_each(inbox: Inbox) -> None:
    for received in inbox.messages:
        assert len(received.rcpt_tos) == 1
        assert received.message.get_all("To") == [received.rcpt_tos[0]]
        assert received.message["Cc"] is None and received.message["Bcc"] is None
        assert received.mail_from == SENDER and received.message["From"] == SENDER
        assert received.message["Auto-Submitted"] == "auto-generated"


def assert_nothing_of_the_pupil(received: Received) -> None:
    """A mail to staff: no name, no reason, no address of the pupil or of anyone else, and of
    the blocked URL only its host."""
    whole = received.message.as_string() + received.text
    for secret in (PUPIL, "Sam", REASON, "vulkanen", PUPIL_MAIL, "geheimfilmpje", "watch?v"):
        assert secret not in whole, secret
    for address in STAFF:
        if address not in received.rcpt_tos:
            assert address not in whole, address


# --- the whole flow ----------------------------------------------------------------------------

@pytest.mark.parametrize("mail_db", BACKENDS, indirect=True)
def test_submit_endorse_approve_tell_the_right_people_the_right_things(mail_console: Console, inbox: Inbox) -> None:
    console = mail_console
    form = console.client().get("/deblokkeren").text
    assert 'name="email"' in form and "E-mailadres (optioneel)" in form and "E-mail (optional)" in form
    assert '<label for="email">' in form and 'id="email"' in form and 'aria-describedby="email-hint"' in form
    assert "daarna wissen we het adres" in form and "then we delete the address" in form

    request_id, link = submit(console)
    assert requester_email(console, request_id) == PUPIL_MAIL   # kept while the request is open

    # submitted: every enabled leidinggevende with an address, one mail each
    wait_for(lambda: inbox.to(MANAGER) and inbox.to(MANAGER_ELSEWHERE), "the managers' mails")
    for address in (MANAGER, MANAGER_ELSEWHERE):
        [mail] = inbox.to(address)
        assert_nothing_of_the_pupil(mail)
        assert mail.message["Subject"] == (f"Deblokkeringsaanvraag {request_id} ingediend / "
                                           f"Unblock request {request_id} submitted: www.youtube.com")
        body = mail.text
        assert body.index("ingediend voor www.youtube.com") < body.index("submitted for www.youtube.com")  # Dutch first
        assert f"{CONSOLE_URL}/aanvragen/{request_id}\n" in body
        assert "Status: ingediend" in body and "Status: submitted" in body
        assert "/aanvraag/" not in body   # never the requester's status link

    endorse(console, request_id)
    wait_for(lambda: inbox.to(ICT) and inbox.to(ICT_SECOND), "ICT's mails")
    for address in (ICT, ICT_SECOND):
        [mail] = inbox.to(address)
        assert_nothing_of_the_pupil(mail)
        assert "aardrijkskunde" not in mail.text   # nor the manager's motivation
        assert "Status: onderbouwd, wacht op de beslissing van ICT" in mail.text
        assert f"{CONSOLE_URL}/aanvragen/{request_id}\n" in mail.text

    approve(console, request_id)
    # queued in the approval's own transaction, and the address erased in that same one
    assert requester_email(console, request_id) is None
    assert [row.kind for row in outbox(console) if row.kind == "approved"] == ["approved"]
    wait_for(lambda: inbox.to(PUPIL_MAIL), "the requester's mail")
    [mail] = inbox.to(PUPIL_MAIL)
    assert mail.message["Subject"] == (f"Je aanvraag {request_id} is goedgekeurd / "
                                       f"Your request {request_id} has been approved: www.youtube.com")
    assert f"{CONSOLE_URL}{link}\n" in mail.text            # their own status link, with its token
    assert "interne notitie" not in mail.text              # the approval's reason is not on their page
    assert "geen mail meer" in mail.text
    for address in STAFF:
        assert address not in mail.message.as_string()

    # nobody else heard anything, and every mail went to one recipient
    wait_for(lambda: all(row.status == "sent" for row in outbox(console)), "every mail sent")
    assert sorted(a for m in inbox.messages for a in m.rcpt_tos) == sorted(
        [MANAGER, MANAGER_ELSEWHERE, ICT, ICT_SECOND, PUPIL_MAIL])
    assert_one_recipient_each(inbox)
    # a sent mail keeps neither its recipient nor its body
    assert {(row.recipient, row.body) for row in outbox(console)} == {("", "")}


def test_a_decline_tells_the_requester_with_the_reason_their_status_page_shows(
        mail_console: Console, inbox: Inbox) -> None:
    console = mail_console
    request_id, link = submit(console)
    wait_for(lambda: inbox.to(MANAGER), "the manager's mail")
    decline(console, request_id, "Er is een andere bron zonder reclame.")
    assert requester_email(console, request_id) is None

    wait_for(lambda: inbox.to(PUPIL_MAIL), "the requester's mail")
    [mail] = inbox.to(PUPIL_MAIL)
    assert f"Je aanvraag {request_id} is afgewezen" in mail.message["Subject"]
    assert "Reden: Er is een andere bron zonder reclame." in mail.text
    assert "Reason: Er is een andere bron zonder reclame." in mail.text
    assert f"{CONSOLE_URL}{link}\n" in mail.text
    assert "Er is een andere bron zonder reclame." in console.client().get(link).text   # the page shows it too
    # a decline tells no staff
    assert not inbox.to(ICT) and not inbox.to(ICT_SECOND)
    assert len(inbox.to(MANAGER)) == 1
    assert_one_recipient_each(inbox)


def test_without_an_address_the_requester_gets_nothing_and_staff_still_do(
        mail_console: Console, inbox: Inbox) -> None:
    console = mail_console
    request_id, _ = submit(console, email_address="")
    assert requester_email(console, request_id) is None
    decline(console, request_id, "nee")
    wait_for(lambda: all(row.status == "sent" for row in outbox(console)), "every mail sent")
    assert sorted(a for m in inbox.messages for a in m.rcpt_tos) == sorted([MANAGER, MANAGER_ELSEWHERE])


def test_disabled_accounts_accounts_without_an_address_and_other_roles_hear_nothing(
        mail_console: Console, inbox: Inbox) -> None:
    console = mail_console
    with console.store.write() as s:   # the fixture's second leidinggevende loses their address
        s.execute(update(UserRow).where(UserRow.username == "leiding2").values(email=None))
    request_id, _ = submit(console)
    endorse(console, request_id)
    wait_for(lambda: len(outbox(console)) == 3 and all(row.status == "sent" for row in outbox(console)),
             "the three mails sent")
    assert sorted(a for m in inbox.messages for a in m.rcpt_tos) == sorted([MANAGER, ICT, ICT_SECOND])
    for address in (DISABLED_MANAGER, TEACHER, MANAGER_ELSEWHERE):
        assert not inbox.to(address)


def test_a_refused_address_is_asked_again_and_nothing_is_stored(mail_console: Console, inbox: Inbox) -> None:
    console = mail_console
    pupil = console.client()
    page = pupil.get("/deblokkeren", params={"url": URL})
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": URL, "requester": PUPIL,
                                               "reason": REASON, "email": "sam at thuis"})
    assert response.status_code == 400
    assert "E-mailadres ongeldig" in response.text
    assert 'value="sam at thuis"' in response.text and REASON in response.text   # what was typed comes back
    too_long = "a" * 250 + "@x.nl"
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(page.text), "url": URL, "requester": PUPIL,
                                               "reason": REASON, "email": too_long})
    assert response.status_code == 400
    with console.store.read() as s:
        assert s.scalar(select(UnblockRequestRow.id)) is None
    assert outbox(console) == []


# --- the mail server away ----------------------------------------------------------------------

def test_mails_wait_while_the_server_is_away_and_arrive_once_it_is_back(
        make_console: Callable[..., Console], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from poortwachter.store import default_url

    port = free_port()   # nobody listens here yet
    console = make_console(default_url(tmp_path / "data"), mail=settings(port), mail_every_s=0.05)
    with_staff_addresses(console)
    caplog.set_level(logging.WARNING, logger="poortwachter.console")

    request_id, _ = submit(console)

    def tried() -> bool:
        rows = outbox(console)
        return bool(rows) and all(row.attempts >= 1 and row.last_error for row in rows)

    wait_for(tried, "a failed attempt recorded")
    rows = outbox(console)
    assert {row.status for row in rows} == {"pending"}
    assert sorted(row.recipient for row in rows) == sorted([MANAGER, MANAGER_ELSEWHERE])   # kept until sent
    assert {row.last_error for row in rows} == {"ConnectionRefusedError"}
    assert console.client().get("/deblokkeren").status_code == 200   # the console carries on
    for address in (MANAGER, MANAGER_ELSEWHERE, PUPIL_MAIL):
        assert address not in caplog.text
    assert "ConnectionRefusedError" in caplog.text

    # a decision while the server is away: its mail waits in the outbox too
    decline(console, request_id, "nee")
    assert requester_email(console, request_id) is None

    handler = Inbox()
    server = Controller(handler, hostname="127.0.0.1", port=port)
    server.start()
    try:
        console.clock.now = NOW + dt.timedelta(hours=2)   # past every retry delay so far
        wait_for(lambda: len(handler.messages) == 3, "the waiting mails delivered")
        wait_for(lambda: all(row.status == "sent" for row in outbox(console)), "the mails marked sent")
    finally:
        server.stop()
    assert sorted(a for m in handler.messages for a in m.rcpt_tos) == sorted([MANAGER, MANAGER_ELSEWHERE, PUPIL_MAIL])
    assert all(row.last_error is None and row.recipient == "" for row in outbox(console))


# --- mail off ----------------------------------------------------------------------------------

def test_without_smtp_nothing_is_asked_nor_written(console: Console) -> None:
    pupil = console.client()
    form = pupil.get("/deblokkeren").text
    assert 'name="email"' not in form and "E-mail" not in form
    response = pupil.post("/deblokkeren", data={"csrf": csrf_of(form), "url": URL, "requester": PUPIL,
                                               "reason": REASON, "email": PUPIL_MAIL})
    assert response.status_code == 303
    with console.store.read() as s:
        assert s.scalar(select(UnblockRequestRow.requester_email)) is None
    assert outbox(console) == []
    request_id = int(re.match(r"/aanvraag/(\d+)", response.headers["location"]).group(1))  # type: ignore[union-attr]
    decline(console, request_id, "nee")
    assert outbox(console) == []


# --- a recipient the server refuses ------------------------------------------------------------

class RefusingInbox(Inbox):
    """Refuses one address for good (550), takes the rest."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def handle_RCPT(self, server: object, session: object, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address == self.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_a_recipient_refused_for_good_is_given_up_without_keeping_the_address(
        make_console: Callable[..., Console], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from poortwachter.store import default_url

    port = free_port()
    handler = RefusingInbox(MANAGER)
    server = Controller(handler, hostname="127.0.0.1", port=port)
    server.start()
    try:
        console = make_console(default_url(tmp_path / "data"), mail=settings(port), mail_every_s=0.05)
        with_staff_addresses(console)
        caplog.set_level(logging.WARNING, logger="poortwachter.console")
        submit(console)
        wait_for(lambda: {row.status for row in outbox(console)} == {"sent", "failed"}, "one sent, one given up")
    finally:
        server.stop()
    [refused] = [row for row in outbox(console) if row.status == "failed"]
    assert (refused.recipient, refused.body, refused.last_error) == ("", "", "SMTPRecipientsRefused 550")
    assert [m.rcpt_tos for m in handler.messages] == [(MANAGER_ELSEWHERE,)]
    assert MANAGER not in caplog.text and "SMTPRecipientsRefused 550" in caplog.text


# --- the console's options ---------------------------------------------------------------------

def parse(*options: str) -> Any:
    import argparse

    from poortwachter.console.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["console", "--policy", "p.yaml", *options])


def test_mail_is_off_without_smtp_and_on_with_its_options() -> None:
    from poortwachter.console.cli import mail_settings

    assert mail_settings(parse(), {}) is None
    on = mail_settings(parse("--smtp", "mail.school.example", "--mail-from", SENDER,
                             "--console-url", "https://Console.school.example/"), {})
    assert on is not None
    assert (on.host, on.port, on.sender, on.console_url, on.starttls, on.user, on.password) == (
        "mail.school.example", 25, SENDER, "https://console.school.example", False, None, None)
    secured = mail_settings(parse("--smtp", "[2001:db8::25]:587", "--smtp-starttls", "--smtp-user", "pw",
                                  "--mail-from", SENDER, "--console-url", CONSOLE_URL),
                            {"POORTWACHTER_SMTP_PASSWORD": "geheim wachtwoord"})
    assert secured is not None
    assert (secured.host, secured.port, secured.starttls, secured.user) == ("2001:db8::25", 587, True, "pw")
    assert secured.password == "geheim wachtwoord" and "geheim" not in repr(secured)


@pytest.mark.parametrize(("options", "env"), [
    (("--smtp", "mail.school.example", "--mail-from", SENDER), {}),                     # no --console-url
    (("--smtp", "mail.school.example", "--console-url", CONSOLE_URL), {}),              # no --mail-from
    (("--smtp", "mail.school.example", "--mail-from", "geen adres", "--console-url", CONSOLE_URL), {}),
    (("--smtp", "mail.school.example:99999", "--mail-from", SENDER, "--console-url", CONSOLE_URL), {}),
    (("--smtp", "mail.school.example", "--mail-from", SENDER, "--console-url", "console.school.example"), {}),
    (("--smtp", "mail.school.example", "--smtp-user", "pw", "--mail-from", SENDER,   # a password in the clear
      "--console-url", CONSOLE_URL), {"POORTWACHTER_SMTP_PASSWORD": "x"}),
    (("--smtp", "mail.school.example", "--smtp-starttls", "--smtp-user", "pw", "--mail-from", SENDER,
      "--console-url", CONSOLE_URL), {}),                                                # no password
    (("--console-url", CONSOLE_URL), {}),                                                # mail options without --smtp
])
def test_mail_options_that_do_not_fit_together_are_refused(options: tuple[str, ...], env: dict[str, str]) -> None:
    from poortwachter.console.cli import mail_settings

    with pytest.raises(ValueError):
        mail_settings(parse(*options), env)


@pytest.mark.parametrize(("value", "expected"), [
    ("mail.school.example", ("mail.school.example", 25)), ("mail.school.example:587", ("mail.school.example", 587)),
    ("127.0.0.1:2525", ("127.0.0.1", 2525)), ("[::1]:25", ("::1", 25)), ("[::1]", ("::1", 25)), ("::1", ("::1", 25))])
def test_parse_smtp(value: str, expected: tuple[str, int]) -> None:
    from poortwachter.console.mailer import parse_smtp

    assert parse_smtp(value) == expected


@pytest.mark.parametrize("value", ["", ":25", "host:", "host:0", "host:smtp", "[::1", "[::1]25", "a b:25"])
def test_parse_smtp_refuses(value: str) -> None:
    from poortwachter.console.mailer import parse_smtp

    with pytest.raises(ValueError):
        parse_smtp(value)
