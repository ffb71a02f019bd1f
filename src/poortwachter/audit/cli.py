"""`poortwachter keys init` and `poortwachter case ...`: the key ceremony and cases from the command line.

keys init [--threshold K] [--holders directie:NAME,ict:NAME[,fg:NAME]] [--passphrase-fd N]
case open --subject IP --from TIME --until TIME --reference REF --article ART
          --description TEXT --reason TEXT [--ends TIME]                       (directie)
case approve ID                                                                 (ICT)
case close ID --outcome TEXT          case inform ID --note TEXT                (directie, ICT)
case list [--json]                                                              (directie, ICT)
case view ID --share FILE --share FILE [...]                                    (directie, ICT)
case export ID --share FILE [...] --format json|csv --out FILE                  (directie, ICT)
case ledger [--case ID] [--json]                                  (read-only; for the FG and MR)

Case commands act as a console account: --user NAME (default: the login name) and its password
(asked, or the first line of --password-fd N). A share's passphrase is asked per --share file,
or read one line per file from --passphrase-fd N (the same descriptor as --password-fd may be
used: the password comes first). `keys init` asks each holder's passphrase twice.
`case ledger` needs no account: it shows no personal data and whoever runs it can read the
store anyway.

TIME is ISO-8601 ("2025-03-10T15:30", without offset: Europe/Amsterdam) or relative to now
("-3d", "-2h", "+30d"). Exit status: 0 done, 1 refused (role, state, store), 2 bad input
(including wrong shares or passphrases).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from ..cliexit import EXIT_INVALID, EXIT_OK, EXIT_REFUSED, guarded
from ..cliexit import CliExit as _Exit
LOCAL = ZoneInfo("Europe/Amsterdam")
_RELATIVE = re.compile(r"([+-])(\d+)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

Command = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys` and `case`; each leaf sets `func(args) -> exit status` and reads args.data_dir."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="URL", help="database URL (default: sqlite in the data directory)")
    common.add_argument("--at", help=argparse.SUPPRESS)   # act as if it were TIME (tests, drills)

    account = argparse.ArgumentParser(add_help=False)
    account.add_argument("--user", default=_login(), help="console account to act as (default: the login name)")
    account.add_argument("--password-fd", type=int, metavar="N", help="read the password from file descriptor N")

    shares = argparse.ArgumentParser(add_help=False)
    shares.add_argument("--share", action="append", default=[], required=True, type=Path, metavar="FILE",
                        help="a holder's share file (repeat for each share)")
    shares.add_argument("--passphrase-fd", type=int, metavar="N",
                        help="read the passphrases, one line per --share, from file descriptor N")

    def leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, func: Command, help: str,
             *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common, *parents], help=help, description=help)
        p.set_defaults(func=guarded(func, after=_Lines._open.clear))
        return p

    keys = subparsers.add_parser("keys", help="the key ceremony of the audit log").add_subparsers(
        dest="keys_command", metavar="{init}", required=True)
    p = leaf(keys, "init", cmd_keys_init, "make the escrow key (as shares) and the checkpoint key")
    p.add_argument("--threshold", type=int, default=2, help="shares needed to open events (default 2)")
    p.add_argument("--holders", default="directie,ict",
                   help="label:NAME per share holder, comma-separated (default: directie,ict)")
    p.add_argument("--passphrase-fd", type=int, metavar="N",
                   help="read the holders' passphrases, one line each, from file descriptor N")

    case = subparsers.add_parser("case", help="cases: the only way to look at audit events").add_subparsers(
        dest="case_command", metavar="{open,approve,close,inform,list,view,export,ledger}", required=True)
    p = leaf(case, "open", cmd_case_open, "open a case for an established violation (directie)", account)
    p.add_argument("--subject", required=True, help="the client address the case is about")
    p.add_argument("--from", dest="start", required=True, help="start of the window (TIME)")
    p.add_argument("--until", dest="end", required=True, help="end of the window (TIME, not after now)")
    p.add_argument("--reference", required=True, help="e.g. the incident number")
    p.add_argument("--article", required=True, help="the reglement article violated")
    p.add_argument("--description", required=True, help="the established violation")
    p.add_argument("--reason", required=True, help="why the logs are needed")
    p.add_argument("--ends", help="when the case can no longer be used (TIME; default +30d)")
    p = leaf(case, "approve", cmd_case_approve, "approve a case (ICT, not the opener)", account)
    p.add_argument("id", type=int)
    p = leaf(case, "close", cmd_case_close, "close a case", account)
    p.add_argument("id", type=int)
    p.add_argument("--outcome", required=True)
    p = leaf(case, "inform", cmd_case_inform, "record that the subject of a closed case was informed", account)
    p.add_argument("id", type=int)
    p.add_argument("--note", required=True, help="how and when the subject was informed")
    p = leaf(case, "list", cmd_case_list, "list the cases", account)
    p.add_argument("--json", action="store_true")
    p = leaf(case, "view", cmd_case_view, "show a case's events (needs the shares)", account, shares)
    p.add_argument("id", type=int)
    p = leaf(case, "export", cmd_case_export, "write a case's events to a file (needs the shares)", account, shares)
    p.add_argument("id", type=int)
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("--out", required=True, help="the file to write ('-': standard output)")
    p = leaf(case, "ledger", cmd_case_ledger, "show the access ledger (read-only)")
    p.add_argument("--case", type=int, help="only this case")
    p.add_argument("--json", action="store_true")


# --- keys -------------------------------------------------------------------------------------------

def cmd_keys_init(args: argparse.Namespace) -> int:
    from ..auditlog.keys import existing_keys, init_keys, parse_holders
    from ..workflow.errors import Invalid

    with _errors():
        holders = parse_holders(args.holders)
        if not 2 <= args.threshold <= len(holders):
            raise Invalid("Nodig: 2 <= drempel <= aantal houders / Needed: 2 <= threshold <= number of holders")
    with _store(args) as (store, now):
        with _errors():
            existing = existing_keys(store, args.data_dir, holders)
            if existing:
                raise _Exit(EXIT_REFUSED, "Er zijn al sleutels / Keys already exist: " + ", ".join(existing))
            reader = _Lines.of(args.passphrase_fd)
            phrases = {}
            for h in holders:
                phrase = _new_passphrase(reader, h.label, h.name)
                if phrase is None:
                    return EXIT_INVALID
                phrases[h.label] = phrase
            done = init_keys(store, args.data_dir, holders=holders, threshold=args.threshold, passphrases=phrases,
                             actor=f"cli:{_login()}", now=now)
    print(f"Sleutels gemaakt / Keys made: {done.threshold} van/of {len(done.holders)} deelsleutels / shares")
    print(f"  escrow.pub:     {done.escrow_file}  ({done.escrow_public.hex()})")
    print(f"  checkpoint.key: {done.checkpoint_file}  (publiek / public {done.checkpoint_public.hex()})")
    for holder, path in zip(done.holders, done.share_files, strict=True):
        print(f"  {holder.label} ({holder.name}): {path}")
    print("Geef elk deelsleutelbestand aan zijn houder en verwijder het daarna van deze machine. / "
          "Hand each share file to its holder, then remove it from this machine.")
    return EXIT_OK


def _new_passphrase(reader: _Lines | None, label: str, name: str) -> str | None:
    from ..auditlog.keys import check_passphrase

    if reader is not None:
        return check_passphrase(reader.line())
    first = getpass.getpass(f"Wachtzin voor {label} ({name}) / Passphrase for {label} ({name}): ")
    check_passphrase(first)
    if getpass.getpass("Nogmaals / Again: ") != first:
        print("Wachtzinnen verschillen / Passphrases differ", file=sys.stderr)
        return None
    return first


# --- cases -----------------------------------------------------------------------------------------

def cmd_case_open(args: argparse.Namespace) -> int:
    from ..auditlog.cases import open_case

    with _acting(args) as (store, user, now):
        start, end = _time(args.start, now), _time(args.end, now)
        ends = _time(args.ends, now) if args.ends else None
        with store.write() as s:
            case_id = open_case(s, user=user, reference=args.reference, article=args.article,
                                description=args.description, reason=args.reason, subject=args.subject,
                                window_start=start, window_end=end, ends_at=ends, now=now)
    print(f"Zaak {case_id} geopend; wacht op goedkeuring / Case {case_id} opened; awaiting approval")
    return EXIT_OK


def cmd_case_approve(args: argparse.Namespace) -> int:
    from ..auditlog.cases import approve_case

    with _acting(args) as (store, user, now), store.write() as s:
        approve_case(s, args.id, user=user, now=now)
    print(f"Zaak {args.id} goedgekeurd / Case {args.id} approved")
    return EXIT_OK


def cmd_case_close(args: argparse.Namespace) -> int:
    from ..auditlog.cases import close_case

    with _acting(args) as (store, user, now), store.write() as s:
        close_case(s, args.id, user=user, outcome=args.outcome, now=now)
    print(f"Zaak {args.id} gesloten; informeer nu de betrokkene / Case {args.id} closed; now inform the subject")
    return EXIT_OK


def cmd_case_inform(args: argparse.Namespace) -> int:
    from ..auditlog.cases import inform_case

    with _acting(args) as (store, user, now), store.write() as s:
        inform_case(s, args.id, user=user, note=args.note, now=now)
    print(f"Vastgelegd: betrokkene geïnformeerd / Recorded: subject informed (zaak/case {args.id})")
    return EXIT_OK


def cmd_case_list(args: argparse.Namespace) -> int:
    from ..auditlog.cases import expire_cases, list_cases

    with _acting(args) as (store, user, now):
        with store.write() as s:
            expire_cases(s, now=now)
        with store.read() as s:
            cases = list_cases(s, user=user)
    if args.json:
        print(json.dumps([_jsonable(asdict(c)) | {"state": c.state(now)} for c in cases], ensure_ascii=False))
        return EXIT_OK
    for c in cases:
        print(f"{c.id}\t{c.state(now)}\t{c.reference}\t{c.article}\t{c.subject}\t"
              f"{_local(c.window_start)} - {_local(c.window_end)}\t{c.opened_by}\t{c.approved_by or '-'}")
    return EXIT_OK


def cmd_case_view(args: argparse.Namespace) -> int:
    report = _unseal(args, "view", "")
    c = report.case
    print(f"Zaak / Case {c.id}: {c.reference} ({c.article}); betrokkene / subject {c.subject}; "
          f"{_local(c.window_start)} - {_local(c.window_end)}")
    for e in report.events:
        where = e.host + (e.path or "")
        print(f"{_local(e.at, seconds=True)}\t{e.gateway}\t{e.zone}\t{e.action}\t{e.category or '-'}\t{where}")
    print(_summary(report), file=sys.stderr)
    return EXIT_OK


def cmd_case_export(args: argparse.Namespace) -> int:
    from ..auditlog.cases import report_csv, report_json

    if args.out != "-" and Path(args.out).exists():
        print("Bestand bestaat al / File already exists", file=sys.stderr)
        return EXIT_INVALID
    report = _unseal(args, "export", args.format)
    content = report_json(report) if args.format == "json" else report_csv(report)
    if args.out == "-":
        sys.stdout.write(content)
    else:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
    print(_summary(report), file=sys.stderr)
    return EXIT_OK


def cmd_case_ledger(args: argparse.Namespace) -> int:
    from ..auditlog.ledger import ledger_entries

    with _store(args) as (store, _now), store.read() as s:
        entries = ledger_entries(s, case_id=args.case)
    if args.json:
        print(json.dumps([_jsonable(asdict(e)) for e in entries], ensure_ascii=False))
        return EXIT_OK
    for e in entries:
        events = "-" if e.events is None else str(e.events)
        print(f"{e.id}\t{_local(e.at, seconds=True)}\t{e.actor}\t{e.action}\t"
              f"{e.case_id if e.case_id is not None else '-'}\t{events}\t{e.note or '-'}")
    return EXIT_OK


def _unseal(args: argparse.Namespace, purpose: str, note: str):  # type: ignore[no-untyped-def]
    from ..auditlog.cases import unseal_case

    with _acting(args) as (store, user, now):
        reader = _Lines.of(args.passphrase_fd)
        pairs = []
        for path in args.share:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError:
                raise _Exit(EXIT_INVALID, "Deelsleutelbestand niet leesbaar / Share file not readable") from None
            if reader is not None:
                phrase = reader.line()
            else:
                phrase = getpass.getpass(f"Wachtzin voor {Path(path).name} / Passphrase for {Path(path).name}: ")
            pairs.append((text, phrase))
        return unseal_case(store, args.id, user=user, shares=pairs, now=now, purpose=purpose,  # type: ignore[arg-type]
                           note=note)


def _summary(report: Any) -> str:
    lines = [f"{len(report.events)} gebeurtenissen; vastgelegd in het toegangslogboek (nr. {report.ledger_id}) / "
             f"{len(report.events)} events; recorded in the access ledger (no. {report.ledger_id})"]
    if report.missing_periods:
        lines.append("Perioden zonder sleutel / Periods without a key: " + ", ".join(report.missing_periods))
    if report.unopened_periods:
        lines.append("Perioden niet te openen / Periods that did not open: " + ", ".join(report.unopened_periods))
    if report.unreadable:
        lines.append(f"Onleesbare gebeurtenissen / Unreadable events: {report.unreadable}")
    return "\n".join(lines)


# --- plumbing --------------------------------------------------------------------------------------

class _Lines:
    """Lines from a file descriptor, shared by --password-fd and --passphrase-fd when they are the
    same number (one reader, so nothing read ahead is lost)."""

    _open: dict[int, _Lines] = {}

    def __init__(self, fd: int) -> None:
        self._file: IO[str] = os.fdopen(fd, "r", encoding="utf-8", closefd=False)

    @classmethod
    def of(cls, fd: int | None) -> _Lines | None:
        if fd is None:
            return None
        if fd not in cls._open:
            cls._open[fd] = cls(fd)
        return cls._open[fd]

    def line(self) -> str:
        return self._file.readline().rstrip("\r\n")


@contextmanager
def _store(args: argparse.Namespace) -> Iterator[tuple[Any, dt.datetime]]:
    from sqlalchemy.exc import SQLAlchemyError

    from ..store import default_url, open_store

    try:
        now = dt.datetime.now(dt.UTC)
        if args.at:
            with _errors():
                now = _time(args.at, now)
        store = open_store(args.db or default_url(args.data_dir))
        try:
            yield store, now
        finally:
            store.close()
    except SQLAlchemyError as exc:   # the type only: the message may carry the URL
        raise _Exit(EXIT_REFUSED, f"Database niet bereikbaar / Database unreachable ({type(exc).__name__})") from None


@contextmanager
def _acting(args: argparse.Namespace) -> Iterator[tuple[Any, Any, dt.datetime]]:
    """The store, the logged-in account and the time; service refusals become exit codes."""
    from ..workflow.accounts import authenticate

    with _store(args) as (store, now), _errors():
        reader = _Lines.of(args.password_fd)
        if reader is not None:
            password = reader.line()
        else:
            password = getpass.getpass(f"Wachtwoord van {args.user} / Password of {args.user}: ")
        with store.write() as s:
            user = authenticate(s, username=args.user, password=password, source="cli", now=now)
        if user is None:
            raise _Exit(EXIT_REFUSED, "Onjuiste gebruikersnaam of wachtwoord / Wrong username or password")
        yield store, user, now
        _Lines._open.clear()


@contextmanager
def _errors() -> Iterator[None]:
    from ..workflow.errors import Conflict, Forbidden, Invalid, Throttled

    try:
        yield
    except Invalid as exc:
        raise _Exit(EXIT_INVALID, str(exc)) from None
    except (Forbidden, Conflict, Throttled) as exc:
        raise _Exit(EXIT_REFUSED, str(exc)) from None




def _time(value: str, now: dt.datetime) -> dt.datetime:
    from ..clock import parse_time
    from ..workflow.errors import Invalid

    m = _RELATIVE.fullmatch(value.strip())
    if m:
        delta = dt.timedelta(**{_UNITS[m.group(3)]: int(m.group(2))})
        return now + delta if m.group(1) == "+" else now - delta
    try:
        return parse_time(value).astimezone(dt.UTC)
    except ValueError:
        raise Invalid("Ongeldige tijd (ISO-8601 of -3d/+2h/+30m) / Invalid time (ISO-8601 or -3d/+2h/+30m)") from None


def _local(when: dt.datetime | None, *, seconds: bool = False) -> str:
    if when is None:
        return "-"
    return when.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _jsonable(out: dict[str, Any]) -> dict[str, Any]:
    for key, value in out.items():
        if isinstance(value, dt.datetime):
            out[key] = value.isoformat()
    return out


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


def main(argv: list[str] | None = None) -> int:
    """`python -m poortwachter.audit.cli ...` is the same as `poortwachter ...`."""
    from ..cli import main as poortwachter

    return poortwachter(argv)


if __name__ == "__main__":
    sys.exit(main())
