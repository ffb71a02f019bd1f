"""`poortwachter console`: serve the web console with uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .mailer import MailSettings

DEFAULT_LISTEN = "127.0.0.1:8090"
PASSWORD_ENV = "POORTWACHTER_SMTP_PASSWORD"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("console", help="serve the web console (unblock requests, classrooms, exams, exclusions)")
    p.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    p.add_argument("--policy", required=True, help="the policy file the gateway uses")
    p.add_argument("--db", help="store URL (default: sqlite:///DATA_DIR/poortwachter.db)")
    p.add_argument("--proxy-headers", action="store_true",
                   help="trust X-Forwarded-Proto/-For from 127.0.0.1 (behind a TLS reverse proxy)")
    mail = p.add_argument_group("e-mail notifications (off without --smtp: then none are written)")
    mail.add_argument("--smtp", metavar="HOST[:PORT]", help="the mail server that takes the console's mail (port 25)")
    mail.add_argument("--smtp-starttls", action="store_true", help="upgrade the SMTP session with STARTTLS")
    mail.add_argument("--smtp-user",
                      help=f"log in to the mail server (needs --smtp-starttls); the password in ${PASSWORD_ENV}")
    mail.add_argument("--mail-from", metavar="ADDRESS",
                      help="the From: address of the notifications (required with --smtp)")
    mail.add_argument("--console-url", metavar="URL",
                      help="the console's address in the links of a mail, e.g. https://console.school.nl "
                           "(required with --smtp)")
    # Hidden and for tests only, as `run --clock-file` (refused unless POORTWACHTER_TEST_CLOCK=1): tests
    # move the console through the timetable ("until the end of this lesson") in step with a gateway
    # on the same clock file.
    p.add_argument("--clock-file", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_console)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--listen: HOST:PORT verwacht / HOST:PORT expected")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def mail_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> MailSettings | None:
    """The console's mail settings from its options, or None without --smtp. ValueError (Dutch /
    English, without the refused value) for options that do not fit together."""
    from ..workflow.common import email_address
    from ..workflow.errors import Invalid
    from ..workflow.notify import console_url
    from .mailer import MailSettings, parse_smtp

    if args.smtp is None:
        if args.smtp_starttls or args.smtp_user or args.mail_from or args.console_url:
            raise ValueError("--smtp-starttls, --smtp-user, --mail-from en --console-url werken alleen met --smtp / "
                             "only work with --smtp")
        return None
    host, port = parse_smtp(args.smtp)
    if not args.mail_from or not args.console_url:
        raise ValueError("--smtp vraagt ook --mail-from en --console-url / --smtp needs --mail-from and --console-url")
    try:
        sender = email_address(args.mail_from)
    except Invalid:
        sender = None
    if sender is None:
        raise ValueError("--mail-from: e-mailadres ongeldig / e-mail address not valid")
    password = environ.get(PASSWORD_ENV)
    if args.smtp_user and not args.smtp_starttls:
        raise ValueError("--smtp-user vraagt --smtp-starttls (geen wachtwoord onversleuteld) / "
                         "--smtp-user needs --smtp-starttls (no password in the clear)")
    if args.smtp_user and not password:
        raise ValueError(f"--smtp-user: zet het wachtwoord in ${PASSWORD_ENV} / put the password in ${PASSWORD_ENV}")
    return MailSettings(host=host, port=port, sender=sender, console_url=console_url(args.console_url),
                        starttls=args.smtp_starttls, user=args.smtp_user or None,
                        password=password if args.smtp_user else None)


def cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from ..cli import clock_option_refused
    from ..clock import make_clock
    from ..policy.load import PolicyError
    from ..store.db import default_url
    from .app import create_app

    refusal = clock_option_refused("--clock-file") if args.clock_file else None
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        host, port = parse_listen(args.listen)
        mail = mail_settings(args, os.environ)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    try:
        app = create_app(args.db or default_url(data_dir), Path(args.policy), data_dir,
                         clock=make_clock(args.clock_file), mail=mail)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(f"Console op / on http://{host}:{port}/", file=sys.stderr)
    if mail is not None:
        print(f"Meldingen per e-mail via / notifications by e-mail through {mail.host}:{mail.port}", file=sys.stderr)
    # No access log: its lines carry client addresses and URLs with status-link tokens.
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False,
                proxy_headers=args.proxy_headers, forwarded_allow_ips="127.0.0.1", log_level="info")
    return 0
